"""The capacity report: OUT/capacity.png and OUT/capacity.md, read from OUT/capacity.json only.

Left: memorised bits against the bits in the dataset (the diagonal is perfect memory, the plateau is capacity).
Right: exact recall against dataset size. One line per model (style and marker differ: readable in greyscale);
with several seeds, the mean with the seeds' range as error bars.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from ..errors import RecitebenchError
from ..io import read_json
from .fonts import setup_matplotlib
from .plots import STYLES, _png


def read_capacity(root: str | Path) -> dict:
    path = Path(root) / "capacity.json"
    if not path.is_file():
        raise RecitebenchError(f"{root}: no capacity.json (run `recitebench capacity` first)")
    return read_json(path)


def _by_size(points: list[dict], key: str) -> tuple[list, list, list, list]:
    """(x, mean, low error, high error) over seeds, per dataset size; x is the mean dataset bits or the size."""
    groups: dict[int, list[dict]] = defaultdict(list)
    for p in points:
        groups[p["size"]].append(p)
    xs, ys, lo, hi = [], [], [], []
    for size in sorted(groups):
        vals = [p[key] or 0.0 for p in groups[size]]
        mean = sum(vals) / len(vals)
        xs.append(sum(p["dataset_bits"] or 0.0 for p in groups[size]) / len(vals) if key.endswith("bits") else size)
        ys.append(mean)
        lo.append(mean - min(vals))
        hi.append(max(vals) - mean)
    return xs, ys, lo, hi


def capacity_figure(cap: dict) -> bytes:
    setup_matplotlib()
    import matplotlib.pyplot as plt

    fig, (ax_bits, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    top, sizes = 0.0, set()
    for k, (name, m) in enumerate(cap["models"].items()):
        ls, mk = STYLES[k % len(STYLES)]
        label = f"{name} ({m['parameters']:,} params)" if m.get("parameters") else name
        x, y, lo, hi = _by_size(m["points"], "memorized_bits")
        ax_bits.errorbar(x, y, yerr=[lo, hi], linestyle=ls, marker=mk, color="0.15", capsize=2, label=label)
        top = max([top, *x])
        x, y, lo, hi = _by_size(m["points"], "exact_match")
        sizes.update(x)
        ax_acc.errorbar(x, [100 * v for v in y], yerr=[[100 * v for v in lo], [100 * v for v in hi]], linestyle=ls,
                        marker=mk, color="0.15", capsize=2, label=label)
    ax_bits.plot([0, top], [0, top], color="0.6", linewidth=0.8, label="perfect memory")
    ax_bits.set_xlabel("bits in the dataset (reference)")
    ax_bits.set_ylabel("memorised bits")
    ax_bits.legend(fontsize=7)
    ax_acc.axhline(100 * cap["threshold"], color="0.6", linewidth=0.8, linestyle=":")
    ax_bits.ticklabel_format(style="sci", scilimits=(0, 0))  # "1e6" once, not seven-digit labels that overlap
    ax_acc.set_xscale("log")
    ax_acc.set_xticks(sorted(sizes), [f"{s:,}" for s in sorted(sizes)])
    ax_acc.minorticks_off()
    ax_acc.set_xlabel("dataset size (poems)")
    ax_acc.set_ylabel("exact recall (%)")
    ax_acc.set_ylim(-2, 102)
    fig.tight_layout()
    return _png(fig)


def _fmt_interval(iv: dict, scale: float = 1.0, digits: int = 0) -> str:
    text = f"{iv['mean'] * scale:,.{digits}f}"
    if iv.get("low") is not None:
        text += f" [{iv['low'] * scale:,.{digits}f}, {iv['high'] * scale:,.{digits}f}]"
    return text


def capacity_markdown(cap: dict) -> str:
    lines = ["# Memory capacity", "", f"Threshold for a size to count as held: {cap['threshold']:.0%} exact recall. "
             "Intervals: 95 % t-interval over seeds (none with one seed).", "",
             "Every figure here is a **lower bound**: the grid engine trains each point to a fixed budget, not to "
             "convergence (`capacity.engine: stacked` measures a converged plateau on random tokens).", "",
             "| model | params | lr | lower bound (bits) | lower bound (bits / param) | largest size held | "
             "left the diagonal (< 90 % of the largest set) |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for name, m in cap["models"].items():
        bpp = m["bits_per_parameter"]
        lines.append(f"| {name} | {m['parameters']:,} | {m['lr']} | {_fmt_interval(m['capacity_bits'])} | "
                     f"{_fmt_interval(bpp, digits=4) if bpp.get('mean') is not None else '-'} | "
                     f"{_fmt_interval(m['max_size_at_threshold'])} | "
                     f"{'yes' if m['saturated'] else 'no: every size was memorised'} |")
    lines += ["", "![capacity](capacity.png)", "",
              "| model | seed | size | dataset bits | memorised bits | exact recall |",
              "|---|---:|---:|---:|---:|---:|"]
    for name, m in cap["models"].items():
        for p in m["points"]:
            lines.append(f"| {name} | {p['seed']} | {p['size']} | {p['dataset_bits'] or 0:,.0f} | "
                         f"{p['memorized_bits'] or 0:,.0f} | {p['exact_match']:.1%} |")
    return "\n".join(lines) + "\n"


def write_capacity_report(root: str | Path) -> Path:
    from ..io import atomic_path

    root = Path(root)
    cap = read_capacity(root)
    stacked = cap.get("engine") == "stacked"
    with atomic_path(root / "capacity.png") as tmp:
        tmp.write_bytes(stacked_figure(cap) if stacked else capacity_figure(cap))
    with atomic_path(root / "capacity.md") as tmp:
        tmp.write_text(stacked_markdown(cap) if stacked else capacity_markdown(cap), encoding="utf-8")
    return root / "capacity.md"


def stacked_figure(cap: dict) -> bytes:
    """Left: memorised bits against dataset bits per model (mean over seeds; hollow markers: not converged).
    Right: capacity against parameters, with the fitted slope per precision."""
    setup_matplotlib()
    import matplotlib.pyplot as plt

    fig, (ax, ax_fit) = plt.subplots(1, 2, figsize=(10, 3.8))
    top = 0.0
    for k, (name, m) in enumerate(cap["models"].items()):
        ls, mk = STYLES[k % len(STYLES)]
        sizes = m["sizes"]
        xs = [m["per_seed"][0]["points"][i]["dataset_bits"] for i in range(len(sizes))]
        ys = [sum(s["points"][i]["memorized_bits"] for s in m["per_seed"]) / len(m["per_seed"])
              for i in range(len(sizes))]
        conv = [all(s["points"][i]["converged"] for s in m["per_seed"]) for i in range(len(sizes))]
        ax.plot(xs, ys, linestyle=ls, color="0.15", label=f"{name} ({m['parameters']:,}, {m['precision']})")
        for x, y, c in zip(xs, ys, conv):
            ax.plot([x], [y], marker=mk, color="0.15", fillstyle="full" if c else "none")
        top = max([top, *xs])
        caps = [s["capacity_bits"] for s in m["per_seed"]]
        ax_fit.plot([m["parameters"]] * len(caps), caps, marker=mk, linestyle="none",
                    color="0.15" if m["precision"] == "fp32" else "0.55",
                    fillstyle="full" if m["label"] == "capacity" else "none")
    ax.plot([0, top], [0, top], color="0.6", linewidth=0.8, label="perfect memory")
    ax.set_xlabel("bits in the dataset (true entropy)")
    ax.set_ylabel("memorised bits")
    ax.ticklabel_format(style="sci", scilimits=(0, 0))
    ax.legend(fontsize=6)
    biggest = max(m["parameters"] for m in cap["models"].values())
    for prec, fit in cap["fits"].items():
        color = "0.15" if prec == "fp32" else "0.55"
        if fit.get("alpha"):
            ax_fit.plot([0, biggest], [0, fit["alpha"] * biggest], color=color, linewidth=0.8,
                        label=f"{prec}: {fit['alpha']:.2f} bits/parameter")
        if fit.get("at_least"):
            ax_fit.plot([0, biggest], [0, fit["at_least"]["alpha"] * biggest], color=color, linewidth=0.8,
                        linestyle="--", label=f"{prec}: >= {fit['at_least']['alpha']:.2f} (lower bounds)")
    ax_fit.set_xlabel("parameters")
    ax_fit.set_ylabel("capacity (bits; hollow: lower bound)")
    ax_fit.ticklabel_format(style="sci", scilimits=(0, 0))
    if any(fit.get("alpha") or fit.get("at_least") for fit in cap["fits"].values()):
        ax_fit.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


def stacked_markdown(cap: dict) -> str:
    """The table a reader cites: per model its capacity or lower bound, per precision the fitted slope."""
    lines = ["# Memory capacity on random tokens", "",
             "A capacity is the plateau of a model's two largest dataset sizes (both converged, within "
             f"{cap['config']['plateau_tolerance']:.0%}); anything else is a lower bound. Intervals: 95 % t over "
             "seeds.", "", _stacked_training(cap["config"]),
             "", "| model | precision | params | lr (grid: memorised bits at the largest size) | capacity (bits) | "
             "bits / param | reading |", "|---|---|---:|---|---:|---:|---|"]
    for name, m in cap["models"].items():
        grid = ", ".join(f"{lr}: {bits:,.0f}" for lr, bits in m["lr_grid"].items())
        edge = "" if m["lr_interior"] else " (best rate at the grid's edge)"
        if m.get("lr_chosen") == "best":  # rate_points: all
            edge += " (every size and seed at every rate: read at the best, chosen on the first seed)"
        if m.get("lr_gap", 0.0) > 0:
            edge += f" (best {m['lr_best']:g}; the rate used stores {m['lr_gap']:.1%} less)"
        if m.get("lr_unconverged"):
            edge += f" (not converged by the cap: {', '.join(f'{lr:g}' for lr in m['lr_unconverged'])})"
        lines.append(f"| {name} | {m['precision']} | {m['parameters']:,} | {m['lr']:g} ({grid}){edge} | "
                     f"{_fmt_interval(m['capacity_bits'])} | {_fmt_interval(m['bits_per_parameter'], digits=3)} | "
                     f"{m['label']} |")
    lines += ["", "| precision | alpha (bits / parameter) | per seed [95 %] | R^2 | models fitted | left out |",
              "|---|---:|---:|---:|---|---|"]
    for prec, fit in cap["fits"].items():
        if fit.get("alpha") is None:
            lines.append(f"| {prec} | - | - | - | {', '.join(fit['models']) or '-'} | {', '.join(fit['left_out'])} |")
        else:
            lines.append(f"| {prec} | {fit['alpha']:.3f} | {_fmt_interval(fit['alpha_per_seed'], digits=3)} | "
                         f"{_r2(fit)} | {', '.join(fit['models'])} | {', '.join(fit['left_out']) or '-'} |")
        low = fit.get("at_least")
        if low:
            lines.append(f"| {prec}, lower bounds included | >= {low['alpha']:.3f} (a lower bound) | "
                         f">= {_fmt_interval(low['alpha_per_seed'], digits=3)} | {_r2(low)} | "
                         f"{', '.join(low['models'])} | - |")
    lines += ["", "![capacity](capacity.png)", "",
              "| model | seed | size | dataset bits | memorised bits | converged at |",
              "|---|---:|---:|---:|---:|---:|"]
    for name, m in cap["models"].items():
        for s in m["per_seed"]:
            for p in s["points"]:
                lines.append(f"| {name} | {s['seed']} | {p['n']:,} | {p['dataset_bits']:,.0f} | "
                             f"{p['memorized_bits']:,.0f} | {p['converged_step'] or 'not converged'} |")
    return "\n".join(lines) + "\n"


def _r2(fit: dict) -> str:
    return "-" if fit.get("r2") is None else f"{fit['r2']:.4f}"


def _stacked_training(c: dict) -> str:
    schedule = c.get("schedule", "constant")
    if schedule == "inverse-sqrt":
        schedule += f" from step {c['decay_steps']:,}"
    head = f"Training: AdamW, {c['batch']} sequences per step, learning rate {schedule} after warmup; "
    if c.get("anneal_steps"):
        return head + (f"every measurement is of a copy annealed over {c['anneal_steps']:,} steps (rate linearly to 0; "
                       f"training goes on from before it), at budgets 4/3 apart; a point converged when its annealed "
                       f"memorised bits after T steps and after 3T/4 differ by < {c['tolerance']:.0%} (not before step "
                       f"{c['min_steps']:,}), cap {c['max_steps']:,} steps.")
    return head + (f"a point converged when its memorised bits changed by < {c['tolerance']:.0%} over the last quarter "
                   f"of its steps (not before step {c['min_steps']:,}, measured every {c['eval_every']:,}), cap "
                   f"{c['max_steps']:,} steps.")


def capacity_summary(result: dict) -> str:
    """One line per model: what `recitebench capacity` prints at the end."""
    if result.get("engine") == "stacked":
        lines = [f"{name}: {m['label']} {m['capacity_bits']['mean']:,.0f} bits "
                 f"({m['bits_per_parameter']['mean']:.3f} bits/param, {m['precision']})"
                 for name, m in result["models"].items()]
        for prec, fit in result["fits"].items():
            lines.append(f"{prec}: alpha {fit['alpha']:.3f} bits/parameter (R^2 {_r2(fit)}) over "
                         f"{', '.join(fit['models'])}" if fit.get("alpha") else f"{prec}: no slope ({fit.get('note')})")
            if fit.get("at_least"):
                lines.append(f"{prec}: alpha >= {fit['at_least']['alpha']:.3f} bits/parameter over lower bounds "
                             f"(R^2 {_r2(fit['at_least'])})")
        return "\n".join(lines)
    lines = []
    for name, m in result["models"].items():
        bpp = m["bits_per_parameter"]["mean"]
        lines.append(f"{name}: capacity {m['capacity_bits']['mean']:,.0f} bits"
                     + (f" ({bpp:.4f} bits/parameter)" if bpp is not None else "")
                     + f", largest size at {result['threshold']:.0%} recall: {m['max_size_at_threshold']['mean']:g}"
                     + " (a lower bound: the grid engine trains to a fixed budget, not to convergence)")
    return "\n".join(lines)
