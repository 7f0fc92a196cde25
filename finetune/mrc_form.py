"""Task records → MRC instances (query, context, gold char spans) → encoded, windowed features.

The MRC formulation is the mPMR reference code's (github.com/DAMO-NLP-SG/PMR; query texts and
templates in `finetune.queries`):

* EQA: query = the question, context = the passage, answers = the gold answer spans.
* NER / ABSA: one instance per label and sentence; query = `"LABEL". description`, context = the
  sentence, answers = the spans of that label. Nested / overlapping spans are allowed.
* Sentence-pair classification (PAWS-X, XNLI): one instance per label; query = the label's text,
  context = "Hypothesis: " + sentence1 + " Premise: " + sentence2 (PMR NLI/mNLI/data.py), no
  answer spans; the [CLS]-[CLS] cell Z_00 says whether the label holds. `segments` locate the two
  sentences in that context. `explain_instances` builds the rationale runs of `--explain`.

Encoding (`encode`) uses any Hugging Face *fast* XLM-R tokenizer and lays out
`<s> query </s></s> context-window </s>`: the query is cut to `max_query_tokens`; a context
longer than the `max_seq_len` budget is either cut there (`doc_stride=None`, what the reference
does for sentence-level tasks) or split into windows whose starts are `doc_stride` context tokens
apart (the *step*, as PMR QA/mQA/data.py and HF's legacy SQuAD processor mean it; consecutive
windows overlap by budget − doc_stride tokens). Each feature keeps the character offsets of its
context tokens, so any token span decodes back to text. Gold spans that do not fit whole in a
window are dropped for that window (never clipped).

Position conventions match `data_prep.format.MRCExample`: `context_end` is exclusive (the index of
the final `</s>`), gold spans are inclusive (start, end) positions in `input_ids`.
This module never imports torch or DeepSpeed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from finetune.queries import HYPOTHESIS_PREFIX, PAIR_QUERIES, PREMISE_PREFIX
from finetune.tasks import PAIR_LABELS, PairExample, QAExample, TaggedSentence

assert all(set(PAIR_QUERIES[t]) == set(PAIR_LABELS[t]) for t in PAIR_LABELS)

DEFAULT_MAX_SEQ_LEN = 384
DEFAULT_DOC_STRIDE = 128  # PMR QA/mQA/train-QA.py --doc_stride default (a step)
DEFAULT_MAX_QUERY_TOKENS = 64
SPECIAL_TOKENS = 4  # <s> … </s></s> … </s>


@dataclass(frozen=True)
class MRCInstance:
    """One MRC question in text form (one per question, or per label and sentence / pair)."""

    id: str  # unique: the question id, or f"{source_id}:{label}"
    source_id: str  # the task record it belongs to: question id, sentence / pair index
    label: str | None  # the label queried (None for EQA)
    query: str
    context: str
    answers: tuple[tuple[int, int], ...]  # gold [start, end) char spans in `context`
    relevant: bool  # target of Z_00 for the whole context (span tasks: any answer at all)
    segments: tuple[tuple[int, int], ...]  # [start, end) of each sentence in `context`


@dataclass
class MRCFeature:
    """One encoded window of an `MRCInstance`: `<s> query </s></s> context[window] </s>`."""

    example_id: str  # MRCInstance.id
    window_index: int  # 0, 1, … along the context
    input_ids: np.ndarray  # [T] int32
    context_start: int  # first context token
    context_end: int  # exclusive: index of the final </s>
    token_offsets: np.ndarray  # [T, 2] int32 [start, end) chars in the context; -1 elsewhere
    answer_spans: np.ndarray  # [A, 2] int32 inclusive (start, end) positions in input_ids
    relevant: bool  # target of Z_00: the window holds a gold span (pair tasks: the label holds)

    def to_mrc_example(self):
        """The token-level `data_prep.format.MRCExample` (what `pretrain.data` collates). Its
        "answerable" is len(answer_spans) > 0, so pair tasks need `relevant` besides."""
        from data_prep.format import MRCExample

        return MRCExample(self.input_ids, self.context_start, self.context_end, self.answer_spans)


# ---------------------------------------------------------------------------- task → instances

def eqa_instances(examples: list[QAExample]) -> list[MRCInstance]:
    """One instance per question; query = the question."""
    out = []
    for ex in examples:
        answers = tuple(sorted({(start, start + len(text)) for text, start in ex.answers}))
        out.append(MRCInstance(ex.id, ex.id, None, ex.question, ex.context, answers,
                               bool(answers), ((0, len(ex.context)),)))
    return out


def tagging_instances(sentences: list[TaggedSentence],
                      queries: dict[str, str]) -> list[MRCInstance]:
    """NER / ABSA: one instance per (sentence, label in `queries`), in sentence-major order."""
    known = set(queries)
    out = []
    for sentence in sentences:
        unknown = {span.label for span in sentence.spans} - known
        if unknown:
            raise ValueError(f"sentence {sentence.index} (line {sentence.line_no}) has labels "
                             f"{sorted(unknown)} that have no query; known: {sorted(known)} "
                             "(CoNLL data needs the CoNLL queries, with MISC)")
        for label, query in queries.items():
            answers = tuple(sorted({(s.start, s.end) for s in sentence.spans if s.label == label}))
            out.append(MRCInstance(f"{sentence.index}:{label}", str(sentence.index), label, query,
                                   sentence.text, answers, bool(answers),
                                   ((0, len(sentence.text)),)))
    return out


def pair_instances(pairs: list[PairExample], task: str) -> list[MRCInstance]:
    """PAWS-X / XNLI: one instance per (pair, label) in the reference's label order; context =
    "Hypothesis: " + sentence1 + " Premise: " + sentence2 (PMR NLI/mNLI/data.py)."""
    if task not in PAIR_QUERIES:
        raise ValueError(f"task must be one of {sorted(PAIR_QUERIES)}, got {task!r}")
    out = []
    for pair in pairs:
        first = len(HYPOTHESIS_PREFIX)
        second = first + len(pair.sentence1) + len(PREMISE_PREFIX)
        context = f"{HYPOTHESIS_PREFIX}{pair.sentence1}{PREMISE_PREFIX}{pair.sentence2}"
        segments = ((first, first + len(pair.sentence1)), (second, len(context)))
        for label, query in PAIR_QUERIES[task].items():
            out.append(MRCInstance(f"{pair.index}:{label}", str(pair.index), label, query, context,
                                   (), label == pair.label, segments))
    return out


def explain_instances(instances: list[MRCInstance], labels: dict[str, str],
                      sep_token: str) -> list[MRCInstance]:
    """The rationale runs of `--explain paper` for the pair instances of `labels[source_id]`
    (the predicted label): its query over "Sen-1 SEP Sen-2" and over "Sen-2 SEP Sen-1", where
    SEP is the tokenizer's `sep_token` as text (fast tokenizers map it to the sep id). Ids are
    f"{source_id}:explain:{k}"; run k's first segment is sentence k."""
    out = []
    for inst in instances:
        if labels.get(inst.source_id) != inst.label:
            continue
        sentences = [inst.context[start:end] for start, end in inst.segments]
        for k in (0, 1):
            first, second = sentences[k], sentences[1 - k]
            joint = f" {sep_token} "
            context = f"{first}{joint}{second}"
            segments = ((0, len(first)), (len(first) + len(joint), len(context)))
            out.append(MRCInstance(f"{inst.source_id}:explain:{k}", inst.source_id, inst.label,
                                   inst.query, context, (), True, segments))
    return out


