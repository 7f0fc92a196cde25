"""kernels.cross_attention: reference vs explicit softmax in-process; flash kernels under TRITON_INTERPRET=1.

Like tests/test_kernels_span.py, the Triton checks run in one subprocess (this file as a script).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from kernels import _triton_util
from kernels import cross_attention as xattn
from kernels._testing import assert_no_worse_than_torch, interpreter_main, run_interpreter_checks

ROOT = Path(__file__).resolve().parents[1]


def make_inputs(batch=2, heads=2, lq=37, lk=70, dim=24, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, heads, lq, dim, generator=gen, dtype=torch.float64)
    k = torch.randn(batch, heads, lk, dim, generator=gen, dtype=torch.float64)
    v = torch.randn(batch, heads, lk, dim, generator=gen, dtype=torch.float64)
    grad = torch.randn(batch, heads, lq, dim, generator=gen, dtype=torch.float64)
    return q, k, v, grad


def padding_mask(batch, lk, seed=0, fully_padded=()):
    """[B, Lk] bool: example 0 random ~70 % kept, others keep a prefix; `fully_padded` examples keep none."""
    gen = torch.Generator().manual_seed(seed)
    mask = torch.zeros(batch, lk, dtype=torch.bool)
    mask[0] = torch.rand(lk, generator=gen) < 0.7
    for b in range(1, batch):
        mask[b, : max(1, lk - 7 * b)] = True
    for b in fully_padded:
        mask[b] = False
    return mask


def explicit_attention(q, k, v, mask, scale=None):
    """Softmax written out; fully padded examples give zeros."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale  # [B, H, Lq, Lk]
    if mask is not None:
        scores = scores.masked_fill(~mask[:, None, None, :], -1e30)
    out = torch.matmul(torch.softmax(scores, dim=-1), v)
    if mask is not None:
        out = out * mask.any(-1)[:, None, None, None].to(out.dtype)
    return out


def run_with_grads(fn, q, k, v, grad, mask, dtype, **kw):
    """(out, dq, dk, dv) of fn on inputs cast to dtype, backpropagating `grad`."""
    leaves = [t.detach().to(dtype).requires_grad_() for t in (q, k, v)]
    out = fn(*leaves, mask, **kw)
    out.backward(grad.to(dtype))
    return [out.detach()] + [t.grad for t in leaves]


# --------------------------------------------------------------------------- in-process: reference path


@pytest.mark.parametrize("with_mask", [True, False])
def test_reference_matches_explicit_softmax_fp64(with_mask):
    q, k, v, grad = make_inputs()
    mask = padding_mask(2, 70, fully_padded=(1,)) if with_mask else None
    got = run_with_grads(xattn.cross_attention_reference, q, k, v, grad, mask, torch.float64)
    want = run_with_grads(explicit_attention, q, k, v, grad, mask, torch.float64)
    for g, w in zip(got, want):
        assert torch.isfinite(g).all()
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)
    if with_mask:
        assert got[0][1].abs().max() == 0 and got[1][1].abs().max() == 0  # fully padded example


def test_stop_gradient_contract_on_reference_path():
    """k, v from a detached source: projections learn, the source gets nothing."""
    torch.manual_seed(0)
    heads, dim = 2, 8
    proj = {name: torch.nn.Linear(heads * dim, heads * dim).double() for name in ("q", "k", "v")}
    x = torch.randn(2, 9, heads * dim, dtype=torch.float64)
    source = torch.randn(2, 13, heads * dim, dtype=torch.float64, requires_grad=True)
    mask = padding_mask(2, 13)

    def split(t):  # [B, L, H*Dh] -> [B, H, L, Dh]
        return t.view(t.shape[0], t.shape[1], heads, dim).transpose(1, 2)

    def step(src):
        for p in proj.values():
            p.zero_grad()
        out = xattn.cross_attention(split(proj["q"](x)), split(proj["k"](src)), split(proj["v"](src)), mask)
        out.square().sum().backward()
        return [p.weight.grad.clone() for p in proj.values()]

    stopped = step(source.detach())
    assert source.grad is None
    full = step(source)
    assert source.grad is not None and source.grad.abs().sum() > 0
    for a, b in zip(stopped, full):  # the projections' gradients do not depend on the stop
        assert a.abs().sum() > 0
        torch.testing.assert_close(a, b)


def test_invalid_inputs_raise():
    q, k, v, _ = make_inputs(lq=5, lk=6, dim=4)
    with pytest.raises(ValueError, match="bool"):
        xattn.cross_attention(q, k, v, torch.ones(2, 6))
    with pytest.raises(ValueError, match="bool"):
        xattn.cross_attention(q, k, v, torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="head dim"):
        xattn.cross_attention(q, k[..., :3], v[..., :3])
    with pytest.raises(ValueError, match="at least one key"):
        xattn.cross_attention(q, k[:, :, :0], v[:, :, :0])


