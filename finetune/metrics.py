"""Scores for the fine-tuning tasks, computed as the official scripts compute them.

* EQA — SQuAD v1.1 `evaluate-v1.1.py` semantics: normalise (lower-case, drop ASCII punctuation,
  drop English articles a/an/the, collapse whitespace), exact match and bag-of-tokens F1, max over
  the gold answers, mean × 100 over *all* gold questions (a missing prediction scores 0). With
  `lang`, the normalisation of MLQA's `mlqa_evaluation_v1.py`: every Unicode `P*` character is
  punctuation, per-language articles (en, es, vi, de; ar drops every "ال"), none for hi / zh, and
  zh uses mixed segmentation (each CJK character U+4E00–U+9FA5 a token, other runs split on
  whitespace). The arithmetic follows the scripts step by step, so scores agree to the last bit.
* NER — entity precision / recall / F1 by `seqeval.metrics` in its default (conlleval) mode, as
  XTREME reports them, × 100. Predicted character spans snap to the whole tokens they overlap and
  overlapping predictions are flattened (highest score, then longest, first) before tagging.
* ABSA — micro P / R / F1 over exact (token span, polarity) matches, × 100 (the PMR code's span
  F1; `xabsa_smoothing=True` adds XABSA's 1e-4 denominators).
* Pair classification — accuracy × 100.

Prediction keys are the record ids as strings (question id, sentence / pair index). Ids that name
no gold record are returned under "unknown_ids"; gold records without a prediction are counted
under "missing" (and score as wrong / as "no entities"). Neither key appears when empty.
Never imports torch or DeepSpeed; seqeval is imported only by `ner_scores`.
"""

from __future__ import annotations

import re
import string
import sys
import unicodedata
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import cache

from finetune.tasks import PairExample, QAExample, TaggedSentence

MLQA_LANGS = ("en", "es", "hi", "vi", "de", "ar", "zh")
_WHITESPACE_LANGS = ("en", "es", "hi", "vi", "de", "ar")
_ARTICLES = {
    "en": r"\b(a|an|the)\b",
    "es": r"\b(un|una|unos|unas|el|la|los|las)\b",
    "vi": r"\b(của|là|cái|chiếc|những)\b",
    "de": r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b",
    "ar": r"\sال^|ال",  # as in mlqa_evaluation_v1.py: the first branch never matches
}
_ASCII_PUNCT = frozenset(string.punctuation)
_CJK = re.compile("[\u4e00-\u9fa5]")
_XABSA_EPS = 1e-4


# ---------------------------------------------------------------------------- EQA

@cache
def unicode_punctuation() -> frozenset[str]:
    """Every character whose Unicode category starts with P, plus ASCII punctuation (MLQA)."""
    return frozenset(chr(i) for i in range(sys.maxunicode)
                     if unicodedata.category(chr(i)).startswith("P")) | _ASCII_PUNCT


def normalize_answer(text: str, lang: str | None = None) -> str:
    """SQuAD v1.1 normalisation, or MLQA's for `lang` in MLQA_LANGS."""
    if lang is None:
        text = "".join(ch for ch in text.lower() if ch not in _ASCII_PUNCT)
        return " ".join(re.sub(_ARTICLES["en"], " ", text).split())
    _check_lang(lang)
    punct = unicode_punctuation()
    text = "".join(ch for ch in text.lower() if ch not in punct)
    if lang in _ARTICLES:
        text = re.sub(_ARTICLES[lang], " ", text)
    tokens = text.split() if lang in _WHITESPACE_LANGS else _mixed_segmentation(text, punct)
    return " ".join(t for t in tokens if t.strip() != "")


def _mixed_segmentation(text: str, punct: frozenset[str]) -> list[str]:
    tokens: list[str] = []
    pending = ""
    for ch in text:
        if _CJK.search(ch) or ch in punct:
            tokens.extend(pending.split())
            pending = ""
            tokens.append(ch)
        else:
            pending += ch
    tokens.extend(pending.split())
    return tokens


def _check_lang(lang: str) -> None:
    if lang not in MLQA_LANGS:
        raise ValueError(f"lang {lang!r}: the MLQA normalisation knows {', '.join(MLQA_LANGS)}; "
                         "leave the language out for SQuAD v1.1 scoring (how XTREME scores XQuAD "
                         "and TyDiQA-GoldP in every language)")


def exact_match_score(prediction: str, ground_truth: str, lang: str | None = None) -> bool:
    return normalize_answer(prediction, lang) == normalize_answer(ground_truth, lang)


def f1_score(prediction: str, ground_truth: str, lang: str | None = None) -> float:
    prediction_tokens = normalize_answer(prediction, lang).split()
    ground_truth_tokens = normalize_answer(ground_truth, lang).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    return (2 * precision * recall) / (precision + recall)


def eqa_scores(gold: Sequence[QAExample], predictions: Mapping[str, str],
               lang: str | None = None) -> dict:
    """`{"exact_match", "f1"}` (× 100) over every gold question, in file order."""
    if lang is not None:
        _check_lang(lang)
    exact_match = f1 = total = 0
    missing = 0
    for example in gold:
        total += 1
        if example.id not in predictions:
            missing += 1
            continue
        truths = [text for text, _ in example.answers]
        if not truths:
            raise ValueError(f"question {example.id} has no gold answer; SQuAD v1.1 scoring "
                             "needs at least one")
        prediction = predictions[example.id]
        if not isinstance(prediction, str):
            raise ValueError(f"prediction for {example.id} is {type(prediction).__name__}, "
                             "expected the answer text")
        exact_match += max(exact_match_score(prediction, t, lang) for t in truths)
        f1 += max(f1_score(prediction, t, lang) for t in truths)
    scores = {"exact_match": 100.0 * exact_match / total if total else 0.0,
              "f1": 100.0 * f1 / total if total else 0.0}
    return _with_bookkeeping(scores, {e.id for e in gold}, predictions, missing)