# ---------------------------------------------------------------------------- encoding

def encode(instances: list[MRCInstance], tokenizer, *, max_seq_len: int = DEFAULT_MAX_SEQ_LEN,
           doc_stride: int | None = DEFAULT_DOC_STRIDE,
           max_query_tokens: int = DEFAULT_MAX_QUERY_TOKENS,
           stats: Counter | None = None) -> list[MRCFeature]:
    """Instances → features, one per context window, in instance order.

    `doc_stride`: tokens between the starts of consecutive windows (1 ≤ doc_stride ≤ the
    window's context budget), or None to keep only the first window (truncation).
    `stats` (optional) counts `features`, `windows_split` (instances with > 1 window),
    `contexts_truncated` / `answers_truncated` (doc_stride None: contexts cut, gold spans lost),
    `answers_unmappable` (a gold span covering no token) and `answers_inexact` (a gold span whose
    token span covers more characters than the answer, e.g. an answer inside a subword).
    """
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError("encode needs a Hugging Face *fast* tokenizer (offset mappings); got "
                        f"{type(tokenizer).__name__}")
    if max_query_tokens < 1 or (doc_stride is not None and doc_stride < 1) \
            or max_seq_len < SPECIAL_TOKENS + 2:
        raise ValueError(f"need max_query_tokens >= 1, doc_stride >= 1 (or None) and max_seq_len "
                         f">= {SPECIAL_TOKENS + 2}; got {max_query_tokens}, {doc_stride}, "
                         f"{max_seq_len}")
    stats = stats if stats is not None else Counter()
    queries = _tokenize_unique([i.query for i in instances], tokenizer, offsets=False)
    contexts = _tokenize_unique([i.context for i in instances], tokenizer, offsets=True)
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    out: list[MRCFeature] = []
    for inst in instances:
        q_ids = queries[inst.query][0][:max_query_tokens]
        c_ids, c_offsets = contexts[inst.context]
        budget = max_seq_len - len(q_ids) - SPECIAL_TOKENS
        if budget < 1 or (doc_stride is not None and doc_stride > budget):
            raise ValueError(f"doc_stride {doc_stride} must be at most the context window "
                             f"({budget} tokens with max_seq_len {max_seq_len} and a "
                             f"{len(q_ids)}-token query)")
        gold = _token_spans(inst, c_offsets, stats)
        context_start = len(q_ids) + 3
        windows = _windows(len(c_ids), budget, doc_stride)
        stats["windows_split"] += len(windows) > 1
        if windows[-1][1] < len(c_ids):
            stats["contexts_truncated"] += 1
            stats["answers_truncated"] += sum(e >= windows[-1][1] for _, e in gold)
        for w, (first, stop) in enumerate(windows):
            input_ids = np.array([cls, *q_ids, sep, sep, *c_ids[first:stop], sep], dtype=np.int32)
            offsets = np.full((len(input_ids), 2), -1, dtype=np.int32)
            offsets[context_start:context_start + stop - first] = c_offsets[first:stop]
            spans = [(s - first + context_start, e - first + context_start)
                     for s, e in gold if first <= s and e < stop]
            spans_arr = np.asarray(spans, dtype=np.int32).reshape(-1, 2)
            relevant = bool(spans) if inst.answers else inst.relevant
            out.append(MRCFeature(inst.id, w, input_ids, context_start,
                                  context_start + stop - first, offsets, spans_arr, relevant))
    stats["features"] += len(out)
    return out


