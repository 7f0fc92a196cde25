"""Triton kernels for the span extractor's L x L logits (imported lazily by `kernels.span_scores`).

Every kernel works on square tiles of Z = Q K^T for one example (program axis 1 = batch index) and
never writes the full matrix: the forward reduces the BCE loss to one partial sum per tile, the
backward writes dZ for one bounded chunk of rows (the caller turns it into dQ, dK with cuBLAS), the
decoder keeps a per-tile best cell and appends threshold hits to a per-example list.

Valid cells of example b: i <= j, i and j in {0} U [context_start_b, context_end_b). Tiles without a
valid cell do no loads and no dot products. Gold spans are a CSR list: gold_start/gold_end
[gold_offsets[b], gold_offsets[b+1]) belong to example b.
"""

from __future__ import annotations

import triton
import triton.language as tl

from kernels._triton_util import interpreter_mode

# (BLOCK, BLOCK_D, num_warps, num_stages) tried by the autotuner on GPUs; 64-128 square tiles keep
# the (BLOCK x BLOCK_D) operand pair well under the 228 KB of shared memory of an H100 per stage.
_GPU_TILE_CONFIGS = [
    (64, 64, 4, 3),
    (128, 64, 8, 3),
    (128, 32, 8, 4),
    (64, 128, 4, 3),
    (128, 128, 8, 2),
]
INTERPRETER_BLOCK = 32
DECODE_BLOCK = 64


def _tile_configs() -> list[triton.Config]:
    if interpreter_mode():
        return [triton.Config({"BLOCK": INTERPRETER_BLOCK, "BLOCK_D": 32}, num_warps=4, num_stages=1)]
    return [
        triton.Config({"BLOCK": block, "BLOCK_D": block_d}, num_warps=warps, num_stages=stages)
        for block, block_d, warps, stages in _GPU_TILE_CONFIGS
    ]


def smallest_tile() -> int:
    """Smallest BLOCK any config may pick: sizes per-tile output buffers for the worst case."""
    return INTERPRETER_BLOCK if interpreter_mode() else min(c[0] for c in _GPU_TILE_CONFIGS)


@triton.jit
def _logits_tile(q_base, k_base, rows, cols, n_eff, D, stride_ql, stride_qd, stride_kl, stride_kd,
                 BLOCK: tl.constexpr, BLOCK_D: tl.constexpr, UPCAST: tl.constexpr, PRECISION: tl.constexpr):
    """Z[rows, cols] = Q[rows] . K[cols] in fp32, [BLOCK, BLOCK]; rows/cols >= n_eff read as zeros."""
    acc = tl.zeros((BLOCK, BLOCK), dtype=tl.float32)
    row_in = rows < n_eff
    col_in = cols < n_eff
    for d0 in range(0, D, BLOCK_D):
        offs_d = d0 + tl.arange(0, BLOCK_D)
        d_in = offs_d < D
        q = tl.load(q_base + rows[:, None] * stride_ql + offs_d[None, :] * stride_qd,
                    mask=row_in[:, None] & d_in[None, :], other=0.0)
        kt = tl.load(k_base + cols[None, :] * stride_kl + offs_d[:, None] * stride_kd,
                     mask=col_in[None, :] & d_in[:, None], other=0.0)
        if UPCAST:
            q = q.to(tl.float32)
            kt = kt.to(tl.float32)
        acc = tl.dot(q, kt, acc, input_precision=PRECISION)
    return acc


@triton.jit
def _tile_has_valid_cell(r_lo, c_lo, cs, ce, BLOCK: tl.constexpr):
    """Whether the tile rows [r_lo, r_lo+BLOCK) x cols [c_lo, c_lo+BLOCK) holds any valid cell."""
    rows_hit = (r_lo == 0) | ((r_lo < ce) & (r_lo + BLOCK > cs))
    cols_hit = (c_lo == 0) | ((c_lo < ce) & (c_lo + BLOCK > cs))
    return (r_lo <= c_lo + BLOCK - 1) & rows_hit & cols_hit


@triton.jit
def _valid_cells(rows, cols, cs, ce):
    """([BLOCK, BLOCK] valid-cell mask, [BLOCK, BLOCK] mask of the [CLS] cell (0, 0))."""
    row_ok = (rows == 0) | ((rows >= cs) & (rows < ce))
    col_ok = (cols == 0) | ((cols >= cs) & (cols < ce))
    valid = row_ok[:, None] & col_ok[None, :] & (rows[:, None] <= cols[None, :])
    is_cls = (rows[:, None] == 0) & (cols[None, :] == 0)
    return valid, is_cls


