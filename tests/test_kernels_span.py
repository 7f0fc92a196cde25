"""kernels.span_scores: reference vs dense oracle in-process; Triton kernels under TRITON_INTERPRET=1.

The Triton checks run in one subprocess (the variable must be set before triton is imported): this file
run as a script executes every `check_*` function below and prints a JSON verdict per check.
Rule for low precision: |kernel - fp64| <= |torch same dtype - fp64| + tol (kernels._testing).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from kernels import _triton_util, span_scores
from kernels._testing import assert_no_worse_than_torch, interpreter_main, run_interpreter_checks
from kernels.span_scores import (
    span_bce_loss,
    span_bce_loss_naive,
    span_bce_loss_reference,
    span_cls_logits,
    span_decode,
    span_decode_reference,
)

ROOT = Path(__file__).resolve().parents[1]

# Example 2 has an empty context (only the [CLS] cell is valid) and no answer.
CONTEXTS = [(5, 90), (30, 97), (12, 12)]
GOLDS = [(1, 50, 51), (0, 5, 5), (0, 10, 40), (1, 30, 96), (0, 89, 89)]  # rows in any order


def make_case(length: int = 97, dim: int = 40, contexts=CONTEXTS, golds=GOLDS, seed: int = 0):
    """(q, k, context_start, context_end, answer_spans, answer_counts) with fp64 q, k [B, L, d]."""
    gen = torch.Generator().manual_seed(seed)
    batch = len(contexts)
    q = torch.randn(batch, length, dim, generator=gen, dtype=torch.float64) * 0.6
    k = torch.randn(batch, length, dim, generator=gen, dtype=torch.float64) * 0.6
    cs = torch.tensor([c[0] for c in contexts])
    ce = torch.tensor([c[1] for c in contexts])
    spans = torch.tensor(golds, dtype=torch.int64).reshape(-1, 3)
    counts = torch.bincount(spans[:, 0], minlength=batch)
    return q, k, cs, ce, spans, counts


def loss_and_grads(fn, q, k, *args, dtype, reduction="mean", weights=None, **kw):
    """Loss (or parts) and (dq, dk) of fn on q, k cast to dtype; weights weigh the 'parts' output."""
    qq = q.detach().to(dtype).requires_grad_()
    kk = k.detach().to(dtype).requires_grad_()
    out = fn(qq, kk, *args, reduction=reduction, **kw)
    (out if weights is None else (out * weights.to(out.dtype)).sum()).backward()
    return out.detach(), qq.grad, kk.grad


def brute_force_spans(q, k, cs, ce, threshold, max_len=None):
    """fp64 oracle: every context span (b, i, j, z) and the full logit matrix."""
    z = torch.matmul(q.double(), k.double().transpose(1, 2))  # [B, L, L]
    out = []
    for b in range(q.shape[0]):
        cells = {}
        for i in range(int(cs[b]), int(ce[b])):
            for j in range(i, int(ce[b])):
                if max_len is None or j - i < max_len:
                    cells[(i, j)] = float(z[b, i, j])
        out.append(cells)
    return out


# --------------------------------------------------------------------------- in-process: reference path


@pytest.mark.parametrize("chunk_rows", [None, 7, 33])
def test_reference_matches_dense_oracle_fp64(chunk_rows):
    q, k, cs, ce, spans, counts = make_case()
    for reduction in ("mean", "parts"):
        weights = torch.tensor([0.7, 0.0, 1.3, 0.0], dtype=torch.float64) if reduction == "parts" else None
        ref = loss_and_grads(span_bce_loss_reference, q, k, cs, ce, spans, counts, dtype=torch.float64,
                             reduction=reduction, weights=weights, chunk_rows=chunk_rows)
        naive = loss_and_grads(span_bce_loss_naive, q, k, cs, ce, spans, counts, dtype=torch.float64,
                               reduction=reduction, weights=weights)
        for got, want in zip(ref, naive):
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-13)


def test_parts_split_and_counts():
    q, k, cs, ce, spans, counts = make_case()
    parts = span_bce_loss_reference(q, k, cs, ce, spans, counts, reduction="parts")
    n_valid = [1 + e - s for s, e in CONTEXTS]
    assert parts[1].item() == len(CONTEXTS)
    assert parts[3].item() == sum(n * (n + 1) // 2 for n in n_valid) - len(CONTEXTS)
    z00 = span_cls_logits(q, k)
    target = (counts > 0).double()
    expected_cls = torch.nn.functional.binary_cross_entropy_with_logits(z00, target, reduction="sum")
    torch.testing.assert_close(parts[0], expected_cls)
    mean = span_bce_loss_reference(q, k, cs, ce, spans, counts)
    torch.testing.assert_close(mean, (parts[0] + parts[2]) / (parts[1] + parts[3]))


def test_answer_counts_optional_and_row_order_free():
    q, k, cs, ce, spans, counts = make_case()
    base = span_bce_loss_reference(q, k, cs, ce, spans, counts)
    shuffled = spans[torch.randperm(len(spans), generator=torch.Generator().manual_seed(3))]
    torch.testing.assert_close(span_bce_loss_reference(q, k, cs, ce, shuffled, None), base)
    # a duplicated gold row is still one positive cell
    dup = torch.cat([spans, spans[:1]])
    torch.testing.assert_close(span_bce_loss_reference(q, k, cs, ce, dup, None), base)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_reference_low_precision_no_worse_than_naive(dtype):
    q, k, cs, ce, spans, counts = make_case(length=64, dim=24, contexts=[(3, 64), (10, 40)],
                                            golds=[(0, 3, 9), (1, 39, 39)])
    want = loss_and_grads(span_bce_loss_naive, q, k, cs, ce, spans, counts, dtype=torch.float64)
    same = loss_and_grads(span_bce_loss_naive, q, k, cs, ce, spans, counts, dtype=dtype)
    got = loss_and_grads(span_bce_loss_reference, q, k, cs, ce, spans, counts, dtype=dtype, chunk_rows=16)
    for name, g, s, w in zip(("loss", "dq", "dk"), got, same, want):
        assert_no_worse_than_torch(g, s, w, dtype=dtype, name=name)


def test_unanswerable_batch_and_empty_context():
    q, k, cs, ce, spans, counts = make_case(length=50, contexts=[(3, 37), (20, 20)], golds=[])
    assert spans.shape == (0, 3)
    got = loss_and_grads(span_bce_loss_reference, q, k, cs, ce, spans, counts, dtype=torch.float64)
    want = loss_and_grads(span_bce_loss_naive, q, k, cs, ce, spans, counts, dtype=torch.float64)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-13)
    assert got[1][1, 1:].abs().sum() == 0  # example 1: only its [CLS] row gets a gradient


def test_invalid_inputs_raise_actionable_errors():
    q, k, cs, ce, spans, counts = make_case(length=20, dim=8, contexts=[(3, 20)], golds=[(0, 4, 6)])
    with pytest.raises(ValueError, match="not inside its context"):
        span_bce_loss_reference(q, k, cs, ce, torch.tensor([[0, 2, 6]]), None)
    with pytest.raises(ValueError, match="not inside its context"):
        span_bce_loss_reference(q, k, cs, ce, torch.tensor([[0, 7, 6]]), None)
    with pytest.raises(ValueError, match="batch index"):
        span_bce_loss_reference(q, k, cs, ce, torch.tensor([[1, 4, 6]]), None)
    with pytest.raises(ValueError, match="does not match"):
        span_bce_loss_reference(q, k, cs, ce, spans, torch.tensor([2]))
    with pytest.raises(ValueError, match="context_start <= context_end"):
        span_bce_loss_reference(q, k, torch.tensor([0]), ce, spans, counts)
    with pytest.raises(ValueError, match="context_start <= context_end"):
        span_bce_loss_reference(q, k, cs, torch.tensor([21]), spans, counts)
    with pytest.raises(ValueError, match="reduction"):
        span_bce_loss_reference(q, k, cs, ce, spans, counts, reduction="sum")
    with pytest.raises(ValueError, match=r"\[B, L, d\]"):
        span_bce_loss_reference(q, k[:, :5], cs, ce, spans, counts)


class _LargestTensor(TorchDispatchMode):
    """Records the largest number of elements of any tensor an op produces."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for leaf in tree_leaves(out):
            if isinstance(leaf, torch.Tensor):
                self.largest = max(self.largest, leaf.numel())
        return out


