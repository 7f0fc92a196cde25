"""Cost of one VECO training step, and of its stop-gradient, side by side in one process.

    python bench/veco_step.py [--device auto|cpu|cuda] [--large] [--repeats 5]
                              [--hidden 128 --layers 4 --heads 2 --batch 8 --seq 64 --vocab 8000]
                              [--dtype fp32|bf16|fp16] [--threads 1]

One model (`pretrain.hf_veco.VecoForMaskedLM`, train mode, dropout 0.1) and one bilingual-shaped
micro-batch made by the real `pretrain.veco_data.VecoCollator` (B pairs of random ids, each side
<= --seq tokens with <s> </s>, ~15 % padding, 25 % masking 80/10/10, TLM row <s> x </s></s> y </s>
with its own mask). Every variant is forward + backward (gradients into the parameters, no
optimizer step); all are timed in alternating rounds after 2 warm-up steps each, medians reported.

1. Step cost, as a multiple of the TLM-only step (H-stream on the concatenated pair only):
   `mlm+tlm` = VecoPretrainingModel(loss="mlm"), `ca_mlm` = VecoPretrainingModel(loss="ca_mlm",
   tlm=False) (Eq. 1: the four terms), `ca_mlm+tlm` = the bilingual VECO step as trained.
2. Stop-gradient: the S-stream terms (Eqs. 12-13) alone, memory = H^L of the partner detached vs
   NOT detached (the backward then runs through the S-stream's L layers and on into the H-stream's
   L layers: the 2L-layer graph); and the same switch inside the whole Eq. 1 loss, where the
   H-stream is back-propagated anyway for its own MLM terms.
3. The cross-attention op: `kernels.cross_attention` vs plain SDPA with the padding mask, forward
   + backward, and the K/V-projection block with / without a detached source; the steps are
   `bench/kernels.py`'s `xattn_steps` (imported, not copied), at this run's shapes.

Memory: "peak MiB" = peak extra bytes during forward + backward (gradients included) over what was
held before: CUDA `torch.cuda.max_memory_allocated`; CPU live tensor storage bytes tracked by
`bench/kernels.py`'s `LiveTensorBytes` dispatch mode. "graph MiB" = bytes of the tensors autograd
holds for the backward when it starts (`torch.autograd.graph.saved_tensors_hooks`, unique storages,
parameters excluded) — on any device. Ratios are measured in this run; no timing is asserted.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import statistics
import sys
import time
import weakref
from pathlib import Path
from typing import Callable

# bench/kernels.py is named like the `kernels` package: keep bench/ off the path so that
# `kernels` (imported by pretrain.hf_veco) is the package, and load that file by path.
_BENCH_DIR = Path(__file__).resolve().parent
REPO = _BENCH_DIR.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH_DIR]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DS_ACCELERATOR", "cpu")

import numpy as np  # noqa: E402
import torch  # noqa: E402


def _bench_kernels():
    spec = importlib.util.spec_from_file_location("bench_kernels", _BENCH_DIR / "kernels.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BK = _bench_kernels()


def tokenizer_ids(vocab: int) -> dict:
    """XLM-R's special ids (<s> 0, <pad> 1, </s> 2, <unk> 3, <mask> last)."""
    return {"vocab_size": vocab, "pad_id": 1, "cls_id": 0, "sep_id": 2, "unk_id": 3,
            "mask_id": vocab - 1}


def run_config(args):
    from pretrain.config import load_config

    return load_config(None, [
        "objective=veco", "model.init_from=tiny", f"model.hidden_size={args.hidden}",
        f"model.num_layers={args.layers}", f"model.num_heads={args.heads}",
        f"model.intermediate_size={4 * args.hidden}",
        f"model.max_position_embeddings={2 * args.seq + 2}", "model.dropout=0.1",
        f"veco.bilingual_max_len={args.seq}", "veco.tlm=true"])


def bilingual_batch(cfg, vocab: int, batch: int, seq: int, seed: int = 0) -> dict:
    """B random pairs through the real collator; the first pair is full length on both sides."""
    from pretrain.veco_data import BILINGUAL, VecoCollator

    rng = np.random.default_rng(seed)
    items = []
    for i in range(batch):
        lx, ly = ((seq - 2, seq - 2) if i == 0 else
                  rng.integers(int(0.7 * (seq - 2)), seq - 1, size=2))
        x, y = (rng.integers(4, vocab - 1, size=int(n)) for n in (lx, ly))
        items.append(((BILINGUAL, 0, i, BILINGUAL, i), x, y))
    return VecoCollator(cfg, tokenizer_ids(vocab))(items)


