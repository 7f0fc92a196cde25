"""Triton flash cross-attention kernels (imported lazily by `kernels.cross_attention`).

FlashAttention-2 structure: the forward keeps a running max / sum per query row and writes O plus the
row log-sum-exp (base 2); the backward recomputes P from it in two kernels, one owning a block of keys
(dK, dV) and one a block of queries (dQ), so no atomics and a deterministic result. Scores live in the
log2 domain (scale * log2(e) folded into Q K^T) so the kernels use exp2.

Key padding: `mask[b, j] != 0` keeps key j. A query with no kept key gets O = 0, LSE = +inf (so P = 0
in backward) and zero gradients. Lq != Lk, any head dim up to 256 (padded to a power of two).
"""

from __future__ import annotations

import triton
import triton.language as tl

from kernels._triton_util import interpreter_mode

INTERPRETER_BLOCK = 32

# (BLOCK_M, BLOCK_N, num_warps, num_stages); the autotuner drops configs that overflow shared memory.
_GPU_FWD_CONFIGS = [(128, 64, 4, 3), (128, 64, 8, 3), (128, 128, 8, 3), (64, 64, 4, 4), (128, 32, 4, 4), (32, 32, 4, 2)]
_GPU_BWD_CONFIGS = [(64, 64, 4, 3), (64, 128, 8, 3), (128, 64, 8, 3), (32, 64, 4, 4), (64, 32, 4, 4), (32, 32, 4, 2)]


def _configs(gpu_configs: list[tuple[int, int, int, int]]) -> list[triton.Config]:
    if interpreter_mode():
        block = INTERPRETER_BLOCK
        return [triton.Config({"BLOCK_M": block, "BLOCK_N": block}, num_warps=4, num_stages=1)]
    return [
        triton.Config({"BLOCK_M": m, "BLOCK_N": n}, num_warps=warps, num_stages=stages)
        for m, n, warps, stages in gpu_configs
    ]


@triton.jit
def _load_rows(base, offs, n_rows, offs_d, D, stride_l, stride_d, UPCAST: tl.constexpr):
    """[len(offs), BLOCK_D] tile of a [n_rows, D] matrix; out-of-range rows and columns read as 0."""
    x = tl.load(base + offs[:, None] * stride_l + offs_d[None, :] * stride_d,
                mask=(offs[:, None] < n_rows) & (offs_d[None, :] < D), other=0.0)
    if UPCAST:
        x = x.to(tl.float32)
    return x


@triton.jit
def _key_keep(mask_ptr, b, offs_n, Lk, HAS_MASK: tl.constexpr):
    keep = offs_n < Lk
    if HAS_MASK:
        keep = keep & (tl.load(mask_ptr + b.to(tl.int64) * Lk + offs_n, mask=offs_n < Lk, other=0) != 0)
    return keep


