"""The XLM-R baseline of the mPMR paper: the same tasks fine-tuned with stock `transformers` heads
instead of the MRC span extractor, read and scored exactly as the MRC path is.

* eqa  — `AutoModelForQuestionAnswering` (start / end logits per token). Question / context pairs
  are windowed by the fast tokenizer (`truncation="only_second"`, `return_overflowing_tokens`,
  `return_offsets_mapping`); a window's targets are the token positions of the first gold answer,
  or the [CLS] index 0 when the answer is not wholly inside it (HF run_qa). Decoding is run_qa's
  SQuAD v1.1 post-processing: the 20 best starts × 20 best ends of every window, end ≥ start,
  at most `max_answer_tokens` tokens (30, the XTREME / HF run_squad default, when unset), best
  start + end logit over all windows → `{question_id: answer_text}` ("" when no window has a
  valid span; run_qa writes the string "empty" there). [CLS] is never an answer.
* ner / absa — `AutoModelForTokenClassification` over IOB2 tags (`iob2_names`): the tag of each
  word sits on its first subword, the other subwords get -100 (XTREME). A sentence longer than
  the model input is split into windows like EQA contexts; each word is read from the window
  where its first subword has the most context on both sides (BERT's "max context"). Predicted
  tags → spans the conlleval way (`spans_from_tags`) → `{sentence_index: [[char_start,
  char_end, label, score], …]}`, chars of the tokens joined by single spaces, score = mean
  probability of the span's tags.
* pair — `AutoModelForSequenceClassification` on (sentence1, sentence2), truncated
  `longest_first` to max_seq_len (XTREME) → `{pair_index: label}`; labels
  `finetune.tasks.PAIR_LABELS[pair_task]`.

`settings["doc_stride"]` is the STEP between the starts of consecutive windows, in context tokens
(the reference's meaning, as in BERT's run_squad and the legacy HF
`squad_convert_examples_to_features` that XTREME runs). HF tokenizers take the OVERLAP instead,
so each question is windowed with `stride = window − doc_stride`, where window = max_seq_len −
question tokens − 4 special tokens;
questions are cut to `max_query_tokens` first and grouped by length so one tokenizer call serves a
group. Tagging windows hold max_seq_len − 2 subwords and step by doc_stride as well.
doc_stride None cuts every input after its first window (what `finetune.run` does for
sentence-level tasks, as the reference does); words beyond it are predicted "O".

Training is `finetune.train_loop.train`, the loop of the MRC form too: AdamW (no decay on biases
/ LayerNorm), linear warmup and decay, clipping at 1.0, a seeded shuffle per epoch, padding to
the longest sequence of each micro-batch, the encoder under `train_loop.autocast` and the loss in
fp32 from the head's logits (the same cross-entropies HF computes). With grad_accum > 1 the step
loss is the full-batch loss (micro-batch sums divided by the step's window count; tagging:
labelled-token count). Deterministic on CPU for a seed. Never imports DeepSpeed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from finetune.tasks import ABSA_POLARITIES, PAIR_LABELS, TASKS, pair_task_of
from finetune.train_loop import TrainOptions, infer, max_positions, train

DEFAULT_MAX_ANSWER_TOKENS = 30  # XTREME / HF run_squad --max_answer_length
N_BEST = 20  # HF run_qa --n_best_size
EVAL_BATCH_SIZE = 64
IGNORE = -100  # label of subwords that carry no tag (torch cross_entropy's ignore_index)
_HEADS = {"eqa": "AutoModelForQuestionAnswering", "ner": "AutoModelForTokenClassification",
          "absa": "AutoModelForTokenClassification",
          "pair": "AutoModelForSequenceClassification"}
_MPMR_ONLY = ("model_type", "architectures", "auto_map", "transformers_version",
              "extractor_size", "extractor_dropout")


# ---------------------------------------------------------------------------- labels

def iob2_names(span_labels: Sequence[str]) -> list[str]:
    """Classifier labels of a tagging task: ["O", "B-X", "I-X", …] for X in `span_labels`."""
    return ["O"] + [f"{prefix}-{label}" for label in span_labels for prefix in ("B", "I")]


def label_names(task: str, train_records: list, pair_task: str | None = None) -> list[str] | None:
    """The head's labels in id order: None for eqa; IOB2 tags of the span labels seen in training
    (ner, sorted) or of POS/NEG/NEU (absa); `PAIR_LABELS[pair_task]` (pair; read from the
    records' labels when None)."""
    _check_task(task)
    if task == "eqa":
        return None
    if task == "ner":
        return iob2_names(sorted({span.label for s in train_records for span in s.spans}))
    if task == "absa":
        return iob2_names(ABSA_POLARITIES)
    return list(PAIR_LABELS[pair_task or pair_task_of(train_records)])


def spans_from_tags(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """IOB tags → (label, first word, last word) the conlleval / seqeval-default way: B-X starts
    an entity, I-X continues an X entity or starts one after O or another label."""
    spans: list[list] = []
    current: list | None = None
    for k, tag in enumerate(tags):
        prefix, _, label = tag.partition("-")
        if prefix not in ("B", "I") or not label:
            current = None
        elif prefix == "I" and current is not None and current[0] == label:
            current[2] = k
        else:
            current = [label, k, k]
            spans.append(current)
    return [tuple(span) for span in spans]


# ---------------------------------------------------------------------------- model

def load_standard_model(task: str, model_path, *, num_labels: int | None,
                        label_names: list[str] | None, seed: int,
                        dropout: float | None = None):
    """(model, tokenizer) with a fresh stock head (seeded by `seed`) on the encoder in
    `model_path`, on CPU.

    `model_path`: a plain XLM-R folder (model_type "xlm-roberta", e.g. an official download or a
    folder this module saved — then a head of the same shape loads too), or a folder from
    `pretrain.convert_to_hf` (model_type "xpretrain-mpmr": its `roberta.*` weights load into the
    head model's encoder, `extractor.*` is left out). `label_names` (see `label_names()`) are the
    classifier's labels in id order; eqa takes none. `num_labels`, if given, must match.
    `dropout` (None: the folder's) sets `hidden_dropout_prob`, which the stock heads' classifier
    dropout follows too (as `finetune.run --dropout` sets it for the MRC path).
    """
    _check_task(task)
    import transformers

    path = Path(model_path)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"--model {path}: no config.json — pass an xlm-roberta folder or "
                                "one written by `python -m pretrain.convert_to_hf`")
    labels = _check_labels(task, num_labels, label_names)
    raw = json.loads(config_file.read_text(encoding="utf-8"))
    from pretrain.hf_mpmr import MODEL_TYPE

    if raw.get("model_type") == MODEL_TYPE:
        known = transformers.XLMRobertaConfig().to_dict()
        config = transformers.XLMRobertaConfig(
            **{k: v for k, v in raw.items() if k in known and k not in _MPMR_ONLY})
    elif raw.get("model_type") == "xlm-roberta":
        config = transformers.XLMRobertaConfig.from_pretrained(path)
    else:
        raise ValueError(f"--model {path}: model_type {raw.get('model_type')!r} is neither "
                         f"{MODEL_TYPE!r} nor 'xlm-roberta'")
    if dropout is not None:
        config.hidden_dropout_prob = dropout
    if labels is not None:
        config.num_labels = len(labels)
        config.id2label = dict(enumerate(labels))
        config.label2id = {label: i for i, label in enumerate(labels)}
    transformers.set_seed(seed)  # the fresh head's initialisation
    head = getattr(transformers, _HEADS[task])
    model = head.from_pretrained(path, config=config)
    from data_prep.tokenizer import load_tokenizer

    return model, load_tokenizer(path)


def _check_labels(task: str, num_labels: int | None, names: list[str] | None) -> list[str] | None:
    if task == "eqa":
        if names is not None or num_labels not in (None, 2):
            raise ValueError("eqa has a start/end head: pass num_labels=None, label_names=None")
        return None
    if names is None:
        raise ValueError(f"task {task}: pass label_names (finetune.standard.label_names(task, "
                         "train_records) gives them)")
    if len(set(names)) != len(names) or (num_labels is not None and num_labels != len(names)):
        raise ValueError(f"label_names {names} must be distinct and as many as num_labels "
                         f"({num_labels})")
    if task in ("ner", "absa") and "O" not in names:
        raise ValueError(f"tagging labels are IOB2 tags including 'O' (iob2_names), got {names}")
    return list(names)


# ---------------------------------------------------------------------------- encoding

@dataclass
class Window:
    """One model input `<s> … </s>` of one record and how its outputs map back to the record."""

    record: int  # position of its record in the list given to `encode`
    input_ids: list[int]  # [T], special tokens included
    target: object = None
    """eqa (start, end) token positions, (0, 0) = [CLS]; ner / absa [T] tag ids (IGNORE on all
    but first subwords); pair the label id; None when encoded without targets."""
    offsets: list | None = None
    """eqa: [T] (char_start, char_end) of each context token in the context, None elsewhere."""
    words: list[tuple[int, int, int]] | None = None
    """ner / absa: (position, word index, context) of each word whose first subword is in this
    window; context = subwords between it and the nearer window edge."""


def encode(task: str, records: list, tokenizer, settings: dict, *, with_targets: bool = False,
           label2id: dict[str, int] | None = None) -> list[Window]:
    """Records → windows in record order (settings: max_seq_len, doc_stride, max_query_tokens).
    `with_targets` adds the training targets; tagging and pair tasks then need the head's
    `label2id`."""
    _check_task(task)
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError(f"need a Hugging Face fast tokenizer (offset mappings), got "
                        f"{type(tokenizer).__name__}")
    max_seq_len = int(settings["max_seq_len"])
    step = None if settings.get("doc_stride") is None else int(settings["doc_stride"])
    if with_targets and task != "eqa" and label2id is None:
        raise ValueError(f"task {task}: targets need the head's label2id")
    label2id = label2id if with_targets else None
    if step is not None and step < 1:
        raise ValueError(f"doc_stride (step between windows) must be >= 1 or None (cut at "
                         f"max_seq_len), got {step}")
    if task == "eqa":
        return _encode_eqa(records, tokenizer, max_seq_len, step,
                           int(settings["max_query_tokens"]), with_targets)
    if task == "pair":
        return _encode_pair(records, tokenizer, max_seq_len, label2id)
    return _encode_tagging(records, tokenizer, max_seq_len, step, label2id)


def _encode_eqa(records: list, tokenizer, max_seq_len: int, step: int | None,
                max_query_tokens: int,
                with_targets: bool) -> list[Window]:
    questions = [_cut_question(r.question.lstrip(), tokenizer, max_query_tokens) for r in records]
    lengths = [len(ids) for ids in
               tokenizer(questions, add_special_tokens=False, verbose=False)["input_ids"]]
    special = tokenizer.num_special_tokens_to_add(pair=True)
    by_record: dict[int, list[Window]] = {}
    for q_len in sorted(set(lengths)):
        group = [k for k, n in enumerate(lengths) if n == q_len]
        window = max_seq_len - q_len - special
        if window < 1 or (step is not None and step > window):
            raise ValueError(f"a {q_len}-token question leaves a {window}-token context window "
                             f"in max_seq_len {max_seq_len}; doc_stride {step} must fit in it "
                             "(else context tokens are skipped): lower doc_stride or "
                             "max_query_tokens")
        enc = tokenizer([questions[k] for k in group], [records[k].context for k in group],
                        truncation="only_second", max_length=max_seq_len,
                        stride=0 if step is None else window - step,
                        return_overflowing_tokens=True, return_offsets_mapping=True)
        for w, ids in enumerate(enc["input_ids"]):
            k = group[enc["overflow_to_sample_mapping"][w]]
            if step is None and k in by_record:
                continue  # doc_stride None: the context is cut after the first window
            sequence = enc.sequence_ids(w)
            offsets = [tuple(o) if s == 1 else None
                       for o, s in zip(enc["offset_mapping"][w], sequence)]
            target = _answer_positions(records[k], offsets) if with_targets else None
            by_record.setdefault(k, []).append(Window(k, list(ids), target, offsets))
    return [w for k in sorted(by_record) for w in by_record[k]]


def _cut_question(question: str, tokenizer, max_query_tokens: int) -> str:
    """The question's text up to its `max_query_tokens`-th token (legacy run_squad cuts the ids;
    re-tokenizing a cut text can differ, so cut until it fits)."""
    while True:
        offsets = tokenizer(question, add_special_tokens=False,
                            return_offsets_mapping=True)["offset_mapping"]
        if len(offsets) <= max_query_tokens:
            return question
        start, end = offsets[max_query_tokens - 1]
        question = question[:end if end < len(question) else start]


def _answer_positions(record, offsets: list) -> tuple[int, int]:
    """Inclusive token positions of the first gold answer, (0, 0) when it is not in the window:
    start = last context token starting at or before the answer, end = first one ending at or
    after it (run_qa's rule)."""
    context = [j for j, o in enumerate(offsets) if o is not None]
    if not record.answers or not context:
        return 0, 0
    text, start_char = record.answers[0]
    end_char = start_char + len(text)
    if offsets[context[0]][0] > start_char or offsets[context[-1]][1] < end_char:
        return 0, 0
    start = max(j for j in context if offsets[j][0] <= start_char)
    end = min(j for j in context if offsets[j][1] >= end_char)
    return start, max(start, end)


def _encode_tagging(records: list, tokenizer, max_seq_len: int, step: int | None,
                    label2id: dict[str, int] | None) -> list[Window]:
    # Windows are cut from the whole sentence's subwords (not by return_overflowing_tokens) so
    # that a word's true first subword is known even when a window starts inside the word.
    window = max_seq_len - 2  # <s> … </s>
    if step is not None and step > window:
        raise ValueError(f"doc_stride {step} exceeds the {window}-subword window of max_seq_len "
                         f"{max_seq_len}; lower doc_stride")
    enc = tokenizer([list(r.tokens) for r in records], is_split_into_words=True,
                    add_special_tokens=False, verbose=False)
    out = []
    for k, record in enumerate(records):
        ids, word_ids = enc["input_ids"][k], enc.word_ids(k)
        first_subword = {}  # word index → subword index
        for j, word in enumerate(word_ids):
            first_subword.setdefault(word, j)
        tag_ids = None
        if label2id is not None:
            unknown = set(record.tags) - set(label2id)
            if unknown:
                raise ValueError(f"sentence {record.index} (line {record.line_no}) has tags "
                                 f"{sorted(unknown)} the head does not know ({sorted(label2id)})")
            tag_ids = [label2id[tag] for tag in record.tags]
        for first, stop in _windows(len(ids), window, step):
            input_ids = [tokenizer.cls_token_id, *ids[first:stop], tokenizer.sep_token_id]
            words = [(j - first + 1, word, min(j - first, stop - 1 - j))
                     for word, j in first_subword.items() if first <= j < stop]
            target = None
            if tag_ids is not None:
                target = [IGNORE] * len(input_ids)
                for position, word, _ in words:
                    target[position] = tag_ids[word]
            out.append(Window(k, input_ids, target, None, words))
    return out


def _windows(n_tokens: int, window: int, step: int | None) -> list[tuple[int, int]]:
    """[first, stop) subword windows of ≤ `window` starting every `step`; the last one reaches the
    end (step None: the first window only). One (empty) window when n = 0."""
    if step is None:
        return [(0, min(window, n_tokens))]
    spans, first = [], 0
    while True:
        stop = min(first + window, n_tokens)
        spans.append((first, stop))
        if stop >= n_tokens:
            return spans
        first += step


def _encode_pair(records: list, tokenizer, max_seq_len: int,
                 label2id: dict[str, int] | None) -> list[Window]:
    enc = tokenizer([r.sentence1 for r in records], [r.sentence2 for r in records],
                    truncation="longest_first", max_length=max_seq_len)
    out = []
    for k, (record, ids) in enumerate(zip(records, enc["input_ids"])):
        target = None
        if label2id is not None:
            if record.label not in label2id:
                raise ValueError(f"pair {record.index} (line {record.line_no}): label "
                                 f"{record.label!r} is not one of the head's {sorted(label2id)}")
            target = label2id[record.label]
        out.append(Window(k, list(ids), target))
    return out


# ---------------------------------------------------------------------------- training

def fine_tune(task: str, model, tokenizer, train_records: list, settings: dict, *,
              pair_task: str | None, device, precision: str,
              log: Callable[[dict], None] | None = None,
              stats: Counter | None = None) -> list[dict]:
    """Fine-tune `model` (from `load_standard_model`) in place on `train_records` with
    `finetune.train_loop.train`; returns the logged records `{"step", "epoch", "loss", "lr",
    "seconds"}` (loss = mean over the optimizer steps since the previous record; always the first
    and the last step). `settings`: lr, epochs (fractions allowed), batch_size (windows per
    optimizer step), grad_accum, max_seq_len, max_query_tokens, doc_stride, warmup_ratio,
    weight_decay, seed, log_every. `stats` (optional) counts the training `windows`."""
    device = torch.device(device)
    windows = encode(task, train_records, tokenizer, _checked(task, model, settings),
                     with_targets=True, label2id=_label2id(task, model, pair_task))
    if not windows:
        raise ValueError("no training records")
    if stats is not None:
        stats["windows"] += len(windows)
    options = TrainOptions.from_settings(settings)
    torch.manual_seed(settings["seed"])  # dropout
    pad_id = tokenizer.pad_token_id
    return train(model, windows, options, collate_fn=lambda chunk: collate(task, chunk, pad_id),
                 loss_fn=lambda output, batch: loss_sum(task, output, batch),
                 units_fn=lambda chunk: _loss_units(task, chunk), reduction="sum",
                 device=device, precision=precision, log=log)


def collate(task: str, windows: Sequence[Window], pad_id: int) -> dict[str, torch.Tensor]:
    """Windows → input_ids / attention_mask [B, T] (T = longest window) and, when the windows
    carry targets, start_positions / end_positions [B] (eqa), labels [B, T] (tagging, IGNORE
    padded) or labels [B] (pair)."""
    length = max(len(w.input_ids) for w in windows)
    input_ids = torch.full((len(windows), length), pad_id, dtype=torch.long)  # [B, T]
    attention_mask = torch.zeros((len(windows), length), dtype=torch.long)  # [B, T]
    for b, w in enumerate(windows):
        input_ids[b, :len(w.input_ids)] = torch.tensor(w.input_ids)
        attention_mask[b, :len(w.input_ids)] = 1
    batch = {"input_ids": input_ids, "attention_mask": attention_mask}
    if windows[0].target is None:
        return batch
    if task == "eqa":
        positions = torch.tensor([w.target for w in windows], dtype=torch.long)  # [B, 2]
        batch["start_positions"], batch["end_positions"] = positions[:, 0], positions[:, 1]
    elif task == "pair":
        batch["labels"] = torch.tensor([w.target for w in windows], dtype=torch.long)  # [B]
    else:
        labels = torch.full((len(windows), length), IGNORE, dtype=torch.long)  # [B, T]
        for b, w in enumerate(windows):
            labels[b, :len(w.target)] = torch.tensor(w.target)
        batch["labels"] = labels
    return batch


def loss_sum(task: str, output, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum of the per-unit cross-entropies HF's heads average, in fp32 (units: windows; tagging:
    labelled subwords). eqa: (CE(start) + CE(end)) / 2 per window."""
    if task == "eqa":
        start = F.cross_entropy(output.start_logits.float(), batch["start_positions"],
                                reduction="sum")
        end = F.cross_entropy(output.end_logits.float(), batch["end_positions"], reduction="sum")
        return (start + end) / 2
    logits = output.logits.float()  # [B, C] or [B, T, C]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch["labels"].reshape(-1),
                           ignore_index=IGNORE, reduction="sum")


def _loss_units(task: str, windows: Sequence[Window]) -> int:
    if task in ("ner", "absa"):
        return sum(sum(t != IGNORE for t in w.target) for w in windows)
    return len(windows)


# ---------------------------------------------------------------------------- inference

def predict(task: str, model, tokenizer, records: list, settings: dict, *,
            pair_task: str | None, device, precision: str) -> dict:
    """Predictions for `records` in `finetune.evaluate`'s format (module docstring); every record
    gets a key. Gold annotations in the records are never read."""
    if not records:
        return {}
    device = torch.device(device)
    id2label = None
    if task != "eqa":
        _label2id(task, model, pair_task)  # the head fits the task
        id2label = {int(i): label for i, label in model.config.id2label.items()}
    windows = encode(task, records, tokenizer, _checked(task, model, settings))
    outputs = window_logits(task, model, windows, pad_id=tokenizer.pad_token_id, device=device,
                            precision=precision)
    max_answer = settings.get("max_answer_tokens") or DEFAULT_MAX_ANSWER_TOKENS
    return decode(task, records, windows, outputs, id2label=id2label,
                  max_answer_tokens=max_answer)


def window_logits(task: str, model, windows: Sequence[Window], *, pad_id: int, device,
                  precision: str = "fp32", batch_size: int = EVAL_BATCH_SIZE) -> list[np.ndarray]:
    """The head's float32 logits per window, in input order: eqa [T, 2] (start, end), tagging
    [T, C], pair [C] (T = len(window.input_ids)). Windows are batched by length."""
    def read(output, chunk: Sequence[Window]) -> list[np.ndarray]:
        if task == "eqa":
            logits = torch.stack([output.start_logits, output.end_logits], dim=-1)  # [B, T, 2]
        else:
            logits = output.logits  # [B, T, C] or [B, C]
        logits = logits.float().cpu().numpy()
        return [logits[row, :len(w.input_ids)] if logits.ndim == 3 else logits[row]
                for row, w in enumerate(chunk)]

    return infer(model, windows, device=torch.device(device), precision=precision,
                 batch_size=batch_size, read_fn=read,
                 collate_fn=lambda chunk: collate(  # without targets
                     task, [Window(w.record, w.input_ids) for w in chunk], pad_id))


def decode(task: str, records: list, windows: Sequence[Window], logits: Sequence[np.ndarray], *,
           id2label: dict[int, str] | None = None,
           max_answer_tokens: int = DEFAULT_MAX_ANSWER_TOKENS) -> dict:
    """Window logits (`window_logits`' shapes) → predictions keyed by question id / record index
    as strings; `id2label` names the classifier's outputs (tagging and pair)."""
    if len(windows) != len(logits):
        raise ValueError(f"{len(windows)} windows but {len(logits)} logit arrays")
    if task == "eqa":
        return _decode_eqa(records, windows, logits, max_answer_tokens)
    if task == "pair":
        return {str(records[w.record].index): id2label[int(np.argmax(row))]
                for w, row in zip(windows, logits)}
    return _decode_tagging(records, windows, logits, id2label)


def _decode_eqa(records: list, windows: Sequence[Window], logits: Sequence[np.ndarray],
                max_answer_tokens: int) -> dict[str, str]:
    best: dict[int, tuple[float, int, int]] = {}  # record → (score, char start, char end)
    for window, row in zip(windows, logits):
        start_logits, end_logits = row[:, 0], row[:, 1]
        offsets = window.offsets
        best_ends = np.argsort(end_logits)[-1:-N_BEST - 1:-1]  # run_qa's order
        for s in np.argsort(start_logits)[-1:-N_BEST - 1:-1]:
            for e in best_ends:
                if offsets[s] is None or offsets[e] is None:
                    continue
                if e < s or e - s + 1 > max_answer_tokens:
                    continue
                score = float(start_logits[s] + end_logits[e])
                if window.record not in best or score > best[window.record][0]:
                    best[window.record] = (score, offsets[s][0], offsets[e][1])
    out = {}
    for k, record in enumerate(records):
        _, start, end = best.get(k, (0.0, 0, 0))
        out[record.id] = record.context[start:end].strip()
    return out


def _decode_tagging(records: list, windows: Sequence[Window], logits: Sequence[np.ndarray],
                    id2label: dict[int, str]) -> dict[str, list[list]]:
    chosen: dict[tuple[int, int], tuple[int, np.ndarray]] = {}  # (record, word) → (context, p)
    for window, row in zip(windows, logits):
        probs = torch.softmax(torch.from_numpy(row), dim=-1).numpy()  # [T, C]
        for position, word, context in window.words:
            key = (window.record, word)
            if key not in chosen or context > chosen[key][0]:
                chosen[key] = (context, probs[position])
    out = {}
    for k, record in enumerate(records):
        tags, confidence = [], []
        for word in range(len(record.tokens)):
            probs = chosen.get((k, word), (0, None))[1]
            best = 0 if probs is None else int(np.argmax(probs))
            tags.append(id2label[best] if probs is not None else "O")
            confidence.append(0.0 if probs is None else float(probs[best]))
        out[str(record.index)] = [
            [record.token_char_spans[first][0], record.token_char_spans[last][1], label,
             float(np.mean(confidence[first:last + 1]))]
            for label, first, last in spans_from_tags(tags)]
    return out


# ---------------------------------------------------------------------------- checks

def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")


def _checked(task: str, model, settings: dict) -> dict:
    _check_task(task)
    limit = max_positions(model)
    if settings["max_seq_len"] > limit:
        raise ValueError(f"max_seq_len {settings['max_seq_len']} exceeds the model's {limit} "
                         "positions; lower it (finetune.run clamps it with a warning)")
    return settings


def _label2id(task: str, model, pair_task: str | None) -> dict[str, int] | None:
    """The head's label → id (None for eqa). Raises when the head's labels do not fit the
    task."""
    if task == "eqa":
        return None
    label2id = {label: int(i) for i, label in model.config.id2label.items()}
    if task == "pair" and pair_task is not None and set(label2id) != set(PAIR_LABELS[pair_task]):
        raise ValueError(f"the head's labels {sorted(label2id)} are not {pair_task}'s "
                         f"{list(PAIR_LABELS[pair_task])}")
    if task in ("ner", "absa") and "O" not in label2id:
        raise ValueError(f"the head's labels {sorted(label2id)} are not IOB2 tags; load the "
                         "model with label_names=standard.label_names(task, train_records)")
    return label2id
