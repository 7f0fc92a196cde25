"""CA-MLM + TLM vs MLM + TLM on tiny CPU models (the direction of Table 5 of the VECO paper).

    python bench/veco_ablation.py [--steps 500 --batch 32 --lr 1e-3] [--hidden 64 --layers 2]
                                  [--vocab 4000] [--eval-pairs 100] [--seeds 0] [--threads 1]

Data: the shared Tatoeba pairs (`<repo>/../shared/data/parallel/tatoeba.xxx-eng.*`, 8 pairs). Per
pair, --eval-pairs held-out pairs (seeded; only pairs whose English and foreign sentences occur
once in all files, and every training pair sharing a sentence with a held-out pair is dropped), the
rest train. A unigram SentencePiece tokenizer (`data_prep.tokenizer.train_tokenizer`, XLM-R ids)
is trained on the training sentences only; micro-batches come from the real
`pretrain.veco_data.VecoCollator` (bilingual: 25 % masking, 80/10/10; TLM row with its own mask).

Training: two models from the same seed (same initial weights; the MLM model's cross-attention
is created but frozen), `pretrain.veco_model.VecoPretrainingModel(loss="ca_mlm" | "mlm",
tlm=True)`, the same batches and masks in the same order, the same number of steps; plain AdamW
(betas 0.9/0.98, eps 1e-6, weight decay 0.01 via `veco_model.param_groups`), linear warm-up and
decay, clip 1.0, fp32. Equal steps is not equal compute: a CA-MLM step runs 2 more stack passes.

Evaluation on the held-out pairs (eval mode):
* masked-token accuracy of the H-stream (plug-out model, what NLU fine-tunes): each side alone,
  masked by the collator's evaluation stream (the same masks for both models); also TLM and, for
  the CA-MLM model, the S-stream (plug-in) accuracy. Baseline: always the training data's most
  frequent token.
* Tatoeba retrieval as XTREME: mean-pooled (over the attention mask) H-stream hidden states of the
  unmasked sentences, cosine nearest neighbour among the pair's held-out sentences, xx->en and
  en->xx, averaged over the 8 pairs; every layer is printed, the headline one is VECO's relative
  choice (layer 18 of 24 -> round(0.75 L), at least 1). Baseline: random = 1 / N.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

_BENCH_DIR = Path(__file__).resolve().parent
REPO = _BENCH_DIR.parent
# bench/kernels.py must not shadow the `kernels` package that pretrain.hf_veco imports
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH_DIR]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

LANGS = ("deu", "fra", "rus", "cmn", "ara", "hin", "swh", "tha")
IGNORE = -100


# ---------------------------------------------------------------------- data

def read_pairs(folder: Path) -> dict[str, list[tuple[str, str]]]:
    pairs = {}
    for lang in LANGS:
        src = (folder / f"tatoeba.{lang}-eng.{lang}").read_text(encoding="utf-8").splitlines()
        tgt = (folder / f"tatoeba.{lang}-eng.eng").read_text(encoding="utf-8").splitlines()
        if len(src) != len(tgt):
            raise ValueError(f"tatoeba.{lang}-eng: {len(src)} vs {len(tgt)} lines")
        pairs[lang] = [(s.strip(), t.strip()) for s, t in zip(src, tgt) if s.strip() and t.strip()]
    return pairs


def split(pairs: dict[str, list[tuple[str, str]]], eval_pairs: int, seed: int):
    """(train, held_out) per language; held-out sentences are unique over all files and never
    occur in training (Tatoeba's English sides repeat across pairs)."""
    counts = Counter(s for items in pairs.values() for pair in items for s in pair)
    held, held_sentences = {}, set()
    for k, (lang, items) in enumerate(pairs.items()):
        unique = [i for i, (s, t) in enumerate(items) if counts[s] == 1 and counts[t] == 1]
        rng = np.random.default_rng([seed, 0xE7A1, k])
        chosen = sorted(rng.choice(unique, size=min(eval_pairs, len(unique)), replace=False))
        held[lang] = [items[i] for i in chosen]
        held_sentences.update(s for pair in held[lang] for s in pair)
    train = {lang: [p for p in items if p not in held[lang] and
                    p[0] not in held_sentences and p[1] not in held_sentences]
             for lang, items in pairs.items()}
    return train, held


def encode(tok, sentences: list[str]) -> list[np.ndarray]:
    ids = tok(sentences, add_special_tokens=False)["input_ids"]
    return [np.asarray(x, dtype=np.int64) for x in ids]


def encode_pairs(tok, pairs: dict[str, list[tuple[str, str]]], limit: int):
    """Per language: list of (x ids, y ids), dropping pairs with a side over `limit` ids."""
    out = {}
    for lang, items in pairs.items():
        xs, ys = encode(tok, [p[0] for p in items]), encode(tok, [p[1] for p in items])
        out[lang] = [(x, y) for x, y in zip(xs, ys) if 0 < len(x) <= limit and 0 < len(y) <= limit]
    return out


def run_config(args, seed: int):
    from pretrain.config import load_config

    return load_config(None, [
        "objective=veco", "model.init_from=tiny", f"model.hidden_size={args.hidden}",
        f"model.num_layers={args.layers}", f"model.num_heads={args.heads}",
        f"model.intermediate_size={4 * args.hidden}",
        f"model.max_position_embeddings={2 * args.max_len + 2}", f"model.dropout={args.dropout}",
        f"veco.bilingual_max_len={args.max_len}", "veco.tlm=true", f"data.seed={seed}",
        f"train.seed={seed}"])


def training_batches(collator, train: dict, steps: int, batch: int, seed: int) -> list[dict]:
    """The batches of every step, made once and shared by both objectives: uniform over all
    training pairs (epoch-wise permutations), masks drawn from the training stream by sample
    number, so both models see the same inputs in the same order."""
    from pretrain.veco_data import BILINGUAL

    pool = [(k, i) for k, lang in enumerate(train) for i in range(len(train[lang]))]
    langs = list(train)
    rng = np.random.default_rng([seed, 0x7EC0])
    order: list[int] = []
    batches = []
    for step in range(steps):
        while len(order) < batch:
            order.extend(rng.permutation(len(pool)).tolist())
        picked, order = order[:batch], order[batch:]
        items = []
        for j, p in enumerate(picked):
            k, i = pool[p]
            x, y = train[langs[k]][i]
            items.append(((BILINGUAL, k, i, BILINGUAL, step * batch + j), x, y))
        batches.append(collator(items))
    return batches


def eval_batches(collator, held: dict, batch: int) -> list[dict]:
    from pretrain.veco_data import BILINGUAL

    items, n = [], 0
    for k, lang in enumerate(held):
        for i, (x, y) in enumerate(held[lang]):
            items.append(((BILINGUAL, k, i, 2 + BILINGUAL, n), x, y))  # evaluation mask stream
            n += 1
    return [collator(items[i:i + batch]) for i in range(0, len(items), batch)]


# ---------------------------------------------------------------------- train / evaluate

def train_model(objective: str, cfg, info: dict, batches: list[dict], args, seed: int):
    from pretrain.veco_model import VecoPretrainingModel, build_network, param_groups

    torch.manual_seed(seed)
    net = build_network(cfg.model, cfg.veco, info).train()
    model = VecoPretrainingModel(net, loss=objective, tlm=True)
    if objective == "mlm":  # as pretrain.veco_model.build_model: no S-stream, frozen blocks
        net.cross_attention.requires_grad_(False)
    opt = torch.optim.AdamW(param_groups(model, 0.01), lr=args.lr, betas=(0.9, 0.98), eps=1e-6)
    warmup, total = args.warmup, len(batches)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))
    started, tail = time.perf_counter(), []
    for step, batch in enumerate(batches):
        loss, _ = model(task="loss", **batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if step >= total - 50:  # per term: 4 + TLM (ca_mlm) or 2 + TLM (mlm)
            tail.append(float(loss.detach()) / (5 if objective == "ca_mlm" else 3))
    return net.eval(), time.perf_counter() - started, statistics.mean(tail)


@torch.no_grad()
def masked_accuracy(net, batches: list[dict], frequent: int) -> dict[str, float]:
    from pretrain.veco_model import STATS, TERMS, VecoPretrainingModel

    model = VecoPretrainingModel(net, loss="ca_mlm", tlm=True).eval()
    total = None
    for batch in batches:
        stats = model(task="eval", **batch)[1]["stats"][1]  # bilingual row: [terms, stats]
        total = stats if total is None else total + stats
    c, n = STATS.index("correct"), STATS.index("count")
    acc = {t: float(total[TERMS.index(t), c] / total[TERMS.index(t), n]) for t in TERMS}
    h = [TERMS.index("mlm_x"), TERMS.index("mlm_y")]
    s = [TERMS.index("ca_mlm_x"), TERMS.index("ca_mlm_y")]
    acc["h_stream"] = float(total[h, c].sum() / total[h, n].sum())
    acc["s_stream"] = float(total[s, c].sum() / total[s, n].sum())
    labels = torch.cat([b[f"{side}_labels"][b[f"{side}_labels"] != IGNORE]
                        for b in batches for side in ("x", "y")])
    acc["most_frequent"] = float((labels == frequent).double().mean())
    acc["masked"] = int(labels.numel())
    return acc


@torch.no_grad()
def sentence_vectors(net, sentences: list[np.ndarray], cls: int, sep: int, pad: int,
                     batch: int = 128) -> torch.Tensor:
    """[layers + 1, N, h]: mean over the attention mask (<s> and </s> included, as XTREME) of
    every hidden layer (0 = embeddings)."""
    out = []
    for i in range(0, len(sentences), batch):
        rows = [np.concatenate([[cls], s, [sep]]) for s in sentences[i:i + batch]]
        length = max(len(r) for r in rows)
        ids = torch.full((len(rows), length), pad, dtype=torch.long)
        mask = torch.zeros(len(rows), length, dtype=torch.long)
        for r, row in enumerate(rows):
            ids[r, :len(row)] = torch.from_numpy(row)
            mask[r, :len(row)] = 1
        states = net.roberta(input_ids=ids, attention_mask=mask, output_hidden_states=True,
                             return_dict=True).hidden_states
        m = mask[None, :, :, None].float()
        out.append((torch.stack(states) * m).sum(2) / m.sum(2))
    return torch.cat(out, dim=1)


def retrieval(net, held: dict, info: dict) -> dict[str, torch.Tensor]:
    """Per language: [layers + 1, 2] accuracies (xx->en, en->xx)."""
    ids = (int(info["cls_id"]), int(info["sep_id"]), int(info["pad_id"]))
    out = {}
    for lang, pairs in held.items():
        src = F.normalize(sentence_vectors(net, [x for x, _ in pairs], *ids), dim=-1)
        tgt = F.normalize(sentence_vectors(net, [y for _, y in pairs], *ids), dim=-1)
        sim = src @ tgt.transpose(1, 2)  # [layers + 1, N, N]
        gold = torch.arange(len(pairs))
        out[lang] = torch.stack([(sim.argmax(2) == gold).double().mean(1),
                                 (sim.argmax(1) == gold).double().mean(1)], dim=1)
    return out


# ---------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared/data/parallel"))
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--vocab", type=int, default=4000, help="SentencePiece pieces")
    parser.add_argument("--max-len", type=int, default=64,
                        help="tokens per side with <s> </s> (longer pairs are dropped)")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--batch", type=int, default=32, help="pairs per step")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--eval-pairs", type=int, default=100, help="held-out pairs per language")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()

    from data_prep.tokenizer import load_tokenizer, tokenizer_info, train_tokenizer
    from pretrain.veco_data import VecoCollator

    pairs = read_pairs(Path(args.data))
    headline = max(1, round(0.75 * args.layers))
    print(f"config: hidden {args.hidden}, {args.layers} layers, {args.heads} heads, FFN "
          f"{4 * args.hidden}, dropout {args.dropout}; {args.steps} steps x {args.batch} pairs, "
          f"AdamW lr {args.lr} (warm-up {args.warmup}, linear decay), fp32, torch threads "
          f"{torch.get_num_threads()}; SentencePiece {args.vocab} pieces; max {args.max_len} "
          f"tokens per side; {args.eval_pairs} held-out pairs per language; seeds {args.seeds}; "
          f"retrieval layer {headline} of {args.layers} (VECO: 18 of 24)")
    summary = {"ca_mlm": [], "mlm": []}
    for seed in args.seeds:
        train_text, held_text = split(pairs, args.eval_pairs, seed)
        with tempfile.TemporaryDirectory(prefix="veco-ablation-") as tmp:
            text = Path(tmp) / "train.txt"
            text.write_text("\n".join(s for items in train_text.values() for p in items
                                      for s in p) + "\n", encoding="utf-8")
            tok = load_tokenizer(train_tokenizer([text], args.vocab, Path(tmp) / "tok", seed=seed))
            info = tokenizer_info(tok)
        cfg = run_config(args, seed)
        train = encode_pairs(tok, train_text, args.max_len - 2)
        held = encode_pairs(tok, held_text, args.max_len - 2)
        collator = VecoCollator(cfg, info)
        batches = training_batches(collator, train, args.steps, args.batch, seed)
        evals = eval_batches(collator, held, 64)
        specials = {int(info[k]) for k in ("cls_id", "sep_id", "pad_id", "unk_id", "mask_id")}
        freq = Counter(int(t) for items in train.values() for x, y in items for t in (*x, *y)
                       if int(t) not in specials)
        frequent, _ = freq.most_common(1)[0]
        n_train = sum(len(v) for v in train.values())
        n_held = {lang: len(v) for lang, v in held.items()}
        print(f"\nseed {seed}: {n_train} training pairs, held-out {sum(n_held.values())} "
              f"({', '.join(f'{k} {v}' for k, v in n_held.items())}); vocabulary "
              f"{info['vocab_size']} ids; {args.steps * args.batch / n_train:.1f} epochs")
        results = {}
        for objective in ("ca_mlm", "mlm"):
            net, seconds, tail = train_model(objective, cfg, info, batches, args, seed)
            results[objective] = (masked_accuracy(net, evals, frequent), retrieval(net, held, info),
                                  seconds, tail)
        mlm_acc, _, _, _ = results["mlm"]
        print(f"  {'objective':<12} {'train s':>7} {'loss*':>6} {'H-MLM acc':>9} {'TLM acc':>8} "
              f"{'S-MLM acc':>9} {f'Tatoeba L{headline} xx>en/en>xx/mean':>30}  per layer mean "
              f"(L0..L{args.layers})")
        for objective, (acc, ret, seconds, tail) in results.items():
            per_layer = torch.stack(list(ret.values())).mean(0)  # [layers + 1, 2]
            fwd, bwd = per_layer[headline].tolist()
            s_acc = f"{acc['s_stream']:.4f}" if objective == "ca_mlm" else "n/a"
            layers = " ".join(f"{v:.3f}" for v in per_layer.mean(1).tolist())
            print(f"  {objective + '+tlm':<12} {seconds:>7.1f} {tail:>6.2f} {acc['h_stream']:>9.4f} "
                  f"{acc['tlm']:>8.4f} {s_acc:>9} {fwd:>12.3f} / {bwd:.3f} / {(fwd + bwd) / 2:.3f}"
                  f"  {layers}")
            summary[objective].append((acc["h_stream"], (fwd + bwd) / 2))
        retrieval_random = statistics.mean(1 / n for n in n_held.values())
        print(f"  {'baselines':<12} {'':>7} {'':>6} {mlm_acc['most_frequent']:>9.4f} "
              f"{'':>8} {'':>9} {retrieval_random:>12.3f} (random 1/N)  "
              f"[H-MLM: most frequent training token; {mlm_acc['masked']} masked tokens]")
        for objective, (_, ret, _, _) in results.items():
            print(f"  {objective + '+tlm':<12} Tatoeba L{headline} per language (xx>en/en>xx): " +
                  ", ".join(f"{lang} {r[headline, 0]:.2f}/{r[headline, 1]:.2f}"
                            for lang, r in ret.items()))
    print("\n  * loss = training loss of the last 50 steps per term (mean masked-token "
          "cross-entropy of one term: the sum of the 5 (CA-MLM) or 3 (MLM) terms / their number)")
    if len(args.seeds) > 1:
        print(f"\nmean over seeds {args.seeds}:")
        for objective, rows in summary.items():
            h = [r[0] for r in rows]
            t = [r[1] for r in rows]
            print(f"  {objective + '+tlm':<12} H-MLM acc {statistics.mean(h):.4f} "
                  f"(sd {statistics.stdev(h):.4f})   Tatoeba L{headline} mean "
                  f"{statistics.mean(t):.3f} (sd {statistics.stdev(t):.3f})")
    diffs = [(a[0] - b[0], a[1] - b[1]) for a, b in zip(summary["ca_mlm"], summary["mlm"])]
    print("CA-MLM minus MLM per seed (H-MLM acc, Tatoeba): " +
          ", ".join(f"seed {s}: {d[0]:+.4f}, {d[1]:+.3f}" for s, d in zip(args.seeds, diffs)))
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
