"""Fine-tune an mPMR (or plain XLM-R) Hugging Face model on one XLU task in MRC form and
evaluate it zero-shot on every given language.

    python -m finetune.run --task ner --model HF_DIR --train panx/train-en.tsv \\
        --eval en=panx/test-en.tsv --eval de=panx/test-de.tsv --eval zh=panx/test-zh.tsv --out DIR

Tasks: `eqa` (SQuAD-format JSON: XQuAD, MLQA, TyDiQA-GoldP), `ner` (WikiAnn / CoNLL), `absa`
(SemEval-16 in XABSA format), `pair` (PAWS-X or XNLI TSV; which one is read from the labels).
`--model` is a folder from `python -m pretrain.convert_to_hf` or a plain XLM-R folder (e.g. an
official xlm-roberta-base download: the encoder loads, the extractor starts random — the
XLM-R baseline of the paper).

Outputs in DIR: `predictions/{lang}.json` (the formats `python -m finetune.evaluate` reads, so
`python -m finetune.evaluate --task T --gold FILE --pred DIR/predictions/{lang}.json` prints the
same scores), `rationales/{lang}.json` (pair tasks with --explain), `results.json` (scores per
language, their average, the settings), `train_log.jsonl`, and `model/` (the fine-tuned model +
tokenizer, loadable like the input folder). Exit status 2 on unreadable input, naming file:line.

Defaults per task (`TASK_DEFAULTS`) are the values of the original mPMR-base fine-tuning scripts
(github.com/DAMO-NLP-SG/PMR, commit e2ca84b: QA/xquad_mlqa.sh, NER/wikiann.sh, ABSA/rest.sh,
NLI/pawsx.sh, NLI/xnli.sh and the argparse defaults of their train-*.py). We could not read the
paper's Table 5 itself to cross-check. Those scripts run 4 GPUs with a per-GPU batch (ABSA: one
GPU); `--batch-size` here is the whole batch per optimizer step, so it is 4 × their per-GPU value.
Never imports DeepSpeed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from dataclasses import asdict
from pathlib import Path

TASKS = ("eqa", "ner", "absa", "pair")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
COMMON_DEFAULTS = {"warmup_ratio": 0.06, "weight_decay": 0.0, "seed": 42}  # train-*.py defaults
TASK_DEFAULTS: dict[str, dict] = {
    # QA/xquad_mlqa.sh (SQuAD v1.1 → XQuAD, MLQA): 16 per GPU × 4 GPUs. TyDiQA-GoldP
    # (QA/tydiqa.sh) differs only in --lr 2e-5 --epochs 10.
    "eqa": {"lr": 3e-5, "epochs": 3.0, "batch_size": 64, "max_seq_len": 384,
            "max_query_tokens": 64, "doc_stride": 128},
    # NER/wikiann.sh (CoNLL: NER/conll.sh, the same values): 32 per GPU × 4 GPUs.
    "ner": {"lr": 1e-5, "epochs": 10.0, "batch_size": 128, "max_seq_len": 192,
            "max_query_tokens": 32, "doc_stride": 64},
    # ABSA/rest.sh: 32 on one GPU.
    "absa": {"lr": 2e-5, "epochs": 20.0, "batch_size": 32, "max_seq_len": 192,
             "max_query_tokens": 32, "doc_stride": 64},
    # NLI/pawsx.sh: 32 per GPU × 4 GPUs.
    "pawsx": {"lr": 8e-5, "epochs": 20.0, "batch_size": 128, "max_seq_len": 192,
              "max_query_tokens": 64, "doc_stride": 64},
    # NLI/xnli.sh: 16 per GPU × 4 GPUs.
    "xnli": {"lr": 3e-5, "epochs": 3.0, "batch_size": 64, "max_seq_len": 192,
             "max_query_tokens": 64, "doc_stride": 64},
}
# The original scripts truncate sentence-level inputs; we window them instead, overlapping by
# doc_stride = 64 (only sentences longer than max_seq_len are affected).
METRIC_COLUMNS = {"eqa": ("exact_match", "f1"), "ner": ("precision", "recall", "f1"),
                  "absa": ("precision", "recall", "f1"), "pair": ("accuracy",)}
EVAL_CHUNK_FEATURES = 512  # features whose [n, n] logits are held in memory at once


# ---------------------------------------------------------------------------- task plumbing

def read_records(task: str, path: str | Path, pair_task: str = "auto") -> list:
    """Task file → records (`finetune.tasks` readers; NER tag scheme detected)."""
    from finetune import tasks

    if task == "eqa":
        return tasks.read_squad(path)
    if task == "ner":
        return tasks.read_ner(path)
    if task == "absa":
        return tasks.read_absa(path)
    if task == "pair":
        return tasks.read_pair(path, pair_task)
    raise ValueError(f"task must be one of {TASKS}, got {task!r}")


def task_queries(task: str, train_records: list) -> dict[str, str] | str | None:
    """Label queries for tagging tasks, the pair sub-task ("pawsx"/"xnli"), None for EQA."""
    from finetune import mrc_form
    from finetune.tasks import pair_task_of

    if task == "ner":
        labels = {span.label for s in train_records for span in s.spans}
        return mrc_form.NER_QUERIES if labels <= set(mrc_form.NER_QUERIES) else \
            mrc_form.CONLL_QUERIES
    if task == "absa":
        return mrc_form.ABSA_QUERIES
    if task == "pair":
        return pair_task_of(train_records)
    return None


def make_instances(task: str, records: list, queries) -> list:
    from finetune import mrc_form

    if task == "eqa":
        return mrc_form.eqa_instances(records)
    if task in ("ner", "absa"):
        return mrc_form.tagging_instances(records, queries)
    return mrc_form.pair_instances(records, queries)


def decode(task: str, instances: list, features: list, logits: list) -> dict:
    """Predictions in `finetune.evaluate`'s format for these instances."""
    from finetune import decode as dec

    if task == "eqa":
        return dec.decode_eqa(instances, features, logits)
    if task in ("ner", "absa"):
        return dec.decode_tagging(instances, features, logits)
    return dec.decode_pair(instances, features, logits)


