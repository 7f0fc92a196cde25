"""mPMR span-extractor loss (WAE) and span decoding without the [B, L, L] logits matrix.

Logits Z_ij = Q_i . K_j with Q = FFN(H) (applied by the caller) and K = H, both [B, L, d].
Valid cells of example b: i <= j with i, j in {0} U [context_start_b, context_end_b) (position 0 is
[CLS], context_end exclusive). Targets: 1 at (0, 0) iff the example has at least one gold span, 1 at
every gold (start, end) (token indices, end inclusive, inside the context), 0 elsewhere.
Loss = sum of BCE-with-logits over the valid cells of the whole batch / number of those cells (the
reference implementation's normalisation).

Gold spans are sparse: `answer_spans` [N, 3] int rows (batch, start, end), all examples concatenated in
any order; `answer_counts` [B] int is the number of rows of each example (or None to derive it from the
batch column). An example with no row is unanswerable.

Paths (see `kernels._triton_util` for the dispatch rules):
* `span_bce_loss_naive`: the full [B, L, L] matrix and a dense label tensor; test oracle and bench baseline.
* `span_bce_loss_reference`: plain PyTorch over chunks of rows ([B, chunk, L] at a time). A custom
  autograd.Function keeps only Q and K and recomputes each chunk in backward, so memory stays bounded.
* `span_bce_loss_triton`: the forward is one Triton kernel (per-tile partial sums, no matrix); the
  backward recomputes dZ for one bounded chunk of rows at a time in Triton and turns it into dQ and dK with
  cuBLAS (d = 768-1024 is too wide to keep per-row dQ/dK accumulators in registers, and bmm on
  [B, chunk, L] blocks runs at tensor-core speed).
Both bounded paths keep extra memory at O(B * chunk * L + B * L * d) instead of O(B * L^2).
"""

from __future__ import annotations

import dataclasses
import functools

import torch
import torch.nn.functional as F
from torch import Tensor

from kernels._triton_util import cdiv, dot_precision, interpreter_mode, next_power_of_2, upcast_in_kernel, use_triton

__all__ = [
    "span_bce_loss",
    "span_bce_loss_reference",
    "span_bce_loss_triton",
    "span_bce_loss_naive",
    "span_decode",
    "span_decode_reference",
    "span_decode_triton",
    "span_cls_logits",
]

