"""One job per run folder: `RUN_DIR/job.lock`, held by rank 0 for the whole run.

The lock file names its holder (host, pid, the process's start time, the command) and rank 0
refreshes its modification time every `HEARTBEAT_S` seconds from a daemon thread. A second job
on the same folder fails at start with one `error:` line naming the holder. A lock is *stale*
(its job is gone, e.g. SIGKILLed) when

* it was taken on this host and that pid is not running, or runs another program (pid reuse:
  the start time differs); or
* it was taken on another host and its heartbeat is older than `STALE_AFTER_S` (no way to ask
  another host's kernel; a live holder refreshes it 10 times in that window).

A stale lock is replaced with a note on stderr. Creation is atomic on local and NFS file systems
(a temporary file hard-linked to the lock name, which fails if the name exists). filelock's
`FileLock` relies on fcntl locks that NFS and some parallel file systems do not honour, and its
`SoftFileLock` cannot tell a stale lock from a live one: hence this small module.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from pathlib import Path

import psutil

LOCK_NAME = "job.lock"
HEARTBEAT_S = 30.0
STALE_AFTER_S = 300.0


class RunDirBusy(RuntimeError):
    """Another live job holds the run folder; the message names it."""


def _holder() -> dict:
    me = psutil.Process()
    return {"host": socket.gethostname(), "pid": os.getpid(), "create_time": me.create_time(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "command": " ".join(me.cmdline())}


def _read(path: Path) -> dict | None:
    """The holder recorded in `path`; {} for an unreadable (half-written) file, None if absent."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


def stale_reason(path: Path, holder: dict) -> str | None:
    """Why the lock at `path` held by `holder` is stale, or None if its job may be alive."""
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return "it is gone"
    if holder.get("host") == socket.gethostname():
        try:
            proc = psutil.Process(int(holder.get("pid", -1)))
            if abs(proc.create_time() - float(holder.get("create_time", 0))) < 1.0:
                return None
            return f"pid {holder.get('pid')} is now another process"
        except (psutil.NoSuchProcess, ValueError):
            return f"pid {holder.get('pid')} is not running"
    if age > STALE_AFTER_S:
        return f"no heartbeat for {age:.0f} s"
    return None


def _describe(holder: dict) -> str:
    return (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} (started "
            f"{holder.get('started', '?')})")


def check_free(run_dir: str | Path) -> None:
    """Raise `RunDirBusy` if a live job holds `run_dir` (no lock is taken)."""
    path = Path(run_dir) / LOCK_NAME
    holder = _read(path)
    if holder is not None and stale_reason(path, holder) is None:
        raise _busy(path, holder)


def _busy(path: Path, holder: dict) -> RunDirBusy:
    return RunDirBusy(f"{path.parent} is in use by another job: {_describe(holder)}; wait for it "
                      f"to finish or stop it (kill -TERM {holder.get('pid', 'PID')} on "
                      f"{holder.get('host', 'its host')}), or use another --run-dir (a lock "
                      f"left by a killed job is detected and replaced by itself: {path})")


class RunLock:
    """The lock of one run folder, held by this process until `release()`."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / LOCK_NAME
        self.holder = _holder()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> "RunLock":
        """Take the lock (replacing a stale one) or raise `RunDirBusy`."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{LOCK_NAME}.{socket.gethostname()}.{os.getpid()}")
        tmp.write_text(json.dumps(self.holder, indent=1), encoding="utf-8")
        try:
            for _ in range(2):
                try:
                    os.link(tmp, self.path)
                    break
                except FileExistsError:
                    holder = _read(self.path) or {}
                    reason = stale_reason(self.path, holder)
                    if reason is None:
                        raise _busy(self.path, holder)
                    print(f"note: replacing the stale lock of {_describe(holder)}: {reason}",
                          file=sys.stderr, flush=True)
                    self.path.unlink(missing_ok=True)
            else:
                raise RunDirBusy(f"could not take {self.path}: another job took it meanwhile")
        finally:
            tmp.unlink(missing_ok=True)
        self._thread = threading.Thread(target=self._heartbeat, name="run-lock", daemon=True)
        self._thread.start()
        return self

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                os.utime(self.path)
            except OSError:
                pass  # a vanished lock is reported by release(); training goes on

    def release(self) -> None:
        """Remove the lock if it is still ours."""
        self._stop.set()
        holder = _read(self.path)
        if holder and holder.get("pid") == self.holder["pid"] and \
                holder.get("host") == self.holder["host"]:
            self.path.unlink(missing_ok=True)
