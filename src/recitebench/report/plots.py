"""The report's figures. Lines differ by style and marker, bars by hatch: readable in greyscale."""

from __future__ import annotations

import io
from collections import defaultdict

from ..schema import OUTCOMES
from ..stats import wilson_interval
from .collect import RunView
from .fonts import setup_matplotlib

STYLES = [("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"), ("-", "v"), ("--", "x"), (":", "*"), ("-.", "P")]
GREYS = ["0.1", "0.35", "0.55", "0.75"]
HATCHES = ["", "//", "..", "xx"]


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def memory_curves(runs: list[RunView]) -> bytes:
    """Exact recall (certified) and training loss per epoch; one panel pair per dataset, one line per model."""
    setup_matplotlib()
    import matplotlib.pyplot as plt

    by_ds: dict[str, list[RunView]] = defaultdict(list)
    for r in runs:
        by_ds[r.dataset].append(r)
    fig, axes = plt.subplots(len(by_ds), 2, figsize=(10, 3.2 * len(by_ds)), squeeze=False)
    for row, (ds, rs) in enumerate(sorted(by_ds.items())):
        for k, r in enumerate(sorted(rs, key=lambda r: r.model)):
            ls, mk = STYLES[k % len(STYLES)]
            pts = [m for m in r.metrics if "recall" in m]
            axes[row][0].plot(
                [m["epoch"] for m in pts],
                [100 * m["recall"] for m in pts],
                ls=ls,
                marker=mk,
                color="k",
                ms=4,
                label=r.model,
            )
            axes[row][1].plot(
                [m["epoch"] for m in r.metrics], [m["loss"] for m in r.metrics], ls=ls, color="k", label=r.model
            )
        axes[row][0].set(
            title=f"{ds}: exact recall during training", xlabel="epoch", ylabel="recall (%)", ylim=(-2, 102)
        )
        axes[row][1].set(title=f"{ds}: training loss", xlabel="epoch", ylabel="loss (poem tokens)", yscale="log")
        for ax in axes[row]:
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


MIN_BIN = 20  # poems: a length bin with fewer is merged into its neighbour (one poem would read as 0 % or 100 %)


def length_bins(samples, width: int = 32, min_n: int = MIN_BIN) -> list[tuple[int, int, list[bool]]]:
    """(first char, last char, hits) per bin of `width` characters, adjacent bins merged until each holds at least
    `min_n` poems (the last short bin joins the one before it)."""
    raw: dict[int, list[bool]] = defaultdict(list)
    for s in samples:
        raw[(s.chars - 1) // width].append(s.exact)
    bins: list[list] = []
    for b in sorted(raw):
        lo, hi = b * width + 1, (b + 1) * width
        if bins and len(bins[-1][2]) < min_n:
            bins[-1][1], bins[-1][2] = hi, bins[-1][2] + raw[b]
        else:
            bins.append([lo, hi, list(raw[b])])
    if len(bins) > 1 and len(bins[-1][2]) < min_n:
        lo, hi, hits = bins.pop()
        bins[-1][1], bins[-1][2] = hi, bins[-1][2] + hits
    return [(lo, hi, hits) for lo, hi, hits in bins]


def accuracy_by_length(runs: list[RunView], width: int = 32) -> bytes:
    """Exact recall per length bin with 95 % Wilson intervals; each point is labelled with its poem count."""
    setup_matplotlib()
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.8))
    for k, r in enumerate(sorted((r for r in runs if r.samples is not None), key=lambda r: r.name)):
        bins = length_bins(r.samples, width)
        xs = [(lo + hi) / 2 + 2 * k for lo, hi, _ in bins]  # runs side by side, not on top of each other
        ys = [100 * sum(h) / len(h) for _, _, h in bins]
        ci = [wilson_interval(sum(h), len(h)) for _, _, h in bins]
        err = [[max(0.0, y - 100 * lo) for y, (lo, _) in zip(ys, ci)],  # max: rounding must not give -1e-15
               [max(0.0, 100 * hi - y) for y, (_, hi) in zip(ys, ci)]]
        ls, mk = STYLES[k % len(STYLES)]
        ax.errorbar(xs, ys, yerr=err, ls=ls, marker=mk, color="k", ms=4, capsize=2, lw=1, label=r.name)
        for x, y, (_, _, h) in zip(xs, ys, bins):
            ax.annotate(f"n={len(h)}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=6)
    ax.set(
        title=f"Exact recall by length (bins of {width} characters, merged below {MIN_BIN} poems; 95 % intervals)",
        xlabel="prompt + poem characters",
        ylabel="exact recall (%)",
        ylim=(-2, 108),
    )
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def outcome_bars(runs: list[RunView]) -> bytes:
    setup_matplotlib()
    import matplotlib.pyplot as plt

    runs = sorted(runs, key=lambda r: r.name)
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(runs) + 2), 3.8))
    bottom = [0.0] * len(runs)
    for k, o in enumerate(OUTCOMES):
        vals = [100 * r.results.outcomes[o] / max(1, r.results.n) for r in runs]
        ax.bar(
            range(len(runs)),
            vals,
            bottom=bottom,
            color=GREYS[k],
            hatch=HATCHES[k],
            edgecolor="k",
            label=o.replace("_", " "),
        )
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_xticks(range(len(runs)), [r.name for r in runs], rotation=20, ha="right", fontsize=8)
    ax.set(ylabel="share of poems (%)", title="Graded recall: outcome of each memory query", ylim=(0, 100))
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return _png(fig)


