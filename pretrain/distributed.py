"""Process-group plumbing for the trainer: start-up, scalar collectives, stop signals, clean exit.

Ranks come from the launcher's environment (torchrun, `deepspeed`, or nothing: a lone process
gets a single-rank group here so that DeepSpeed does not go looking for MPI). Collectives use
the accelerator's device (gloo on CPU, NCCL on GPUs) and give up after `train.collective_timeout_s`
(a hung or dead peer makes the others raise instead of waiting forever: gloo always, NCCL with
`TORCH_NCCL_ASYNC_ERROR_HANDLING=1`); `collective_failure` turns such an error into one line.

Also the Linux process-lifetime helpers the launchers share (`parent_death_signal`,
`child_subreaper`): a process whose parent is gone gets SIGTERM instead of running on as an
orphan.

Never imports `pretrain.model` or `pretrain.data`.
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import socket
import sys
import time
from contextlib import contextmanager
from datetime import timedelta
from types import FrameType
from typing import NoReturn

import torch
import torch.distributed as dist

#: Exit codes of `python -m pretrain.train` (documented in its docstring).
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2

#: Collective timeout of `init()` when the caller gives none: `train.py` sets it from
#: `train.collective_timeout_s` before the trainer starts.
COLLECTIVE_TIMEOUT_S: float = 1800.0

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_libc = None


def _prctl(option: int, value: int) -> bool:
    """prctl(2); False where it is unavailable (not Linux). The first call (in the parent, before
    any fork) loads libc, so that a later call from a `preexec_fn` only makes the system call."""
    global _libc
    if not sys.platform.startswith("linux"):
        return False
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
        return _libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def parent_death_signal(signum: int = signal.SIGTERM, expected_parent: int | None = None) -> bool:
    """Ask the kernel to send `signum` to this process when its parent exits (PR_SET_PDEATHSIG).

    A rank whose launcher died then stops like on `kill -TERM` (finishes its step, saves) instead
    of training on as an orphan. `expected_parent` closes the race of a parent that died before
    the call: if this process has already been re-parented, it sends itself `signum` now. Safe
    in a `preexec_fn` (no allocation beyond ctypes' call). The setting is per process, survives
    exec, and is cleared in forked children.
    """
    ok = _prctl(_PR_SET_PDEATHSIG, int(signum))
    if ok and expected_parent is not None and os.getppid() != expected_parent:
        os.kill(os.getpid(), signum)
    return ok


def child_subreaper() -> bool:
    """Make this process adopt its orphaned descendants (PR_SET_CHILD_SUBREAPER): a launcher can
    then wait for (or kill) the ranks and loader workers of a child that died."""
    return _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def started_by_launcher() -> bool:
    """True when a launcher (deepspeed, torchrun, mpirun through DeepSpeed) announced ranks."""
    return "RANK" in os.environ or "LOCAL_RANK" in os.environ


#: Lower-case substrings of the errors gloo / NCCL / the c10d store raise when a peer hung or
#: went away (gloo: "Timed out waiting 10000ms for recv operation to complete", "Connection
#: closed by peer"; NCCL: "Watchdog caught collective operation timeout", "NCCL communicator was
#: aborted"; the store: "Timed out after 11 seconds waiting for clients").
_TIMEOUT_MARKS = ("timed out", "timeout")
_PEER_GONE_MARKS = ("connection closed by peer", "connection reset by peer", "broken pipe",
                    "connection refused", "communicator was aborted", "remote process exited",
                    "ncclremoteerror", "ncclsystemerror", "socket closed", "connection closed")
_COMM_MARKS = ("gloo", "nccl", "for recv operation", "for send operation", "processgroup",
               "tcpstore", "c10d", "collective")


def collective_failure(err: BaseException) -> str | None:
    """One-line description if `err` is a failed collective (a peer hung or is gone), else None.

    gloo raises RuntimeError / `DistBackendError`, NCCL and the store `torch.distributed.DistError`
    subclasses; a plain RuntimeError counts only if its text names the communication layer.
    """
    text = str(err)
    lower = text.lower()
    dist_error = getattr(dist, "DistError", None)
    is_dist = dist_error is not None and isinstance(err, dist_error)
    if not is_dist and not (isinstance(err, RuntimeError)
                            and any(mark in lower for mark in _COMM_MARKS)):
        return None
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(err).__name__)
    first = re.sub(r"^\[[^\]]*\.(cc|cpp|h|hpp):\d+\]\s*", "", first)  # gloo's source location
    if len(first) > 300:
        first = first[:300] + "..."
    if any(mark in lower for mark in _TIMEOUT_MARKS):
        return (f"a collective timed out after train.collective_timeout_s="
                f"{COLLECTIVE_TIMEOUT_S:g}s: another rank is hung or gone ({first})")
    if any(mark in lower for mark in _PEER_GONE_MARKS):
        return f"a collective failed: another rank is gone ({first})"
    return f"a collective failed ({first})"


def world_size_from_env() -> int:
    """World size the launcher announced (1 when started as a plain process)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def init(timeout_s: float | None = None) -> None:
    """Join (or, for a lone process, create) the default process group through DeepSpeed.

    `timeout_s` (the run's `train.collective_timeout_s`; default `COLLECTIVE_TIMEOUT_S`): how long
    any collective, and the rendezvous itself, waits for the other ranks before raising.
    """
    global COLLECTIVE_TIMEOUT_S
    import deepspeed
    from deepspeed.accelerator import get_accelerator

    if "RANK" not in os.environ:  # plain `python -m pretrain.train`: a group of one
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1",
                          MASTER_ADDR=os.environ.get("MASTER_ADDR", "127.0.0.1"),
                          MASTER_PORT=os.environ.get("MASTER_PORT", str(_free_port())))
    backend = get_accelerator().communication_backend_name()
    if get_accelerator().device_name() == "cpu":
        backend = "gloo"  # no oneCCL wheel on PyPI (PLATFORM.md)
        # DeepSpeed JIT-compiles a shared-memory all-reduce on CPU (30-90 s, recompiled whenever
        # its cache is touched by another build) that only `inference_all_reduce` uses;
        # training never calls it, so skip the build.
        import importlib

        ds_comm_torch = importlib.import_module("deepspeed.comm.torch")
        if hasattr(ds_comm_torch, "build_shm_op"):
            ds_comm_torch.build_shm_op = lambda: None
    else:
        get_accelerator().set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if timeout_s is not None:
        COLLECTIVE_TIMEOUT_S = float(timeout_s)
    timeout = timedelta(seconds=COLLECTIVE_TIMEOUT_S)
    _default_group_timeout(timeout)
    deepspeed.init_distributed(dist_backend=backend, timeout=timeout)


