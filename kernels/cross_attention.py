"""Cross-attention for VECO's plug-in blocks: queries from one sequence, keys/values from another.

`cross_attention(q, k, v, key_padding_mask)` is softmax(q k^T * scale + mask) v per head, with
Lq != Lk allowed. VECO reads K/V from a stop-gradient source (the other sequence's last hidden states).
The contract: the caller computes `k = W_k(source.detach())`, `v = W_v(source.detach())`; this op returns
gradients for q, k and v (so W_q, W_k, W_v learn) and, because the source was detached, nothing flows
into the source. The op itself never detaches anything.

A query row whose example has no kept key returns zeros (and zero gradients) on every path.

Paths: `cross_attention_reference` (PyTorch SDPA) and `cross_attention_triton` (FlashAttention-2 style
Triton kernels, O(Lq + Lk) extra memory, deterministic backward); `cross_attention` dispatches.
"""

from __future__ import annotations

import math
import sys
import types

import torch
import torch.nn.functional as F
from torch import Tensor

from kernels._triton_util import cdiv, dot_precision, next_power_of_2, upcast_in_kernel, use_triton

__all__ = ["cross_attention", "cross_attention_reference", "cross_attention_triton"]

_TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
_LOG2E = 1.4426950408889634


def _check(q: Tensor, k: Tensor, v: Tensor, key_padding_mask: Tensor | None) -> None:
    if q.dim() != 4 or k.dim() != 4 or v.shape != k.shape:
        raise ValueError(f"expected q [B, H, Lq, Dh] and k, v [B, H, Lk, Dh]; got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)}")
    if q.shape[:2] != k.shape[:2] or q.shape[3] != k.shape[3]:
        raise ValueError(f"q {tuple(q.shape)} and k {tuple(k.shape)} must agree on batch, heads and head dim")
    if k.shape[2] == 0:
        raise ValueError("cross_attention needs at least one key (Lk >= 1)")
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k, v must share a dtype; got {q.dtype}, {k.dtype}, {v.dtype}")
    if key_padding_mask is not None:
        expected = (k.shape[0], k.shape[2])
        if key_padding_mask.dtype != torch.bool or tuple(key_padding_mask.shape) != expected:
            raise ValueError(f"key_padding_mask must be bool [B, Lk] = {list(expected)} with True = keep; got "
                             f"{key_padding_mask.dtype} {tuple(key_padding_mask.shape)}")


def cross_attention_reference(q: Tensor, k: Tensor, v: Tensor, key_padding_mask: Tensor | None = None, *,
                              scale: float | None = None) -> Tensor:
    """PyTorch SDPA; examples whose keys are all padded attend to all keys and are then zeroed (no NaN)."""
    _check(q, k, v, key_padding_mask)
    if key_padding_mask is None:
        return F.scaled_dot_product_attention(q, k, v, scale=scale)
    any_key = key_padding_mask.any(dim=1)  # [B]
    attn_mask = (key_padding_mask | ~any_key[:, None])[:, None, None, :]  # [B, 1, 1, Lk]
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=scale)
    return out * any_key[:, None, None, None].to(out.dtype)


