"""Seq2seq (translation) fine-tuning of VECO's encoder-decoder (spec VECO.md B5.2):
`python -m finetune.run --task translation --model SEQ2SEQ_DIR --train-src F --train-tgt F
--eval-src F --eval-tgt F --out DIR`.

`SEQ2SEQ_DIR` is a stock `transformers.EncoderDecoderModel` folder with its tokenizer
(`pretrain.veco_export.seq2seq_model`: encoder = the self-attention + FFN stack, decoder layers
from the last N pretrained layers with the cross-attention as encoder-decoder attention). The data
are line-aligned text files, one sentence a line (`tatoeba.deu-eng.deu` / `.eng`).

* Inputs: source `<s> x </s>` (the encoder's XLM-R layout); decoder input `<start> y`, labels
  `y </s>` (start = `decoder_start_token_id`, else `<s>`). No language tags: the fairseq recipe
  appends `[en]` / `[de]` (A:VECO/NLG/fairseq/tasks/translation_from_pretrained_veco.py:62-107)
  but whether its dictionary has them is UNCONFIRMED, and our tokenizer has none.
* Loss: label-smoothed cross-entropy summed over target tokens / the step's target tokens (the
  exact token mean under --grad-accum), torch's `label_smoothing` (ε/V on every class; fairseq
  puts ε/(V−1) on the non-targets, the same for a 250k vocabulary).
* Optimisation: `finetune.train_loop.train` (the loop of every form): AdamW (0.9, 0.999), linear
  warmup and decay, clipping. The encoder runs inside the loop's autocast (`_EncoderPass`), the
  decoder in the loss under the same autocast.
* Decoding: `generate`, beam 5 (A:VECO/NLG/inference-wmt14en2de.sh:33-36 `--beam 5`; 1 =
  greedy), SentencePiece removed by the tokenizer's decode, scored by sacreBLEU (its 13a
  tokenizer; zh / ja / ko targets get sacreBLEU's own for the language) next to the copy-source
  baseline (the source sentence as its own translation). The reference averages the last 10
  checkpoints first; we decode the final weights.

Outputs in DIR: `predictions/{name}.txt` (one detokenized hypothesis per source line),
`results.json` (BLEU, the baseline, sacreBLEU's signature, the settings, first / last loss),
`train_log.jsonl`, `model/` (the fine-tuned folder + tokenizer, loadable as the input).
Never imports DeepSpeed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from finetune.forms import note, warn

IGNORE = -100
EVAL_BATCH_SIZE = 32
# VECO's WMT14 en-de recipe (A:VECO/NLG/finetune-wmt14en2de.sh:25-60): --label-smoothing 0.2,
# --lr 1e-4, --warmup-updates 16000 of --total-num-update 100000 (ratio 0.16, polynomial = linear
# decay), --clip-norm 0.1, --weight-decay 0.01, --dropout 0.3, --adam-eps 1e-08, --seed 222.
# Batches there are 4096 tokens × update-freq 2 × 8 GPUs; ours count sentence pairs (32, our
# choice), and 100k updates have no epoch count: 10 epochs and 128 tokens a side are ours too.
DEFAULTS = {"lr": 1e-4, "epochs": 10.0, "batch_size": 32, "max_seq_len": 128,
            "warmup_ratio": 0.16, "weight_decay": 0.01, "seed": 222, "dropout": 0.3,
            "label_smoothing": 0.2, "max_grad_norm": 0.1, "num_beams": 5}
# sacreBLEU picks its own tokenizer for these target languages (`BLEU(trg_lang=…)`)
_SACREBLEU_LANGS = {"zh": "zh", "cmn": "zh", "zho": "zh", "ja": "ja", "jpn": "ja", "ko": "ko",
                    "kor": "ko"}


@dataclass(frozen=True)
class ParallelPair:
    """Line `index` (0-based) of two line-aligned files."""

    index: int
    source: str
    target: str


@dataclass
class Seq2SeqItem:
    input_ids: list[int]  # [S] <s> x </s>
    decoder_input_ids: list[int]  # [U] <start> y
    labels: list[int]  # [U] y </s>


# ---------------------------------------------------------------------------- data

def read_parallel(source_path: str | Path, target_path: str | Path) -> list[ParallelPair]:
    """Two line-aligned UTF-8 files → pairs in line order (a final newline is optional; an empty
    or whitespace-only line on either side is an error naming file:line)."""
    sides = [_lines(Path(p)) for p in (source_path, target_path)]
    if len(sides[0]) != len(sides[1]):
        raise ValueError(f"{source_path} has {len(sides[0])} lines but {target_path} has "
                         f"{len(sides[1])}: translation files must be line-aligned")
    for path, lines in zip((source_path, target_path), sides):
        empty = next((k for k, line in enumerate(lines) if not line.strip()), None)
        if empty is not None:
            raise ValueError(f"{path}:{empty + 1}: empty sentence (drop the pair from both files)")
    if not sides[0]:
        raise ValueError(f"{source_path}: no sentences")
    return [ParallelPair(k, s.strip(), t.strip()) for k, (s, t) in enumerate(zip(*sides))]


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"translation file not found: {path}")
    text = path.read_text(encoding="utf-8-sig")
    return text.removesuffix("\n").replace("\r\n", "\n").split("\n") if text else []


def lang_of(path: str | Path) -> str:
    """"deu" for `tatoeba.deu-eng.deu` (the last suffix); "" when there is none."""
    return Path(path).suffix.lstrip(".")


def encode(pairs: Sequence[ParallelPair], tokenizer, *, max_seq_len: int,
           decoder_start_id: int) -> list[Seq2SeqItem]:
    """Pairs → items; each side cut to `max_seq_len` tokens, special tokens included."""
    sources = tokenizer([p.source for p in pairs], truncation=True,
                        max_length=max_seq_len)["input_ids"]
    targets = tokenizer([p.target for p in pairs], add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    return [Seq2SeqItem(list(src), [decoder_start_id, *tgt[:max_seq_len - 1]],
                        [*tgt[:max_seq_len - 1], eos])
            for src, tgt in zip(sources, targets)]


def collate(items: Sequence[Seq2SeqItem], pad_id: int) -> dict[str, torch.Tensor]:
    """input_ids / attention_mask [B, S], decoder_input_ids / decoder_attention_mask /
    labels [B, U] (labels IGNORE on padding), each padded to the longest of the batch."""
    batch = _sources([i.input_ids for i in items], pad_id)
    decoder = [i.decoder_input_ids for i in items]
    batch["decoder_input_ids"] = _pad(decoder, pad_id)
    batch["decoder_attention_mask"] = _pad([[1] * len(row) for row in decoder], 0)
    batch["labels"] = _pad([i.labels for i in items], IGNORE)
    return batch


def _sources(rows: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    return {"input_ids": _pad(rows, pad_id),
            "attention_mask": _pad([[1] * len(row) for row in rows], 0)}


def _pad(rows: list[list[int]], value: int) -> torch.Tensor:
    out = torch.full((len(rows), max(map(len, rows))), value, dtype=torch.long)
    for b, row in enumerate(rows):
        out[b, :len(row)] = torch.tensor(row)
    return out


# ---------------------------------------------------------------------------- model

def load_seq2seq(path: str | Path, *, dropout: float | None = None):
    """(EncoderDecoderModel, tokenizer) from a folder, on CPU; `dropout` (None: the folder's)
    sets the hidden dropout of encoder and decoder. Missing special-token ids in the config are
    filled from the tokenizer (decoder start = `<s>`, as BERT2BERT-style models do)."""
    import transformers

    from data_prep.tokenizer import load_tokenizer

    path = Path(path)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"--model {path}: no config.json — pass a folder written from "
                                "`pretrain.veco_export.seq2seq_model(net)` with save_pretrained")
    model_type = json.loads(config_file.read_text(encoding="utf-8")).get("model_type")
    if model_type != "encoder-decoder":
        raise ValueError(f"--model {path}: model_type {model_type!r} is not 'encoder-decoder'; "
                         "--task translation needs the seq2seq export "
                         "(pretrain.veco_export.seq2seq_model)")
    config = transformers.EncoderDecoderConfig.from_pretrained(path)
    if dropout is not None:
        for part in (config.encoder, config.decoder):
            if not hasattr(part, "hidden_dropout_prob"):
                warn(f"--dropout: the {part.model_type} config has no hidden_dropout_prob; "
                     "keeping its dropout")
                continue
            part.hidden_dropout_prob = dropout
    model = transformers.EncoderDecoderModel.from_pretrained(path, config=config)
    tokenizer = load_tokenizer(path)
    for name, value in (("decoder_start_token_id", tokenizer.cls_token_id),
                        ("pad_token_id", tokenizer.pad_token_id),
                        ("eos_token_id", tokenizer.eos_token_id)):
        if getattr(model.config, name, None) is None:
            setattr(model.config, name, value)
    return model, tokenizer


class _EncoderPass(torch.nn.Module):
    """What `train_loop.train` calls as the model (`model(input_ids=…, attention_mask=…)`): the
    encoder; the loss runs the decoder on its output (`_loss_fn`)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        return self.model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask,
                                        return_dict=True)