def _default_group_timeout(timeout: timedelta) -> None:
    """Give every process group made later the same timeout as the world group.

    torch builds a group created without a timeout (`new_group(ranks)`: DeepSpeed's ZeRO
    data-parallel group, a clone of the world) with its 30-minute default, not the world group's
    timeout, so a hung peer blocked ZeRO's gradient all-reduce for half an hour whatever
    `init_distributed` got. torch reads that default from these module attributes at each call.
    """
    from torch.distributed import distributed_c10d as c10d

    if isinstance(getattr(c10d, "default_pg_timeout", None), timedelta):
        c10d.default_pg_timeout = timeout
    if isinstance(getattr(c10d, "default_pg_nccl_timeout", None), timedelta):
        c10d.default_pg_nccl_timeout = timeout


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def device() -> torch.device:
    from deepspeed.accelerator import get_accelerator

    return torch.device(get_accelerator().current_device_name())


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum over ranks (returns a new tensor on the input's device)."""
    out = values.detach().clone().to(device())
    if dist.is_initialized():
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out.to(values.device)


def any_ranks(*flags) -> list[bool]:
    """Each flag (a bool or a 0-d tensor) OR-ed over the ranks, in one all-reduce."""
    t = torch.tensor([1 if bool(flag) else 0 for flag in flags], dtype=torch.int32,
                     device=device())
    if dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


def any_rank(flag: bool) -> bool:
    """True on every rank if `flag` is true on at least one."""
    return any_ranks(flag)[0]


class StopSignal:
    """SIGTERM / SIGINT → a flag the training loop polls once per step.

    The first signal only sets the flag (the loop finishes its step, saves, exits with
    128 + signal number). Launchers often deliver SIGTERM twice (a scheduler signals the process
    group, then the launcher forwards it to each rank), so repeats are ignored, except a second
    SIGINT at least 2 s after the first (Ctrl-C pressed again), which stops the process at once.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._since = 0.0
        self._previous: dict[int, object] = {}

    def install(self) -> "StopSignal":
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or 0)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            if signum == signal.SIGINT and time.monotonic() - self._since > 2.0:
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)
            return
        self.signum, self._since = signum, time.monotonic()
        message = (f"[rank {rank()}] got {signal.Signals(signum).name}: finishing this step, "
                   f"saving a checkpoint, then exiting (Ctrl-C again to stop at once)\n")
        try:
            os.write(sys.stderr.fileno(), message.encode())  # print() is not reentrant
        except OSError:  # a closed terminal must not turn the stop into a crash
            pass


@contextmanager
def stop_signals_deferred():
    """Hold SIGTERM/SIGINT back for a block (delivered when it ends).

    Wrap every `next()` on a DataLoader with it: worker processes fork inside `next()` and
    inherit this mask, so a launcher that signals the whole process group (torchrun `killpg`,
    deepspeed's process-tree terminate) cannot kill them mid-step; the rank itself still gets the
    signal, finishes its step, saves and shuts its workers down.
    """
    signals = {signal.SIGTERM, signal.SIGINT}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def finish(code: int, *, synchronize: bool = True) -> NoReturn:
    """Flush, leave the process group and exit without running interpreter teardown.

    `os._exit` avoids the occasional `terminate called without an active exception` abort of
    gloo/DeepSpeed threads at interpreter exit (PLATFORM.md). `synchronize=False` skips the
    barrier (a rank that failed alone would wait forever for the others).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    if dist.is_initialized():
        try:
            if synchronize:
                dist.barrier()
            dist.destroy_process_group()
        except Exception as err:  # noqa: BLE001 — exiting anyway; say why the group did not close
            print(f"[rank {rank()}] process group did not close cleanly: {err}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