# ---------------------------------------------------------------------------- NER / ABSA

def flatten_spans(spans: Sequence[Sequence]) -> list[list]:
    """Non-overlapping subset of [start, end, label(, score)] spans (end exclusive): highest
    score first (missing score = 0), then longest, then leftmost."""
    def rank(span):
        score = float(span[3]) if len(span) > 3 else 0.0
        return (-score, -(span[1] - span[0]), span[0])

    kept: list[list] = []
    for span in sorted(spans, key=rank):
        if all(span[1] <= k[0] or span[0] >= k[1] for k in kept):
            kept.append(list(span))
    return kept


def token_spans(sentence: TaggedSentence, spans: Sequence[Sequence], where: str = ""
                ) -> list[tuple[int, int, str, float]]:
    """Predicted char spans [start, end, label(, score)] → (token_first, token_last, label,
    score), each covering every token it overlaps; spans over whitespace only vanish."""
    out = []
    for span in spans:
        if not isinstance(span, (list, tuple)) or len(span) not in (3, 4):
            raise ValueError(f"{where}: expected [char_start, char_end, label(, score)], got "
                             f"{span!r}")
        start, end, label = span[0], span[1], str(span[2])
        if not (isinstance(start, int) and isinstance(end, int)
                and 0 <= start < end <= len(sentence.text)):
            raise ValueError(f"{where}: span {span!r} is not 0 <= start < end <= "
                             f"{len(sentence.text)} (the sentence's length)")
        hit = [k for k, (s, e) in enumerate(sentence.token_char_spans) if s < end and e > start]
        if hit:
            out.append((hit[0], hit[-1], label, float(span[3]) if len(span) > 3 else 0.0))
    return out


def ner_scores(gold: Sequence[TaggedSentence], predictions: Mapping[str, Sequence]) -> dict:
    """seqeval (default mode) entity `{"precision", "recall", "f1"}` × 100."""
    predictions = {str(k): v for k, v in predictions.items()}
    from seqeval.metrics import f1_score as seq_f1
    from seqeval.metrics import precision_score, recall_score

    y_true, y_pred = [], []
    missing = 0
    for sentence in gold:
        key = str(sentence.index)
        missing += key not in predictions
        spans = token_spans(sentence, predictions.get(key, []), f"sentence {key}")
        flat = flatten_spans([[first, last + 1, label, score]
                              for first, last, label, score in spans])
        tags = ["O"] * len(sentence.tokens)
        for first, stop, label, _ in flat:
            tags[first] = f"B-{label}"
            for k in range(first + 1, stop):
                tags[k] = f"I-{label}"
        y_true.append(sentence.tags)
        y_pred.append(tags)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # seqeval warns when there are no predicted entities
        scores = {"precision": 100.0 * precision_score(y_true, y_pred),
                  "recall": 100.0 * recall_score(y_true, y_pred),
                  "f1": 100.0 * seq_f1(y_true, y_pred)}
    return _with_bookkeeping(scores, {str(s.index) for s in gold}, predictions, missing)


def absa_scores(gold: Sequence[TaggedSentence], predictions: Mapping[str, Sequence], *,
                xabsa_smoothing: bool = False) -> dict:
    """Micro `{"precision", "recall", "f1"}` × 100 over exact (token span, polarity) matches."""
    predictions = {str(k): v for k, v in predictions.items()}
    hits = n_pred = n_gold = 0
    missing = 0
    for sentence in gold:
        key = str(sentence.index)
        missing += key not in predictions
        truth = {(s.token_start, s.token_end, s.label) for s in sentence.spans}
        guess = {(first, last, label) for first, last, label, _ in
                 token_spans(sentence, predictions.get(key, []), f"sentence {key}")}
        hits += len(truth & guess)
        n_pred += len(guess)
        n_gold += len(truth)
    eps = _XABSA_EPS if xabsa_smoothing else 0.0
    precision = hits / (n_pred + eps) if n_pred + eps else 0.0
    recall = hits / (n_gold + eps) if n_gold + eps else 0.0
    f1 = (2 * precision * recall / (precision + recall + eps)
          if precision + recall + eps else 0.0)
    scores = {"precision": 100.0 * precision, "recall": 100.0 * recall, "f1": 100.0 * f1}
    return _with_bookkeeping(scores, {str(s.index) for s in gold}, predictions, missing)


# ---------------------------------------------------------------------------- pairs

def pair_accuracy(gold: Sequence[PairExample], predictions: Mapping[str, str]) -> dict:
    """`{"accuracy"}` × 100 over every gold pair (labels compared as strings)."""
    predictions = {str(k): v for k, v in predictions.items()}
    correct = missing = 0
    for example in gold:
        key = str(example.index)
        if key not in predictions:
            missing += 1
            continue
        correct += str(predictions[key]) == example.label
    scores = {"accuracy": 100.0 * correct / len(gold) if gold else 0.0}
    return _with_bookkeeping(scores, {str(e.index) for e in gold}, predictions, missing)


def _with_bookkeeping(scores: dict, gold_ids: set[str], predictions: Mapping, missing: int
                      ) -> dict:
    unknown = sorted(str(k) for k in predictions if str(k) not in gold_ids)
    if unknown:
        scores["unknown_ids"] = unknown
    if missing:
        scores["missing"] = missing
    return scores
