"""Rank-side half of the launch scripts (`deepspeed launch_scripts/<recipe>.sh` runs the script
with Python on every rank; its Python part runs this file).

Asks the script's bash part for the rank environment and the `pretrain.train` arguments
(`bash <script> --rank-settings`, NUL-separated `env:K=V` / `arg:X` items), applies them, and
hands over to `pretrain.train.main` with the user's own arguments (and the launcher's
`--local_rank=N`) appended.
"""

from __future__ import annotations

import os
import subprocess
import sys


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
    from pretrain.train import main as train_main

    train_main(args + sys.argv[1:])
