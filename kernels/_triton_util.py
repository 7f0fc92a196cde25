"""Path selection shared by every op in `kernels`: Triton kernel or plain PyTorch reference.

The choice comes from `XPRETRAIN_KERNELS` (`auto` | `triton` | `reference`, read at every call) unless
`set_kernel_mode` overrode it in-process.

* `auto` (default): Triton when the inputs are CUDA tensors and a Triton GPU driver is active, else the
  reference. CPU tensors never go to Triton in `auto`, even under the interpreter.
* `triton`: always Triton. CPU tensors are accepted only when `TRITON_INTERPRET=1` was set before Triton
  was imported (that is how the tests run the kernels); otherwise the call raises with what to change.
* `reference`: always the PyTorch reference.

This module must stay importable without Triton installed and never imports `pretrain`.
"""

from __future__ import annotations

import functools
import importlib.util
import os

import torch

MODES = ("auto", "triton", "reference")
ENV_VAR = "XPRETRAIN_KERNELS"

_mode_override: str | None = None


def set_kernel_mode(mode: str | None) -> None:
    """Force a path for every op in this process (`None` goes back to the environment variable)."""
    global _mode_override
    if mode is not None and mode not in MODES:
        raise ValueError(f"kernel mode must be one of {MODES}, got {mode!r}")
    _mode_override = mode


def kernel_mode() -> str:
    """The active mode: the `set_kernel_mode` override, else `$XPRETRAIN_KERNELS`, else `auto`."""
    if _mode_override is not None:
        return _mode_override
    mode = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise ValueError(f"{ENV_VAR}={mode!r} is not one of {MODES}; unset it or pick one of those")
    return mode


def interpreter_mode() -> bool:
    """True when Triton runs kernels on the CPU interpreter (`TRITON_INTERPRET=1`)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


@functools.lru_cache(maxsize=1)
def triton_importable() -> bool:
    return importlib.util.find_spec("triton") is not None


@functools.lru_cache(maxsize=1)
def triton_gpu_driver_active() -> bool:
    """True when Triton can launch on a GPU (importing Triton alone does not mean it can)."""
    if not triton_importable():
        return False
    import triton.backends

    try:
        return any(backend.driver.is_active() for backend in triton.backends.backends.values())
    except Exception:  # a broken driver install must not break the reference path
        return False


def use_triton(op: str, *tensors: torch.Tensor) -> bool:
    """Decide the path for one call of `op` on `tensors` (all on the same device)."""
    mode = kernel_mode()
    if mode == "reference":
        return False
    on_cuda = all(t.is_cuda for t in tensors)
    if mode == "auto":
        return on_cuda and triton_gpu_driver_active()
    if not triton_importable():
        raise RuntimeError(f"{ENV_VAR}=triton but Triton is not installed; pip install triton or use 'auto'")
    if on_cuda and triton_gpu_driver_active():
        return True
    if not on_cuda and interpreter_mode():
        return True
    raise RuntimeError(
        f"{op}: {ENV_VAR}=triton but the inputs are on {tensors[0].device} and no Triton driver can run "
        "them; move the inputs to a CUDA device, or set TRITON_INTERPRET=1 before importing triton to run "
        "the kernel on CPU (slow, for tests), or use XPRETRAIN_KERNELS=auto"
    )


def dot_precision(dtype: torch.dtype) -> str:
    """`tl.dot` precision that mirrors torch: TF32 for fp32 only where torch's matmul allows it."""
    if dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32 and not interpreter_mode():
        return "tf32"
    return "ieee"


def upcast_in_kernel(dtype: torch.dtype) -> bool:
    """The interpreter's `tl.dot` returns garbage on bf16 operands: upcast them to fp32 there."""
    return interpreter_mode() and dtype == torch.bfloat16


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def next_power_of_2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()