# ---------------------------------------------------------------------- measurement

def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def graph_bytes(loss_fn: Callable[[], torch.Tensor], params: set[int]) -> int:
    """Bytes autograd still holds for the backward when it starts (unique storages, no params)."""
    held: list[weakref.ref] = []

    class Saved:  # the packed form; it dies with the graph node that saved it
        __slots__ = ("t", "__weakref__")

        def __init__(self, t):
            self.t = t

    def pack(t):
        box = Saved(t.detach())  # no grad_fn: a saved output must not keep its own node alive
        held.append(weakref.ref(box))
        return box

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda box: box.t):
        loss = loss_fn()
    storages = {}
    for ref in held:
        box = ref()
        if box is None:
            continue
        storage = box.t.untyped_storage()
        if storage.data_ptr() not in params:
            storages[storage.data_ptr()] = storage.nbytes()
    loss.backward()
    return sum(storages.values())


def peak_bytes(step: Callable[[], None], device: torch.device) -> int:
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        step()
        sync(device)
        return torch.cuda.max_memory_allocated() - before
    with BK.LiveTensorBytes() as tracker:
        step()
    return tracker.peak


def time_rounds(steps: dict[str, Callable[[], None]], device: torch.device,
                repeats: int) -> dict[str, float]:
    """Median ms per step; variants alternate inside every round (shared-machine noise hits all)."""
    for step in steps.values():  # warm-up: allocator, first-touch, lazy inits, Triton autotune
        step()
        step()
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            sync(device)
            start = time.perf_counter()
            step()
            sync(device)
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(ts) for name, ts in times.items()}


def report(title: str, steps: dict[str, Callable[[], None]], device: torch.device, repeats: int,
           graph: dict[str, Callable[[], torch.Tensor]] | None, params: set[int],
           ratio: str) -> dict[str, tuple[float, float, float]]:
    """Time all, then memory; prints a table; ratio "cost" = path / first, "speedup" = first / path."""
    ms = time_rounds(steps, device, repeats)
    rows = {}
    for name, step in steps.items():
        mem = peak_bytes(step, device) / 2**20
        g = graph_bytes(graph[name], params) / 2**20 if graph and name in graph else float("nan")
        rows[name] = (ms[name], mem, g)
    print(f"\n{title}")
    head = "time / first row" if ratio == "cost" else "first row / time"
    print(f"  {'variant':<26} {'ms/step':>9} {'peak MiB':>9} {'graph MiB':>10}  {head}")
    first = next(iter(rows.values()))
    for name, (t, mem, g) in rows.items():
        r = t / first[0] if ratio == "cost" else first[0] / t
        graph_mib = "-" if math.isnan(g) else f"{g:.1f}"
        print(f"  {name:<26} {t:>9.2f} {mem:>9.1f} {graph_mib:>10}  {r:>6.2f}x", flush=True)
    return rows


# ---------------------------------------------------------------------- variants

