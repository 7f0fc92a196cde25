"""Fine-tune an mPMR, VECO (or plain XLM-R) Hugging Face model on one XLU task, in MRC form, with
the standard heads or VECO's plug-in pair classifier, and evaluate it on every given language;
or fine-tune VECO's encoder-decoder export for translation.

    python -m finetune.run --task ner --model HF_DIR --train panx/train-en.tsv \\
        --eval en=panx/test-en.tsv --eval de=panx/test-de.tsv --eval zh=panx/test-zh.tsv --out DIR
    python -m finetune.run --form standard --task ner --model xlm-roberta-large ...   # baseline
    python -m finetune.run --form plug-in --task pair --model VECO_PLUG_IN_DIR --pair-lang de \\
        --train pawsx/train-en.tsv --pair-train pawsx/train-de.tsv \\
        --eval en=pawsx/test-en.tsv --eval de=pawsx/test-de.tsv --out DIR
    python -m finetune.run --task translation --model VECO_SEQ2SEQ_DIR --train-src train.de \\
        --train-tgt train.en --eval-src test.de --eval-tgt test.en --out DIR
    python -m finetune.run --task pair --model GLM_DIR --train xnli/train-en.tsv \\
        --eval en=xnli/test-en.tsv --eval de=xnli/test-de.tsv --out DIR            # GLM PET

Tasks: `eqa` (SQuAD-format JSON: SQuAD → XQuAD / MLQA, TyDiQA-GoldP), `ner` (WikiAnn / CoNLL),
`absa` (SemEval-16 in XABSA format), `pair` (PAWS-X or XNLI TSV; which one is read from the
labels). `--model` is a folder from `python -m pretrain.convert_to_hf` or a plain XLM-R folder
(e.g. an official xlm-roberta-large download).

`--form mrc` (default) is the mPMR reference code's method (github.com/DAMO-NLP-SG/PMR, commit
e2ca84b): query texts from `finetune.queries` (NER / ABSA queries in the --eval language where the
reference translated them), the loss over the reference's cells (`train_loop.span_loss`), EQA
windows every `--doc-stride` tokens and no answer-length cap, sentence-level inputs cut at
--max-seq-len; a plain XLM-R folder gets a fresh extractor. `--form standard` fine-tunes the
stock transformers heads instead (`finetune.standard`: QA start/end, token and sequence
classification; EQA answers of at most 30 tokens unless --max-answer-tokens) — the XLM-R baseline
of the paper, from any XLM-R or exported folder. Both forms share the readers, metrics, outputs,
defaults and the training loop (`finetune.forms`, `train_loop.train`).
VECO (spec VECO.md B5): plug-out NLU is `--form standard` on `pretrain.veco_export.plug_out_model`'s
stock XLM-R folder; `--form plug-in` (`finetune.plugin`, pair tasks) feeds every example with its
row-aligned translation in `--pair-lang` through both streams of a `plug_in_model` folder, with
VECO's XNLI defaults; `--task translation` (`finetune.seq2seq`) fine-tunes a `seq2seq_model`
folder on line-aligned text and prints sacreBLEU next to the copy-source baseline.
mGLM (spec mGLM.md A4): `--form glm`, chosen by itself for a GLM folder (config.json model_type
"xpretrain-glm"), fine-tunes pair tasks as PET cloze questions (`finetune.glm_prompt`: the
reference's patterns and verbalizers, `--scoring`, `--verbalizers`) and eqa as blank filling
(`finetune.glm_qa`: `--qa-prompt`, decoded by `pretrain.generate`), with mGLM's defaults.
Defaults per dataset (`TASK_DEFAULTS`) are the reference's mPMR-large scripts (*-large.sh);
`--batch-size` is the whole batch of one optimizer step, i.e. their per-GPU batch × the 4 GPUs
they ran (ABSA: 1 GPU), counted in features (windows / label queries; standard form: windows)
except for pair tasks, where it counts pairs (MRC form: with every label query of each pair, as
the reference batches them).

Outputs in DIR: `predictions/{name}.json` (the formats `python -m finetune.evaluate` reads, so
`python -m finetune.evaluate --task T --gold FILE --pred DIR/predictions/{name}.json` prints the
same scores), `rationales/{name}.json` (pair tasks with --explain), `results.json` (the form,
scores per language, their average, the settings), `train_log.jsonl`, and `model/` (the
fine-tuned model + tokenizer, loadable like the input folder). Exit status 2 on unreadable input,
naming file:line. Never imports DeepSpeed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from finetune.forms import FORMS, note, warn
from finetune.tasks import TASKS

PLUG_IN = "plug-in"  # finetune.plugin.PlugInForm, imported when used (it imports torch)
TRANSLATION = "translation"  # finetune.seq2seq
GLM = "glm"  # finetune.glm_prompt.GlmForm (PET pairs) / finetune.glm_qa (generative eqa)
GLM_TASKS = ("pair", "eqa")
_GLM_OPTIONS = ("scoring", "verbalizers", "qa_prompt")

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
EXPLAIN_MODES = ("paper", "reference")
REFERENCE_GPUS = 4  # CUDA_VISIBLE_DEVICES=0,1,2,3 in every *-large.sh but ABSA/rest-large.sh
# PMR {QA/mQA,NER/mNER,ABSA/mABSA,NLI/mNLI}/train-*.py argparse: --warmup_rate 0.06,
# --weight_decay 0.0, --seed 42, --drop 0.1 (also --adam_epsilon 1e-8, --max_grad_norm 1.0 and
# --projection_intermediate_hidden_size 1024: the TrainOptions / load_model defaults).
COMMON_DEFAULTS = {"warmup_ratio": 0.06, "weight_decay": 0.0, "seed": 42, "dropout": 0.1}
TASK_DEFAULTS: dict[str, dict] = {
    # PMR QA/xquad_mlqa-large.sh (train SQuAD v1.1, test XQuAD / MLQA): --learning_rate 3e-5
    # --num_train_epochs 3 --per_gpu_train_batch_size=8 (× 4 GPUs) --max_seq_length 384
    # --max_query_length 64; --doc_stride 128: QA/mQA/train-QA.py default.
    "squad": {"lr": 3e-5, "epochs": 3.0, "batch_size": 8 * REFERENCE_GPUS, "max_seq_len": 384,
              "max_query_tokens": 64, "doc_stride": 128},
    # PMR QA/tydiqa-large.sh: 2e-5, 10 epochs, 8 per GPU × 4, 384 / 64; doc_stride as above.
    "tydiqa": {"lr": 2e-5, "epochs": 10.0, "batch_size": 8 * REFERENCE_GPUS, "max_seq_len": 384,
               "max_query_tokens": 64, "doc_stride": 128},
    # PMR NER/wikiann-large.sh: 1e-5, 10 epochs, 16 per GPU × 4, 192 / 32. Sentence inputs are
    # truncated (NER/mNER/data.py): doc_stride None.
    "wikiann": {"lr": 1e-5, "epochs": 10.0, "batch_size": 16 * REFERENCE_GPUS, "max_seq_len": 192,
                "max_query_tokens": 32, "doc_stride": None},
    # PMR NER/conll-large.sh: the same values.
    "conll": {"lr": 1e-5, "epochs": 10.0, "batch_size": 16 * REFERENCE_GPUS, "max_seq_len": 192,
              "max_query_tokens": 32, "doc_stride": None},
    # PMR ABSA/rest-large.sh: 2e-5, 20 epochs, 32 on one GPU (CUDA_VISIBLE_DEVICES=0), 192 / 32
    # (the script repeats the run for seeds 42 0 1 2 3 4).
    "absa": {"lr": 2e-5, "epochs": 20.0, "batch_size": 32, "max_seq_len": 192,
             "max_query_tokens": 32, "doc_stride": None},
    # PMR NLI/pawsx-large.sh: 5e-5, 10 epochs, 16 per GPU × 4, 192 / 64. Pair batches count
    # pairs: the reference's per-GPU batch is 16 pairs × their 2 label queries.
    "pawsx": {"lr": 5e-5, "epochs": 10.0, "batch_size": 16 * REFERENCE_GPUS, "max_seq_len": 192,
              "max_query_tokens": 64, "doc_stride": None},
    # PMR NLI/xnli-large.sh: 3e-5, 3 epochs, 32 per GPU (pairs × 3 label queries) × 4, 192 / 64.
    "xnli": {"lr": 3e-5, "epochs": 3.0, "batch_size": 32 * REFERENCE_GPUS, "max_seq_len": 192,
             "max_query_tokens": 64, "doc_stride": None},
}
METRIC_COLUMNS = {"eqa": ("exact_match", "f1"), "ner": ("precision", "recall", "f1"),
                  "absa": ("precision", "recall", "f1"), "pair": ("accuracy",)}


@dataclass(frozen=True)
class EvalSet:
    """One `--eval [mlqa:]LANG=FILE`: `name` keys the outputs; `mlqa_lang` is set for `mlqa:`."""

    name: str
    path: str
    mlqa_lang: str | None = None


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


def task_kind(task: str, train_records: list, train_path: str | Path = "") -> str:
    """The dataset family that picks defaults and queries: "squad" / "tydiqa" (a training file
    named *tydiqa*), "wikiann" / "conll" (CoNLL when MISC occurs), "absa", "pawsx" / "xnli"."""
    from finetune.tasks import pair_task_of

    if task == "eqa":
        return "tydiqa" if "tydiqa" in Path(train_path).name.lower() else "squad"
    if task == "ner":
        labels = {span.label for s in train_records for span in s.spans}
        return "wikiann" if labels <= {"ORG", "PER", "LOC"} else "conll"
    if task == "absa":
        return "absa"
    if task == "pair":
        return pair_task_of(train_records)
    raise ValueError(f"task must be one of {TASKS}, got {task!r}")


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


def eqa_normalisation(spec: EvalSet, eqa_norm: str) -> str | None:
    """MLQA language whose normalisation scores `spec` (None: SQuAD v1.1). "auto": MLQA's for
    `mlqa:` sets and files with MLQA's names (their context language), SQuAD's otherwise;
    "mlqa": MLQA's of the detected language, else of the --eval name; "squad": SQuAD's."""
    from finetune.tasks import mlqa_context_lang

    detected = spec.mlqa_lang or mlqa_context_lang(spec.path)
    if eqa_norm == "squad":
        if detected:
            warn(f"--eval {spec.name}: {spec.path} is an MLQA file, scored with SQuAD's "
                 "normalisation because of --eqa-norm squad")
        return None
    return detected or (spec.name if eqa_norm == "mlqa" else None)


# ---------------------------------------------------------------------------- reporting

def average(scores: dict[str, dict], columns: tuple[str, ...]) -> dict[str, float]:
    """Unweighted mean of each metric over the languages (as XTREME / the paper average)."""
    return {c: sum(s[c] for s in scores.values()) / len(scores) for c in columns} if scores else {}


def format_table(task: str, scores: dict[str, dict], avg: dict[str, float],
                 train_lang: str | None) -> str:
    columns = METRIC_COLUMNS[task]
    width = max([5, *(len(name) + 1 for name in scores)])
    lines = ["lang".ljust(width) + "".join(f"{c:>13}" for c in columns)]
    for lang, values in scores.items():
        mark = "*" if lang == train_lang else " "
        lines.append(f"{lang + mark:<{width}}" + "".join(f"{values[c]:>13.2f}" for c in columns))
    if avg:
        lines.append(f"{'avg':<{width}}" + "".join(f"{avg[c]:>13.2f}" for c in columns))
    if train_lang in scores:
        lines.append(f"* {train_lang} is the training language (not zero-shot)")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- the run

def resolve_settings(args: argparse.Namespace, kind: str) -> dict:
    """TASK_DEFAULTS of `kind` + COMMON_DEFAULTS (plug-in form: `finetune.plugin.DEFAULTS`),
    overridden by the options given."""
    if args.form == PLUG_IN:
        from finetune.plugin import DEFAULTS

        settings = dict(DEFAULTS)
    elif args.form == GLM:
        from finetune.glm_prompt import defaults

        settings = defaults(args.task, kind)
    else:
        settings = {**COMMON_DEFAULTS, **TASK_DEFAULTS[kind]}
    settings.update({k: v for k, v in vars(args).items() if k in settings and v is not None})
    if settings["doc_stride"] == "none":
        settings["doc_stride"] = None
    settings["max_answer_tokens"] = args.max_answer_tokens
    return settings


def run(args: argparse.Namespace) -> dict:
    """Train, save, evaluate in `args.form`; returns the results.json content."""
    import transformers

    from finetune import train_loop

    out = Path(args.out)
    device = train_loop.pick_device(args.device)
    precision = train_loop.pick_precision(args.precision, device)

    train_records = read_records(args.task, args.train)
    if args.max_train_examples is not None:
        train_records = train_records[:args.max_train_examples]
    if not train_records:
        raise ValueError(f"{args.train}: no training examples")
    kind = task_kind(args.task, train_records, args.train)
    settings = resolve_settings(args, kind)
    form = _form_class(args.form)(args, kind, settings)
    train_inputs = form.inputs(train_records, args.train, args.train_lang, "train")
    evals = []  # read every eval file before training: a bad one fails fast
    for spec in args.eval:
        gold = read_records(args.task, spec.path, kind if args.task == "pair" else "auto")
        lang = spec.mlqa_lang or spec.name
        evals.append((spec, gold, form.inputs(gold, spec.path, lang, spec.name)))

    transformers.utils.logging.disable_progress_bar()
    model, tokenizer = form.load()
    limit = (form.max_positions(model) if hasattr(form, "max_positions")
             else train_loop.max_positions(model))
    if settings["max_seq_len"] > limit:
        warn(f"--max-seq-len {settings['max_seq_len']} exceeds the model's {limit} positions; "
             f"using {limit}")
        settings["max_seq_len"] = limit
    window = form.context_window()
    if window is not None and settings["doc_stride"] is not None \
            and settings["doc_stride"] > window:
        warn(f"--doc-stride {settings['doc_stride']} exceeds the {window}-token context window "
             f"(tokens would be skipped); using {window}")
        settings["doc_stride"] = window
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "train_log.jsonl", "w", encoding="utf-8") as log_file:
        def log(record: dict) -> None:
            log_file.write(json.dumps(record) + "\n")
            log_file.flush()
            note(f"step {record['step']} epoch {record['epoch']:.2f} loss {record['loss']:.5f} "
                 f"lr {record['lr']:.3g} {record['seconds']:.1f}s")

        history, facts = form.train(model, tokenizer, train_records, train_inputs, device,
                                    precision, log)
    if hasattr(form, "save"):
        form.save(model, tokenizer, out / "model")
    else:
        model.save_pretrained(out / "model")
        tokenizer.save_pretrained(out / "model")

    scores: dict[str, dict] = {}
    norms: dict[str, str] = {}
    for spec, gold, inputs in evals:
        predictions, rationales, eval_stats = form.predict(model, tokenizer, inputs, device,
                                                           precision)
        _write_json(out / "predictions" / f"{spec.name}.json", predictions)
        if rationales is not None:
            _write_json(out / "rationales" / f"{spec.name}.json", rationales)
        mlqa_lang = eqa_normalisation(spec, args.eqa_norm) if args.task == "eqa" else None
        norms[spec.name] = f"mlqa-{mlqa_lang}" if mlqa_lang else "squad"
        scores[spec.name] = score(args.task, gold, predictions, mlqa_lang)
        cut = (f", {eval_stats['contexts_truncated']} contexts cut at --max-seq-len"
               if eval_stats["contexts_truncated"] else "")
        note(f"eval {spec.name}: {len(gold)} records{cut}, " + ", ".join(
            f"{c} {scores[spec.name][c]:.2f}" for c in METRIC_COLUMNS[args.task]))

    avg = average(scores, METRIC_COLUMNS[args.task])
    results = {
        "task": f"{args.task}/{kind}", "form": args.form,
        "model": str(args.model), "train": str(args.train), "train_lang": args.train_lang,
        **({"pair_lang": args.pair_lang, "partners": form.partners}
           if args.form == PLUG_IN else {}),
        "eqa_norm": norms if args.task == "eqa" else None,
        "query_langs": form.query_langs if args.task in ("ner", "absa") else None,
        "scores": scores, "average": avg,
        "settings": {**settings, "grad_accum": args.grad_accum, "device": str(device),
                     "precision": precision, "explain": args.explain,
                     "loss_cells": facts["loss_cells"], "train_records": len(train_records),
                     "train_features": facts["train_features"]},
        "train_loss": {"first": history[0]["loss"], "last": history[-1]["loss"],
                       "steps": history[-1]["step"]},
    }
    _write_json(out / "results.json", results)
    print(format_table(args.task, scores, avg, args.train_lang), flush=True)
    return results


def _form_class(name: str):
    if name == PLUG_IN:
        from finetune.plugin import PlugInForm

        return PlugInForm
    if name == GLM:
        from finetune.glm_prompt import GlmForm

        return GlmForm
    return FORMS[name]


def _write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------- CLI

def _eval_set(value: str) -> EvalSet:
    spec, sep, path = value.partition("=")
    prefix, colon, lang = spec.rpartition(":")
    if not sep or not path or (colon and prefix != "mlqa") \
            or not re.fullmatch(r"[A-Za-z0-9_-]+", lang):
        raise argparse.ArgumentTypeError(f"expected LANG=FILE or mlqa:LANG=FILE (LANG like de or "
                                         f"zh-tw), got {value!r}")
    if not colon:
        return EvalSet(lang, path)
    from finetune.metrics import MLQA_LANGS

    if lang not in MLQA_LANGS:
        raise argparse.ArgumentTypeError(f"mlqa:{lang}: MLQA languages are {MLQA_LANGS}")
    return EvalSet(f"mlqa-{lang}", path, lang)


def _doc_stride(value: str) -> int | str:
    if value.lower() == "none":
        return "none"
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of tokens or none, got {value!r}") \
            from None


def _defaults_help() -> str:
    def show(value) -> str:
        if isinstance(value, tuple):
            return "/".join(f"{v:g}" for v in value)
        return "none" if value is None else f"{value:g}"

    rows = [f"  {kind}: " + ", ".join(f"{k.replace('_', '-')} {show(v)}" for k, v in values.items())
            for kind, values in TASK_DEFAULTS.items()]
    common = ", ".join(f"{k.replace('_', '-')} {v:g}" for k, v in COMMON_DEFAULTS.items())
    from finetune import glm_prompt, glm_qa, plugin, seq2seq

    veco = {f"--form {PLUG_IN} (VECO NLU/scripts/train_xnli.sh, run_classify.py defaults)":
            plugin.DEFAULTS,
            f"--task {TRANSLATION} (VECO NLG/finetune-wmt14en2de.sh; batch, epochs, length ours)":
            seq2seq.DEFAULTS,
            f"--form {GLM} pair (mGLM PET, spec A4.3; seed ours), xnli":
            glm_prompt.DEFAULTS["xnli"],
            f"--form {GLM} pair, pawsx": glm_prompt.DEFAULTS["pawsx"],
            f"--form {GLM} eqa (mGLM seq_mlqa.sh + squad JSON, spec A4.4; max-seq-len = source)":
            glm_qa.DEFAULTS}
    return ("defaults per dataset, --form mrc and standard = the mPMR-large scripts of "
            f"github.com/DAMO-NLP-SG/PMR (*-large.sh; batch = per-GPU batch x {REFERENCE_GPUS} "
            "GPUs, ABSA 1 GPU; pair batches count pairs);\n"
            "eqa: squad (XQuAD/MLQA) or tydiqa (a --train file named *tydiqa*); ner: wikiann, or "
            "conll when MISC occurs;\npair: pawsx or xnli by the labels. doc-stride: tokens "
            "between window starts; none = cut at max-seq-len.\n" + "\n".join(rows)
            + f"\n  all: {common}\n"
            + "\n".join(f"{title}:\n  " + ", ".join(f"{k.replace('_', '-')} {show(v)}"
                                                   for k, v in values.items() if v is not None)
                         for title, values in veco.items()))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m finetune.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True, choices=(*TASKS, TRANSLATION))
    parser.add_argument("--model", required=True,
                        help="HF folder: pretrain.convert_to_hf output or a plain XLM-R folder "
                        "(VECO: plug_out_model / plug_in_model / seq2seq_model exports)")
    parser.add_argument("--train", help="training file (English in the paper); all tasks but "
                        "translation")
    parser.add_argument("--train-lang", default="en",
                        help="language of --train (its queries); marked in the table when also "
                        "evaluated")
    parser.add_argument("--eval", action="append", type=_eval_set, default=[],
                        metavar="[mlqa:]LANG=FILE", help="evaluation file of one language "
                        "(repeat); mlqa:LANG scores with MLQA's normalisation of LANG")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--form", choices=[*FORMS, PLUG_IN, GLM],
                        help="mrc (default): every task as MRC queries to the span extractor "
                        "(mPMR); standard: stock transformers heads (the XLM-R baseline; VECO "
                        "plug-out); plug-in: VECO's two streams on each pair task example and its "
                        "translation (--pair-lang, --pair-train); glm: mGLM's PET / generative "
                        "QA (the default for a GLM folder). Not for --task translation")
    tuned = parser.add_argument_group("hyper-parameters", _defaults_help())
    tuned.add_argument("--epochs", type=float)
    tuned.add_argument("--lr", type=float)
    tuned.add_argument("--batch-size", type=int, help="per optimizer step: features (windows, "
                       "label queries; standard form: windows); pair tasks: pairs (MRC form: "
                       "with all their label queries)")
    tuned.add_argument("--max-seq-len", type=int)
    tuned.add_argument("--doc-stride", type=_doc_stride, metavar="N|none",
                       help="tokens between the starts of consecutive context windows (a step, "
                       "as PMR / HF's SQuAD processor); none: cut the context at --max-seq-len")
    tuned.add_argument("--max-query-tokens", type=int,
                       help="longest query (standard form: eqa questions only)")
    tuned.add_argument("--warmup-ratio", type=float)
    tuned.add_argument("--weight-decay", type=float)
    tuned.add_argument("--dropout", type=float, help="encoder hidden dropout and the "
                       "extractor's (standard form: the head's)")
    tuned.add_argument("--seed", type=int)
    tuned.add_argument("--label-smoothing", type=float,
                       help="translation: epsilon of the label-smoothed cross-entropy")
    tuned.add_argument("--max-grad-norm", type=float,
                       help="translation: clip the gradient norm to this (<= 0: no clipping)")
    plug_in = parser.add_argument_group(
        "plug-in form", "each example x of --train is paired with its translation y (the same "
        "row) in --pair-train; each --eval LANG with the --eval file of --pair-lang (the "
        "--pair-lang set itself with the --train-lang one), files row-aligned")
    plug_in.add_argument("--pair-lang", help="language of the translations paired with the "
                         "examples (required: plug-in has no zero-shot use)")
    plug_in.add_argument("--pair-train", help="--train translated into --pair-lang, row-aligned")
    glm = parser.add_argument_group(
        "glm form", "a GLM folder (pretrain.hf_glm + GLM tokenizer); --num-beams, "
        "--label-smoothing and --max-grad-norm apply too (eqa decoding and loss)")
    glm.add_argument("--scoring", choices=("single", "multi"),
                     help="pair: single (default, the reference's) = logits of the label words at "
                     "[sop]; multi = summed log-probs of each verbalizer's tokens + [eop]")
    glm.add_argument("--verbalizers", choices=("en", "eval"),
                     help="pair: en (default, the reference's English words everywhere) or eval = "
                     "our per-language words for each --eval language where we have them "
                     "(mostly several tokens: --scoring multi)")
    glm.add_argument("--qa-prompt", choices=("auto", "mlqa", "squad"),
                     help="eqa: mlqa = '[CLS] context . Question: q Answer: [sMASK]', squad = "
                     "'[CLS] q [sMASK] . context'; auto (default): squad for tydiqa, else mlqa")
    translation = parser.add_argument_group(
        "translation", "line-aligned text files, one sentence a line")
    for side in ("train", "eval"):
        for end, what in (("src", "source"), ("tgt", "target")):
            translation.add_argument(f"--{side}-{end}", help=f"{side} {what} sentences")
    translation.add_argument("--src-lang", help="source language (default: the last suffix of "
                             "--train-src, e.g. deu for tatoeba.deu-eng.deu)")
    translation.add_argument("--tgt-lang", help="target language (default: that of "
                             "--train-tgt; zh/ja/ko pick sacreBLEU's tokenizer)")
    translation.add_argument("--num-beams", type=int, help="beam size (default 5, the VECO "
                             "inference script; 1 = greedy)")
    translation.add_argument("--bleu-tokenize", help="sacreBLEU tokenizer (default: 13a, or the "
                             "target language's for zh/ja/ko)")
    parser.add_argument("--grad-accum", type=int, default=1,
                        help="split each batch into this many micro-batches (memory)")
    parser.add_argument("--max-train-examples", type=int,
                        help="use only the first N records of --train")
    parser.add_argument("--max-answer-tokens", type=int,
                        help="eqa: longest answer decoded (default: no cap in the MRC form, as "
                        "the reference; 30 in the standard form, as XTREME / HF run_squad)")
    parser.add_argument("--query-lang", choices=("eval", "en"),
                        help="MRC form, ner/absa: queries in each --eval language where the "
                        "reference translated them (eval, the default), or English everywhere "
                        "(en)")
    parser.add_argument("--explain", nargs="?", const="paper", choices=EXPLAIN_MODES,
                        help="MRC form, pair tasks: write a rationale span per sentence; paper "
                        "(default): the predicted label's query over 'Sen-1 SEP Sen-2' and "
                        "'Sen-2 SEP Sen-1'; reference: PMR's --allow_tok, read from the "
                        "classification run")
    parser.add_argument("--eqa-norm", choices=("auto", "squad", "mlqa"), default="auto",
                        help="eqa answer normalisation: auto = MLQA's for mlqa:LANG sets and MLQA "
                        "files (test-context-xx-question-yy.json), SQuAD v1.1's otherwise; mlqa = "
                        "MLQA's for every --eval (its LANG); squad = SQuAD's for all")
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda:N")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="autocast on CUDA; auto = bf16 where supported, else fp32")
    parser.add_argument("--log-every", type=int, default=10, help="log every N steps")
    return parser


_TRANSLATION_FILES = ("train_src", "train_tgt", "eval_src", "eval_tgt")
_TRANSLATION_ONLY = ("label_smoothing", "max_grad_norm", "src_lang", "tgt_lang", "num_beams",
                     "bleu_tokenize", *_TRANSLATION_FILES)
_NOT_FOR_TRANSLATION = ("train", "eval", "form", "doc_stride", "max_query_tokens",
                        "max_answer_tokens", "query_lang", "explain", "pair_lang", "pair_train",
                        *_GLM_OPTIONS)
_ALSO_FOR_GLM = ("label_smoothing", "max_grad_norm", "num_beams")


def _option(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _check_translation(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    missing = [_option(d) for d in _TRANSLATION_FILES if not getattr(args, d)]
    if missing:
        parser.error(f"--task {TRANSLATION} needs {' '.join(missing)}")
    for dest in _NOT_FOR_TRANSLATION:
        if getattr(args, dest) not in (None, []):
            parser.error(f"{_option(dest)} does not apply to --task {TRANSLATION}")
    if args.num_beams is not None and args.num_beams < 1:
        parser.error("--num-beams must be positive")
    if args.label_smoothing is not None and not 0 <= args.label_smoothing < 1:
        parser.error("--label-smoothing must be in [0, 1)")
    if args.max_train_examples is not None and args.max_train_examples < 1:
        parser.error("--max-train-examples must be positive")


def _check_plug_in(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.task != "pair":
        parser.error(f"--form {PLUG_IN} applies to --task pair only (PAWS-X / XNLI)")
    for option, value in (("--pair-lang", args.pair_lang), ("--pair-train", args.pair_train)):
        if value is None:
            parser.error(f"--form {PLUG_IN} needs {option}: every example is fed with its "
                         "translation (plug-in is unusable zero-shot, VECO.md B5.1)")
    if args.pair_lang == args.train_lang:
        parser.error(f"--pair-lang must differ from --train-lang ({args.train_lang})")
    for option, value in (("--explain", args.explain), ("--query-lang", args.query_lang),
                          ("--doc-stride", args.doc_stride),
                          ("--max-query-tokens", args.max_query_tokens)):
        if value is not None:
            parser.error(f"{option} does not apply to --form {PLUG_IN} (pairs are cut "
                         "longest_first; there are no queries)")


def _check_glm(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.task not in GLM_TASKS:
        parser.error(f"--form {GLM} fine-tunes --task {' or '.join(GLM_TASKS)} (mGLM's PET and "
                     f"generative QA), not --task {args.task}")
    for option, value in (("--explain", args.explain), ("--query-lang", args.query_lang),
                          ("--doc-stride", args.doc_stride),
                          ("--max-query-tokens", args.max_query_tokens)):
        if value is not None:
            parser.error(f"{option} does not apply to --form {GLM} (cloze / blank-filling "
                         "inputs, cut as the reference cuts them)")
    if args.task == "pair" and (args.qa_prompt or args.num_beams or args.label_smoothing
                                is not None):
        parser.error("--qa-prompt / --num-beams / --label-smoothing apply to --task eqa only")
    if args.task == "eqa" and (args.scoring or args.verbalizers):
        parser.error("--scoring / --verbalizers apply to --task pair only")
    if args.label_smoothing is not None and not 0 <= args.label_smoothing < 1:
        parser.error("--label-smoothing must be in [0, 1)")
    if args.num_beams is not None and args.num_beams < 1:
        parser.error("--num-beams must be positive")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.task == TRANSLATION:
        _check_translation(parser, args)
        from finetune import seq2seq

        return _guarded(seq2seq.run, args)
    if args.form is None and Path(args.model, "config.json").is_file():
        from finetune.glm_prompt import is_glm_folder

        args.form = GLM if is_glm_folder(args.model) else None
    for dest in _TRANSLATION_ONLY:
        if getattr(args, dest) is not None and not (args.form == GLM and dest in _ALSO_FOR_GLM):
            parser.error(f"{_option(dest)} applies to --task {TRANSLATION} only")
    if args.train is None:
        parser.error("the following arguments are required: --train")
    args.form = args.form or "mrc"
    if args.form == GLM:
        _check_glm(parser, args)
    elif any(getattr(args, dest) is not None for dest in _GLM_OPTIONS):
        parser.error(f"--scoring / --verbalizers / --qa-prompt apply to --form {GLM} only")
    if args.form == PLUG_IN:
        _check_plug_in(parser, args)
    elif args.pair_lang is not None or args.pair_train is not None:
        parser.error(f"--pair-lang / --pair-train apply to --form {PLUG_IN} only")
    names = [spec.name for spec in args.eval]
    if len(set(names)) != len(names):
        parser.error(f"--eval languages repeat: {names}")
    if args.form == "standard":
        for option, value in (("--explain", args.explain), ("--query-lang", args.query_lang)):
            if value is not None:
                parser.error(f"{option} applies to --form mrc only (the standard heads have no "
                             "queries)")
        if args.max_query_tokens is not None and args.task != "eqa":
            parser.error("--max-query-tokens applies to --task eqa only with --form standard "
                         "(questions; there are no label queries)")
        if args.doc_stride is not None and args.task == "pair":
            parser.error("--doc-stride does not apply to --task pair with --form standard "
                         "(pairs are cut longest_first)")
    if args.explain and args.task != "pair":
        parser.error("--explain applies to --task pair only")
    if args.task != "eqa" and any(spec.mlqa_lang for spec in args.eval):
        parser.error("--eval mlqa:LANG=FILE applies to --task eqa only")
    if args.max_train_examples is not None and args.max_train_examples < 1:
        parser.error("--max-train-examples must be positive")
    if args.max_answer_tokens is not None and args.max_answer_tokens < 1:
        parser.error("--max-answer-tokens must be positive")
    if args.task == "eqa":
        from finetune.metrics import MLQA_LANGS
        from finetune.tasks import mlqa_context_lang

        odd = [s.path for s in args.eval if mlqa_context_lang(s.path) not in (None, *MLQA_LANGS)]
        if odd:
            parser.error(f"{odd[0]} is named like an MLQA file but MLQA's languages are "
                         f"{MLQA_LANGS}")
    if args.eqa_norm == "mlqa":
        from finetune.metrics import MLQA_LANGS
        from finetune.tasks import mlqa_context_lang

        unknown = [s.name for s in args.eval
                   if not (s.mlqa_lang or mlqa_context_lang(s.path)) and s.name not in MLQA_LANGS]
        if unknown:
            parser.error(f"--eqa-norm mlqa knows {MLQA_LANGS}, not {unknown}")
    return _guarded(run, args)


def _guarded(runner, args: argparse.Namespace) -> int:
    """0, or 2 with the message of an input error (TaskFormatError: "FILE:LINE: …")."""
    try:
        runner(args)
    except (OSError, ValueError, FloatingPointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
