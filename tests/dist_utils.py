"""Small harness for distributed CPU tests: run `pretrain.train` (or a launch script) as 1-2 gloo
ranks in a subprocess through torchrun, and read what the run left in its directory."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
TINY = ROOT / "configs" / "tiny_mpmr.yaml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_env(**extra: str) -> dict[str, str]:
    """Environment for CPU ranks: DeepSpeed on CPU, one thread per rank, quiet warnings."""
    env = dict(os.environ)
    env.update(DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
               PYTHONWARNINGS="ignore", MASTER_PORT=str(free_port()))
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def train_command(nproc: int, args: list[str]) -> list[str]:
    """`torchrun --nproc_per_node N -m pretrain.train ARGS` (plain python for N = 0)."""
    if nproc == 0:
        return [sys.executable, "-m", "pretrain.train", *args]
    return [str(VENV_BIN / "torchrun"), f"--nproc_per_node={nproc}",
            f"--master_port={free_port()}", "-m", "pretrain.train", *args]


def tiny_args(data_root: Path, run_dir: Path, *sets: str) -> list[str]:
    """Arguments of a tiny run on `data_root`; each of `sets` becomes `--set KEY=VALUE`."""
    args = ["--config", str(TINY), "--run-dir", str(run_dir), "--set", f"data.paths=[{data_root}]"]
    for item in sets:
        args += ["--set", item]
    return args


def run(cmd: list[str], *, timeout: float = 300, env: dict | None = None,
        check: bool = True) -> subprocess.CompletedProcess:
    """Run to completion; on an unexpected exit code fail with the tail of the output."""
    proc = subprocess.run(cmd, cwd=ROOT, env=env or cpu_env(), capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\n--- stdout\n"
                             f"{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}")
    return proc


def start(cmd: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    """Start in the background (own session, so the test can signal the launcher alone)."""
    handle = open(log, "w")
    return subprocess.Popen(cmd, cwd=ROOT, env=env or cpu_env(), stdout=handle,
                            stderr=subprocess.STDOUT, start_new_session=True)


def wait_for_step(run_dir: Path, step: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(r["step"] >= step for r in train_records(run_dir)):
            return
        if proc.poll() is not None:
            raise AssertionError(f"run ended (rc {proc.returncode}) before step {step}")
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError(f"no step {step} within {timeout}s")


def metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def train_records(run_dir: Path) -> list[dict]:
    return [r for r in metrics(run_dir) if not r.get("eval")]


def eval_records(run_dir: Path) -> list[dict]:
    return [r for r in metrics(run_dir) if r.get("eval")]
