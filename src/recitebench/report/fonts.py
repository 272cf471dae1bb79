"""Pick a font that renders Chinese, so poem titles and recitations are readable in plots."""

from __future__ import annotations

import functools
import glob
import warnings

PREFERRED = (
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "Source Han Sans CN",
    "SimHei",
    "Microsoft YaHei",
    "PingFang SC",
    "Heiti SC",
    "AR PL UMing CN",
)
# Where Debian, Fedora and macOS put CJK fonts: a font installed after matplotlib built its cache is still found.
FONT_GLOBS = (
    "/usr/share/fonts/**/wqy*.tt[cf]",
    "/usr/share/fonts/**/Noto*CJK*.tt[cf]",
    "/usr/share/fonts/**/*Han*Sans*.[ot]t[cf]",
    "/System/Library/Fonts/PingFang.ttc",
    "C:/Windows/Fonts/simhei.ttf",
)
PROBE = "诗"


def _has_glyph(path: str) -> bool:
    from matplotlib.ft2font import FT2Font

    try:
        return FT2Font(path).get_char_index(ord(PROBE)) != 0
    except (OSError, RuntimeError):
        return False


@functools.lru_cache(maxsize=1)
def cjk_font() -> str | None:
    """The family name of an installed font with real CJK glyphs, or None."""
    from matplotlib import font_manager

    fm = font_manager.fontManager
    for pattern in FONT_GLOBS:
        for path in sorted(glob.glob(pattern, recursive=True)):
            if path not in {f.fname for f in fm.ttflist}:
                fm.addfont(path)
    by_name = {f.name: f for f in fm.ttflist}
    for name in PREFERRED:
        if name in by_name and _has_glyph(by_name[name].fname):
            return name
    for f in fm.ttflist:
        # "Last Resort" fonts map every code point to a placeholder box: they have the glyph but not the character.
        if "last resort" not in f.name.lower() and _has_glyph(f.fname):
            return f.name
    return None


def setup_matplotlib() -> str | None:
    """Use a non-interactive backend and a CJK-capable font family (with DejaVu Sans for Latin text)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    font = cjk_font()
    if font is None:
        warnings.warn(
            "no CJK font found (install fonts-wqy-microhei or fonts-noto-cjk): Chinese text in plots "
            "will show as boxes",
            stacklevel=2,
        )
        plt.rcParams["font.family"] = ["DejaVu Sans"]
    else:
        plt.rcParams["font.family"] = ["DejaVu Sans", font]  # Latin from DejaVu, everything else falls back to CJK
    plt.rcParams["axes.unicode_minus"] = False
    return font
