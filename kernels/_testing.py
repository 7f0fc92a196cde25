"""Accuracy rule for kernel tests: a kernel may not be worse than torch in the same dtype.

`assert_no_worse_than_torch(kernel, torch_same_dtype, fp64)` checks, element by element,
`|kernel - fp64| <= |torch_same_dtype - fp64| + tol` with tol = slack * eps(dtype) * max|fp64|.
Used by tests/test_kernels_*.py both in-process and in the TRITON_INTERPRET=1 subprocess, whose
harness (`run_interpreter_checks` / `interpreter_main`) lives here too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback

import torch
from torch import Tensor


def assert_no_worse_than_torch(kernel: Tensor, torch_same_dtype: Tensor, fp64: Tensor, *, dtype: torch.dtype,
                               name: str, slack: float = 8.0) -> None:
    if kernel.shape != fp64.shape or torch_same_dtype.shape != fp64.shape:
        raise AssertionError(f"{name}: shapes differ: kernel {tuple(kernel.shape)}, torch "
                             f"{tuple(torch_same_dtype.shape)}, fp64 {tuple(fp64.shape)}")
    ref = fp64.detach().double().cpu()
    err_kernel = (kernel.detach().double().cpu() - ref).abs()
    err_torch = (torch_same_dtype.detach().double().cpu() - ref).abs()
    if not torch.isfinite(err_kernel).all():
        raise AssertionError(f"{name}: kernel result has non-finite values")
    scale = ref.abs().max().item() if ref.numel() else 0.0
    tol = slack * torch.finfo(dtype).eps * max(scale, 1e-30)
    excess = err_kernel - (err_torch + tol)
    if excess.numel() and excess.max().item() > 0:
        worst = int(excess.flatten().argmax())
        raise AssertionError(
            f"{name} ({dtype}): |kernel - fp64| exceeds |torch - fp64| + tol at flat index {worst}: "
            f"kernel err {err_kernel.flatten()[worst].item():.3e}, torch err {err_torch.flatten()[worst].item():.3e}, "
            f"tol {tol:.3e} (max|fp64| = {scale:.3e})"
        )


def run_interpreter_checks(script: str, checks: list[str], root: str) -> dict:
    """Run `script` (a test file) as a subprocess under TRITON_INTERPRET=1 and XPRETRAIN_KERNELS=triton.

    The script calls `interpreter_main`; returns {check: {"ok", "error", "seconds"}}.
    """
    env = dict(os.environ, TRITON_INTERPRET="1", XPRETRAIN_KERNELS="triton", TRITON_DEFAULT_FP_FUSION="1",
               PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, script, *checks], env=env, capture_output=True, text=True,
                          timeout=900, cwd=root)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"interpreter subprocess failed (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return json.loads(lines[-1])


def interpreter_main(checks: list[str], namespace: dict) -> None:
    """Subprocess side: run namespace["check_<name>"]() for each name, print one JSON line of verdicts."""
    if os.environ.get("TRITON_INTERPRET") != "1":
        raise SystemExit("run through pytest: TRITON_INTERPRET=1 must be set before triton is imported")
    results = {}
    for name in checks:
        start = time.perf_counter()
        try:
            namespace["check_" + name]()
            results[name] = {"ok": True, "error": ""}
        except Exception:
            results[name] = {"ok": False, "error": traceback.format_exc()}
        results[name]["seconds"] = round(time.perf_counter() - start, 2)
    print(json.dumps(results))
