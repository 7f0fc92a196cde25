"""Rank-side half of the launch scripts (`deepspeed launch_scripts/<recipe>.sh` runs the script
with Python on every rank; its Python part runs this file).

Asks the script's bash part for the rank environment and the `pretrain.train` arguments
(`bash <script> --rank-settings`, NUL-separated `env:K=V` / `arg:X` items), applies them, and
hands over to `pretrain.train.main` with the user's own arguments (and the launcher's
`--local_rank=N`) appended.

This form runs under DeepSpeed's own runner and node launcher (launch.py), so it keeps their
signal handling: TERM / INT to launch.py reach the ranks but launch.py SIGKILLs them 30 s later
and exits 1; Ctrl-C reaches every process of the terminal's group (the ranks save). What this
project adds: a rank stops (SIGTERM to itself: finish the step, save, exit 143) when launch.py
dies (PR_SET_PDEATHSIG, set by `pretrain.train`) and when the `deepspeed` runner above it dies,
e.g. on SIGTERM, which the runner does not forward (a watcher thread, here). Use
`bash launch_scripts/<recipe>.sh` for STOP_GRACE, named failures and meaningful exit codes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time


def _parent_of(pid: int) -> int:
    """Parent pid of `pid` (-1 if it is gone)."""
    import psutil

    try:
        return psutil.Process(pid).ppid()
    except psutil.Error:
        return -1


def watch_the_runner(interval_s: float = 1.0) -> bool:
    """Under DeepSpeed's launch.py: SIGTERM this rank once launch.py loses its parent (the
    `deepspeed` runner, or the remote shell pdsh started it from). True if watching."""
    import psutil

    launcher = os.getppid()
    try:
        if "deepspeed.launcher.launch" not in psutil.Process(launcher).cmdline():
            return False
    except psutil.Error:
        return False
    runner = _parent_of(launcher)
    if runner <= 1:
        return False

    def watch() -> None:
        while _parent_of(launcher) == runner:
            time.sleep(interval_s)
        os.kill(os.getpid(), signal.SIGTERM)  # the rank's stop handler: finish, save, exit

    threading.Thread(target=watch, name="runner-watch", daemon=True).start()
    return True


def main(script: str) -> None:
    """Run one rank for the launch script at `script`; never returns."""
    script = os.path.abspath(script)
    root = os.path.dirname(os.path.dirname(script))
    out = subprocess.run(["bash", script, "--rank-settings"], check=True,
                         stdout=subprocess.PIPE).stdout.decode()
    args = []
    for item in filter(None, out.split("\0")):
        kind, _, value = item.partition(":")
        if kind == "env":
            key, _, val = value.partition("=")
            os.environ[key] = val  # before torch is imported (OMP_NUM_THREADS, NCCL_*)
        else:
            args.append(value)
    sys.path.insert(0, root)
    watch_the_runner()
    from pretrain.train import main as train_main

    train_main(args + sys.argv[1:])
