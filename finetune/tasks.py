"""Readers for the cross-lingual fine-tuning tasks: files on disk → typed records.

Every record keeps CHARACTER offsets into one original text, so that whatever a model predicts
maps back to the text it came from:

* `read_squad`  — SQuAD v1.1 JSON (XQuAD, MLQA, TyDiQA-GoldP) → `QAExample`s.
* `read_ner`    — XTREME `token\\tTAG` (PAN-X / WikiAnn, optional `xx:` token prefix) or CoNLL
  `token POS chunk TAG` with `-DOCSTART-`, tags IOB1 or IOB2 → `TaggedSentence`s.
* `read_absa`   — XABSA `token\\tT-POS|T-NEG|T-NEU|O\\tcategory` → `TaggedSentence`s.
* `read_pair`   — PAWS-X / XNLI TSV `sentence1\\tsentence2\\tlabel` → `PairExample`s.
* `mlqa_context_lang` — the context language of an MLQA file from its official name.

A tagged sentence's text is its tokens joined by single spaces (as the mPMR and XTREME code
build it); `token_char_spans[k]` is where token k sits in that text.

Malformed input raises `TaskFormatError("FILE:LINE: what is wrong")`. This module never imports
torch, transformers or DeepSpeed.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

NER_SCHEMES = ("auto", "iob1", "iob2")
ABSA_POLARITIES = ("POS", "NEG", "NEU")
TASKS = ("eqa", "ner", "absa", "pair")  # what finetune.run and finetune.evaluate take
PAIR_LABELS: dict[str, tuple[str, ...]] = {
    "pawsx": ("0", "1"),
    "xnli": ("entailment", "neutral", "contradiction"),
}
_NER_TAG = re.compile(r"^(?:O|([BI])-(\S+))$")
_LANG_PREFIX = re.compile(r"^([a-z]{2,3}(?:-[a-z]+)?):")  # XTREME panx tokens: "en:Paris"
_PAIR_HEADERS = {"label", "gold_label"}
# MLQA's own file names: {dev,test}-context-{c}-question-{q}.json (the answers are in language c)
_MLQA_NAME = re.compile(r"^(?:dev|test)-context-([a-z]{2})-question-([a-z]{2})\.json$")


class TaskFormatError(ValueError):
    """A task file that cannot be read; the message starts with `FILE:LINE:`."""


# ---------------------------------------------------------------------------- records

@dataclass(frozen=True)
class QAExample:
    """One extractive question; `answers` are (text, char_start) into `context`
    (`context[start:start + len(text)] == text` always holds). Empty for unanswerable ones."""

    id: str
    question: str
    context: str
    answers: tuple[tuple[str, int], ...]
    lang: str | None = None


@dataclass(frozen=True)
class LabeledSpan:
    """A labelled span of a tagged sentence: chars [start, end) of the text and the inclusive
    token range [token_start, token_end]."""

    start: int
    end: int
    label: str
    token_start: int
    token_end: int


@dataclass(frozen=True)
class TaggedSentence:
    """One sentence of a tagging task. `spans` hold entities (NER: PER/LOC/ORG/MISC…) or aspect
    terms (ABSA: POS/NEG/NEU) in order; `tags` are their IOB2 rendering (`B-LOC`, `I-POS`, `O`)."""

    index: int  # 0-based position in the file; the sentence id used by predictions
    tokens: tuple[str, ...]
    text: str  # " ".join(tokens)
    token_char_spans: tuple[tuple[int, int], ...]  # [start, end) of each token in `text`
    spans: tuple[LabeledSpan, ...]
    line_no: int  # first line of the sentence in its file

    @property
    def tags(self) -> list[str]:
        tags = ["O"] * len(self.tokens)
        for span in self.spans:
            tags[span.token_start] = f"B-{span.label}"
            for k in range(span.token_start + 1, span.token_end + 1):
                tags[k] = f"I-{span.label}"
        return tags


@dataclass(frozen=True)
class PairExample:
    """One sentence pair with its gold label (as written in the file: "0"/"1", "entailment"…)."""

    index: int  # 0-based position among the file's examples
    sentence1: str
    sentence2: str
    label: str
    line_no: int


# ---------------------------------------------------------------------------- SQuAD JSON

def read_squad(path: str | Path, lang: str | None = None) -> list[QAExample]:
    """SQuAD v1.1-format JSON → questions in file order.

    An `answer_start` that does not point at its text is repaired to the nearest exact occurrence
    of the text in the context (a warning says how many); with no occurrence it is an error.
    """
    path = Path(path)
    raw = _read_text(path)
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as err:
        raise TaskFormatError(f"{path}:{err.lineno}: invalid JSON: {err.msg}") from None
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, list):
        raise TaskFormatError(f"{path}:1: not SQuAD format: expected an object with a 'data' list")
    examples: list[QAExample] = []
    repaired = 0
    for a, article in enumerate(data):
        for p, paragraph in enumerate(_field(article, "paragraphs", list, path, raw, f"data[{a}]")):
            where = f"data[{a}].paragraphs[{p}]"
            context = _field(paragraph, "context", str, path, raw, where)
            for q, qa in enumerate(_field(paragraph, "qas", list, path, raw, where)):
                where_q = f"{where}.qas[{q}]"
                qid = str(_field(qa, "id", (str, int), path, raw, where_q))
                question = _field(qa, "question", str, path, raw, where_q, qid)
                answers = []
                for k, answer in enumerate(_field(qa, "answers", list, path, raw, where_q, qid)):
                    where_a = f"{where_q}.answers[{k}]"
                    text = _field(answer, "text", str, path, raw, where_a, qid)
                    start = _field(answer, "answer_start", int, path, raw, where_a, qid)
                    if context[start:start + len(text)] != text:
                        fixed = _nearest_occurrence(context, text, start)
                        if fixed is None:
                            raise TaskFormatError(
                                f"{path}:{_line_of(raw, qid)}: answer {text!r} of question {qid} "
                                f"({where_a}) does not occur in its context")
                        start, repaired = fixed, repaired + 1
                    answers.append((text, start))
                examples.append(QAExample(qid, question, context, tuple(answers), lang))
    if repaired:
        log.warning("%s: %d answer_start offsets did not match their text; moved each to the "
                    "nearest occurrence", path, repaired)
    return examples


def _field(obj, key: str, kind, path: Path, raw: str, where: str, qid: str | None = None):
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        names = " or ".join(t.__name__ for t in (kind if isinstance(kind, tuple) else (kind,)))
        about = f" (question {qid})" if qid else ""
        raise TaskFormatError(f"{path}:{_line_of(raw, qid)}: {where}{about}: missing or invalid "
                              f"'{key}' (expected {names})")
    return value


def _line_of(raw: str, qid: str | None) -> int | str:
    """Line of the question id in the raw JSON (json.load keeps no positions); '?' if unknown."""
    if qid is None:
        return "?"
    pos = raw.find(json.dumps(qid, ensure_ascii=False))
    if pos < 0:
        pos = raw.find(json.dumps(qid))
    return raw.count("\n", 0, pos) + 1 if pos >= 0 else "?"


def _nearest_occurrence(context: str, text: str, start: int) -> int | None:
    if not text:
        return None
    best = None
    pos = context.find(text)
    while pos >= 0:
        if best is None or abs(pos - start) < abs(best - start):
            best = pos
        pos = context.find(text, pos + 1)
    return best


def mlqa_context_lang(path: str | Path) -> str | None:
    """"de" for `…/test-context-de-question-en.json` (MLQA's naming; the answer language the
    official mlqa_evaluation_v1.py normalises for is the context's); None for other names."""
    found = _MLQA_NAME.match(Path(path).name)
    return found.group(1) if found else None


# ---------------------------------------------------------------------------- NER

def read_ner(path: str | Path, scheme: str = "auto") -> list[TaggedSentence]:
    """XTREME `token\\tTAG` or CoNLL `token POS chunk TAG` (blank line between sentences,
    `-DOCSTART-` lines skipped) → sentences with entity spans.

    Columns: a line with a tab is split on tabs, otherwise on whitespace; the token is the first
    column and the tag the last. Tokens prefixed `xx:` on every line (XTREME's panx files) lose
    the prefix. Entities are read like conlleval / seqeval's default mode, which is exact for
    IOB1 and IOB2 alike: B-X starts an entity, I-X continues an X entity or starts one after O or
    another type. `scheme="iob2"` additionally rejects an I-X that starts an entity.
    """
    if scheme not in NER_SCHEMES:
        raise ValueError(f"scheme must be one of {NER_SCHEMES}, got {scheme!r}")
    path = Path(path)
    sentences_raw = []
    for line_no, cols in _sentence_lines(path, docstart=True):
        if cols is None:
            sentences_raw.append((line_no, None, None))
            continue
        if len(cols) < 2:
            raise TaskFormatError(f"{path}:{line_no}: expected 'token<TAB>TAG' or "
                                  f"'token POS chunk TAG', got {len(cols)} column")
        sentences_raw.append((line_no, cols[0], cols[-1]))
    sentences_raw = _strip_lang_prefix(sentences_raw)
    out = []
    for start_line, rows in _group_sentences(sentences_raw):
        tokens = [token for _, token, _ in rows]
        labels = []
        for line_no, _, tag in rows:
            found = _NER_TAG.match(tag)
            if not found:
                raise TaskFormatError(f"{path}:{line_no}: bad tag {tag!r} (expected O, B-TYPE or "
                                      "I-TYPE)")
            labels.append((found.group(1) or "O", found.group(2), line_no))
        runs = _chunk(labels, path, strict_iob2=scheme == "iob2")
        out.append(_sentence(len(out), tokens, runs, start_line))
    return out


def _chunk(labels: list[tuple[str, str | None, int]], path: Path,
           strict_iob2: bool) -> list[tuple[str, int, int]]:
    """(prefix, type, line) per token → entities (type, first, last) the conlleval way."""
    runs: list[tuple[str, int, int]] = []
    current: list | None = None  # [type, first, last]
    for k, (prefix, kind, line_no) in enumerate(labels):
        if prefix == "O":
            current = None
            continue
        if prefix == "I" and current is not None and current[0] == kind:
            current[2] = k
            continue
        if prefix == "I" and strict_iob2:
            raise TaskFormatError(f"{path}:{line_no}: I-{kind} does not continue an entity, which "
                                  "IOB2 forbids (read the file with scheme='iob1' or 'auto')")
        current = [kind, k, k]
        runs.append(current)
    return [tuple(run) for run in runs]


def _strip_lang_prefix(rows: list) -> list:
    tokens = [token for _, token, _ in rows if token is not None]
    if not tokens:
        return rows
    found = _LANG_PREFIX.match(tokens[0])
    if not found or not all(t.startswith(found.group(0)) and len(t) > len(found.group(0))
                            for t in tokens):
        return rows
    cut = len(found.group(0))
    return [(n, token[cut:] if token is not None else None, tag) for n, token, tag in rows]


# ---------------------------------------------------------------------------- ABSA

def read_absa(path: str | Path) -> list[TaggedSentence]:
    """XABSA `token\\tT-POS|T-NEG|T-NEU|O[\\tcategory]` → sentences with aspect spans.

    An aspect is a maximal run of T-* tokens with the same polarity (POS, NEG or NEU).
    """
    path = Path(path)
    rows = []
    for line_no, cols in _sentence_lines(path, docstart=False, tabs_only=True):
        if cols is None:
            rows.append((line_no, None, None))
            continue
        if len(cols) < 2:
            raise TaskFormatError(f"{path}:{line_no}: expected 'token<TAB>T-POL|O<TAB>category', "
                                  f"got {len(cols)} column")
        rows.append((line_no, cols[0], cols[1]))
    out = []
    for start_line, sentence in _group_sentences(rows):
        runs: list[list] = []
        previous = None
        for k, (line_no, _, tag) in enumerate(sentence):
            if tag == "O":
                previous = None
                continue
            polarity = tag[2:] if tag.startswith("T-") else None
            if polarity not in ABSA_POLARITIES:
                raise TaskFormatError(f"{path}:{line_no}: bad tag {tag!r} (expected O, T-POS, "
                                      "T-NEG or T-NEU)")
            if polarity == previous:
                runs[-1][2] = k
            else:
                runs.append([polarity, k, k])
            previous = polarity
        tokens = [token for _, token, _ in sentence]
        out.append(_sentence(len(out), tokens, [tuple(r) for r in runs], start_line))
    return out


# ---------------------------------------------------------------------------- pairs

def read_pair(path: str | Path, task: str = "auto") -> list[PairExample]:
    """PAWS-X / XNLI TSV `sentence1\\tsentence2\\tlabel` (CRLF ok; a header line whose last column
    is `label` / `gold_label` is skipped). `task` checks the labels: "pawsx" (0/1), "xnli"
    (entailment/neutral/contradiction) or "auto" (whichever the first label belongs to)."""
    if task not in (*PAIR_LABELS, "auto"):
        raise ValueError(f"task must be one of {(*PAIR_LABELS, 'auto')}, got {task!r}")
    path = Path(path)
    out: list[PairExample] = []
    allowed: tuple[str, ...] | None = None if task == "auto" else PAIR_LABELS[task]
    for line_no, line in _lines(path):
        if not line.strip():
            continue
        cols = line.split("\t")
        if not out and cols[-1].strip() in _PAIR_HEADERS:
            continue
        if len(cols) != 3:
            raise TaskFormatError(f"{path}:{line_no}: expected 3 tab-separated columns "
                                  f"(sentence1, sentence2, label), got {len(cols)}")
        s1, s2, label = cols[0], cols[1], cols[2].strip()
        if allowed is None:
            allowed = next((labels for labels in PAIR_LABELS.values() if label in labels), None)
            if allowed is None:
                raise TaskFormatError(f"{path}:{line_no}: unknown label {label!r}; expected one "
                                      f"of {sorted(set().union(*PAIR_LABELS.values()))}")
        if label not in allowed:
            raise TaskFormatError(f"{path}:{line_no}: label {label!r} is not one of {allowed}")
        out.append(PairExample(len(out), s1, s2, label, line_no))
    return out


def pair_task_of(examples: list[PairExample]) -> str:
    """"pawsx" or "xnli" from the labels present."""
    labels = {e.label for e in examples}
    for task, allowed in PAIR_LABELS.items():
        if labels <= set(allowed):
            return task
    raise ValueError(f"labels {sorted(labels)} belong to no known pair task")


# ---------------------------------------------------------------------------- shared helpers

def _read_text(path: Path) -> str:
    if not path.is_file():
        raise FileNotFoundError(f"task file not found: {path}")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise TaskFormatError(f"{path}:{line}: not UTF-8 ({err.reason})") from None


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    for line_no, line in enumerate(_read_text(path).split("\n"), 1):
        yield line_no, line.rstrip("\r")


def _sentence_lines(path: Path, docstart: bool, tabs_only: bool = False
                    ) -> Iterator[tuple[int, list[str] | None]]:
    """Yields (line_no, columns) per token line and (line_no, None) per sentence boundary."""
    for line_no, line in _lines(path):
        if not line.strip():
            yield line_no, None
            continue
        if docstart and line.startswith("-DOCSTART-"):
            yield line_no, None
            continue
        yield line_no, line.split("\t") if tabs_only or "\t" in line else line.split()


def _group_sentences(rows) -> Iterator[tuple[int, list]]:
    """(line_no, token, tag) rows, token None at sentence boundaries → (first line, rows)."""
    current: list = []
    for row in rows:
        if row[1] is None:
            if current:
                yield current[0][0], current
            current = []
        else:
            current.append(row)
    if current:
        yield current[0][0], current


def _sentence(index: int, tokens: list[str], runs: list[tuple[str, int, int]],
              line_no: int) -> TaggedSentence:
    char_spans = []
    pos = 0
    for token in tokens:
        char_spans.append((pos, pos + len(token)))
        pos += len(token) + 1
    spans = tuple(LabeledSpan(char_spans[first][0], char_spans[last][1], label, first, last)
                  for label, first, last in runs)
    return TaggedSentence(index, tuple(tokens), " ".join(tokens), tuple(char_spans), spans,
                          line_no)