@triton.jit
def _gold_targets(rows, cols, gold_start_ptr, gold_end_ptr, g_lo, g_hi, BLOCK: tl.constexpr):
    """1.0 where (row, col) is one of this example's gold spans, else 0.0; [BLOCK, BLOCK] fp32."""
    y = tl.zeros((BLOCK, BLOCK), dtype=tl.float32)
    for g in range(g_lo, g_hi):
        s = tl.load(gold_start_ptr + g)
        e = tl.load(gold_end_ptr + g)
        y = tl.where((rows[:, None] == s) & (cols[None, :] == e), 1.0, y)
    return y


@triton.autotune(configs=_tile_configs(), key=["n_bucket", "D"], reset_to_zero=["partial_ptr"])
@triton.jit
def span_bce_fwd_kernel(
    q_ptr, k_ptr, cs_ptr, ce_ptr, gold_off_ptr, gold_start_ptr, gold_end_ptr, partial_ptr,
    n_eff, D, n_bucket,
    stride_qb, stride_ql, stride_qd, stride_kb, stride_kl, stride_kd,
    BLOCK: tl.constexpr, BLOCK_D: tl.constexpr, UPCAST: tl.constexpr, PRECISION: tl.constexpr,
):
    """Per-tile BCE sum over valid cells except [CLS] into partial_ptr[b * n_programs + tile]; grid (n_tiles**2, B)."""
    pid = tl.program_id(0)
    b = tl.program_id(1)
    n_tiles = tl.cdiv(n_eff, BLOCK)
    r_lo = (pid // n_tiles) * BLOCK
    c_lo = (pid % n_tiles) * BLOCK
    cs = tl.load(cs_ptr + b)
    ce = tl.load(ce_ptr + b)
    tile_sum = tl.zeros((), dtype=tl.float32)
    if _tile_has_valid_cell(r_lo, c_lo, cs, ce, BLOCK):
        rows = r_lo + tl.arange(0, BLOCK)
        cols = c_lo + tl.arange(0, BLOCK)
        b64 = b.to(tl.int64)
        z = _logits_tile(q_ptr + b64 * stride_qb, k_ptr + b64 * stride_kb, rows, cols, n_eff, D,
                         stride_ql, stride_qd, stride_kl, stride_kd, BLOCK, BLOCK_D, UPCAST, PRECISION)
        valid, is_cls = _valid_cells(rows, cols, cs, ce)
        g_lo = tl.load(gold_off_ptr + b)
        g_hi = tl.load(gold_off_ptr + b + 1)
        y = _gold_targets(rows, cols, gold_start_ptr, gold_end_ptr, g_lo, g_hi, BLOCK)
        # stable BCE with logits: max(z, 0) - z*y + log(1 + exp(-|z|))
        loss = tl.maximum(z, 0.0) - z * y + tl.log(1.0 + tl.exp(-tl.abs(z)))
        tile_sum = tl.sum(tl.sum(tl.where(valid & (~is_cls), loss, 0.0), axis=1), axis=0)
    tl.store(partial_ptr + b * tl.num_programs(0) + pid, tile_sum)


@triton.autotune(configs=_tile_configs(), key=["n_bucket", "D"])
@triton.jit
def span_bce_dz_kernel(
    q_ptr, k_ptr, cs_ptr, ce_ptr, gold_off_ptr, gold_start_ptr, gold_end_ptr, scale_ptr, dz_ptr,
    r0, r1, n_eff, D, n_bucket,
    stride_qb, stride_ql, stride_qd, stride_kb, stride_kl, stride_kd, stride_zb, stride_zr, stride_zc,
    BLOCK: tl.constexpr, BLOCK_D: tl.constexpr, UPCAST: tl.constexpr, PRECISION: tl.constexpr,
):
    """dZ[b, i - r0, j - r0] = scale * (sigmoid(z_ij) - y_ij) for rows i in [r0, r1), cols j in [r0, n_eff).

    Zero on invalid cells and on the [CLS] cell (the caller adds that one with its own scale).
    Grid (n_row_tiles * n_col_tiles, B); every element of dZ[:, :r1-r0, :n_eff-r0] is written.
    """
    pid = tl.program_id(0)
    b = tl.program_id(1)
    n_col_tiles = tl.cdiv(n_eff - r0, BLOCK)
    r_lo = r0 + (pid // n_col_tiles) * BLOCK
    c_lo = r0 + (pid % n_col_tiles) * BLOCK
    rows = r_lo + tl.arange(0, BLOCK)
    cols = c_lo + tl.arange(0, BLOCK)
    cs = tl.load(cs_ptr + b)
    ce = tl.load(ce_ptr + b)
    b64 = b.to(tl.int64)
    dz = tl.zeros((BLOCK, BLOCK), dtype=tl.float32)
    if _tile_has_valid_cell(r_lo, c_lo, cs, ce, BLOCK):
        z = _logits_tile(q_ptr + b64 * stride_qb, k_ptr + b64 * stride_kb, rows, cols, n_eff, D,
                         stride_ql, stride_qd, stride_kl, stride_kd, BLOCK, BLOCK_D, UPCAST, PRECISION)
        valid, is_cls = _valid_cells(rows, cols, cs, ce)
        g_lo = tl.load(gold_off_ptr + b)
        g_hi = tl.load(gold_off_ptr + b + 1)
        y = _gold_targets(rows, cols, gold_start_ptr, gold_end_ptr, g_lo, g_hi, BLOCK)
        scale = tl.load(scale_ptr)
        dz = tl.where(valid & (~is_cls), (tl.sigmoid(z) - y) * scale, 0.0)
    out_mask = (rows[:, None] < r1) & (cols[None, :] < n_eff)
    out = dz_ptr + b64 * stride_zb + (rows - r0)[:, None] * stride_zr + (cols - r0)[None, :] * stride_zc
    tl.store(out, dz.to(dz_ptr.dtype.element_ty), mask=out_mask)


@triton.jit
def span_decode_kernel(
    q_ptr, k_ptr, cs_ptr, ce_ptr, best_val_ptr, best_idx_ptr, count_ptr, hit_start_ptr, hit_end_ptr,
    hit_logit_ptr, threshold, max_len, capacity, n_eff, D,
    stride_qb, stride_ql, stride_qd, stride_kb, stride_kl, stride_kd,
    BLOCK: tl.constexpr, BLOCK_D: tl.constexpr, UPCAST: tl.constexpr, PRECISION: tl.constexpr,
):
    """Context spans only (i <= j, both in [cs, ce), j - i < max_len when max_len > 0).

    best_val/best_idx[b, tile]: the tile's largest logit and its first row-major cell i * n_eff + j
    (-inf / 0 when the tile has no valid cell). Hits (z > threshold) go to hit_*[b, pos] with pos
    taken from the atomic counter count_ptr[b]; pos >= capacity is counted but not written.
    """
    pid = tl.program_id(0)
    b = tl.program_id(1)
    n_tiles = tl.cdiv(n_eff, BLOCK)
    r_lo = (pid // n_tiles) * BLOCK
    c_lo = (pid % n_tiles) * BLOCK
    cs = tl.load(cs_ptr + b)
    ce = tl.load(ce_ptr + b)
    active = (r_lo <= c_lo + BLOCK - 1) & (r_lo < ce) & (r_lo + BLOCK > cs) & (c_lo < ce) & (c_lo + BLOCK > cs)
    active = active & ((max_len <= 0) | (c_lo - (r_lo + BLOCK - 1) < max_len))
    best = tl.full((), float("-inf"), dtype=tl.float32)
    best_idx = tl.zeros((), dtype=tl.int32)
    if active:
        rows = r_lo + tl.arange(0, BLOCK)
        cols = c_lo + tl.arange(0, BLOCK)
        b64 = b.to(tl.int64)
        z = _logits_tile(q_ptr + b64 * stride_qb, k_ptr + b64 * stride_kb, rows, cols, n_eff, D,
                         stride_ql, stride_qd, stride_kl, stride_kd, BLOCK, BLOCK_D, UPCAST, PRECISION)
        row_ok = (rows >= cs) & (rows < ce)
        col_ok = (cols >= cs) & (cols < ce)
        span_len_ok = (max_len <= 0) | ((cols[None, :] - rows[:, None]) < max_len)
        valid = row_ok[:, None] & col_ok[None, :] & (rows[:, None] <= cols[None, :]) & span_len_ok
        z_valid = tl.where(valid, z, float("-inf"))
        best = tl.max(tl.max(z_valid, axis=1), axis=0)
        cell = rows[:, None] * n_eff + cols[None, :]
        best_idx = tl.min(tl.min(tl.where(valid & (z_valid == best), cell, 2147483647), axis=1), axis=0)
        hit = (valid & (z > threshold)).to(tl.int32)
        row_hits = tl.sum(hit, axis=1)
        n_hits = tl.sum(row_hits, axis=0)
        if n_hits > 0:
            base = tl.atomic_add(count_ptr + b, n_hits)
            pos = base + (tl.cumsum(row_hits, 0) - row_hits)[:, None] + (tl.cumsum(hit, 1) - hit)
            write = (hit > 0) & (pos < capacity)
            slot = b64 * capacity + pos
            tl.store(hit_start_ptr + slot, rows[:, None] + tl.zeros((BLOCK, BLOCK), dtype=tl.int32), mask=write)
            tl.store(hit_end_ptr + slot, cols[None, :] + tl.zeros((BLOCK, BLOCK), dtype=tl.int32), mask=write)
            tl.store(hit_logit_ptr + slot, z, mask=write)
    tl.store(best_val_ptr + b * tl.num_programs(0) + pid, best)
    tl.store(best_idx_ptr + b * tl.num_programs(0) + pid, best_idx)