# Logits of one example per row chunk ([chunk, L]). The reference holds several fp32 tensors of that size;
# the Triton path only one dZ buffer, and bigger chunks mean fewer passes over its fp32 dK accumulator.
REFERENCE_CHUNK_ELEMENTS = 1 << 18
TRITON_CHUNK_ELEMENTS = 1 << 20
_TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def default_chunk_rows(n_eff: int, triton: bool) -> int:
    """Rows per chunk so that one example's chunk holds about *_CHUNK_ELEMENTS logits (multiple of 64)."""
    budget = TRITON_CHUNK_ELEMENTS if triton else REFERENCE_CHUNK_ELEMENTS
    rows = max(64, (budget // max(n_eff, 1)) // 64 * 64)
    return min(rows, max(n_eff, 1))


@dataclasses.dataclass(frozen=True)
class _SpanBatch:
    """Validated per-batch layout shared by every path (device tensors unless noted)."""

    context_start: Tensor  # [B] int32
    context_end: Tensor  # [B] int32
    gold_offsets: Tensor  # [B + 1] int32: gold rows of example b are [offsets[b], offsets[b+1])
    gold_start: Tensor  # [max(N, 1)] int32, grouped by example
    gold_end: Tensor  # [max(N, 1)] int32
    gold_batch: Tensor  # [N] int64
    has_answer: Tensor  # [B] bool
    n_eff: int  # host: rows/cols >= n_eff are never valid (max context_end, at least 1)
    cls_count: int  # host: number of valid [CLS] cells (= B)
    span_count: int  # host: number of other valid cells


def _check_pair(q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
    if q.dim() != 3 or k.shape != q.shape:
        raise ValueError(f"q and k must both be [B, L, d]; got {tuple(q.shape)} and {tuple(k.shape)}")
    if not (q.is_floating_point() and k.is_floating_point()):
        raise TypeError(f"q and k must be floating point; got {q.dtype} and {k.dtype}")
    common = torch.promote_types(q.dtype, k.dtype)
    return q.to(common), k.to(common)


def _check_context(context_start: Tensor, context_end: Tensor, batch: int, length: int) -> tuple[list, list]:
    for name, t in (("context_start", context_start), ("context_end", context_end)):
        if t.shape != (batch,) or t.is_floating_point():
            raise ValueError(f"{name} must be an integer tensor of shape [{batch}]; got {t.dtype} {tuple(t.shape)}")
    host = torch.cat([context_start, context_end]).to("cpu", torch.int64).tolist()
    starts, ends = host[:batch], host[batch:]
    for b, (cs, ce) in enumerate(zip(starts, ends)):
        if not 1 <= cs <= ce <= length:
            raise ValueError(
                f"example {b}: context [{cs}, {ce}) must satisfy 1 <= context_start <= context_end <= L={length} "
                "(position 0 is [CLS], context_end is exclusive)"
            )
    return starts, ends


def _prepare(q: Tensor, context_start: Tensor, context_end: Tensor, answer_spans: Tensor | None,
             answer_counts: Tensor | None) -> _SpanBatch:
    """Validate the batch layout (small host copies of the bounds and spans) and build the CSR gold list."""
    batch, length, _ = q.shape
    starts, ends = _check_context(context_start, context_end, batch, length)
    if answer_spans is None:
        answer_spans = torch.zeros(0, 3, dtype=torch.int64)
    if answer_spans.dim() != 2 or answer_spans.shape[1] != 3 or answer_spans.is_floating_point():
        raise ValueError(f"answer_spans must be an integer [N, 3] tensor of (batch, start, end); got "
                         f"{answer_spans.dtype} {tuple(answer_spans.shape)}")
    spans = answer_spans.to("cpu", torch.int64)
    gold_b, gold_s, gold_e = spans.unbind(1)
    for row, (b, s, e) in enumerate(spans.tolist()):
        if not 0 <= b < batch:
            raise ValueError(f"answer_spans row {row}: batch index {b} is outside [0, {batch})")
        if not starts[b] <= s <= e < ends[b]:
            raise ValueError(
                f"answer_spans row {row}: span ({s}, {e}) of example {b} is not inside its context "
                f"[{starts[b]}, {ends[b]}); spans are token indices with end inclusive and start <= end"
            )
    counts = torch.bincount(gold_b, minlength=batch)
    if answer_counts is not None:
        given = answer_counts.to("cpu", torch.int64).reshape(-1)
        if given.shape != (batch,) or not torch.equal(given, counts):
            raise ValueError(f"answer_counts {given.tolist()} does not match the rows per example in answer_spans "
                             f"{counts.tolist()}; pass answer_counts=None to derive it")
    order = torch.argsort(gold_b, stable=True)
    offsets = torch.zeros(batch + 1, dtype=torch.int64)
    offsets[1:] = torch.cumsum(counts, 0)
    pad = torch.full((1,), -1, dtype=torch.int64)  # kernels need a non-empty pointer even when N == 0
    n_valid = [1 + ce - cs for cs, ce in zip(starts, ends)]
    total = sum(n * (n + 1) // 2 for n in n_valid)
    dev = q.device

    def to_dev(t: Tensor, dtype: torch.dtype = torch.int32) -> Tensor:
        return t.to(dtype).to(dev)

    return _SpanBatch(
        context_start=to_dev(torch.tensor(starts)),
        context_end=to_dev(torch.tensor(ends)),
        gold_offsets=to_dev(offsets),
        gold_start=to_dev(torch.cat([gold_s[order], pad])),
        gold_end=to_dev(torch.cat([gold_e[order], pad])),
        gold_batch=to_dev(gold_b[order], torch.int64),
        has_answer=to_dev(counts > 0, torch.bool),
        n_eff=max(1, max(ends, default=1)),
        cls_count=batch,
        span_count=total - batch,
    )


def _finish(parts: Tensor, reduction: str) -> Tensor:
    if reduction == "parts":
        return parts
    return (parts[0] + parts[2]) / (parts[1] + parts[3])


def _check_reduction(reduction: str) -> None:
    if reduction not in ("mean", "parts"):
        raise ValueError(f"reduction must be 'mean' or 'parts', got {reduction!r}")


# --------------------------------------------------------------------------- naive (oracle) path


def span_bce_loss_naive(q: Tensor, k: Tensor, context_start: Tensor, context_end: Tensor,
                        answer_spans: Tensor, answer_counts: Tensor | None = None, *,
                        reduction: str = "mean") -> Tensor:
    """Dense oracle: builds Z, the valid mask and the labels as [B, L, L] tensors. Same contract as span_bce_loss."""
    _check_reduction(reduction)
    q, k = _check_pair(q, k)
    spans = _prepare(q, context_start, context_end, answer_spans, answer_counts)
    batch, length, _ = q.shape
    acc = _acc_dtype(q.dtype)
    logits = torch.matmul(q, k.transpose(1, 2)).to(acc)  # [B, L, L]
    pos = torch.arange(length, device=q.device)
    cs, ce = context_start.to(q.device).long()[:, None], context_end.to(q.device).long()[:, None]
    member = (pos == 0) | ((pos >= cs) & (pos < ce))  # [B, L]
    valid = member[:, :, None] & member[:, None, :] & torch.ones(length, length, dtype=torch.bool,
                                                                  device=q.device).triu()  # [B, L, L]
    target = torch.zeros_like(logits)  # [B, L, L]
    rows = answer_spans.to(q.device).long().reshape(-1, 3)
    target[rows[:, 0], rows[:, 1], rows[:, 2]] = 1.0
    target[:, 0, 0] = spans.has_answer.to(acc)
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    cls = torch.zeros_like(valid)
    cls[:, 0, 0] = True
    zero = loss.new_zeros(())
    parts = torch.stack([
        torch.where(valid & cls, loss, zero).sum(),
        (valid & cls).sum().to(acc),
        torch.where(valid & ~cls, loss, zero).sum(),
        (valid & ~cls).sum().to(acc),
    ])
    return _finish(parts, reduction)


# --------------------------------------------------------------------------- bounded paths


def _chunk_cells(spans: _SpanBatch, r0: int, r1: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Valid mask [B, R, W] (the [CLS] cell excluded) and fp32 gold targets for rows [r0, r1), cols [r0, n_eff)."""
    rows = torch.arange(r0, r1, device=device)
    cols = torch.arange(r0, spans.n_eff, device=device)
    cs, ce = spans.context_start.long()[:, None], spans.context_end.long()[:, None]

    def member(pos: Tensor) -> Tensor:  # [B, n]
        return (pos == 0) | ((pos >= cs) & (pos < ce))

    valid = member(rows)[:, :, None] & member(cols)[:, None, :] & (rows[:, None] <= cols[None, :])  # [B, R, W]
    if r0 == 0:
        valid[:, 0, 0] = False
    target = torch.zeros(valid.shape, dtype=torch.float32, device=device)  # [B, R, W]
    g_start = spans.gold_start[:-1].long()
    in_chunk = (g_start >= r0) & (g_start < r1)
    target[spans.gold_batch[in_chunk], g_start[in_chunk] - r0, spans.gold_end[:-1].long()[in_chunk] - r0] = 1.0
    return valid, target


def _cls_logits(q: Tensor, k: Tensor) -> Tensor:
    acc = _acc_dtype(q.dtype)
    return (q[:, 0].to(acc) * k[:, 0].to(acc)).sum(-1)  # [B]


def _cls_loss_sum(q: Tensor, k: Tensor, spans: _SpanBatch) -> Tensor:
    z00 = _cls_logits(q, k)
    return F.binary_cross_entropy_with_logits(z00, spans.has_answer.to(z00.dtype), reduction="sum")


def _reference_parts(q: Tensor, k: Tensor, spans: _SpanBatch, chunk_rows: int) -> Tensor:
    acc = _acc_dtype(q.dtype)
    n = spans.n_eff
    span_sum = torch.zeros((), dtype=acc, device=q.device)
    for r0 in range(0, n, chunk_rows):
        r1 = min(r0 + chunk_rows, n)
        logits = torch.matmul(q[:, r0:r1], k[:, r0:n].transpose(1, 2)).to(acc)  # [B, R, W]
        valid, target = _chunk_cells(spans, r0, r1, q.device)
        loss = F.binary_cross_entropy_with_logits(logits, target.to(acc), reduction="none")
        span_sum = span_sum + torch.where(valid, loss, 0.0).sum()
    return span_sum


def _reference_fill_dz(q: Tensor, k: Tensor, spans: _SpanBatch, dz: Tensor, r0: int, r1: int,
                       span_scale: Tensor) -> None:
    logits = torch.matmul(q[:, r0:r1], k[:, r0:spans.n_eff].transpose(1, 2)).to(span_scale.dtype)
    valid, target = _chunk_cells(spans, r0, r1, q.device)
    dz.copy_(torch.where(valid, (torch.sigmoid(logits) - target) * span_scale, 0.0))


def _triton_parts(q: Tensor, k: Tensor, spans: _SpanBatch) -> Tensor:
    from kernels import _span_kernels as sk

    batch, _, dim = q.shape
    n = spans.n_eff
    max_tiles = cdiv(n, sk.smallest_tile()) ** 2
    partial = torch.zeros(batch, max_tiles, dtype=torch.float32, device=q.device)  # per-tile sums

    def grid(meta: dict) -> tuple[int, int]:
        return (cdiv(n, meta["BLOCK"]) ** 2, batch)

    sk.span_bce_fwd_kernel[grid](
        q, k, spans.context_start, spans.context_end, spans.gold_offsets, spans.gold_start, spans.gold_end,
        partial, n, dim, next_power_of_2(n), *q.stride(), *k.stride(),
        UPCAST=upcast_in_kernel(q.dtype), PRECISION=dot_precision(q.dtype),
    )
    return partial.sum()  # span cells only: the caller adds the [CLS] cell, as on the reference path


def _triton_fill_dz(q: Tensor, k: Tensor, spans: _SpanBatch, dz: Tensor, r0: int, r1: int,
                    span_scale: Tensor) -> None:
    from kernels import _span_kernels as sk

    batch, _, dim = q.shape
    n = spans.n_eff
    scale = span_scale.to(torch.float32).reshape(1)

    def grid(meta: dict) -> tuple[int, int]:
        return (cdiv(r1 - r0, meta["BLOCK"]) * cdiv(n - r0, meta["BLOCK"]), batch)

    sk.span_bce_dz_kernel[grid](
        q, k, spans.context_start, spans.context_end, spans.gold_offsets, spans.gold_start, spans.gold_end,
        scale, dz, r0, r1, n, dim, next_power_of_2(n), *q.stride(), *k.stride(), *dz.stride(),
        UPCAST=upcast_in_kernel(q.dtype), PRECISION=dot_precision(q.dtype),
    )


def _grads_by_row_chunks(q: Tensor, k: Tensor, spans: _SpanBatch, chunk_rows: int, grad_parts: Tensor,
                         fill_dz) -> tuple[Tensor, Tensor]:
    """dQ, dK from dZ built one chunk of rows at a time: dQ[rows] = dZ K, dK[cols] += dZ^T Q[rows]."""
    batch, _, dim = q.shape
    n = spans.n_eff
    acc = _acc_dtype(q.dtype)
    cls_scale, span_scale = grad_parts[0].to(acc), grad_parts[2].to(acc)
    dq, dk = torch.zeros_like(q), torch.zeros_like(k)
    exact = q.dtype == acc
    dk_acc = dk[:, :n] if exact else torch.zeros(batch, n, dim, dtype=acc, device=q.device)  # [B, n, d]
    scratch = q.new_empty(batch, min(chunk_rows, n), n)  # dZ of one chunk: [B, R, n]
    col_block = max(chunk_rows, chunk_rows * n // dim)  # low-precision bmm temporaries <= scratch size
    for r0 in range(0, n, chunk_rows):
        r1 = min(r0 + chunk_rows, n)
        dz = scratch[:, : r1 - r0, : n - r0]  # rows [r0, r1) x cols [r0, n)
        fill_dz(q, k, spans, dz, r0, r1, span_scale)
        dq[:, r0:r1].baddbmm_(dz, k[:, r0:n], beta=0)
        _accumulate_bmm(dk_acc[:, r0:n], dz.transpose(1, 2), q[:, r0:r1], col_block)
    if not exact:
        dk[:, :n] = dk_acc
    # The [CLS] cell stays out of the chunks so "parts" gradients can weight it on its own.
    z00 = _cls_logits(q, k)
    coef = ((torch.sigmoid(z00) - spans.has_answer.to(acc)) * cls_scale)[:, None]  # [B, 1]
    dq[:, 0] += (coef * k[:, 0].to(acc)).to(q.dtype)
    dk[:, 0] += (coef * q[:, 0].to(acc)).to(k.dtype)
    return dq, dk


@functools.lru_cache(maxsize=None)
def _fp32_out_bmm_ok(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether acc(fp32) += a @ b with low-precision a, b runs in one GEMM here (aten baddbmm.dtype_out, CUDA).

    Checked once per device and dtype against the two-step path, so a backend without it just falls back.
    """
    try:
        a = (torch.arange(30, device=device).reshape(2, 5, 3) % 7 - 3).to(dtype)  # no RNG: leave seeds alone
        b = (torch.arange(24, device=device).reshape(2, 3, 4) % 5 - 2).to(dtype)
        acc = torch.arange(40, device=device, dtype=torch.float32).reshape(2, 5, 4) / 8
        want = acc + torch.bmm(a.float(), b.float())
        torch.ops.aten.baddbmm.dtype_out(acc, a, b, torch.float32, out=acc)
        return bool(torch.allclose(acc, want, rtol=1e-2, atol=1e-2))
    except (RuntimeError, NotImplementedError):
        return False


def _accumulate_bmm(acc: Tensor, a: Tensor, b: Tensor, col_block: int) -> None:
    """acc += a @ b for [B, W, d] acc; fp32 acc with low-precision a, b avoids a full-size temporary."""
    if acc.dtype == a.dtype:
        acc.baddbmm_(a, b)
    elif acc.is_cuda and _fp32_out_bmm_ok(acc.device, a.dtype):
        torch.ops.aten.baddbmm.dtype_out(acc, a, b, acc.dtype, out=acc)
    else:
        for c0 in range(0, acc.shape[1], col_block):  # bounded temporaries: [B, col_block, d]
            acc[:, c0 : c0 + col_block] += torch.bmm(a[:, c0 : c0 + col_block], b)


class _SpanBCE(torch.autograd.Function):
    """parts [4] = (cls_loss_sum, cls_count, span_loss_sum, span_count) with bounded-memory backward."""

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, spans: _SpanBatch, chunk_rows: int, triton: bool) -> Tensor:
        span_sum = _triton_parts(q, k, spans) if triton else _reference_parts(q, k, spans, chunk_rows)
        acc = _acc_dtype(q.dtype)
        cls_sum = _cls_loss_sum(q, k, spans)
        counts = torch.tensor([spans.cls_count, spans.span_count], dtype=acc, device=q.device)
        ctx.save_for_backward(q, k)
        ctx.spans, ctx.chunk_rows, ctx.triton = spans, chunk_rows, triton
        return torch.stack([cls_sum.to(acc), counts[0], span_sum.to(acc), counts[1]])

    @staticmethod
    def backward(ctx, grad_parts: Tensor):
        q, k = ctx.saved_tensors
        fill = _triton_fill_dz if ctx.triton else _reference_fill_dz
        dq, dk = _grads_by_row_chunks(q, k, ctx.spans, ctx.chunk_rows, grad_parts, fill)
        return dq, dk, None, None, None


def _bounded_loss(q: Tensor, k: Tensor, context_start: Tensor, context_end: Tensor, answer_spans: Tensor,
                  answer_counts: Tensor | None, reduction: str, chunk_rows: int | None, triton: bool) -> Tensor:
    _check_reduction(reduction)
    q, k = _check_pair(q, k)
    if triton and q.dtype not in _TRITON_DTYPES:
        raise TypeError(f"the Triton span loss takes {_TRITON_DTYPES}, got {q.dtype}; use the reference path")
    spans = _prepare(q, context_start, context_end, answer_spans, answer_counts)
    rows = chunk_rows or default_chunk_rows(spans.n_eff, triton)
    return _finish(_SpanBCE.apply(q, k, spans, rows, triton), reduction)


def span_bce_loss_reference(q: Tensor, k: Tensor, context_start: Tensor, context_end: Tensor,
                            answer_spans: Tensor, answer_counts: Tensor | None = None, *,
                            reduction: str = "mean", chunk_rows: int | None = None) -> Tensor:
    """Plain PyTorch over row chunks (`chunk_rows`, default: about 256K logits per example per chunk)."""
    return _bounded_loss(q, k, context_start, context_end, answer_spans, answer_counts, reduction, chunk_rows,
                         triton=False)


def span_bce_loss_triton(q: Tensor, k: Tensor, context_start: Tensor, context_end: Tensor,
                         answer_spans: Tensor, answer_counts: Tensor | None = None, *,
                         reduction: str = "mean", chunk_rows: int | None = None) -> Tensor:
    """Triton forward kernel; backward = Triton dZ per row chunk + cuBLAS. fp16 / bf16 / fp32 inputs."""
    return _bounded_loss(q, k, context_start, context_end, answer_spans, answer_counts, reduction, chunk_rows,
                         triton=True)


def span_bce_loss(q: Tensor, k: Tensor, context_start: Tensor, context_end: Tensor,
                  answer_spans: Tensor, answer_counts: Tensor | None = None, *,
                  reduction: str = "mean") -> Tensor:
    """WAE loss from q = FFN(H), k = H ([B, L, d]); differentiable w.r.t. q and k.

    context_start / context_end: [B] int, 1 <= start <= end <= L (end exclusive).
    answer_spans: [N, 3] int (batch, start, end), end inclusive, any row order; answer_counts: [B] int rows
    per example, or None. reduction="mean": scalar mean BCE over all valid cells of the batch;
    "parts": [4] = (cls_loss_sum, cls_count, span_loss_sum, span_count), where the [CLS] part is the (0, 0)
    cell of every example and the span part every other valid cell (so mean = (p0 + p2) / (p1 + p3)).
    Result dtype fp32 (fp64 for fp64 inputs). Dispatch: Triton on CUDA, the reference elsewhere.
    """
    triton = use_triton("span_bce_loss", q, k) and q.dtype in _TRITON_DTYPES
    return _bounded_loss(q, k, context_start, context_end, answer_spans, answer_counts, reduction, None, triton)


# --------------------------------------------------------------------------- decoding


def span_cls_logits(q: Tensor, k: Tensor) -> Tensor:
    """[CLS] logit Z_00 = q[:, 0] . k[:, 0] per example, [B] (fp32 or fp64); pair classification uses it."""
    return _cls_logits(*_check_pair(q, k))


def _context_member(pos: Tensor, cs: Tensor, ce: Tensor) -> Tensor:
    return (pos >= cs[:, None]) & (pos < ce[:, None])  # [B, n]


def _decode_reference_raw(q: Tensor, k: Tensor, starts: list, ends: list, threshold: float, max_len: int,
                          n: int) -> tuple[Tensor, ...]:
    batch = q.shape[0]
    acc = _acc_dtype(q.dtype)
    cs = torch.tensor(starts, device=q.device)
    ce = torch.tensor(ends, device=q.device)
    best_val = torch.full((batch,), float("-inf"), dtype=acc, device=q.device)
    best_cell = torch.zeros(batch, dtype=torch.int64, device=q.device)
    hits = []
    chunk_rows = default_chunk_rows(n, triton=False)
    for r0 in range(0, n, chunk_rows):
        r1 = min(r0 + chunk_rows, n)
        logits = torch.matmul(q[:, r0:r1], k[:, r0:n].transpose(1, 2)).to(acc)  # [B, R, W]
        rows = torch.arange(r0, r1, device=q.device)
        cols = torch.arange(r0, n, device=q.device)
        valid = _context_member(rows, cs, ce)[:, :, None] & _context_member(cols, cs, ce)[:, None, :]
        span_len = cols[None, :] - rows[:, None]
        valid &= (span_len >= 0) & ((span_len < max_len) if max_len > 0 else True)  # [B, R, W]
        value, arg = torch.where(valid, logits, float("-inf")).flatten(1).max(1)  # first max, row-major
        better = value > best_val
        cell = (r0 + arg // (n - r0)) * n + (r0 + arg % (n - r0))
        best_val, best_cell = torch.where(better, value, best_val), torch.where(better, cell, best_cell)
        hb, hi, hj = torch.nonzero(valid & (logits > threshold), as_tuple=True)
        hits.append((hb, hi + r0, hj + r0, logits[hb, hi, hj]))
    hit_b, hit_s, hit_e, hit_z = (torch.cat(parts) for parts in zip(*hits))
    return hit_b, hit_s, hit_e, hit_z, best_val, best_cell


def _decode_triton_raw(q: Tensor, k: Tensor, starts: list, ends: list, threshold: float, max_len: int,
                       n: int) -> tuple[Tensor, ...]:
    from kernels import _span_kernels as sk

    batch, _, dim = q.shape
    dev = q.device
    block = sk.INTERPRETER_BLOCK if interpreter_mode() else sk.DECODE_BLOCK
    programs = cdiv(n, block) ** 2
    cs = torch.tensor(starts, dtype=torch.int32, device=dev)
    ce = torch.tensor(ends, dtype=torch.int32, device=dev)
    best_val = torch.empty(batch, programs, dtype=torch.float32, device=dev)  # per-tile best
    best_tile_cell = torch.empty(batch, programs, dtype=torch.int32, device=dev)
    capacity = 256
    while True:
        count = torch.zeros(batch, dtype=torch.int32, device=dev)
        hit_s = torch.empty(batch, capacity, dtype=torch.int32, device=dev)
        hit_e = torch.empty_like(hit_s)
        hit_z = torch.empty(batch, capacity, dtype=torch.float32, device=dev)
        sk.span_decode_kernel[(programs, batch)](
            q, k, cs, ce, best_val, best_tile_cell, count, hit_s, hit_e, hit_z, float(threshold), max_len,
            capacity, n, dim, *q.stride(), *k.stride(), BLOCK=block, BLOCK_D=32 if interpreter_mode() else 64,
            UPCAST=upcast_in_kernel(q.dtype), PRECISION=dot_precision(q.dtype), num_warps=4,
        )
        most = int(count.max()) if batch else 0
        if most <= capacity:
            break
        capacity = most  # rare: rerun with room for every hit
    kept = torch.arange(capacity, device=dev)[None, :] < count[:, None].long()  # [B, capacity]
    hit_b = torch.arange(batch, device=dev)[:, None].expand(-1, capacity)[kept]
    top = best_val.max(1).values
    tie_first = torch.where(best_val == top[:, None], best_tile_cell, torch.iinfo(torch.int32).max).min(1).values
    return (hit_b, hit_s[kept].long(), hit_e[kept].long(), hit_z[kept], top, tie_first.long())


def _decode(q: Tensor, k: Tensor, context_start: Tensor, context_end: Tensor, threshold: float,
            max_span_len: int | None, max_spans: int | None, triton: bool):
    q, k = _check_pair(q, k)
    batch, length, _ = q.shape
    if max_span_len is not None and max_span_len < 1:
        raise ValueError(f"max_span_len must be >= 1 or None, got {max_span_len}")
    starts, ends = _check_context(context_start, context_end, batch, length)
    n = max(1, max(ends, default=1))
    raw = _decode_triton_raw if triton else _decode_reference_raw
    with torch.no_grad():
        hit_b, hit_s, hit_e, hit_z, best_val, best_cell = raw(q, k, starts, ends, threshold, max_span_len or 0, n)
    order = torch.argsort(hit_s * n + hit_e, stable=True)
    order = order[torch.argsort(-hit_z[order], stable=True)]
    order = order[torch.argsort(hit_b[order], stable=True)]  # by example, logit desc, then (start, end)
    spans: list[list[tuple[int, int, float]]] = [[] for _ in range(batch)]
    for b, s, e, z in zip(*(t[order].tolist() for t in (hit_b, hit_s, hit_e, hit_z))):
        if max_spans is None or len(spans[b]) < max_spans:
            spans[b].append((s, e, z))
    found = torch.isfinite(best_val)
    out_dtype = _acc_dtype(q.dtype)
    best = torch.stack([
        torch.where(found, best_cell // n, -1).to(out_dtype),
        torch.where(found, best_cell % n, -1).to(out_dtype),
        best_val.to(out_dtype),
    ], dim=1)  # [B, 3]
    return spans, best


def span_decode_reference(q: Tensor, k: Tensor, context_start: Tensor, context_end: Tensor, *,
                          threshold: float = 0.0, max_span_len: int | None = None, max_spans: int | None = None
                          ) -> tuple[list[list[tuple[int, int, float]]], Tensor]:
    """PyTorch decoder over row chunks; same contract as `span_decode`."""
    return _decode(q, k, context_start, context_end, threshold, max_span_len, max_spans, triton=False)


def span_decode_triton(q: Tensor, k: Tensor, context_start: Tensor, context_end: Tensor, *,
                       threshold: float = 0.0, max_span_len: int | None = None, max_spans: int | None = None
                       ) -> tuple[list[list[tuple[int, int, float]]], Tensor]:
    """Triton decoder (per-tile best + threshold hits); same contract as `span_decode`."""
    if _check_pair(q, k)[0].dtype not in _TRITON_DTYPES:
        raise TypeError(f"the Triton span decoder takes {_TRITON_DTYPES}, got {q.dtype}; use the reference path")
    return _decode(q, k, context_start, context_end, threshold, max_span_len, max_spans, triton=True)


def span_decode(q: Tensor, k: Tensor, context_start: Tensor, context_end: Tensor, *, threshold: float = 0.0,
                max_span_len: int | None = None, max_spans: int | None = None
                ) -> tuple[list[list[tuple[int, int, float]]], Tensor]:
    """Context spans (i <= j, both in [context_start, context_end)) without the L x L matrix.

    Returns (spans, best): spans[b] = [(start, end, logit), ...] with logit > threshold, sorted by logit
    descending (ties by start, end), at most `max_spans` per example, span length end - start + 1 at most
    `max_span_len`; best [B, 3] float = (start, end, logit) of the highest context span per example
    (first in row-major order on ties), (-1, -1, -inf) when the context is empty. The [CLS] logit (0, 0),
    used for pair classification and answerability, is `span_cls_logits(q, k)`.
    """
    triton = use_triton("span_decode", q, k) and q.dtype in _TRITON_DTYPES
    return _decode(q, k, context_start, context_end, threshold, max_span_len, max_spans, triton)