def test_reference_never_builds_the_full_matrix():
    batch, length = 2, 256
    q, k, cs, ce, spans, counts = make_case(length=length, dim=16, contexts=[(1, 256), (100, 256)],
                                            golds=[(0, 3, 9)])
    largest = {}
    for name, fn, kw in (("naive", span_bce_loss_naive, {}), ("reference", span_bce_loss_reference,
                                                                 {"chunk_rows": 32})):
        qq, kk = q.float().requires_grad_(), k.float().requires_grad_()
        with _LargestTensor() as mode:
            fn(qq, kk, cs, ce, spans, counts, **kw).backward()
        largest[name] = mode.largest
    assert largest["naive"] >= batch * length * length
    assert largest["reference"] <= batch * 32 * length


def test_decode_reference_matches_brute_force():
    q, k, cs, ce, _, _ = make_case(length=70, dim=16, contexts=[(5, 60), (9, 70), (7, 7)], golds=[])
    threshold, max_len = 1.5, 6
    spans, best = span_decode_reference(q, k, cs, ce, threshold=threshold, max_span_len=max_len, max_spans=None)
    oracle = brute_force_spans(q, k, cs, ce, threshold, max_len)
    for b, cells in enumerate(oracle):
        want = sorted(((i, j, z) for (i, j), z in cells.items() if z > threshold), key=lambda t: (-t[2], t[0], t[1]))
        assert [(s, e) for s, e, _ in spans[b]] == [(i, j) for i, j, _ in want]
        if cells:
            (bi, bj), bz = max(cells.items(), key=lambda kv: kv[1])
            assert best[b].tolist() == pytest.approx([bi, bj, bz])
        else:
            assert best[b, :2].tolist() == [-1, -1] and best[b, 2].item() == float("-inf")
    top2, _ = span_decode_reference(q, k, cs, ce, threshold=threshold, max_span_len=max_len, max_spans=2)
    assert top2 == [s[:2] for s in spans]
    assert span_cls_logits(q, k).tolist() == pytest.approx((q[:, 0] * k[:, 0]).sum(-1).tolist())


