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

import psutil

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


# ---------------------------------------------------------------------------- fault injection

def flip_bytes(path: Path, count: int = 64, at: float = 0.5) -> None:
    """Invert `count` consecutive bytes of a file from `at` (a fraction of its size) on: a bad
    disk or network copy that keeps the size."""
    path = Path(path)
    data = bytearray(path.read_bytes())
    start = int(len(data) * at)
    data[start:start + count] = bytes(b ^ 0xFF for b in data[start:start + count])
    path.write_bytes(bytes(data))


def truncate(path: Path, fraction: float = 0.5) -> None:
    """Cut a file to `fraction` of its size: a write that stopped half-way."""
    path = Path(path)
    with open(path, "r+b") as handle:
        handle.truncate(int(path.stat().st_size * fraction))


# ---------------------------------------------------------------- launch-script jobs (signals)
def cmdline(pid: int) -> str:
    """Command line of `pid`, each argument followed by a space ("" if it is gone)."""
    try:
        return "".join(arg + " " for arg in psutil.Process(pid).cmdline())
    except psutil.Error:
        return ""


def pids_mentioning(marker: str) -> list[int]:
    """Live (non-zombie) processes other than this one whose command line contains `marker`."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        info = proc.info
        if info["pid"] != os.getpid() and info["status"] != psutil.STATUS_ZOMBIE and \
                marker in "".join(arg + " " for arg in info["cmdline"] or []):
            found.append(info["pid"])
    return found


def wait_until_gone(marker: str, timeout: float) -> float:
    """Seconds until no process mentions `marker`; fails naming the survivors after `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if not pids_mentioning(marker):
            return time.monotonic() - started
        time.sleep(0.2)
    left = {pid: cmdline(pid)[:200] for pid in pids_mentioning(marker)}
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    raise AssertionError(f"still running {timeout}s later: {left}")


def job_process(run_dir: Path, kind: str, rank: int = 0, timeout: float = 60) -> int:
    """Pid of one process of a `bash launch_scripts/…` job on `run_dir`: kind = "launcher"
    (`pretrain.launcher`, which runs DeepSpeed's runner), "node_launch" or "rank" (`rank`, a
    direct child of the node launcher: not one of its loader workers)."""
    marker = {"launcher": "-m pretrain.launcher ", "node_launch": "-m pretrain.node_launch ",
              "rank": f"-m pretrain.train --local_rank={rank} "}[kind]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [p for p in pids_mentioning(str(run_dir)) if marker in cmdline(p)]
        if kind == "rank":
            parents = {p for p in pids_mentioning(str(run_dir))
                       if "-m pretrain.node_launch " in cmdline(p)}
            pids = [p for p in pids if _parent(p) in parents]
        if len(pids) == 1:
            return pids[0]
        time.sleep(0.2)
    raise AssertionError(f"no single {kind} process for {run_dir}")


def _parent(pid: int) -> int:
    try:
        return psutil.Process(pid).ppid()
    except psutil.Error:
        return -1


def start_script(script: str, run_dir: Path, data_root: Path, log: Path, *sets: str,
                 **env: str) -> subprocess.Popen:
    """`bash launch_scripts/<script> --set …` on `data_root` → `run_dir`, in its own session."""
    args = []
    for item in sets:
        args += ["--set", item]
    return start(["bash", str(ROOT / "launch_scripts" / script), *args], log,
                 env=cpu_env(RUN_DIR=str(run_dir), DATA_DIR=str(data_root), **env))


def latest_checkpoint(run_dir: Path) -> dict | None:
    """complete.json of RUN_DIR/checkpoints/latest (None without one)."""
    root = Path(run_dir) / "checkpoints"
    if not (root / "latest").is_file():
        return None
    tag = (root / "latest").read_text().strip()
    path = root / tag / "complete.json"
    return {**json.loads(path.read_text()), "tag": tag} if path.is_file() else None


def script_command(nproc: int, script: Path, *args: str) -> list[str]:
    """`torchrun --nproc_per_node N SCRIPT ARGS`: a test's own rank program."""
    return [str(VENV_BIN / "torchrun"), f"--nproc_per_node={nproc}",
            f"--master_port={free_port()}", str(script), *args]


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


# The head of a `python -c` script that must run with our packages unimportable (an exported
# folder has to load without them): probes (find_spec) see a module, importing it fails.
BLOCK_OUR_PACKAGES = r"""import importlib.abc, importlib.machinery, json, sys
OURS = {"pretrain", "finetune", "data_prep", "kernels"}
class Blocker(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in OURS:
            return importlib.machinery.ModuleSpec(name, self)
    def create_module(self, spec):
        raise ImportError(f"{spec.name} must not be imported in this process")
    def exec_module(self, module):
        raise ImportError(module.__name__)
sys.meta_path.insert(0, Blocker())
"""


def config_args(config: Path, run_dir: Path, *sets: str) -> list[str]:
    """`--config CONFIG --run-dir RUN_DIR` and each of `sets` as `--set KEY=VALUE`."""
    args = ["--config", str(config), "--run-dir", str(run_dir)]
    for item in sets:
        args += ["--set", item]
    return args


def fp32_weights(run_dir: Path, step: int, zero_stage: int = 2):
    """The consolidated fp32 weights of checkpoint `step` of a run."""
    from pretrain.convert_to_hf import consolidate

    return consolidate(run_dir / "checkpoints" / f"step_{step:06d}", zero_stage)