@triton.autotune(configs=_configs(_GPU_FWD_CONFIGS), key=["lq_bucket", "lk_bucket", "BLOCK_D"])
@triton.jit
def xattn_fwd_kernel(
    q_ptr, k_ptr, v_ptr, mask_ptr, o_ptr, lse_ptr, qk_scale, H, Lq, Lk, D, lq_bucket, lk_bucket,
    stride_qb, stride_qh, stride_ql, stride_qd, stride_kb, stride_kh, stride_kl, stride_kd,
    stride_vb, stride_vh, stride_vl, stride_vd, stride_ob, stride_oh, stride_ol, stride_od,
    HAS_MASK: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    UPCAST: tl.constexpr, PRECISION: tl.constexpr,
):
    """O [B, H, Lq, D] and LSE [B, H, Lq] (log2 domain); grid (cdiv(Lq, BLOCK_M), B * H)."""
    pid_m = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    b64, h64 = b.to(tl.int64), h.to(tl.int64)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    q = _load_rows(q_ptr + b64 * stride_qb + h64 * stride_qh, offs_m, Lq, offs_d, D, stride_ql, stride_qd, UPCAST)
    k_base = k_ptr + b64 * stride_kb + h64 * stride_kh
    v_base = v_ptr + b64 * stride_vb + h64 * stride_vh
    m_i = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)
    for n0 in range(0, Lk, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        kt = tl.trans(_load_rows(k_base, offs_n, Lk, offs_d, D, stride_kl, stride_kd, UPCAST))
        v = _load_rows(v_base, offs_n, Lk, offs_d, D, stride_vl, stride_vd, UPCAST)
        s = tl.dot(q, kt, input_precision=PRECISION) * qk_scale  # [BLOCK_M, BLOCK_N], log2 domain
        s = tl.where(_key_keep(mask_ptr, b, offs_n, Lk, HAS_MASK)[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # rows with no kept key so far
        p = tl.exp2(s - m_safe[:, None])
        alpha = tl.exp2(m_i - m_safe)
        l_i = l_i * alpha + tl.sum(p, axis=1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
        m_i = m_new
    empty = l_i == 0.0
    out = acc / tl.where(empty, 1.0, l_i)[:, None]
    lse = tl.where(empty, float("inf"), m_i + tl.log2(tl.where(empty, 1.0, l_i)))
    o_rows = o_ptr + b64 * stride_ob + h64 * stride_oh + offs_m[:, None] * stride_ol + offs_d[None, :] * stride_od
    tl.store(o_rows, out.to(o_ptr.dtype.element_ty), mask=(offs_m[:, None] < Lq) & (offs_d[None, :] < D))
    tl.store(lse_ptr + bh.to(tl.int64) * Lq + offs_m, lse, mask=offs_m < Lq)


@triton.jit
def xattn_bwd_delta_kernel(o_ptr, do_ptr, delta_ptr, H, Lq, D, stride_ob, stride_oh, stride_ol, stride_od,
                           stride_gb, stride_gh, stride_gl, stride_gd, BLOCK_M: tl.constexpr,
                           BLOCK_D: tl.constexpr):
    """delta[b, h, i] = sum_d dO * O (fp32), the softmax-backward row term; grid (cdiv(Lq, BLOCK_M), B * H)."""
    pid_m = tl.program_id(0)
    bh = tl.program_id(1)
    b64, h64 = (bh // H).to(tl.int64), (bh % H).to(tl.int64)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    o = _load_rows(o_ptr + b64 * stride_ob + h64 * stride_oh, offs_m, Lq, offs_d, D, stride_ol, stride_od, True)
    do = _load_rows(do_ptr + b64 * stride_gb + h64 * stride_gh, offs_m, Lq, offs_d, D, stride_gl, stride_gd, True)
    tl.store(delta_ptr + bh.to(tl.int64) * Lq + offs_m, tl.sum(o * do, axis=1), mask=offs_m < Lq)


@triton.autotune(configs=_configs(_GPU_BWD_CONFIGS), key=["lq_bucket", "lk_bucket", "BLOCK_D"])
@triton.jit
def xattn_bwd_dkdv_kernel(
    q_ptr, k_ptr, v_ptr, mask_ptr, do_ptr, lse_ptr, delta_ptr, dk_ptr, dv_ptr, qk_scale, sm_scale,
    H, Lq, Lk, D, lq_bucket, lk_bucket,
    stride_qb, stride_qh, stride_ql, stride_qd, stride_kb, stride_kh, stride_kl, stride_kd,
    stride_vb, stride_vh, stride_vl, stride_vd, stride_gb, stride_gh, stride_gl, stride_gd,
    HAS_MASK: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    UPCAST: tl.constexpr, PRECISION: tl.constexpr,
):
    """dK, dV for one block of keys, looping over all queries; grid (cdiv(Lk, BLOCK_N), B * H).

    dk / dv are contiguous [B, H, Lk, D].
    """
    pid_n = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // H
    b64, h64 = b.to(tl.int64), (bh % H).to(tl.int64)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    k = _load_rows(k_ptr + b64 * stride_kb + h64 * stride_kh, offs_n, Lk, offs_d, D, stride_kl, stride_kd, UPCAST)
    v = _load_rows(v_ptr + b64 * stride_vb + h64 * stride_vh, offs_n, Lk, offs_d, D, stride_vl, stride_vd, UPCAST)
    keep = _key_keep(mask_ptr, b, offs_n, Lk, HAS_MASK)
    q_base = q_ptr + b64 * stride_qb + h64 * stride_qh
    do_base = do_ptr + b64 * stride_gb + h64 * stride_gh
    row_base = bh.to(tl.int64) * Lq
    dk = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
    dv = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
    for m0 in range(0, Lq, BLOCK_M):
        offs_m = m0 + tl.arange(0, BLOCK_M)
        q = _load_rows(q_base, offs_m, Lq, offs_d, D, stride_ql, stride_qd, UPCAST)
        do = _load_rows(do_base, offs_m, Lq, offs_d, D, stride_gl, stride_gd, UPCAST)
        lse = tl.load(lse_ptr + row_base + offs_m, mask=offs_m < Lq, other=float("inf"))
        delta = tl.load(delta_ptr + row_base + offs_m, mask=offs_m < Lq, other=0.0)
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale  # [BLOCK_M, BLOCK_N]
        p = tl.where(keep[None, :], tl.exp2(s - lse[:, None]), 0.0)
        dv += tl.dot(tl.trans(p.to(do.dtype)), do, input_precision=PRECISION)
        dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)
        ds = p * (dp - delta[:, None])
        dk += tl.dot(tl.trans(ds.to(q.dtype)), q, input_precision=PRECISION)
    out = b64 * H * Lk * D + h64 * Lk * D + offs_n[:, None] * D + offs_d[None, :]
    out_mask = (offs_n[:, None] < Lk) & (offs_d[None, :] < D)
    tl.store(dk_ptr + out, (dk * sm_scale).to(dk_ptr.dtype.element_ty), mask=out_mask)
    tl.store(dv_ptr + out, dv.to(dv_ptr.dtype.element_ty), mask=out_mask)


@triton.autotune(configs=_configs(_GPU_BWD_CONFIGS), key=["lq_bucket", "lk_bucket", "BLOCK_D"])
@triton.jit
def xattn_bwd_dq_kernel(
    q_ptr, k_ptr, v_ptr, mask_ptr, do_ptr, lse_ptr, delta_ptr, dq_ptr, qk_scale, sm_scale,
    H, Lq, Lk, D, lq_bucket, lk_bucket,
    stride_qb, stride_qh, stride_ql, stride_qd, stride_kb, stride_kh, stride_kl, stride_kd,
    stride_vb, stride_vh, stride_vl, stride_vd, stride_gb, stride_gh, stride_gl, stride_gd,
    HAS_MASK: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    UPCAST: tl.constexpr, PRECISION: tl.constexpr,
):
    """dQ for one block of queries, looping over all keys; dq is contiguous like q; grid (cdiv(Lq, BLOCK_M), B * H)."""
    pid_m = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // H
    b64, h64 = b.to(tl.int64), (bh % H).to(tl.int64)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    q = _load_rows(q_ptr + b64 * stride_qb + h64 * stride_qh, offs_m, Lq, offs_d, D, stride_ql, stride_qd, UPCAST)
    do = _load_rows(do_ptr + b64 * stride_gb + h64 * stride_gh, offs_m, Lq, offs_d, D, stride_gl, stride_gd, UPCAST)
    row_base = bh.to(tl.int64) * Lq
    lse = tl.load(lse_ptr + row_base + offs_m, mask=offs_m < Lq, other=float("inf"))
    delta = tl.load(delta_ptr + row_base + offs_m, mask=offs_m < Lq, other=0.0)
    k_base = k_ptr + b64 * stride_kb + h64 * stride_kh
    v_base = v_ptr + b64 * stride_vb + h64 * stride_vh
    dq = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)
    for n0 in range(0, Lk, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        k = _load_rows(k_base, offs_n, Lk, offs_d, D, stride_kl, stride_kd, UPCAST)
        v = _load_rows(v_base, offs_n, Lk, offs_d, D, stride_vl, stride_vd, UPCAST)
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale
        p = tl.where(_key_keep(mask_ptr, b, offs_n, Lk, HAS_MASK)[None, :], tl.exp2(s - lse[:, None]), 0.0)
        dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)
        ds = p * (dp - delta[:, None])
        dq += tl.dot(ds.to(k.dtype), k, input_precision=PRECISION)
    out = b64 * H * Lq * D + h64 * Lq * D + offs_m[:, None] * D + offs_d[None, :]
    tl.store(dq_ptr + out, (dq * sm_scale).to(dq_ptr.dtype.element_ty),
             mask=(offs_m[:, None] < Lq) & (offs_d[None, :] < D))