def test_tiny_model_loss_and_grads_match_dense_path():
    """Trainer-facing claim: FFN(H), H through span_bce_loss gives the dense path's loss and gradients."""
    q0, _, cs, ce, spans, counts = make_case(length=45, dim=12, contexts=[(4, 45), (20, 33)],
                                             golds=[(0, 4, 6), (1, 25, 25)])
    results = []
    for fn in (span_bce_loss, span_bce_loss_naive):
        torch.manual_seed(0)
        ffn = torch.nn.Sequential(torch.nn.Linear(12, 24), torch.nn.GELU(), torch.nn.Linear(24, 12)).double()
        hidden = q0.clone().requires_grad_()
        loss = fn(ffn(hidden), hidden, cs, ce, spans, counts)
        loss.backward()
        results.append([loss.detach(), hidden.grad] + [p.grad for p in ffn.parameters()])
    for got, want in zip(*results):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-13)


def test_dispatch_rules_on_cpu(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    cpu = torch.zeros(1)
    monkeypatch.setenv("XPRETRAIN_KERNELS", "auto")
    assert not _triton_util.use_triton("op", cpu)
    monkeypatch.setenv("XPRETRAIN_KERNELS", "reference")
    assert not _triton_util.use_triton("op", cpu)
    monkeypatch.setenv("XPRETRAIN_KERNELS", "fastest")
    with pytest.raises(ValueError, match="XPRETRAIN_KERNELS"):
        _triton_util.kernel_mode()
    monkeypatch.setenv("XPRETRAIN_KERNELS", "auto")
    _triton_util.set_kernel_mode("triton")
    try:
        if _triton_util.triton_importable():
            q, k, cs, ce, spans, counts = make_case(length=10, dim=4, contexts=[(2, 10)], golds=[])
            with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
                span_bce_loss(q.float(), k.float(), cs, ce, spans, counts)
    finally:
        _triton_util.set_kernel_mode(None)
    q, k, cs, ce, spans, counts = make_case(length=10, dim=4, contexts=[(2, 10)], golds=[])
    torch.testing.assert_close(span_bce_loss(q, k, cs, ce, spans, counts),
                               span_bce_loss_naive(q, k, cs, ce, spans, counts))
    assert span_decode(q, k, cs, ce)[1].shape == (1, 3)


# --------------------------------------------------------------------------- Triton under the interpreter


def _check_rule(kernel_out, dtype, reference_out_same, reference_out_64, names):
    for name, g, s, w in zip(names, kernel_out, reference_out_same, reference_out_64):
        assert_no_worse_than_torch(g, s, w, dtype=dtype, name=name)


def _compare_triton(case, dtype, chunk_rows=None, reduction="mean", weights=None):
    q, k, cs, ce, spans, counts = case
    args = (cs, ce, spans, counts)
    kw = dict(reduction=reduction, weights=weights)
    got = loss_and_grads(span_scores.span_bce_loss_triton, q, k, *args, dtype=dtype, chunk_rows=chunk_rows, **kw)
    same = loss_and_grads(span_bce_loss_naive, q, k, *args, dtype=dtype, **kw)
    want = loss_and_grads(span_bce_loss_naive, q, k, *args, dtype=torch.float64, **kw)
    _check_rule(got, dtype, same, want, ("loss", "dq", "dk"))


def check_fp32_loss_and_grads():
    q, k, *rest = make_case()
    k = torch.cat([k, k], dim=2)[:, :, ::2]  # a non-contiguous k
    _compare_triton((q, k, *rest), torch.float32, chunk_rows=40)


def check_fp16_loss_and_grads():
    _compare_triton(make_case(length=37, dim=24, contexts=[(1, 37), (8, 30)], golds=[(0, 1, 36), (1, 8, 8)]),
                    torch.float16)


def check_bf16_loss_and_grads():
    _compare_triton(make_case(length=45, dim=24, contexts=[(4, 45), (9, 21)], golds=[(0, 40, 44)]),
                    torch.bfloat16, chunk_rows=20)


def check_length_130_parts_gradient():
    weights = torch.tensor([2.0, 0.0, 0.5, 0.0])
    _compare_triton(make_case(length=130, dim=16, contexts=[(2, 130), (64, 96)], golds=[(0, 64, 64), (1, 95, 95)]),
                    torch.float32, reduction="parts", weights=weights)


def check_unanswerable_and_empty_context():
    # contexts end before L (padding): rows and columns past the last context end are never touched
    _compare_triton(make_case(length=50, dim=16, contexts=[(3, 37), (20, 20)], golds=[]), torch.float32)


def check_decode_matches_fp64():
    q, k, cs, ce, _, _ = make_case(length=97, dim=16, contexts=[(5, 90), (33, 97), (12, 12)], golds=[])
    threshold, max_len = 2.0, 9
    spans, best = span_scores.span_decode_triton(q.float(), k.float(), cs, ce, threshold=threshold,
                                                 max_span_len=max_len)
    oracle = brute_force_spans(q, k, cs, ce, threshold, max_len)
    tol = 1e-4
    for b, cells in enumerate(oracle):
        found = {(s, e): z for s, e, z in spans[b]}
        assert {c for c, z in cells.items() if z > threshold + tol} <= set(found), f"example {b}: missed spans"
        assert set(found) <= {c for c, z in cells.items() if z > threshold - tol}, f"example {b}: extra spans"
        assert all(abs(z - cells[c]) < tol for c, z in found.items())
        assert [z for _, _, z in spans[b]] == sorted(found.values(), reverse=True)
        if cells:
            top = max(cells.values())
            assert abs(best[b, 2].item() - top) < tol and cells[tuple(int(x) for x in best[b, :2])] > top - tol
        else:
            assert best[b, :2].tolist() == [-1, -1] and best[b, 2].item() == float("-inf")
    few, _ = span_scores.span_decode_triton(q.float(), k.float(), cs, ce, threshold=threshold,
                                            max_span_len=max_len, max_spans=3)
    assert few == [s[:3] for s in spans]
    # more hits than the first buffer holds: the decoder reruns with room for all of them
    many, _ = span_scores.span_decode_triton(q.float(), k.float(), cs, ce, threshold=-1e9)
    assert [len(s) for s in many] == [85 * 86 // 2, 64 * 65 // 2, 0]


def check_tiny_model_through_dispatch():
    """span_bce_loss (dispatch picks Triton: XPRETRAIN_KERNELS=triton) vs the dense path, FFN + H grads."""
    assert _triton_util.use_triton("span_bce_loss", torch.zeros(1))
    calls = []
    original = span_scores._triton_parts
    span_scores._triton_parts = lambda *a: calls.append(1) or original(*a)
    try:
        h0, _, cs, ce, spans, counts = make_case(length=45, dim=12, contexts=[(4, 45), (20, 33)],
                                                 golds=[(0, 4, 6), (1, 25, 25)])
        results = {}
        for name, fn, dtype in (("kernel", span_bce_loss, torch.float32),
                                ("same", span_bce_loss_naive, torch.float32),
                                ("fp64", span_bce_loss_naive, torch.float64)):
            torch.manual_seed(0)
            ffn = torch.nn.Sequential(torch.nn.Linear(12, 24), torch.nn.GELU(), torch.nn.Linear(24, 12)).to(dtype)
            hidden = h0.to(dtype).requires_grad_()
            loss = fn(ffn(hidden), hidden, cs, ce, spans, counts)
            loss.backward()
            results[name] = [loss.detach(), hidden.grad] + [p.grad for p in ffn.parameters()]
    finally:
        span_scores._triton_parts = original
    assert calls, "span_bce_loss did not take the Triton path"
    _check_rule(results["kernel"], torch.float32, results["same"], results["fp64"],
                ("loss", "dH", "W1", "b1", "W2", "b2"))


INTERPRETER_CHECKS = sorted(name[len("check_"):] for name in list(globals()) if name.startswith("check_"))


@pytest.fixture(scope="module")
def interpreter_results():
    pytest.importorskip("triton")
    return run_interpreter_checks(__file__, INTERPRETER_CHECKS, str(ROOT))


@pytest.mark.parametrize("check", INTERPRETER_CHECKS)
def test_triton_kernel_under_interpreter(interpreter_results, check):
    result = interpreter_results[check]
    assert result["ok"], result["error"]


if __name__ == "__main__":
    interpreter_main(sys.argv[1:] or INTERPRETER_CHECKS, globals())
