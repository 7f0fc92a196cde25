"""Score a prediction file against a gold task file; prints one JSON line.

    python -m finetune.evaluate --task eqa  --gold xquad.en.json --pred pred.json [--lang xx|squad]
    python -m finetune.evaluate --task ner  --gold dev-en.tsv    --pred pred.json [--scheme iob1]
    python -m finetune.evaluate --task absa --gold gold-es-dev.txt --pred pred.json
    python -m finetune.evaluate --task pair --gold test-zh.tsv   --pred pred.json

Prediction files (JSON objects; keys are strings):
  eqa   {question_id: answer_text}                           (SQuAD style)
  ner   {sentence_index: [[char_start, char_end, label(, score)], …]}   0-based sentence order
  absa  the same, labels POS / NEG / NEU                      of the gold file; chars of the
                                                              sentence's tokens joined by spaces
  pair  {pair_index: label}                                   labels as in the gold file

EQA answers are normalised as SQuAD v1.1's script does, or as MLQA's for `--lang xx` and for gold
files with MLQA's names (`test-context-xx-question-yy.json`: language xx); `--lang squad` forces
SQuAD's.

Output: eqa `{"exact_match", "f1"}`; ner / absa `{"precision", "recall", "f1"}`; pair
`{"accuracy"}` — all × 100 — plus `"unknown_ids"` (prediction ids with no gold record; also warned
about on stderr) and `"missing"` (gold records without a prediction, scored as wrong) when any.
Exit status 2 on unreadable input, with the file (and line) named.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from finetune import metrics
from finetune.tasks import (
    NER_SCHEMES,
    TaskFormatError,
    mlqa_context_lang,
    read_absa,
    read_ner,
    read_pair,
    TASKS,
    read_squad,
)


def evaluate(task: str, gold_path: str | Path, pred_path: str | Path, *, lang: str | None = None,
             scheme: str = "auto", xabsa_smoothing: bool = False) -> dict:
    """Scores of the predictions in `pred_path` against the gold file (formats above). eqa:
    `lang` None = MLQA's normalisation for MLQA-named gold files, else SQuAD's; "squad"; or an
    MLQA language."""
    if lang is not None and task != "eqa":
        raise ValueError("--lang applies to --task eqa only")
    predictions = read_predictions(pred_path, task)
    if task == "eqa":
        mlqa_lang = mlqa_context_lang(gold_path) if lang is None else lang
        return metrics.eqa_scores(read_squad(gold_path), predictions,
                                  None if mlqa_lang == "squad" else mlqa_lang)
    if task == "ner":
        return metrics.ner_scores(read_ner(gold_path, scheme), predictions)
    if task == "absa":
        return metrics.absa_scores(read_absa(gold_path), predictions,
                                   xabsa_smoothing=xabsa_smoothing)
    if task == "pair":
        return metrics.pair_accuracy(read_pair(gold_path), predictions)
    raise ValueError(f"task must be one of {TASKS}, got {task!r}")


def _json_type(value) -> str:
    """The JSON name of a parsed value's type, as a user sees it in the file."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"a number ({value!r})"
    return {str: "a string", list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def _is_span(span) -> bool:
    """[char_start, char_end, label(, score)]: ints, a string label, a number score."""
    if not isinstance(span, list) or len(span) not in (3, 4):
        return False
    start, end, label = span[:3]
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end))
    score_ok = len(span) == 3 or (isinstance(span[3], (int, float)) and not isinstance(span[3], bool))
    return ints and isinstance(label, str) and score_ok


_SPANS = "a list of [char_start, char_end, label(, score)] spans"
# What each task reads per prediction id: (check, what the user must give).
_EXPECTED = {
    "eqa": (lambda v: isinstance(v, str), "the answer text (a string)"),
    "ner": (lambda v: isinstance(v, list) and all(map(_is_span, v)), _SPANS),
    "absa": (lambda v: isinstance(v, list) and all(map(_is_span, v)), _SPANS),
    "pair": (lambda v: isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool)),
             "a label (a string, or an integer label such as 0/1)"),
}


def _check_predictions(path: Path, task: str, predictions: dict) -> None:
    """Raise TaskFormatError naming the file and the first id whose value `task` cannot read."""
    check, expected = _EXPECTED[task]
    for key, value in predictions.items():
        if check(value):
            continue
        if isinstance(value, list) and task in ("ner", "absa"):
            bad = next(span for span in value if not _is_span(span))
            raise TaskFormatError(f"{path}: prediction {key!r} holds {json.dumps(bad)[:80]}, "
                                  f"expected {expected}")
        raise TaskFormatError(f"{path}: prediction {key!r} is {_json_type(value)}, "
                              f"expected {expected}")


def read_predictions(path: str | Path, task: str | None = None) -> dict:
    """The {id: prediction} object of a prediction file; with `task`, every value is checked to
    be of the type that task reads (TaskFormatError names the file and the id)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prediction file not found: {path}")
    try:
        predictions = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise TaskFormatError(f"{path}:{err.lineno}: invalid JSON: {err.msg}") from None
    if not isinstance(predictions, dict):
        raise TaskFormatError(f"{path}:1: expected a JSON object {{id: prediction}}, got "
                              f"{type(predictions).__name__}")
    if task in _EXPECTED:
        _check_predictions(path, task, predictions)
    return predictions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m finetune.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True, choices=TASKS)
    parser.add_argument("--gold", required=True, help="gold task file")
    parser.add_argument("--pred", required=True, help="prediction JSON")
    parser.add_argument("--lang", help="eqa only: MLQA normalisation for this language "
                        f"({', '.join(metrics.MLQA_LANGS)}) or squad; default: MLQA's for "
                        "MLQA-named gold files (test-context-xx-question-yy.json), else SQuAD v1.1")
    parser.add_argument("--scheme", default="auto", choices=NER_SCHEMES,
                        help="ner only: tag scheme of the gold file (iob2 = strict check)")
    parser.add_argument("--xabsa-smoothing", action="store_true",
                        help="absa only: XABSA's 1e-4 terms in the P/R/F1 denominators")
    args = parser.parse_args(argv)
    detected = mlqa_context_lang(args.gold) if args.task == "eqa" else None
    if args.lang is None and detected:
        print(f"note: {args.gold} is an MLQA file: MLQA normalisation for {detected!r} "
              "(--lang squad for SQuAD's)", file=sys.stderr)
    try:
        scores = evaluate(args.task, args.gold, args.pred, lang=args.lang, scheme=args.scheme,
                          xabsa_smoothing=args.xabsa_smoothing)
    except (OSError, ValueError) as err:  # TaskFormatError is a ValueError
        print(f"error: {err}", file=sys.stderr)
        return 2
    unknown = scores.get("unknown_ids", [])
    if unknown:
        shown = ", ".join(unknown[:10]) + (", …" if len(unknown) > 10 else "")
        print(f"warning: {len(unknown)} prediction ids match no record of {args.gold}: {shown}",
              file=sys.stderr)
    if scores.get("missing"):
        print(f"warning: {scores['missing']} records of {args.gold} have no prediction and score "
              "as wrong", file=sys.stderr)
    print(json.dumps(scores, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