def test_cpu_dispatch_uses_reference(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setenv("XPRETRAIN_KERNELS", "auto")
    q, k, v, _ = make_inputs(lq=5, lk=6, dim=4)
    torch.testing.assert_close(xattn.cross_attention(q, k, v), xattn.cross_attention_reference(q, k, v))
    import kernels

    assert kernels.cross_attention is xattn  # the module is the op: kernels.cross_attention(q, k, v)
    torch.testing.assert_close(kernels.cross_attention(q, k, v, None, scale=0.5),
                               xattn.cross_attention_reference(q, k, v, scale=0.5))
    if _triton_util.triton_importable():
        monkeypatch.setenv("XPRETRAIN_KERNELS", "triton")
        with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
            xattn.cross_attention(q.float(), k.float(), v.float())


# --------------------------------------------------------------------------- Triton under the interpreter


def _compare(dtype, mask, scale=None, **shape):
    q, k, v, grad = make_inputs(**shape)
    got = run_with_grads(xattn.cross_attention_triton, q, k, v, grad, mask, dtype, scale=scale)
    same = run_with_grads(xattn.cross_attention_reference, q, k, v, grad, mask, dtype, scale=scale)
    want = run_with_grads(xattn.cross_attention_reference, q, k, v, grad, mask, torch.float64, scale=scale)
    for name, g, s, w in zip(("out", "dq", "dk", "dv"), got, same, want):
        assert_no_worse_than_torch(g, s, w, dtype=dtype, name=name)
    return got


def check_fp32_key_padding():
    _compare(torch.float32, padding_mask(2, 70))


def check_fp16_key_padding():
    _compare(torch.float16, padding_mask(3, 45), batch=3, heads=1, lq=20, lk=45, dim=16)


def check_bf16_no_mask_short_keys():
    _compare(torch.bfloat16, None, lq=33, lk=19, dim=32)


def check_fully_padded_example_gives_zeros():
    out, dq, dk, dv = _compare(torch.float32, padding_mask(2, 40, fully_padded=(0,)), lq=21, lk=40, dim=16)
    assert out[0].abs().max() == 0 and dq[0].abs().max() == 0 and dk[0].abs().max() == 0


def check_query_only_gradient():
    """k, v without requires_grad (a constant source used directly): only dq is computed."""
    q, k, v, grad = make_inputs(lq=24, lk=31, dim=16)
    mask = padding_mask(2, 31)
    outs = {}
    for name, fn, dtype in (("kernel", xattn.cross_attention_triton, torch.float32),
                            ("same", xattn.cross_attention_reference, torch.float32),
                            ("fp64", xattn.cross_attention_reference, torch.float64)):
        qq = q.to(dtype).requires_grad_()
        fn(qq, k.to(dtype), v.to(dtype), mask).backward(grad.to(dtype))
        outs[name] = qq.grad
    assert_no_worse_than_torch(outs["kernel"], outs["same"], outs["fp64"], dtype=torch.float32, name="dq")


def check_strided_inputs_and_scale():
    """q, k, v as [B, L, H, Dh] views transposed to [B, H, L, Dh] (how attention blocks produce them)."""
    q, k, v, grad = make_inputs(lq=29, lk=38, dim=20)
    views = [t.transpose(1, 2).contiguous().transpose(1, 2) for t in (q, k, v)]
    assert not views[0].is_contiguous()
    mask = padding_mask(2, 38)
    got = run_with_grads(xattn.cross_attention_triton, *views, grad, mask, torch.float32, scale=0.3)
    same = run_with_grads(xattn.cross_attention_reference, *views, grad, mask, torch.float32, scale=0.3)
    want = run_with_grads(xattn.cross_attention_reference, q, k, v, grad, mask, torch.float64, scale=0.3)
    for name, g, s, w in zip(("out", "dq", "dk", "dv"), got, same, want):
        assert_no_worse_than_torch(g, s, w, dtype=torch.float32, name=name)


def check_stop_gradient_through_dispatch():
    """cross_attention picks Triton (XPRETRAIN_KERNELS=triton); source gets no grad, projections match fp64."""
    assert _triton_util.use_triton("cross_attention", torch.zeros(1))
    heads, dim = 2, 16
    x64 = torch.randn(2, 25, heads * dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    src64 = torch.randn(2, 34, heads * dim, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    mask = padding_mask(2, 34)
    grads = {}
    for name, fn, dtype in (("kernel", xattn.cross_attention, torch.float32),
                            ("same", xattn.cross_attention_reference, torch.float32),
                            ("fp64", xattn.cross_attention_reference, torch.float64)):
        torch.manual_seed(0)
        proj = [torch.nn.Linear(heads * dim, heads * dim).to(dtype) for _ in range(3)]
        source = src64.to(dtype).requires_grad_()

        def split(t):
            return t.view(t.shape[0], t.shape[1], heads, dim).transpose(1, 2)

        out = fn(split(proj[0](x64.to(dtype))), split(proj[1](source.detach())), split(proj[2](source.detach())),
                 mask)
        out.square().sum().backward()
        assert source.grad is None, f"{name}: gradient reached the stop-gradient source"
        # the key bias shifts every score of a row equally, so its exact gradient is 0: checked apart
        grads[name] = [p.weight.grad for p in proj] + [proj[0].bias.grad, proj[2].bias.grad, proj[1].bias.grad]
    for i, (g, s, w) in enumerate(zip(grads["kernel"][:5], grads["same"], grads["fp64"])):
        assert g.abs().sum() > 0
        assert_no_worse_than_torch(g, s, w, dtype=torch.float32, name=f"projection grad {i}")
    assert grads["kernel"][5].abs().max() <= 1e-5 * grads["kernel"][1].abs().max()


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
