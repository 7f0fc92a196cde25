"""Process-group plumbing for the trainer: start-up, scalar collectives, stop signals, clean exit.

Ranks come from the launcher's environment (torchrun, `deepspeed`, or nothing: a lone process
gets a single-rank group here so that DeepSpeed does not go looking for MPI). Collectives use
the accelerator's device (gloo on CPU, NCCL on GPUs).

Never imports `pretrain.model` or `pretrain.data`.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from contextlib import contextmanager
from types import FrameType
from typing import NoReturn

import torch
import torch.distributed as dist

#: Exit codes of `python -m pretrain.train` (documented in its docstring).
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2


def world_size_from_env() -> int:
    """World size the launcher announced (1 when started as a plain process)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def init() -> None:
    """Join (or, for a lone process, create) the default process group through DeepSpeed."""
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
    deepspeed.init_distributed(dist_backend=backend)


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


def any_rank(flag: bool) -> bool:
    """True on every rank if `flag` is true on at least one."""
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device())
    if dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


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
        os.write(sys.stderr.fileno(), message.encode())  # print() is not reentrant


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
