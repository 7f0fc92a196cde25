"""The GPU side of every Triton kernel compiles to a cubin for H100 (sm_90) and A100 (sm_80), no GPU needed.

The interpreter tests check the arithmetic; this catches what only the compiler sees (type errors in
control flow, layouts, shared memory over the 227 KB an SM offers).
"""

from __future__ import annotations

import os

import pytest

triton = pytest.importorskip("triton")
if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
    pytest.skip("compiles GPU code; run without TRITON_INTERPRET", allow_module_level=True)

from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from kernels import _span_kernels as sk  # noqa: E402
from kernels import _xattn_kernels as xk  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:TRITON_DEFAULT_FP_FUSION is unset")

SHARED_MEMORY_LIMIT = 232448  # bytes of shared memory one block may use on sm_80 / sm_90

_FP32_ARGS = {"partial_ptr", "scale_ptr", "best_val_ptr", "hit_logit_ptr", "lse_ptr", "delta_ptr"}
_DATA_ARGS = {"q_ptr", "k_ptr", "v_ptr", "o_ptr", "do_ptr", "dq_ptr", "dk_ptr", "dv_ptr", "dz_ptr"}
_FLOAT_SCALARS = {"threshold", "qk_scale", "sm_scale"}


def _signature(fn, dtype: str, constexprs: dict) -> dict:
    sig = {}
    for name in fn.arg_names:
        if name in constexprs:
            sig[name] = "constexpr"
        elif name in _DATA_ARGS:
            sig[name] = f"*{dtype}"
        elif name in _FP32_ARGS:
            sig[name] = "*fp32"
        elif name == "mask_ptr":
            sig[name] = "*u8"
        elif name.endswith("_ptr"):
            sig[name] = "*i32"
        else:
            sig[name] = "fp32" if name in _FLOAT_SCALARS else "i32"
    return sig


def _compile(kernel, dtype: str, arch: int, config: dict, num_warps: int, num_stages: int):
    fn = kernel
    while not isinstance(fn, triton.runtime.jit.JITFunction):  # unwrap the autotuner
        fn = fn.fn
    src = ASTSource(fn, signature=_signature(fn, dtype, config), constexprs=config)
    return triton.compile(src, target=GPUTarget("cuda", arch, 32),
                          options={"num_warps": num_warps, "num_stages": num_stages})


def _span_config(kernel):
    block, block_d, warps, stages = sk._GPU_TILE_CONFIGS[1]
    return {"BLOCK": block, "BLOCK_D": block_d, "UPCAST": False, "PRECISION": "ieee"}, warps, stages


def _xattn_config(kernel):
    configs = xk._GPU_FWD_CONFIGS if kernel is xk.xattn_fwd_kernel else xk._GPU_BWD_CONFIGS
    block_m, block_n, warps, stages = configs[0]
    return ({"HAS_MASK": True, "BLOCK_M": block_m, "BLOCK_N": block_n, "BLOCK_D": 64, "UPCAST": False,
             "PRECISION": "ieee"}, warps, stages)


CASES = [
    ("span_fwd", sk.span_bce_fwd_kernel, _span_config),
    ("span_dz", sk.span_bce_dz_kernel, _span_config),
    ("span_decode", sk.span_decode_kernel, _span_config),
    ("xattn_fwd", xk.xattn_fwd_kernel, _xattn_config),
    ("xattn_dkdv", xk.xattn_bwd_dkdv_kernel, _xattn_config),
    ("xattn_dq", xk.xattn_bwd_dq_kernel, _xattn_config),
]


@pytest.mark.parametrize("name,kernel,make_config", CASES, ids=[c[0] for c in CASES])
def test_kernel_compiles_for_h100(name, kernel, make_config):
    config, warps, stages = make_config(kernel)
    compiled = _compile(kernel, "bf16", 90, config, warps, stages)
    assert "wgmma" in compiled.asm["ptx"], f"{name}: no Hopper tensor-core instructions"
    assert compiled.metadata.shared <= SHARED_MEMORY_LIMIT


def test_fp16_and_fp32_compile_for_a100():
    config, warps, stages = _span_config(sk.span_bce_fwd_kernel)
    for dtype, precision in (("fp16", "ieee"), ("fp32", "tf32")):
        compiled = _compile(sk.span_bce_fwd_kernel, dtype, 80, dict(config, PRECISION=precision), warps, stages)
        assert "mma.sync" in compiled.asm["ptx"]
        assert compiled.metadata.shared <= SHARED_MEMORY_LIMIT
    xconfig, warps, stages = _xattn_config(xk.xattn_fwd_kernel)
    assert _compile(xk.xattn_fwd_kernel, "fp16", 80, xconfig, warps, stages).metadata.shared <= SHARED_MEMORY_LIMIT