def score(task: str, gold: list, predictions: dict, mlqa_lang: str | None = None) -> dict:
    """The scores `finetune.evaluate` prints for the same gold file and predictions."""
    from finetune import metrics

    if task == "eqa":
        return metrics.eqa_scores(gold, predictions, mlqa_lang)
    if task == "ner":
        return metrics.ner_scores(gold, predictions)
    if task == "absa":
        return metrics.absa_scores(gold, predictions)
    return metrics.pair_accuracy(gold, predictions)


# ---------------------------------------------------------------------------- evaluation

def predict(task: str, model, tokenizer, instances: list, settings: dict, *, device, precision,
            explain: bool = False) -> tuple[dict, dict]:
    """Decode every instance, a chunk of whole records at a time (bounded memory).
    Returns (predictions, rationales); rationales only for pair tasks with `explain`."""
    from finetune.decode import explain_pair
    from finetune.mrc_form import encode
    from finetune.train_loop import feature_logits

    groups: dict[str, list] = {}
    for inst in instances:
        groups.setdefault(inst.source_id, []).append(inst)
    predictions: dict = {}
    rationales: dict = {}
    chunk: list = []

    def flush() -> None:
        features = encode(chunk, tokenizer, max_seq_len=settings["max_seq_len"],
                          doc_stride=settings["doc_stride"],
                          max_query_tokens=settings["max_query_tokens"])
        logits = feature_logits(model, features, pad_id=tokenizer.pad_token_id,
                                max_seq_len=settings["max_seq_len"], device=device,
                                precision=precision)
        found = decode(task, chunk, features, logits)
        predictions.update(found)
        if explain:
            for source_id, spans in explain_pair(chunk, features, logits, labels=found).items():
                rationales[source_id] = {"label": found.get(source_id),
                                         "rationales": [asdict(r) for r in spans]}
        chunk.clear()

    # instances per record ≈ labels; a chunk holds about EVAL_CHUNK_FEATURES windows
    for group in groups.values():
        chunk.extend(group)
        if len(chunk) >= EVAL_CHUNK_FEATURES:
            flush()
    if chunk:
        flush()
    return predictions, rationales


def average(scores: dict[str, dict], columns: tuple[str, ...]) -> dict[str, float]:
    """Unweighted mean of each metric over the languages (as XTREME / the paper average)."""
    return {c: sum(s[c] for s in scores.values()) / len(scores) for c in columns} if scores else {}


def format_table(task: str, scores: dict[str, dict], avg: dict[str, float],
                 train_lang: str | None) -> str:
    columns = METRIC_COLUMNS[task]
    lines = ["lang " + "".join(f"{c:>13}" for c in columns)]
    for lang, values in scores.items():
        mark = "*" if lang == train_lang else " "
        lines.append(f"{lang + mark:<5}" + "".join(f"{values[c]:>13.2f}" for c in columns))
    if avg:
        lines.append(f"{'avg':<5}" + "".join(f"{avg[c]:>13.2f}" for c in columns))
    if train_lang in scores:
        lines.append(f"* {train_lang} is the training language (not zero-shot)")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- the run

