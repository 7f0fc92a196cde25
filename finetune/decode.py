"""Span logits of encoded windows → task predictions in the formats `finetune.evaluate` reads.

Inputs everywhere: the `MRCInstance`s, their `MRCFeature`s (from `mrc_form.encode`) and one
dense logit matrix per feature, `logits[k]` of shape [L, L] with L ≥ len(features[k].input_ids)
(numpy or torch; a padded batch [B, L, L] works too). Z_ij scores the span from token i to token
j; Z_00 (the [CLS] cell) scores relevance. Only context cells i ≤ j count as spans.

* `decode_tagging` (NER / ABSA): every context span with Z_ij > threshold (nested allowed),
  merged across windows by character offsets (duplicates keep the max logit) →
  `{sentence_index: [[char_start, char_end, label, score], …]}`.
* `decode_eqa`: the best span (start ≤ end; no length cap unless `max_answer_tokens`, as PMR
  QA/mQA/utils.py generate_span) over all windows → `{question_id: answer_text}`.
* `decode_pair`: argmax over the label instances of max-over-windows Z_00 → `{pair_index: label}`.
* Rationales (mPMR Table 3), one span per sentence of a pair: `explain_runs` reads the paper's two
  runs of the predicted label's query over "Sen-1 SEP Sen-2" and "Sen-2 SEP Sen-1"
  (`mrc_form.explain_instances`), the best span inside the sentence that comes first in each run;
  `explain_pair` reads the reference's `--allow_tok` way (PMR NLI/mNLI/utils.py
  get_preds_ans_with_tok): from the classification run of the predicted label, the best span
  inside each sentence.

Character spans are trimmed of surrounding whitespace (SentencePiece "▁" tokens). Never imports
torch or DeepSpeed (torch tensors are read through `.detach().cpu()`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from finetune.metrics import flatten_spans
from finetune.mrc_form import MRCFeature, MRCInstance

@dataclass(frozen=True)
class Rationale:
    """The best span inside one sentence of a pair: chars [start, end) of that sentence."""

    sentence: int  # 0 = sentence1, 1 = sentence2
    start: int
    end: int
    text: str
    score: float


def as_matrix(logits) -> np.ndarray:
    """One feature's logits as a float64 numpy [L, L] (accepts numpy, lists and torch)."""
    if hasattr(logits, "detach"):
        logits = logits.detach().float().cpu().numpy()
    matrix = np.asarray(logits, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"expected a square [L, L] logit matrix per feature, got {matrix.shape}")
    return matrix


def context_spans(feature: MRCFeature, logits, *, threshold: float | None = None,
                  max_span_tokens: int | None = None, char_range: tuple[int, int] | None = None,
                  limit: int | None = None) -> list[tuple[int, int, float]]:
    """Candidate spans of one window as (char_start, char_end, logit), best first.

    Cells i ≤ j inside the context, at most `max_span_tokens` tokens long, with logit >
    `threshold` (None: any), and — with `char_range` — both tokens inside that [start, end)
    character range of the context; at most `limit` of them (ties: earlier cells first).
    """
    matrix = as_matrix(logits)
    c0, c1 = feature.context_start, feature.context_end
    if matrix.shape[0] < c1:
        raise ValueError(f"logits {matrix.shape} are shorter than feature {feature.example_id}"
                         f"#{feature.window_index} ({len(feature.input_ids)} tokens)")
    sub = matrix[c0:c1, c0:c1]
    n = c1 - c0
    allowed = np.triu(np.ones((n, n), dtype=bool))
    if max_span_tokens is not None:
        allowed &= ~np.triu(np.ones((n, n), dtype=bool), k=max_span_tokens)
    if char_range is not None:
        offsets = feature.token_offsets[c0:c1]
        inside = (offsets[:, 0] >= char_range[0]) & (offsets[:, 1] <= char_range[1])
        allowed &= inside[:, None] & inside[None, :]
    if threshold is not None:
        allowed &= sub > threshold
    rows, cols = np.nonzero(allowed)
    scores = sub[rows, cols]
    if limit == 1 and len(scores):
        order = np.array([int(np.argmax(scores))])  # first maximum, as the stable sort would
    else:
        order = np.argsort(-scores, kind="stable")[:limit]
    offsets = feature.token_offsets
    return [(int(offsets[c0 + rows[k], 0]), int(offsets[c0 + cols[k], 1]), float(scores[k]))
            for k in order]


def decode_tagging(instances: Sequence[MRCInstance], features: Sequence[MRCFeature],
                   logits: Sequence, *, threshold: float = 0.0, word_aligned: bool = True,
                   max_span_tokens: int | None = None, flat: bool = False
                   ) -> dict[str, list[list]]:
    """NER / ABSA predictions `{sentence_index: [[start, end, label, score], …]}` (chars of the
    sentence text, end exclusive, sorted by position). Every sentence gets a key.

    `word_aligned` keeps only spans that start and end on whitespace-separated word boundaries of
    the sentence (the unit gold spans are made of); `flat` resolves overlaps, highest logit first.
    """
    by_id = _instances_by_id(instances)
    best: dict[str, dict[tuple[int, int, str], float]] = {i.source_id: {} for i in instances}
    for feature, matrix in _pairs(features, logits):
        inst = by_id[feature.example_id]
        for start, end, score in context_spans(feature, matrix, threshold=threshold,
                                               max_span_tokens=max_span_tokens):
            start, end = _trim(inst.context, start, end)
            if end <= start or (word_aligned and not _on_word_edges(inst.context, start, end)):
                continue
            key = (start, end, inst.label)
            found = best[inst.source_id]
            if key not in found or score > found[key]:
                found[key] = score
    out = {}
    for source_id, found in best.items():
        spans = [[s, e, label, score] for (s, e, label), score in found.items()]
        if flat:
            spans = flatten_spans(spans)
        out[source_id] = sorted(spans, key=lambda x: (x[0], x[1], x[2]))
    return out


