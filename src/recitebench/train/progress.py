"""What a run reports while it trains: metrics.jsonl, a progress bar (terminals) or plain lines (logs: the first
and last epoch, every recall check, and an epoch at least every LINE_EVERY_S seconds), and the trackers of
--report-to (config, every epoch's scalars, the summary). Only the main process writes."""

from __future__ import annotations

import time

import torch

from ..rundir import RunDir
from ..trackers import Trackers, parse_report_to
from .config import TrainConfig

LINE_EVERY_S = 5.0  # without a terminal: a log line at least this often, not one per tiny epoch


class EpochLog:
    def __init__(
        self, run: RunDir, tcfg: TrainConfig, *, enabled: bool, total_steps: int, step: int, start_epoch: int, log
    ):
        self.run, self.tcfg, self.enabled, self.log, self.start_epoch = run, tcfg, enabled, log, start_epoch
        names = parse_report_to(tcfg.report_to) if enabled else ()
        self.trackers = Trackers(run.path, names) if names else None
        if self.trackers is not None:
            self.trackers.config(run.read_config())
        self.bar = None
        self.last_line = None  # wall time of the last plain progress line
        if enabled and tcfg.progress:
            # Imported here: tqdm picks its terminal or notebook flavour at import time.
            from tqdm.auto import tqdm

            bar = tqdm(
                total=total_steps,
                initial=step,
                unit="step",
                dynamic_ncols=True,
                mininterval=1.0,
                desc=f"epoch {start_epoch + 1}/{tcfg.epochs}",
                disable=None,  # None: no bar when not a terminal
            )
            self.bar = None if bar.disable else bar

    def step(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def epoch(self, row: dict) -> None:
        """Record one epoch's row everywhere it goes."""
        if not self.enabled:
            return
        done, elapsed = row["epoch"], row["elapsed_s"]
        if self.bar is not None:
            self.bar.set_description(f"epoch {done}/{self.tcfg.epochs}")
            recall = {"recall": f"{row['recall']:.1%}"} if "recall" in row else {}
            self.bar.set_postfix(loss=f"{row['loss']:.4f}", tok_s=f"{row['tokens_per_s']:.0f}", **recall)
        elif self.tcfg.progress and self._line_due(row):
            eta = elapsed / (done - self.start_epoch) * (self.tcfg.epochs - done) if done > self.start_epoch else 0.0
            recall = f"  recall {row['recall']:.1%}" if "recall" in row else ""
            self.log(
                f"epoch {done}/{self.tcfg.epochs}  loss {row['loss']:.4f}{recall}  "
                f"{row['tokens_per_s']:.0f} tok/s  elapsed {elapsed:.0f}s  eta {eta:.0f}s"
            )
        self.run.append_metrics(row)
        if self.trackers is not None:  # against the optimizer step: epochs differ in length across sets and batches
            self.trackers.log({k: v for k, v in row.items() if k != "step"}, row["step"])

    def _line_due(self, row: dict) -> bool:
        now = time.monotonic()
        due = (self.last_line is None or "recall" in row or row["epoch"] == self.tcfg.epochs
               or now - self.last_line >= LINE_EVERY_S)
        if due:
            self.last_line = now
        return due

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def finish(self, summary: dict) -> None:
        """The train summary into the trackers, which then close (a later recitation reopens them)."""
        if self.trackers is None:
            return
        step = int((summary.get("final") or {}).get("step", 0))
        self.trackers.log({"train": {k: v for k, v in summary.items() if k != "final"}}, step)
        self.trackers.close(last_step=step)


class Laps:
    """Wall seconds of a run's phases for train_summary.json, lap by lap: `lap(name)` adds the time since the previous
    lap to `name` (after waiting for the GPU, so queued work lands in the phase that queued it)."""

    def __init__(self, device: torch.device, start: float):
        self.device, self.t, self.seconds = device, start, {}

    def lap(self, name: str) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self.t
        self.t = now

    def rounded(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in self.seconds.items()}