def label_smoothed_loss_sum(logits: torch.Tensor, labels: torch.Tensor,
                            epsilon: float) -> torch.Tensor:
    """Sum over the labelled tokens of the ε-smoothed CE; logits [B, U, V], labels [B, U]."""
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
                           ignore_index=IGNORE, label_smoothing=epsilon, reduction="sum")


def _loss_fn(model, epsilon: float, device: torch.device, precision: str) -> Callable:
    from finetune.train_loop import autocast

    def loss(encoded, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with autocast(device, precision):
            out = model(encoder_outputs=encoded, attention_mask=batch["attention_mask"],
                        decoder_input_ids=batch["decoder_input_ids"],
                        decoder_attention_mask=batch["decoder_attention_mask"])
        return label_smoothed_loss_sum(out.logits, batch["labels"], epsilon)

    return loss


def fine_tune(model, tokenizer, pairs: Sequence[ParallelPair], settings: dict, *,
              device: torch.device, precision: str = "fp32",
              log: Callable[[dict], None] | None = None) -> list[dict]:
    """Fine-tune `model` in place (settings: `DEFAULTS`' keys + grad_accum, log_every); returns
    `train_loop.train`'s logged records (loss = label-smoothed CE per target token)."""
    from finetune.train_loop import TrainOptions, train

    items = encode(pairs, tokenizer, max_seq_len=settings["max_seq_len"],
                   decoder_start_id=model.config.decoder_start_token_id)
    options = TrainOptions.from_settings(settings)
    torch.manual_seed(settings["seed"])  # dropout
    pad_id = tokenizer.pad_token_id
    return train(_EncoderPass(model), items, options,
                 collate_fn=lambda chunk: collate(chunk, pad_id),
                 loss_fn=_loss_fn(model, settings["label_smoothing"], device, precision),
                 units_fn=lambda chunk: sum(len(i.labels) for i in chunk), reduction="sum",
                 device=device, precision=precision, log=log)


@torch.no_grad()
def translate(model, tokenizer, sources: Sequence[str], *, num_beams: int, max_seq_len: int,
              device: torch.device, precision: str = "fp32",
              batch_size: int = EVAL_BATCH_SIZE) -> list[str]:
    """Detokenized hypotheses, in input order; batches of similar source length; at most
    `max_seq_len` decoder tokens (the start token included, as in training). Deterministic."""
    from finetune.train_loop import autocast

    model.to(device).eval()
    ids = tokenizer(list(sources), truncation=True, max_length=max_seq_len)["input_ids"]
    order = sorted(range(len(ids)), key=lambda k: len(ids[k]))
    out: list[str] = [""] * len(ids)
    pad_id = tokenizer.pad_token_id
    for first in range(0, len(order), batch_size):
        index = order[first:first + batch_size]
        batch = _sources([ids[k] for k in index], pad_id)
        with autocast(device, precision):
            generated = model.generate(
                input_ids=batch["input_ids"].to(device),
                attention_mask=batch["attention_mask"].to(device), num_beams=num_beams,
                do_sample=False, max_new_tokens=max_seq_len - 1,  # + the start token
                decoder_start_token_id=model.config.decoder_start_token_id,
                bos_token_id=model.config.decoder_start_token_id,
                eos_token_id=tokenizer.eos_token_id, pad_token_id=pad_id)
        for k, text in zip(index, tokenizer.batch_decode(generated, skip_special_tokens=True)):
            out[k] = text.strip()
    return out


def bleu(hypotheses: Sequence[str], references: Sequence[str], *, tokenize: str | None = None,
         target_lang: str = "") -> dict:
    """sacreBLEU corpus BLEU of detokenized text: {"bleu", "signature"}. `tokenize` None: 13a,
    or sacreBLEU's tokenizer of a zh / ja / ko `target_lang`."""
    from sacrebleu.metrics import BLEU

    scorer = BLEU(tokenize=tokenize, trg_lang=_SACREBLEU_LANGS.get(target_lang.lower(), ""))
    result = scorer.corpus_score(list(hypotheses), [list(references)])
    return {"bleu": result.score, "signature": str(scorer.get_signature())}


# ---------------------------------------------------------------------------- the run

def resolve_settings(args) -> dict:
    """`DEFAULTS` overridden by the options given."""
    settings = dict(DEFAULTS)
    settings.update({k: v for k, v in vars(args).items() if k in settings and v is not None})
    return settings


def run(args) -> dict:
    """`finetune.run --task translation`: train, save, translate --eval-src, score; returns the
    results.json content."""
    import transformers

    from finetune import train_loop

    out = Path(args.out)
    device = train_loop.pick_device(args.device)
    precision = train_loop.pick_precision(args.precision, device)
    settings = resolve_settings(args)
    train_pairs = read_parallel(args.train_src, args.train_tgt)
    if args.max_train_examples is not None:
        train_pairs = train_pairs[:args.max_train_examples]
    eval_pairs = read_parallel(args.eval_src, args.eval_tgt)  # before training: fails fast
    src_lang = args.src_lang or lang_of(args.train_src)
    tgt_lang = args.tgt_lang or lang_of(args.train_tgt)
    name = f"{src_lang}-{tgt_lang}" if src_lang and tgt_lang else "eval"

    transformers.utils.logging.disable_progress_bar()
    transformers.set_seed(settings["seed"])
    model, tokenizer = load_seq2seq(args.model, dropout=settings["dropout"])
    limit = min(train_loop.max_positions(part) for part in (model.encoder, model.decoder))
    if settings["max_seq_len"] > limit:
        warn(f"--max-seq-len {settings['max_seq_len']} exceeds the model's {limit} positions; "
             f"using {limit}")
        settings["max_seq_len"] = limit
    note(f"train ({src_lang}→{tgt_lang}): {len(train_pairs)} pairs on {device} in {precision}")
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "train_log.jsonl", "w", encoding="utf-8") as log_file:
        def log(record: dict) -> None:
            log_file.write(json.dumps(record) + "\n")
            log_file.flush()
            note(f"step {record['step']} epoch {record['epoch']:.2f} loss {record['loss']:.5f} "
                 f"lr {record['lr']:.3g} {record['seconds']:.1f}s")

        history = fine_tune(model, tokenizer, train_pairs,
                            {**settings, "grad_accum": args.grad_accum,
                             "log_every": args.log_every},
                            device=device, precision=precision, log=log)
    model.save_pretrained(out / "model")
    tokenizer.save_pretrained(out / "model")

    sources = [p.source for p in eval_pairs]
    references = [p.target for p in eval_pairs]
    hypotheses = translate(model, tokenizer, sources, num_beams=settings["num_beams"],
                           max_seq_len=settings["max_seq_len"], device=device,
                           precision=precision)
    predictions = out / "predictions" / f"{name}.txt"
    predictions.parent.mkdir(parents=True, exist_ok=True)
    predictions.write_text("".join(h + "\n" for h in hypotheses), encoding="utf-8")
    scored = bleu(hypotheses, references, tokenize=args.bleu_tokenize, target_lang=tgt_lang)
    copy = bleu(sources, references, tokenize=args.bleu_tokenize, target_lang=tgt_lang)
    results = {
        "task": "translation", "form": "seq2seq", "model": str(args.model),
        "train": {"src": str(args.train_src), "tgt": str(args.train_tgt)},
        "eval": {"src": str(args.eval_src), "tgt": str(args.eval_tgt), "name": name,
                 "pairs": len(eval_pairs)},
        "scores": {name: {"bleu": scored["bleu"], "copy_source_bleu": copy["bleu"]}},
        "signature": scored["signature"],
        "settings": {**settings, "grad_accum": args.grad_accum, "device": str(device),
                     "precision": precision, "train_records": len(train_pairs),
                     "decoding": "greedy" if settings["num_beams"] == 1 else "beam"},
        "train_loss": {"first": history[0]["loss"], "last": history[-1]["loss"],
                       "steps": history[-1]["step"]},
    }
    (out / "results.json").write_text(json.dumps(results, ensure_ascii=False, indent=1) + "\n",
                                      encoding="utf-8")
    print(f"{'pair':<12}{'bleu':>10}{'copy-src':>10}\n"
          f"{name:<12}{scored['bleu']:>10.2f}{copy['bleu']:>10.2f}\n"
          f"copy-src: BLEU of the source sentences as translations (the trivial baseline)\n"
          f"{scored['signature']}", flush=True)
    return results