class _FlashCrossAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, scale: float) -> Tensor:
        from kernels import _xattn_kernels as xk

        batch, heads, lq, dim = q.shape
        lk = k.shape[2]
        block_d = max(16, next_power_of_2(dim))
        out = torch.empty_like(q, memory_format=torch.contiguous_format)  # [B, H, Lq, Dh]
        lse = torch.empty(batch, heads, lq, dtype=torch.float32, device=q.device)  # log2 domain
        mask_arg = mask if mask is not None else q.new_empty(1, dtype=torch.uint8)
        common = dict(HAS_MASK=mask is not None, BLOCK_D=block_d, UPCAST=upcast_in_kernel(q.dtype),
                      PRECISION=dot_precision(q.dtype))
        buckets = (next_power_of_2(lq), next_power_of_2(lk))

        def grid(meta: dict) -> tuple[int, int]:
            return (cdiv(lq, meta["BLOCK_M"]), batch * heads)

        xk.xattn_fwd_kernel[grid](
            q, k, v, mask_arg, out, lse, scale * _LOG2E, heads, lq, lk, dim, *buckets,
            *q.stride(), *k.stride(), *v.stride(), *out.stride(), **common,
        )
        ctx.save_for_backward(q, k, v, out, lse, mask)
        ctx.scale, ctx.common, ctx.buckets = scale, common, buckets
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        from kernels import _xattn_kernels as xk

        q, k, v, out, lse, mask = ctx.saved_tensors
        batch, heads, lq, dim = q.shape
        lk = k.shape[2]
        common = ctx.common
        mask_arg = mask if mask is not None else q.new_empty(1, dtype=torch.uint8)
        delta = torch.empty_like(lse)  # [B, H, Lq]
        block_m = 64
        xk.xattn_bwd_delta_kernel[(cdiv(lq, block_m), batch * heads)](
            out, grad_out, delta, heads, lq, dim, *out.stride(), *grad_out.stride(),
            BLOCK_M=block_m, BLOCK_D=common["BLOCK_D"],
        )
        strides = (*q.stride(), *k.stride(), *v.stride(), *grad_out.stride())
        scales = (ctx.scale * _LOG2E, ctx.scale)
        sizes = (heads, lq, lk, dim, *ctx.buckets)
        dq = dk = dv = None
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            dk = torch.empty(k.shape, dtype=k.dtype, device=k.device)  # contiguous, as the kernel assumes
            dv = torch.empty(v.shape, dtype=v.dtype, device=v.device)
            xk.xattn_bwd_dkdv_kernel[lambda meta: (cdiv(lk, meta["BLOCK_N"]), batch * heads)](
                q, k, v, mask_arg, grad_out, lse, delta, dk, dv, *scales, *sizes, *strides, **common,
            )
        if ctx.needs_input_grad[0]:
            dq = torch.empty(q.shape, dtype=q.dtype, device=q.device)
            xk.xattn_bwd_dq_kernel[lambda meta: (cdiv(lq, meta["BLOCK_M"]), batch * heads)](
                q, k, v, mask_arg, grad_out, lse, delta, dq, *scales, *sizes, *strides, **common,
            )
        return dq, dk, dv, None, None


def cross_attention_triton(q: Tensor, k: Tensor, v: Tensor, key_padding_mask: Tensor | None = None, *,
                           scale: float | None = None) -> Tensor:
    """Flash cross-attention in Triton (fp16 / bf16 / fp32, head dim <= 256); same contract as `cross_attention`."""
    _check(q, k, v, key_padding_mask)
    if q.dtype not in _TRITON_DTYPES:
        raise TypeError(f"the Triton cross-attention takes {_TRITON_DTYPES}, got {q.dtype}; use the reference path")
    if q.shape[3] > 256:
        raise ValueError(f"the Triton cross-attention supports head dim <= 256, got {q.shape[3]}")
    scale = 1.0 / math.sqrt(q.shape[3]) if scale is None else float(scale)
    mask = None if key_padding_mask is None else key_padding_mask.contiguous().view(torch.uint8)
    return _FlashCrossAttention.apply(q, k, v, mask, scale)


def cross_attention(q: Tensor, k: Tensor, v: Tensor, key_padding_mask: Tensor | None = None, *,
                    scale: float | None = None) -> Tensor:
    """softmax(q k^T * scale, keys masked by key_padding_mask) v.

    q: [B, H, Lq, Dh]; k, v: [B, H, Lk, Dh]; key_padding_mask: [B, Lk] bool, True = keep; scale defaults
    to Dh ** -0.5. Returns [B, H, Lq, Dh] in q's dtype. Gradients flow to q, k and v; pass k, v computed
    from a detached source to stop them there (VECO's stop-gradient). Triton on CUDA, SDPA elsewhere.
    """
    if use_triton("cross_attention", q, k, v) and q.dtype in _TRITON_DTYPES and q.shape[-1] <= 256:
        return cross_attention_triton(q, k, v, key_padding_mask, scale=scale)
    return cross_attention_reference(q, k, v, key_padding_mask, scale=scale)


class _CallableModule(types.ModuleType):
    """`kernels.cross_attention` names both this module and the op: calling the module runs the op."""

    def __call__(self, q: Tensor, k: Tensor, v: Tensor, key_padding_mask: Tensor | None = None, *,
                 scale: float | None = None) -> Tensor:
        return cross_attention(q, k, v, key_padding_mask, scale=scale)


sys.modules[__name__].__class__ = _CallableModule
