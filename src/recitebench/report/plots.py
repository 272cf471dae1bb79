"""The report's figures. Lines differ by style and marker, bars by hatch: readable in greyscale."""

from __future__ import annotations

import io
from collections import defaultdict

from ..recall.graded import OUTCOMES
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


def accuracy_by_length(runs: list[RunView], width: int = 32) -> bytes:
    setup_matplotlib()
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    for k, r in enumerate(sorted(runs, key=lambda r: r.name)):
        buckets: dict[int, list[bool]] = defaultdict(list)
        for s in r.samples:
            buckets[(s.chars - 1) // width].append(s.exact)
        xs = sorted(buckets)
        ls, mk = STYLES[k % len(STYLES)]
        ax.plot(
            [(x + 0.5) * width for x in xs],
            [100 * sum(buckets[x]) / len(buckets[x]) for x in xs],
            ls=ls,
            marker=mk,
            color="k",
            ms=4,
            label=r.name,
        )
    ax.set(
        title="Exact recall by length (prompt + poem characters)",
        xlabel="characters",
        ylabel="exact recall (%)",
        ylim=(-2, 102),
    )
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