def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--large", action="store_true",
                        help="XLM-R-large shapes (24 layers, hidden 1024, 16 heads, vocab 250002, "
                             "32 pairs x 128 tokens per side, bf16 autocast): for a GPU")
    parser.add_argument("--hidden", type=int, default=None, help="default 128 (large 1024)")
    parser.add_argument("--layers", type=int, default=None, help="default 4 (large 24)")
    parser.add_argument("--heads", type=int, default=None, help="default 2 (large 16)")
    parser.add_argument("--batch", type=int, default=None, help="pairs; default 8 (large 32)")
    parser.add_argument("--seq", type=int, default=None,
                        help="tokens per side with <s> </s>; default 64 (large 128)")
    parser.add_argument("--vocab", type=int, default=None, help="default 8000 (large 250002)")
    parser.add_argument("--dtype", default=None, choices=["fp32", "bf16", "fp16"],
                        help="autocast dtype on CUDA (default bf16); CPU runs fp32")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (median reported)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1: stable timings on a shared machine; 0: torch's "
                             "default)")
    args = parser.parse_args(argv)
    large = dict(hidden=1024, layers=24, heads=16, batch=32, seq=128, vocab=250002)
    small = dict(hidden=128, layers=4, heads=2, batch=8, seq=64, vocab=8000)
    for key, value in (large if args.large else small).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    dtype_name = args.dtype or ("bf16" if device.type == "cuda" else "fp32")
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype_name]
    if device.type == "cpu":
        dtype, dtype_name = torch.float32, "fp32"

    from pretrain import hf_veco
    from pretrain.veco_model import VecoPretrainingModel, build_network

    cfg = run_config(args)
    batch = {k: v.to(device) for k, v in
             bilingual_batch(cfg, args.vocab, args.batch, args.seq).items()}
    torch.manual_seed(0)
    net = build_network(cfg.model, cfg.veco, tokenizer_ids(args.vocab)).to(device).train()
    params = {p.untyped_storage().data_ptr() for p in net.parameters()}
    models = {"mlm": VecoPretrainingModel(net, loss="mlm", tlm=True),
              "ca_mlm": VecoPretrainingModel(net, loss="ca_mlm", tlm=False),
              "ca_mlm+tlm": VecoPretrainingModel(net, loss="ca_mlm", tlm=True)}
    use_amp = device.type == "cuda" and dtype != torch.float32

    def amp(fn):
        def wrapped():
            if not use_amp:
                return fn()
            with torch.autocast("cuda", dtype=dtype):
                return fn()
        return wrapped

    # the pair inputs exactly as VecoPretrainingModel.loss stacks them: [x; y], 2B rows
    from pretrain.veco_model import _pad_to

    pad, size = net.config.pad_token_id, args.batch
    length = max(batch["x_ids"].shape[1], batch["y_ids"].shape[1])
    ids = torch.cat([_pad_to(batch["x_ids"], length, pad), _pad_to(batch["y_ids"], length, pad)])
    mask = torch.cat([_pad_to(batch["x_mask"], length, 0), _pad_to(batch["y_mask"], length, 0)])
    labels = torch.cat([_pad_to(batch["x_labels"], length, -100),
                        _pad_to(batch["y_labels"], length, -100)])
    memory_mask = torch.cat([mask[size:], mask[:size]])
    term = models["mlm"]._term

    def mean_ce(h, lab):
        ce, count, _, _ = term(h, lab)
        return ce / count.clamp(min=1)

    def tlm_only():
        return mean_ce(net.h_stream(batch["tlm_ids"], batch["tlm_mask"]), batch["tlm_labels"])

    def model_loss(name):
        return lambda: models[name](task="loss", **batch)[0]

    def s_terms(detach: bool, with_mlm: bool):
        """Eqs. 12-13 (+ Eqs. 10-11 with_mlm) with the partner memory detached or not."""
        def fn():
            hidden = net.h_stream(ids, mask)
            memory = torch.cat([hidden[size:], hidden[:size]])
            memory = memory.detach() if detach else memory
            loss = 0.0
            if with_mlm:
                loss = mean_ce(hidden[:size], labels[:size]) + mean_ce(hidden[size:], labels[size:])
            del hidden  # detached and no MLM terms: the H-stream graph is freed here
            s = net.s_stream(ids, mask, memory, memory_mask)
            return loss + mean_ce(s[:size], labels[:size]) + mean_ce(s[size:], labels[size:])
        return fn

    def as_step(loss_fn):
        def step():
            net.zero_grad(set_to_none=True)
            loss_fn().backward()
        return step

    # sanity: the bench's Eq. 1 with detach is the model's loss (eval mode: no dropout)
    net.eval()
    with torch.no_grad():
        tol = 2e-2 if use_amp else 1e-4
        same = torch.allclose(amp(s_terms(True, True))(), amp(model_loss("ca_mlm"))(),
                              rtol=tol, atol=tol)
    net.train()

    n_params = sum(p.numel() for p in net.parameters())
    n_cross = sum(p.numel() for p in net.cross_attention.parameters())
    tokens = {k: int(batch[f"{k}_mask"].sum()) for k in ("x", "y", "tlm")}
    masked = {k: int((batch[f"{k}_labels"] != -100).sum()) for k in ("x", "y", "tlm")}
    print(f"device={device} dtype={dtype_name} torch threads={torch.get_num_threads()} "
          f"repeats={args.repeats} (median of alternating rounds, 2 warm-up steps each)")
    print(f"model: hidden {args.hidden}, {args.layers} layers, {args.heads} heads, FFN "
          f"{4 * args.hidden}, vocab {args.vocab}; {n_params / 1e6:.1f}M params "
          f"({n_cross / 1e6:.2f}M cross-attention); cross_attention op = "
          f"{hf_veco.cross_attention.__module__}.{hf_veco.cross_attention.__name__}")
    print(f"batch: {args.batch} pairs, x {tuple(batch['x_ids'].shape)} y "
          f"{tuple(batch['y_ids'].shape)} tlm {tuple(batch['tlm_ids'].shape)}; non-pad tokens "
          f"x {tokens['x']} y {tokens['y']} tlm {tokens['tlm']}; masked x {masked['x']} y "
          f"{masked['y']} tlm {masked['tlm']}")
    print(f"check: bench Eq. 1 (detached) == VecoPretrainingModel(loss='ca_mlm') loss: "
          f"{'yes' if same else 'NO'}")

    losses = {"tlm only (H on [x;y])": tlm_only, "mlm+tlm": model_loss("mlm"),
              "ca_mlm (Eq. 1, 4 terms)": model_loss("ca_mlm"),
              "ca_mlm+tlm (VECO step)": model_loss("ca_mlm+tlm")}
    losses = {k: amp(v) for k, v in losses.items()}
    report("1. training step (forward + backward), cost as a multiple of the TLM-only step",
           {k: as_step(v) for k, v in losses.items()}, device, args.repeats, losses, params,
           "cost")

    s_losses = {"S-stream, no detach (2L)": amp(s_terms(False, False)),
                "S-stream, stop-gradient": amp(s_terms(True, False))}
    rows = report("2a. S-stream terms only (Eqs. 12-13): full backward through 2L layers vs "
                  "stop-gradient (speedup = full / stop-grad)",
                  {k: as_step(v) for k, v in s_losses.items()}, device, args.repeats, s_losses,
                  params, "speedup")
    full, stop = rows["S-stream, no detach (2L)"], rows["S-stream, stop-gradient"]
    print(f"  => stop-gradient S-stream: {full[0] / stop[0]:.2f}x faster, "
          f"{full[1] / max(stop[1], 1e-9):.2f}x less peak memory, "
          f"{full[2] / max(stop[2], 1e-9):.2f}x smaller autograd graph than the full backward "
          f"through 2L layers")
    e_losses = {"Eq. 1, no detach": amp(s_terms(False, True)),
                "Eq. 1, stop-gradient": amp(s_terms(True, True))}
    rows = report("2b. whole Eq. 1 (H-stream MLM terms back-propagate through H anyway)",
                  {k: as_step(v) for k, v in e_losses.items()}, device, args.repeats, e_losses,
                  params, "speedup")
    full, stop = rows["Eq. 1, no detach"], rows["Eq. 1, stop-gradient"]
    print(f"  => inside Eq. 1 the stop-gradient saves {full[0] / stop[0]:.2f}x time, "
          f"{full[1] / max(stop[1], 1e-9):.2f}x peak memory: the H-stream backward runs once "
          f"either way; without the detach it also carries the S-stream's K/V gradients")

    from kernels import cross_attention as xattn

    head_dim = args.hidden // args.heads
    # the S-stream's cross-attention shapes: 2B rows, queries and keys of one side's length
    # (xattn_steps uses Lk = 3/4 Lq with 10 % of the keys padded)
    groups = BK.xattn_steps(2 * args.batch, length, args.heads, head_dim,
                            dtype if device.type == "cuda" else torch.float32, device,
                            xattn.cross_attention)
    path = ("Triton" if device.type == "cuda" and BK.triton_gpu_driver_active()
            else "the SDPA reference (Triton is CUDA-only)")
    print(f"\n3. cross-attention, forward + backward, [{2 * args.batch}, {args.heads}, {length}, "
          f"{head_dim}] queries, {max(1, 3 * length // 4)} keys; kernels.cross_attention runs "
          f"{path} (speedup = sdpa / path)")
    for name, steps in groups.items():
        report(f"  {name}", steps, device, args.repeats, None, params, "speedup")


if __name__ == "__main__":
    main()