def decode_eqa(instances: Sequence[MRCInstance], features: Sequence[MRCFeature], logits: Sequence,
               *, max_answer_tokens: int | None = None) -> dict[str, str]:
    """`{question_id: answer_text}`: the highest-logit context span over all windows
    (start ≤ end; at most `max_answer_tokens` tokens if given); "" if an instance has no context
    token."""
    _instances_by_id(instances)
    best: dict[str, tuple[float, int, int]] = {}
    for feature, matrix in _pairs(features, logits):
        spans = context_spans(feature, matrix, max_span_tokens=max_answer_tokens, limit=1)
        if spans and (feature.example_id not in best or spans[0][2] > best[feature.example_id][0]):
            start, end, score = spans[0]
            best[feature.example_id] = (score, start, end)
    out = {}
    for inst in instances:
        if inst.id in best:
            _, start, end = best[inst.id]
            start, end = _trim(inst.context, start, end)
            out[inst.source_id] = inst.context[start:end]
        else:
            out[inst.source_id] = ""
    return out


def pair_scores(instances: Sequence[MRCInstance], features: Sequence[MRCFeature],
                logits: Sequence) -> dict[str, dict[str, float]]:
    """`{pair_index: {label: max over windows of Z_00}}`."""
    by_id = _instances_by_id(instances)
    scores: dict[str, dict[str, float]] = {i.source_id: {} for i in instances}
    for feature, matrix in _pairs(features, logits):
        inst = by_id[feature.example_id]
        z00 = float(as_matrix(matrix)[0, 0])
        previous = scores[inst.source_id].get(inst.label)
        scores[inst.source_id][inst.label] = z00 if previous is None else max(previous, z00)
    return scores


def decode_pair(instances: Sequence[MRCInstance], features: Sequence[MRCFeature],
                logits: Sequence) -> dict[str, str]:
    """`{pair_index: label}`: the label whose query gets the highest [CLS] logit Z_00 (ties:
    the first label in query order)."""
    out = {}
    for source_id, by_label in pair_scores(instances, features, logits).items():
        if by_label:
            out[source_id] = max(by_label, key=by_label.__getitem__)
    return out


def explain_pair(instances: Sequence[MRCInstance], features: Sequence[MRCFeature],
                 logits: Sequence, *, labels: dict[str, str] | None = None,
                 max_span_tokens: int | None = None) -> dict[str, list[Rationale]]:
    """The reference's reading: `{pair_index: [rationale in sentence1, in sentence2]}` from the
    logits of the predicted label's instance (or of `labels[pair_index]`), the best span inside
    each sentence (`segments`; the "Hypothesis:"/"Premise:" markers are outside both)."""
    chosen = labels if labels is not None else decode_pair(instances, features, logits)
    return _segment_rationales(
        instances, features, logits, max_span_tokens,
        lambda inst: list(enumerate(inst.segments)) if chosen.get(inst.source_id) == inst.label
        else [])


def explain_runs(instances: Sequence[MRCInstance], features: Sequence[MRCFeature],
                 logits: Sequence, *, max_span_tokens: int | None = None
                 ) -> dict[str, list[Rationale]]:
    """The paper's reading over `mrc_form.explain_instances`: run k (id "…:explain:k") gives the
    rationale of sentence k, its best span inside the sentence that comes first in that run."""
    return _segment_rationales(
        instances, features, logits, max_span_tokens,
        lambda inst: [(int(inst.id.rsplit(":", 1)[1]), inst.segments[0])])


def _segment_rationales(instances, features, logits, max_span_tokens,
                        wanted) -> dict[str, list[Rationale]]:
    """Best span (max over windows) inside each character segment `wanted(inst)` names, as
    `[(sentence k, (start, end)), …]`; rationales sorted by k, offsets into sentence k."""
    by_id = _instances_by_id(instances)
    best: dict[tuple[str, int], tuple[float, int, int, MRCInstance, int]] = {}
    for feature, matrix in _pairs(features, logits):
        inst = by_id[feature.example_id]
        for k, segment in wanted(inst):
            spans = context_spans(feature, matrix, max_span_tokens=max_span_tokens,
                                  char_range=segment, limit=1)
            key = (inst.source_id, k)
            if spans and (key not in best or spans[0][2] > best[key][0]):
                best[key] = (spans[0][2], spans[0][0], spans[0][1], inst, segment[0])
    out: dict[str, list[Rationale]] = {}
    for inst in instances:
        if wanted(inst):
            out.setdefault(inst.source_id, [])
    for (source_id, k), (score, start, end, inst, seg_start) in sorted(best.items()):
        start, end = _trim(inst.context, start, end)
        out[source_id].append(Rationale(k, start - seg_start, end - seg_start,
                                        inst.context[start:end], score))
    return out


# ---------------------------------------------------------------------------- helpers

def _instances_by_id(instances: Sequence[MRCInstance]) -> dict[str, MRCInstance]:
    by_id = {inst.id: inst for inst in instances}
    if len(by_id) != len(instances):
        raise ValueError("instance ids are not unique")
    return by_id


def _pairs(features: Sequence[MRCFeature], logits: Sequence):
    if len(features) != len(logits):
        raise ValueError(f"{len(features)} features but {len(logits)} logit matrices")
    return zip(features, logits)


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _on_word_edges(text: str, start: int, end: int) -> bool:
    return ((start == 0 or text[start - 1].isspace())
            and (end == len(text) or text[end].isspace()))
