"""Time and peak extra memory of the fused kernels against the plain PyTorch path, side by side.

    python bench/kernels.py [--lengths 512,1024,2048,4096] [--batch B] [--dim d] [--device auto]

Span loss (forward + backward): naive dense [B, L, L] path vs the chunked reference vs Triton (CUDA).
Cross-attention (forward + backward), Lk = 3/4 L with 10 % of keys padded:
  * xattn-op: SDPA with the padding mask vs `cross_attention` on the same q, k, v leaves;
  * xattn-block: K/V projections of a source that needs grad + SDPA, full backward into the source
    (what you get without a stop-gradient), vs projections of source.detach() + `cross_attention`.
Ratios are baseline / path, measured in the same run (time: > 1 = faster; memory: > 1 = less).

Peak extra memory = peak bytes during forward + backward minus bytes held before (inputs), gradients
included. CUDA: torch.cuda.max_memory_allocated. CPU: live tensor storage bytes, tracked per op by a
TorchDispatchMode with a finalizer on each new storage (exact for tensors, ignores allocator slack).
"""

from __future__ import annotations

import argparse
import sys
import time
import weakref
from pathlib import Path
from typing import Callable

# This file is named like the package it measures: drop bench/ from the path so `kernels` is the package.
_BENCH_DIR = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH_DIR]
sys.path.insert(0, str(_BENCH_DIR.parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils._pytree import tree_leaves  # noqa: E402

from kernels import cross_attention as xattn  # noqa: E402
from kernels import span_scores  # noqa: E402
from kernels._triton_util import triton_gpu_driver_active  # noqa: E402

GPU_LENGTHS = "512,1024,2048,4096"
CPU_LENGTHS = "256,512,1024,2048"


class LiveTensorBytes(TorchDispatchMode):
    """Peak bytes of tensor storages created inside the mode and still alive (CPU memory accounting)."""

    def __init__(self) -> None:
        super().__init__()
        self.current = 0
        self.peak = 0
        self._seen: set[int] = set()

    def _free(self, key: int, nbytes: int) -> None:
        self._seen.discard(key)
        self.current -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for leaf in tree_leaves(out):
            if isinstance(leaf, torch.Tensor) and leaf.device.type == "cpu":
                storage = leaf.untyped_storage()
                key, nbytes = storage.data_ptr(), storage.nbytes()
                if nbytes and key not in self._seen:
                    self._seen.add(key)
                    self.current += nbytes
                    self.peak = max(self.peak, self.current)
                    weakref.finalize(storage, self._free, key, nbytes)
        return out


def measure(step: Callable[[], None], device: torch.device, repeats: int) -> tuple[float, float]:
    """(milliseconds, peak extra MiB) of step(), which runs forward + backward."""
    step()  # warm-up: Triton autotuning and compilation, allocator pools
    if device.type == "cuda":
        import triton.testing

        ms = triton.testing.do_bench(step, warmup=5, rep=max(50, 20 * repeats), return_mode="median")
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        step()
        torch.cuda.synchronize()
        return ms, (torch.cuda.max_memory_allocated() - before) / 2**20
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1e3)
    with LiveTensorBytes() as tracker:
        step()
    return min(times), tracker.peak / 2**20  # best of N: the CPU is shared, the minimum is the least noisy


def span_steps(batch: int, length: int, dim: int, dtype: torch.dtype, device: torch.device, paths: list[str]):
    gen = torch.Generator(device="cpu").manual_seed(0)
    q = (torch.randn(batch, length, dim, generator=gen) * dim**-0.5).to(device, dtype).requires_grad_()
    k = torch.randn(batch, length, dim, generator=gen).to(device, dtype).requires_grad_()
    context_start = torch.full((batch,), max(1, length // 8), device=device)
    context_end = torch.full((batch,), length - 1, device=device)
    rows = [(b, length // 2, length // 2 + 3) for b in range(batch)] + [(0, length - 4, length - 2)]
    answer_spans = torch.tensor(rows, device=device)
    fns = {"naive": span_scores.span_bce_loss_naive, "reference": span_scores.span_bce_loss_reference,
           "triton": span_scores.span_bce_loss_triton}

    def make(fn):
        def step():
            q.grad = k.grad = None
            fn(q, k, context_start, context_end, answer_spans, None).backward()
        return step

    return {path: make(fns[path]) for path in paths}


def xattn_steps(batch: int, length: int, heads: int, head_dim: int, dtype: torch.dtype, device: torch.device,
                ours: Callable):
    gen = torch.Generator(device="cpu").manual_seed(0)
    lk = max(1, 3 * length // 4)
    width = heads * head_dim

    def rand(*shape):
        return torch.randn(*shape, generator=gen).to(device, dtype)

    q, k, v = (rand(batch, heads, n, head_dim).requires_grad_() for n in (length, lk, lk))
    mask = torch.ones(batch, lk, dtype=torch.bool, device=device)
    mask[:, lk - lk // 10:] = False
    x, source = rand(batch, length, width), rand(batch, lk, width).requires_grad_()
    proj = [torch.nn.Linear(width, width).to(device, dtype) for _ in range(3)]

    def split(t):  # [B, L, H*Dh] -> [B, H, L, Dh]
        return t.view(t.shape[0], t.shape[1], heads, head_dim).transpose(1, 2)

    def sdpa(q_, k_, v_):
        return F.scaled_dot_product_attention(q_, k_, v_, attn_mask=mask[:, None, None, :])

    def op(attn):
        def step():
            q.grad = k.grad = v.grad = None
            attn(q, k, v).float().square().mean().backward()
        return step

    def block(attn, detach):
        def step():
            source.grad = None
            for p in proj:
                p.zero_grad(set_to_none=True)
            src = source.detach() if detach else source
            out = attn(split(proj[0](x)), split(proj[1](src)), split(proj[2](src)))
            out.float().square().mean().backward()
        return step

    ours_masked = lambda q_, k_, v_: ours(q_, k_, v_, mask)  # noqa: E731
    return {
        "xattn-op": {"sdpa": op(sdpa), "ours": op(ours_masked)},
        "xattn-block": {"sdpa-full-bwd": block(sdpa, False), "ours-stop-grad": block(ours_masked, True)},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", default=None, help=f"comma list (default GPU {GPU_LENGTHS}, CPU {CPU_LENGTHS})")
    parser.add_argument("--batch", type=int, default=None, help="default 8 on GPU, 2 on CPU")
    parser.add_argument("--dim", type=int, default=None, help="span hidden size d (default 768 GPU, 64 CPU)")
    parser.add_argument("--heads", type=int, default=None, help="cross-attention heads (default 12 GPU, 2 CPU)")
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--dtype", default=None, choices=["fp32", "bf16", "fp16"], help="default bf16 GPU, fp32 CPU")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-naive-above", type=int, default=None,
                        help="skip the dense span path above this L (it needs B * L^2 memory)")
    args = parser.parse_args(argv)

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    gpu = device.type == "cuda"
    lengths = [int(x) for x in (args.lengths or (GPU_LENGTHS if gpu else CPU_LENGTHS)).split(",")]
    batch = args.batch or (8 if gpu else 2)
    dim = args.dim or (768 if gpu else 64)
    heads = args.heads or (12 if gpu else 2)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype or
                                                                                  ("bf16" if gpu else "fp32")]
    use_triton = gpu and triton_gpu_driver_active()
    ours = xattn.cross_attention_triton if use_triton else xattn.cross_attention_reference
    memory_note = "torch.cuda.max_memory_allocated" if gpu else "live tensor bytes (TorchDispatchMode)"
    print(f"device={device} dtype={dtype} batch={batch} d={dim} heads={heads}x{args.head_dim} "
          f"triton={'yes' if use_triton else 'no (reference stands in for ours)'} memory={memory_note}")
    print(f"{'op':<12} {'L':>5} {'path':<15} {'ms':>9} {'extra MiB':>10} {'speedup':>8} {'mem ratio':>9}")
    for length in lengths:
        paths = ["naive", "reference"] + (["triton"] if use_triton else [])
        if args.skip_naive_above and length > args.skip_naive_above:
            paths.remove("naive")
        groups = {"span-loss": span_steps(batch, length, dim, dtype, device, paths)}
        groups.update(xattn_steps(batch, length, heads, args.head_dim, dtype, device, ours))
        for op, steps in groups.items():
            baseline = None
            for path, step in steps.items():
                ms, mib = measure(step, device, args.repeats)
                baseline = baseline or (ms, mib)
                print(f"{op:<12} {length:>5} {path:<15} {ms:>9.2f} {mib:>10.1f} {baseline[0] / ms:>7.2f}x "
                      f"{baseline[1] / max(mib, 1e-9):>8.1f}x", flush=True)
            if gpu:
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
