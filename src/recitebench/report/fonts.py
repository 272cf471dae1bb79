"""Pick a font that renders Chinese, so poem titles and recitations are readable in plots."""

from __future__ import annotations

import functools
import warnings

PREFERRED = ("WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC",
             "Source Han Sans CN", "SimHei", "Microsoft YaHei", "PingFang SC", "Heiti SC", "AR PL UMing CN")
PROBE = "诗"


@functools.lru_cache(maxsize=1)
def cjk_font() -> str | None:
    """The family name of an installed font that has CJK glyphs, or None."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    fonts = font_manager.fontManager.ttflist
    by_name = {f.name: f for f in fonts}
    for name in PREFERRED:
        if name in by_name:
            return name
    for f in fonts:
        try:
            if ord(PROBE) in FT2Font(f.fname).get_charmap():
                return f.name
        except (OSError, RuntimeError):
            continue
    return None


def setup_matplotlib() -> str | None:
    """Use a non-interactive backend and a CJK-capable font family (with DejaVu Sans for Latin text)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    font = cjk_font()
    if font is None:
        warnings.warn("no CJK font found (install fonts-wqy-microhei or fonts-noto-cjk): Chinese text in plots "
                      "will show as boxes", stacklevel=2)
        plt.rcParams["font.family"] = ["DejaVu Sans"]
    else:
        plt.rcParams["font.family"] = [font, "DejaVu Sans"]
    plt.rcParams["axes.unicode_minus"] = False
    return font