def run(args: argparse.Namespace) -> dict:
    """Train, save, evaluate; returns the results.json content."""
    import transformers

    from data_prep.tokenizer import load_tokenizer
    from finetune import train_loop
    from finetune.mrc_form import SPECIAL_TOKENS, encode

    out = Path(args.out)
    device = train_loop.pick_device(args.device)
    precision = train_loop.pick_precision(args.precision, device)

    train_records = read_records(args.task, args.train)
    if args.max_train_examples is not None:
        train_records = train_records[:args.max_train_examples]
    if not train_records:
        raise ValueError(f"{args.train}: no training examples")
    queries = task_queries(args.task, train_records)
    train_instances = _instances(args.task, train_records, queries, args.train)
    settings = {**COMMON_DEFAULTS, **TASK_DEFAULTS[queries if args.task == "pair" else args.task]}
    settings.update({k: v for k, v in vars(args).items() if k in settings and v is not None})

    evals = []  # read every eval file before training: a bad one fails fast
    for lang, path in args.eval:
        gold = read_records(args.task, path, queries if args.task == "pair" else "auto")
        evals.append((lang, gold, _instances(args.task, gold, queries, path)))

    transformers.utils.logging.disable_progress_bar()
    transformers.set_seed(settings["seed"])  # before load_model: a fresh extractor is random
    tokenizer = load_tokenizer(args.model)
    model = train_loop.load_model(args.model)
    limit = train_loop.max_positions(model)
    if settings["max_seq_len"] > limit:
        train_loop.warn(f"--max-seq-len {settings['max_seq_len']} exceeds the model's {limit} "
                        f"positions; using {limit}")
        settings["max_seq_len"] = limit
    window = settings["max_seq_len"] - settings["max_query_tokens"] - SPECIAL_TOKENS
    if settings["doc_stride"] >= window:
        train_loop.warn(f"--doc-stride {settings['doc_stride']} does not fit a {window}-token "
                        f"context window; using {window // 2}")
        settings["doc_stride"] = window // 2
    encode_args = {k: settings[k] for k in ("max_seq_len", "doc_stride", "max_query_tokens")}
    stats: Counter = Counter()
    features = encode(train_instances, tokenizer, stats=stats, **encode_args)
    _log(f"train: {len(train_records)} records → {stats['features']} features "
         f"({stats['windows_split']} split into windows, {stats['answers_unmappable']} gold "
         f"spans unmappable) on {device} in {precision}")

    options = train_loop.TrainOptions(
        epochs=settings["epochs"], lr=settings["lr"], batch_size=settings["batch_size"],
        grad_accum=args.grad_accum, warmup_ratio=settings["warmup_ratio"],
        weight_decay=settings["weight_decay"], seed=settings["seed"], log_every=args.log_every)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "train_log.jsonl", "w", encoding="utf-8") as log_file:
        def log(record: dict) -> None:
            log_file.write(json.dumps(record) + "\n")
            log_file.flush()
            _log(f"step {record['step']} epoch {record['epoch']:.2f} loss {record['loss']:.5f} "
                 f"lr {record['lr']:.3g} {record['seconds']:.1f}s")

        history = train_loop.train(model, features, options, pad_id=tokenizer.pad_token_id,
                                   max_seq_len=settings["max_seq_len"], device=device,
                                   precision=precision, log=log)
    model.save_pretrained(out / "model")
    tokenizer.save_pretrained(out / "model")

    scores: dict[str, dict] = {}
    for lang, gold, instances in evals:
        predictions, rationales = predict(args.task, model, tokenizer, instances, settings,
                                          device=device, precision=precision,
                                          explain=args.explain)
        _write_json(out / "predictions" / f"{lang}.json", predictions)
        if args.explain:
            _write_json(out / "rationales" / f"{lang}.json", rationales)
        mlqa_lang = lang if args.eqa_norm == "mlqa" else None
        scores[lang] = score(args.task, gold, predictions, mlqa_lang)
        _log(f"eval {lang}: {len(gold)} records, " + ", ".join(
            f"{c} {scores[lang][c]:.2f}" for c in METRIC_COLUMNS[args.task]))

    avg = average(scores, METRIC_COLUMNS[args.task])
    results = {
        "task": args.task if args.task != "pair" else f"pair/{queries}",
        "model": str(args.model), "train": str(args.train), "train_lang": args.train_lang,
        "eqa_norm": args.eqa_norm if args.task == "eqa" else None,
        "scores": scores, "average": avg,
        "settings": {**settings, "grad_accum": args.grad_accum, "device": str(device),
                     "precision": precision, "train_records": len(train_records),
                     "train_features": len(features)},
        "train_loss": {"first": history[0]["loss"], "last": history[-1]["loss"],
                       "steps": history[-1]["step"]},
    }
    _write_json(out / "results.json", results)
    print(format_table(args.task, scores, avg, args.train_lang), flush=True)
    return results


