"""Test-only fault injection: run the recitebench CLI and die like a killed process (exit 137, no cleanup)
right after epoch N has been logged and, if due, checkpointed.

    python tests/kill_after_epoch.py N train --data ... --out RUN
    python -m torch.distributed.run --nproc_per_node 2 tests/kill_after_epoch.py N train ...   (every rank dies)

Production code has no hook for this: the wrapper replaces `checkpoint.maybe_save`, which the training loop
calls on every rank at the end of every epoch.
"""

from __future__ import annotations

import os
import sys

from recitebench.train import checkpoint


def main() -> int:
    kill_after = int(sys.argv[1])
    real = checkpoint.maybe_save

    def save_then_die(*args, epoch: int, **kwargs):
        real(*args, epoch=epoch, **kwargs)
        if epoch == kill_after:
            os._exit(137)

    checkpoint.maybe_save = save_then_die
    from recitebench.cli import main as cli

    return cli(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