def _tokenize_unique(texts: list[str], tokenizer, offsets: bool) -> dict[str, tuple]:
    """text → (ids [n], offsets [n, 2] int32 or None), each distinct text tokenized once."""
    unique = list(dict.fromkeys(texts))
    if not unique:
        return {}
    # verbose=False: long contexts are windowed here, the max-length warning does not apply
    enc = tokenizer(unique, add_special_tokens=False, return_offsets_mapping=offsets,
                    verbose=False)
    out = {}
    for k, text in enumerate(unique):
        ids = list(enc["input_ids"][k])
        offs = (np.asarray(enc["offset_mapping"][k], dtype=np.int32).reshape(-1, 2)
                if offsets else None)
        out[text] = (ids, offs)
    return out


def _windows(n_tokens: int, budget: int, stride: int | None) -> list[tuple[int, int]]:
    """[first, stop) context-token windows of ≤ budget tokens starting at 0, stride, 2·stride, …
    until one reaches the end of the context (PMR QA/mQA/data.py); stride None: the first window
    only. One (empty) window if n = 0."""
    windows, first = [], 0
    while True:
        stop = min(first + budget, n_tokens)
        windows.append((first, stop))
        if stop >= n_tokens or stride is None:
            return windows
        first += stride


def _token_spans(inst: MRCInstance, offsets: np.ndarray, stats: Counter) -> list[tuple[int, int]]:
    """Gold char spans → inclusive context-token spans: first token ending after the span start,
    last token starting before the span end (the rule data_prep.mrc uses for pretraining)."""
    spans = []
    for start, end in inst.answers:
        after = np.nonzero(offsets[:, 1] > start)[0]
        before = np.nonzero(offsets[:, 0] < end)[0]
        if not len(after) or not len(before) or before[-1] < after[0]:
            stats["answers_unmappable"] += 1
            continue
        first, last = int(after[0]), int(before[-1])
        covered = inst.context[offsets[first, 0]:offsets[last, 1]].strip()
        if covered != inst.context[start:end].strip():
            stats["answers_inexact"] += 1
        spans.append((first, last))
    return spans