def _instances(task: str, records: list, queries, path) -> list:
    try:
        return make_instances(task, records, queries)
    except ValueError as err:  # e.g. a label that has no query
        raise ValueError(f"{path}: {err}") from None


def _write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- CLI

def _lang_file(value: str) -> tuple[str, str]:
    lang, sep, path = value.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z0-9_-]+", lang) or not path:
        raise argparse.ArgumentTypeError(f"expected LANG=FILE (LANG like de or zh-tw), got "
                                         f"{value!r}")
    return lang, path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m finetune.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True, choices=TASKS)
    parser.add_argument("--model", required=True,
                        help="HF folder: pretrain.convert_to_hf output or a plain XLM-R folder")
    parser.add_argument("--train", required=True, help="training file (English in the paper)")
    parser.add_argument("--train-lang", default="en",
                        help="language of --train; marked in the table when also evaluated")
    parser.add_argument("--eval", action="append", type=_lang_file, default=[],
                        metavar="LANG=FILE", help="evaluation file of one language (repeat)")
    parser.add_argument("--out", required=True, help="output folder")
    tuned = parser.add_argument_group(
        "hyper-parameters", "defaults per task (pair: PAWS-X or XNLI by the labels), from the "
        "original mPMR-base scripts;\nwarmup-ratio {warmup_ratio}, weight-decay {weight_decay}, "
        "seed {seed} for all.\n".format(**COMMON_DEFAULTS) + "\n".join(
            f"{name}: " + ", ".join(f"{k.replace('_', '-')} {v:g}" for k, v in values.items())
            for name, values in TASK_DEFAULTS.items()))
    tuned.add_argument("--epochs", type=float)
    tuned.add_argument("--lr", type=float)
    tuned.add_argument("--batch-size", type=int, help="features per optimizer step")
    tuned.add_argument("--max-seq-len", type=int)
    tuned.add_argument("--doc-stride", type=int, help="overlap of consecutive context windows")
    tuned.add_argument("--max-query-tokens", type=int)
    tuned.add_argument("--warmup-ratio", type=float)
    tuned.add_argument("--weight-decay", type=float)
    tuned.add_argument("--seed", type=int)
    parser.add_argument("--grad-accum", type=int, default=1,
                        help="split each batch into this many micro-batches (memory)")
    parser.add_argument("--max-train-examples", type=int,
                        help="use only the first N records of --train")
    parser.add_argument("--explain", action="store_true",
                        help="pair tasks: also write the best rationale span of each sentence")
    parser.add_argument("--eqa-norm", choices=("squad", "mlqa"), default="squad",
                        help="eqa: SQuAD v1.1 answer normalisation (XQuAD, TyDiQA) or MLQA's "
                        "per-language one (the --eval LANG is the MLQA language)")
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda:N")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="autocast on CUDA; auto = bf16 where supported, else fp32")
    parser.add_argument("--log-every", type=int, default=10, help="log every N steps")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    langs = [lang for lang, _ in args.eval]
    if len(set(langs)) != len(langs):
        parser.error(f"--eval languages repeat: {langs}")
    if args.explain and args.task != "pair":
        parser.error("--explain applies to --task pair only")
    if args.max_train_examples is not None and args.max_train_examples < 1:
        parser.error("--max-train-examples must be positive")
    if args.eqa_norm == "mlqa":
        from finetune.metrics import MLQA_LANGS

        unknown = [lang for lang in langs if lang not in MLQA_LANGS]
        if unknown:
            parser.error(f"--eqa-norm mlqa knows {MLQA_LANGS}, not {unknown}")
    try:
        run(args)
    except (OSError, ValueError, FloatingPointError) as err:  # TaskFormatError: "FILE:LINE: …"
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