def extraction_curves(runs: list[RunView]) -> bytes:
    """Exact extraction (Wilson 95 % band) against the poem tokens given, per run that ran the probe."""
    setup_matplotlib()
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for r in sorted((r for r in runs if r.extraction), key=lambda r: r.name):
        per_k = r.extraction["per_k"]
        ks = [p["k"] for p in per_k]
        ax.plot(ks, [100 * p["exact"] for p in per_k], marker="o", label=r.name)
        ax.fill_between(ks, [100 * p["exact_ci95"][0] for p in per_k], [100 * p["exact_ci95"][1] for p in per_k],
                        alpha=0.15)
    m = next(r.extraction["config"]["continuation_tokens"] for r in runs if r.extraction)
    ax.set(xlabel="poem tokens given after the prompt (k)", ylabel=f"next {m} tokens exact (%)",
           title="Extraction probe: greedy continuation after k poem tokens", ylim=(0, 100))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def dose_curves(runs: list[RunView]) -> bytes:
    """Exact recall (Wilson 95 % band) against exposures over the whole training (per epoch where the epochs are
    not known), per run of a dose set."""
    setup_matplotlib()
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for r in sorted((r for r in runs if r.results.by_exposure), key=lambda r: r.name):
        levels = r.results.by_exposure["levels"]
        xs = [lv.get("exposures_total", lv["exposures"]) for lv in levels]  # in all, where the epochs are known
        ax.plot(xs, [100 * lv["exact"] for lv in levels], marker="o", label=r.name)
        ax.fill_between(xs, [100 * lv["exact_ci95"][0] for lv in levels],
                        [100 * lv["exact_ci95"][1] for lv in levels], alpha=0.15)
    ax.set_xscale("log", base=2)
    ax.set(xlabel="exposures (in all; per epoch where the epochs are unknown)", ylabel="exact recall (%)",
           title="Exposure dose", ylim=(0, 100))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def retention_curves(runs: list[RunView]) -> bytes:
    """Per (run, recited set): the four graded outcomes' shares over the run's epochs (stacked), exact on top."""
    setup_matplotlib()
    import matplotlib.pyplot as plt

    curves = [(r.name, c) for r in sorted(runs, key=lambda r: r.name) for c in (r.retention or [])]
    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves) + 1, 3.8), squeeze=False)
    for ax, (name, c) in zip(axes[0], curves):
        epochs = [p["epoch"] for p in c["points"]]
        bottom = [0.0] * len(epochs)
        for k, o in enumerate(OUTCOMES):
            vals = [100 * p["outcomes"][o] / max(1, p["n"]) for p in c["points"]]
            ax.fill_between(epochs, bottom, [b + v for b, v in zip(bottom, vals)], color=GREYS[k], hatch=HATCHES[k],
                            edgecolor="k", linewidth=0.3, label=o.replace("_", " "))
            bottom = [b + v for b, v in zip(bottom, vals)]
        ax.set(xlabel="epoch of the run", ylabel="share of poems (%)", ylim=(0, 100),
               title=f"{name}: {c['data'].rsplit('/', 1)[-1]}")
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.suptitle("Retention: a set recited with every snapshot", fontsize=10)
    fig.tight_layout()
    return _png(fig)
