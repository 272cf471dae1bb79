"""One owner per run folder: a lock file beside the runs, which a dead owner's lock never blocks for long.

The same lock guards every output folder a command writes (`train --out`, `recite --out`, `data build --out`):
FOLDER's lock is FOLDER/../.locks/NAME.lock, which for a grid's run is the lock its worker holds, so a plain
`train` into a run the grid is training is refused too. A process that holds a lock may take it again (the grid
worker, then the training it runs).

RUNS_DIR/.locks/NAME.lock holds the owner's host, pid and a heartbeat the owner refreshes every 30 s. A lock is
stale when its owner's process is gone (same host) or its heartbeat is older than `stale_after_s` (another host:
a Slurm node that died). Taking a lock is one atomic link(); taking over a stale one is one atomic rename, so of
two workers that both see a stale lock only one wins.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import RecitebenchError

HEARTBEAT_S = 30.0
INHERITED = "RECITEBENCH_HELD_LOCK"  # a lock the process that started this one holds for it (torchrun ranks)


class RunLock:
    def __init__(self, runs_dir: Path, name: str, stale_after_s: float = 300.0):
        self.path = Path(runs_dir) / ".locks" / f"{name}.lock"
        self.stale_after_s = stale_after_s
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self._nested = False

    def acquire(self) -> bool:
        """True when this process now owns the run (or already did); False when another live owner holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        owner = self.owner()
        inherited = os.environ.get(INHERITED) == str(self.path.absolute()) and owner and not self.stale()
        if _mine(owner) or inherited:
            self._nested = True  # the outer holder keeps the heartbeat and releases it
            return True
        for _ in range(3):
            if self._link():
                self._beat = threading.Thread(target=self._heartbeat, daemon=True)
                self._beat.start()
                return True
            if not self.stale():
                return False
            moved = self.path.with_name(f"{self.path.name}.stale.{os.getpid()}")
            try:  # only one of the workers that saw the stale lock gets to move it away
                os.rename(self.path, moved)
                moved.unlink()
            except FileNotFoundError:
                pass
        return False

    def release(self) -> None:
        if self._nested:
            return
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        if _mine(self.owner()):
            self.path.unlink(missing_ok=True)

    def owner(self) -> dict | None:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def _link(self) -> bool:
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.{threading.get_ident()}")
        try:
            tmp.write_text(json.dumps({**_me(), "heartbeat": time.time()}), encoding="utf-8")
            os.link(tmp, self.path)  # atomic: fails when the lock exists
            return True
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)

    def stale(self) -> bool:
        info = self.owner()
        if info is None:  # half-written by an owner that died at once, or just removed
            return True
        if info.get("host") == socket.gethostname():
            return not _alive(int(info.get("pid", -1)))
        return time.time() - float(info.get("heartbeat", 0)) > self.stale_after_s

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            if not _mine(self.owner()):
                return
            tmp = self.path.with_name(self.path.name + ".beat")
            tmp.write_text(json.dumps({**_me(), "heartbeat": time.time()}), encoding="utf-8")
            os.replace(tmp, self.path)


def _me() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _mine(info: dict | None) -> bool:
    return bool(info) and (info.get("host"), info.get("pid")) == (socket.gethostname(), os.getpid())


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def writing(folder: str | os.PathLike, what: str = "output folder", wait_s: float = 0.0) -> Iterator[None]:
    """Hold FOLDER's lock while the block writes into it; a second live writer is refused with a one-line error
    naming the holder (two `train` processes into one --out would interleave two runs in one metrics.jsonl), or,
    with `wait_s`, waits that long for it. A folder whose parent cannot be written is refused the same way, before
    anything is written."""
    folder = Path(folder).absolute()
    lock = RunLock(folder.parent, folder.name)
    try:
        taken = lock.acquire()
        deadline = time.monotonic() + wait_s
        while not taken and time.monotonic() < deadline:
            time.sleep(0.2)
            taken = lock.acquire()
    except OSError as e:
        with contextlib.suppress(OSError):
            lock.path.parent.rmdir()
        reason = os.strerror(e.errno) if e.errno else str(e)
        hint = "; pass another --out" if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC) else ""
        raise RecitebenchError(f"{folder}: cannot write this {what} ({reason}){hint}") from None
    if not taken:
        owner = lock.owner() or {}
        raise RecitebenchError(f"{folder}: another process is writing this {what} (pid {owner.get('pid')} on "
                               f"{owner.get('host')}, lock {lock.path}); wait for it, or choose another --out")
    try:
        yield
    finally:
        lock.release()
        with contextlib.suppress(OSError):
            lock.path.parent.rmdir()  # the .locks folder goes with its last lock
