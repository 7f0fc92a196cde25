"""Prompt-based (PET) fine-tuning of a GLM folder on XNLI and PAWS-X (spec mGLM.md A4.1-A4.3), and
the GLM plumbing `finetune.glm_qa` shares: `python -m finetune.run --task pair --model GLM_DIR …`
(a folder whose config.json says `model_type: "xpretrain-glm"` picks `--form glm` by itself).

* Pattern (A4.3): XNLI pattern 4, PAWS-X pattern 0, the reference's parts verbatim (the typo
  "followling" included; M:tasks/superglue/pvp.py:1415, 1451-1453). Each part is tokenized on its
  own, as the reference encodes parts (M:tasks/superglue/pvp.py encode_input), and sentence b
  loses its trailing ASCII punctuation (`rstrip(string.punctuation)`, then XNLI strips spaces —
  in that order, as the reference does).
* Layout (A4.1, M:tasks/data_utils.py build_input_from_ids): `[CLS] parts_a parts_b [eos]`,
  sep = its length, then `[sop]` at position = the index of `[MASK]`, block position 1. Multi-token
  candidates append `answer[:-1]` (answer = verbalizer tokens + `[eop]`), positions all the mask's,
  block positions 2…len(answer); targets = the answer tokens. Padding (pad = eos id, position 0)
  sits after Part B, so no real token attends to it (A1.6).
* Truncation (A4.1, M:tasks/superglue/pvp.py:343-361): one token at a time from the end of the
  last non-empty shortenable part of parts_a or parts_b, whichever has more shortenable tokens
  (ties: parts_b), until `[CLS] + parts + [eos] + [sop]` (multi-token: + the answer instead of
  [sop]) fits max_seq_len. XNLI pattern 4 keeps both sentences in parts_a, so its hypothesis is
  cut (to nothing if need be) before the premise — the code's behaviour, which the spec's
  "longest shortenable part" summarises loosely; PAWS-X balances b (parts_a) against a (parts_b).
* Scoring (A4.2): single token — the logits at the `[sop]` slot gathered at the label words'
  ids, cross-entropy over them (softmax restricted to the verbalizers,
  M:model/downstream.py:120-157); multi-token — one sequence per candidate, log-softmax over the
  vocabulary, the answer tokens' log-probs summed (`[eop]` included), cross-entropy over the
  candidates (M:model/downstream.py:8-59).
* Verbalizers: English (the reference's) everywhere by default; `--verbalizers eval` uses
  `LANG_VERBALIZERS` for the --eval language where the table has it. Those per-language words are
  OUR addition (the reference only has an unaligned, commented-out PAWS-X list,
  M:tasks/superglue/pvp.py:1433-1434); most are several pieces, so they need `--scoring multi`.

Training runs `finetune.train_loop.train` (AdamW, linear schedule, clipping, grad-accum) with the
GLM forward in the loss (`LossSideForward`: the loop passes only input_ids / attention_mask, GLM
needs position_ids and sep). Never imports DeepSpeed.
"""

from __future__ import annotations

import json
import shutil
import string
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from finetune.forms import note
from pretrain.glm_blank import GlmIds

IGNORE = -100
EVAL_BATCH_SIZE = 32
SCORINGS = ("single", "multi")
VERBALIZER_MODES = ("en", "eval")
# Labels in the reference's class order (M:tasks/superglue/dataset.py:1396-1397 for XNLI;
# PAWS-X 0, 1: M:tasks/superglue/pvp.py:1431-1437) and its verbalizers (pvp.py:1381-1386,
# 1435-1436).
LABELS = {"xnli": ("neutral", "entailment", "contradiction"), "pawsx": ("0", "1")}
VERBALIZERS = {"xnli": {"neutral": " Maybe", "entailment": " True", "contradiction": " False"},
               "pawsx": {"0": " No", "1": " Yes"}}
# OUR per-language verbalizers (not the reference's): the English words translated.
LANG_VERBALIZERS = {
    "xnli": {
        "de": {"neutral": " Vielleicht", "entailment": " Wahr", "contradiction": " Falsch"},
        "es": {"neutral": " Quizás", "entailment": " Verdadero", "contradiction": " Falso"},
        "fr": {"neutral": " Peut-être", "entailment": " Vrai", "contradiction": " Faux"},
        "zh": {"neutral": " 也许", "entailment": " 正确", "contradiction": " 错误"},
    },
    "pawsx": {
        "de": {"0": " Nein", "1": " Ja"}, "es": {"0": " No", "1": " Sí"},
        "fr": {"0": " Non", "1": " Oui"}, "ja": {"0": " いいえ", "1": " はい"},
        "ko": {"0": " 아니요", "1": " 예"}, "zh": {"0": " 否", "1": " 是"},
    },
}
PATTERNS = {"xnli": 4, "pawsx": 0}  # M:config_tasks/task_xnli.sh, task_pawsx.sh
# M:scripts/ds_finetune_superglue.sh + M:config_tasks/config_blocklm_large.json (spec A4.3): lr 1e-5
# and weight decay 0 (the JSON overrides the task file), warmup 0, linear decay, seq 256, 10 (XNLI)
# / 20 (PAWS-X) epochs, micro-batch 32 × 8 GPUs, gradient clipping 1000, fp32. Dropout 0.1 is the
# model config's; seed 42 is ours.
_PET_COMMON = {"lr": 1e-5, "batch_size": 32 * 8, "max_seq_len": 256, "warmup_ratio": 0.0,
               "weight_decay": 0.0, "max_grad_norm": 1000.0, "seed": 42, "dropout": 0.1,
               "doc_stride": None, "max_query_tokens": None}
DEFAULTS = {"xnli": {**_PET_COMMON, "epochs": 10.0}, "pawsx": {**_PET_COMMON, "epochs": 20.0}}


# ---------------------------------------------------------------------------- sequences

@dataclass(frozen=True)
class GlmSequence:
    """One model input: tokens, 2D positions (A1.7), sep = |Part A| (A1.6) and per-token targets
    (IGNORE where there is no loss). `score_index` is the `[sop]` slot."""

    input_ids: list[int]  # [S]
    positions: list[int]  # [S] row 0
    block_positions: list[int]  # [S] row 1
    sep: int
    targets: list[int]  # [S]
    score_index: int


def blank_sequence(part_a: list[int], mask_index: int, answer: list[int] | None,
                   ids: GlmIds) -> GlmSequence:
    """`part_a` (already `[CLS] … [eos]` or a QA source) + `[sop]` (+ answer[:-1]) laid out as
    A4.1: Part A positions 0…, block 0; Part B position = `mask_index`, block 1, 2, …; targets
    the answer tokens (answer None: single-token slot, no target)."""
    sep = len(part_a)
    part_b = [ids.sop] + (answer[:-1] if answer else [])
    targets = [IGNORE] * sep + (list(answer) if answer else [IGNORE])
    return GlmSequence(input_ids=list(part_a) + part_b,
                       positions=list(range(sep)) + [mask_index] * len(part_b),
                       block_positions=[0] * sep + list(range(1, len(part_b) + 1)),
                       sep=sep, targets=targets, score_index=sep)


def collate_sequences(sequences: Sequence[GlmSequence], pad_id: int) -> dict[str, Tensor]:
    """input_ids [N, S] (pad = eos id, right), position_ids [N, 2, S] (0 on padding), sep [N],
    labels [N, S] (IGNORE on padding), score_index [N], attention_mask [N, S] (1 = real token;
    only `train_loop` reads it — the model's attention comes from sep, and padding after Part B
    is invisible to every real token)."""
    width = max(len(s.input_ids) for s in sequences)
    n = len(sequences)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    position_ids = torch.zeros((n, 2, width), dtype=torch.long)
    labels = torch.full((n, width), IGNORE, dtype=torch.long)
    attention_mask = torch.zeros((n, width), dtype=torch.long)
    for row, s in enumerate(sequences):
        length = len(s.input_ids)
        input_ids[row, :length] = torch.tensor(s.input_ids)
        position_ids[row, 0, :length] = torch.tensor(s.positions)
        position_ids[row, 1, :length] = torch.tensor(s.block_positions)
        labels[row, :length] = torch.tensor(s.targets)
        attention_mask[row, :length] = 1
    return {"input_ids": input_ids, "position_ids": position_ids,
            "sep": torch.tensor([s.sep for s in sequences]), "labels": labels,
            "score_index": torch.tensor([s.score_index for s in sequences]),
            "attention_mask": attention_mask}


class LossSideForward(nn.Module):
    """What `train_loop.train` calls as the model. The loop passes only input_ids and
    attention_mask; the GLM forward needs position_ids and sep, so the loss runs it (under the
    same autocast) and this forward does nothing."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> None:
        return None


def glm_logits(model, batch: dict[str, Tensor], device, precision: str) -> Tensor:
    """logits [N, S, V] fp32 of a `collate_sequences` batch."""
    from finetune.train_loop import autocast

    with autocast(torch.device(device), precision):
        out = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                    sep=batch["sep"])
    return out.logits.float()


# ---------------------------------------------------------------------------- model folder

def is_glm_folder(path: str | Path) -> bool:
    """True when `path/config.json` has model_type "xpretrain-glm" (pretrain.hf_glm)."""
    config = Path(path) / "config.json"
    if not config.is_file():
        return False
    try:
        raw = json.loads(config.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return False
    from pretrain.hf_glm import MODEL_TYPE

    return raw.get("model_type") == MODEL_TYPE


def load_glm(path: str | Path, *, dropout: float | None = None):
    """(GlmForBlankInfilling, tokenizer) from a GLM folder, on CPU; `dropout` (None: the folder's)
    sets the hidden and attention dropout."""
    path = Path(path)
    if not is_glm_folder(path):
        raise ValueError(f"--model {path}: not a GLM folder (config.json model_type must be "
                         "'xpretrain-glm', a save_pretrained of pretrain.hf_glm)")
    from transformers import PreTrainedTokenizerFast

    from pretrain.hf_glm import GlmForBlankInfilling

    overrides = {} if dropout is None else {"hidden_dropout": dropout,
                                            "attention_dropout": dropout}
    model = GlmForBlankInfilling.from_pretrained(path, **overrides)
    if not (path / "tokenizer.json").is_file():
        raise FileNotFoundError(f"--model {path}: no tokenizer.json — save the GLM tokenizer "
                                "into the model folder")
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(path))
    GlmIds.from_hf_tokenizer(tokenizer)  # fails early on a non-GLM tokenizer
    if model.config.vocab_size < len(tokenizer):
        raise ValueError(f"--model {path}: {len(tokenizer)} tokenizer ids but only "
                         f"{model.config.vocab_size} embeddings")
    return model, tokenizer


def save_glm(model, tokenizer, folder: Path, source: str | Path) -> None:
    """The model + tokenizer, loadable by `load_glm` and `data_prep.tokenizer.load_tokenizer`
    (the SentencePiece file of the input folder is copied along)."""
    from data_prep.tokenizer import GLM_SPM_FILE

    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    spm = Path(source) / GLM_SPM_FILE
    if spm.is_file():
        shutil.copyfile(spm, Path(folder) / GLM_SPM_FILE)


# ---------------------------------------------------------------------------- patterns

Part = tuple[list[int], bool]  # (token ids, shortenable)


def pattern_parts(kind: str, sentence1: str, sentence2: str) -> tuple[list, list]:
    """(parts_a, parts_b) of the reference's pattern as (text or "[MASK]", shortenable) pairs:
    XNLI pattern 4 and PAWS-X pattern 0 (spec A4.3), a = sentence1, b = sentence2."""
    if kind == "xnli":
        a = sentence1.strip()
        b = sentence2.rstrip(string.punctuation).strip()
        return ([('Based on the fact written in foreign language: "', False), (a, True),
                 ('".', False),
                 (' Is the followling statement reasonably True or definitely False: "', False),
                 (b, True), ('"?', False), (" Answer:", False), ("[MASK]", False)], [])
    if kind == "pawsx":
        b = sentence2.rstrip(string.punctuation)
        return ([('"', False), (b, True), ('" ?', False)],
                [("[MASK]", False), (",", False), (' "', False), (sentence1, True), ('"', False)])
    raise ValueError(f"no GLM pattern for {kind!r}; known: {sorted(PATTERNS)}")


def pattern_text(kind: str, sentence1: str, sentence2: str) -> str:
    """The filled pattern as one string (parts joined as they are encoded; for reading)."""
    parts_a, parts_b = pattern_parts(kind, sentence1, sentence2)
    return "".join(text for text, _ in parts_a + parts_b)


def encode_parts(parts: list, tokenizer, ids: GlmIds) -> list[Part]:
    return [([ids.mask] if text == "[MASK]" else
             list(tokenizer.encode(text, add_special_tokens=False)), short)
            for text, short in parts]


def truncate(parts_a: list[Part], parts_b: list[Part], budget: int) -> int:
    """Cut tokens in place until the parts hold at most `budget` tokens (A4.1); returns how many
    were removed. Raises ValueError when the unshortenable parts alone do not fit."""
    def length(parts, shortenable_only=False):
        return sum(len(p) for p, s in parts if s or not shortenable_only)

    def remove_last(parts):
        k = max(i for i, (p, s) in enumerate(parts) if s and p)
        parts[k] = (parts[k][0][:-1], True)

    excess = length(parts_a) + length(parts_b) - budget
    if excess > length(parts_a, True) + length(parts_b, True):
        raise ValueError(f"the pattern needs {length(parts_a) + length(parts_b)} tokens but "
                         f"only {budget} fit --max-seq-len even with the sentences emptied")
    for _ in range(max(0, excess)):
        if not parts_b or length(parts_a, True) > length(parts_b, True):
            remove_last(parts_a)
        else:
            remove_last(parts_b)
    return max(0, excess)


def verbalizer_ids(kind: str, words: dict[str, str], tokenizer, ids: GlmIds,
                   scoring: str) -> list[list[int]]:
    """Token ids of each label's word in class order; single scoring asserts one piece each
    that is no command token (M:tasks/superglue/pvp.py:1535-1554)."""
    out = []
    for label in LABELS[kind]:
        tokens = list(tokenizer.encode(words[label], add_special_tokens=False))
        if scoring == "single":
            if len(tokens) != 1:
                raise ValueError(f"verbalizer {words[label]!r} is {len(tokens)} tokens "
                                 f"({tokenizer.convert_ids_to_tokens(tokens)}); single-token "
                                 "scoring needs one — use --scoring multi")
            if tokens[0] >= ids.pieces or tokens[0] == tokenizer.unk_token_id:
                raise ValueError(f"verbalizer {words[label]!r} maps to the special token "
                                 f"{tokenizer.convert_ids_to_tokens(tokens)}")
        elif not tokens or any(t >= ids.pieces for t in tokens):
            raise ValueError(f"verbalizer {words[label]!r} encodes to {tokens}")
        out.append(tokens)
    return out


def verbalizers_for(kind: str, lang: str, mode: str) -> tuple[dict[str, str], str]:
    """(words per label, their language): English unless mode "eval" and LANG_VERBALIZERS has
    `lang`."""
    if mode == "eval" and lang in LANG_VERBALIZERS.get(kind, {}):
        return LANG_VERBALIZERS[kind][lang], lang
    return VERBALIZERS[kind], "en"


@dataclass
class ClozeItem:
    """One pair: its sequence(s) — one (single-token) or one per label (multi-token) — the label
    words' ids (single) and the gold class (None when unlabelled)."""

    index: int
    sequences: list[GlmSequence]
    label_word_ids: list[int] = field(default_factory=list)
    target: int | None = None
    truncated: bool = False

    @property
    def input_ids(self) -> list[int]:
        return max((s.input_ids for s in self.sequences), key=len)


def encode_pair(kind: str, sentence1: str, sentence2: str, tokenizer, ids: GlmIds, *,
                max_seq_len: int, answers: list[list[int]], scoring: str
                ) -> tuple[list[GlmSequence], bool]:
    """The pair's sequences (A4.1) and whether it was truncated."""
    raw_a, raw_b = pattern_parts(kind, sentence1, sentence2)
    parts_a, parts_b = encode_parts(raw_a, tokenizer, ids), encode_parts(raw_b, tokenizer, ids)
    candidates = [None] if scoring == "single" else [a + [ids.eop] for a in answers]
    sequences, cut = [], False
    for answer in candidates:
        a, b = [(list(p), s) for p, s in parts_a], [(list(p), s) for p, s in parts_b]
        # [CLS] + [eos] + [sop] (single) or [CLS] + [eos] + answer (multi: [sop] + answer[:-1])
        special = 3 if answer is None else 2 + len(answer)
        cut |= truncate(a, b, max_seq_len - special) > 0
        tokens = [ids.cls] + [t for p, _ in a + b for t in p] + [ids.eos]
        sequences.append(blank_sequence(tokens, tokens.index(ids.mask), answer, ids))
    return sequences, cut


def encode(kind: str, records: Sequence, tokenizer, *, max_seq_len: int, scoring: str,
           words: dict[str, str], labelled: bool = True) -> list[ClozeItem]:
    """`finetune.tasks.PairExample`s → items."""
    ids = GlmIds.from_hf_tokenizer(tokenizer)
    answers = verbalizer_ids(kind, words, tokenizer, ids, scoring)
    label_index = {label: k for k, label in enumerate(LABELS[kind])}
    items = []
    for r in records:
        sequences, cut = encode_pair(kind, r.sentence1, r.sentence2, tokenizer, ids,
                                     max_seq_len=max_seq_len, answers=answers, scoring=scoring)
        items.append(ClozeItem(r.index, sequences,
                               [a[0] for a in answers] if scoring == "single" else [],
                               label_index[r.label] if labelled else None, cut))
    return items


# ---------------------------------------------------------------------------- scoring

def collate(items: Sequence[ClozeItem], pad_id: int) -> dict[str, Tensor]:
    """`collate_sequences` of every item's sequences (item-major) + targets [B] and
    label_word_ids [B, C] (single scoring)."""
    batch = collate_sequences([s for item in items for s in item.sequences], pad_id)
    batch["candidates"] = torch.tensor(len(items[0].sequences))
    if items[0].label_word_ids:
        batch["label_word_ids"] = torch.tensor([item.label_word_ids for item in items])
    if items[0].target is not None:
        batch["targets"] = torch.tensor([item.target for item in items])
    return batch


def class_scores(logits: Tensor, batch: dict[str, Tensor]) -> Tensor:
    """[B, C]: single — the `[sop]` logits at the label words (raw logits, A4.2); multi — the
    summed log-probs of each candidate's answer tokens ([eop] included)."""
    if "label_word_ids" in batch:
        rows = torch.arange(logits.shape[0], device=logits.device)
        at_sop = logits[rows, batch["score_index"]]  # [B, V]
        return at_sop.gather(1, batch["label_word_ids"])  # [B, C]
    labels = batch["labels"]
    logprobs = logits.log_softmax(-1)  # [B*C, S, V]
    picked = logprobs.gather(2, labels.clamp_min(0)[..., None])[..., 0]  # [B*C, S]
    summed = (picked * (labels != IGNORE)).sum(-1)  # [B*C]
    return summed.view(-1, int(batch["candidates"]))


def _loss_fn(model, device, precision: str) -> Callable:
    def loss(_, batch: dict[str, Tensor]) -> Tensor:
        return F.cross_entropy(class_scores(glm_logits(model, batch, device, precision), batch),
                               batch["targets"])

    return loss


def fine_tune(model, tokenizer, items: Sequence[ClozeItem], settings: dict, *, device,
              precision: str = "fp32", log=None) -> list[dict]:
    """Fine-tune in place (settings: `DEFAULTS`' keys + grad_accum, log_every); returns
    `train_loop.train`'s records (loss = mean CE over the pairs)."""
    from finetune.train_loop import TrainOptions, train

    options = TrainOptions.from_settings(settings)
    torch.manual_seed(settings["seed"])  # dropout
    pad_id = GlmIds.from_hf_tokenizer(tokenizer).eos
    return train(LossSideForward(model), items, options,
                 collate_fn=lambda chunk: collate(chunk, pad_id),
                 loss_fn=_loss_fn(model, device, precision), device=torch.device(device),
                 precision=precision, log=log)


@torch.no_grad()
def predict_classes(model, tokenizer, items: Sequence[ClozeItem], *, device,
                    precision: str = "fp32", batch_size: int = EVAL_BATCH_SIZE) -> list[int]:
    """Argmax class of every item, in input order (batched by length)."""
    device = torch.device(device)
    model.to(device).eval()
    pad_id = GlmIds.from_hf_tokenizer(tokenizer).eos
    order = sorted(range(len(items)), key=lambda i: len(items[i].input_ids))
    out = [0] * len(items)
    for first in range(0, len(order), batch_size):
        index = order[first:first + batch_size]
        batch = {k: v.to(device) for k, v in collate([items[i] for i in index], pad_id).items()}
        found = class_scores(glm_logits(model, batch, device, precision), batch).argmax(-1)
        for i, k in zip(index, found.tolist()):
            out[i] = k
    return out


# ---------------------------------------------------------------------------- the form

class GlmForm:
    """`finetune.run --form glm`: PET for pair tasks (this module), generative QA for eqa
    (`finetune.glm_qa`); the `finetune.forms` interface."""

    name = "glm"

    def __init__(self, args, kind: str, settings: dict):
        self.args, self.kind, self.settings = args, kind, settings
        self.task = args.task
        self.query_langs = None
        if self.task == "pair":
            settings["scoring"] = args.scoring or "single"
            settings["verbalizers"] = args.verbalizers or "en"
            settings["pattern"] = f"{kind} pattern {PATTERNS[kind]}"
            self.verbalizer_langs: dict[str, str] = {}
        else:
            from finetune import glm_qa

            glm_qa.complete_settings(settings, args, kind)

    @staticmethod
    def max_positions(model) -> int:
        return int(model.config.max_position_embeddings)

    def inputs(self, records: list, path, lang: str, name: str) -> list:
        if self.task == "eqa":
            return records  # encoded once the tokenizer is loaded
        words, used = verbalizers_for(self.kind, lang, self.settings["verbalizers"])
        self.verbalizer_langs[name] = used
        self.settings["verbalizer_langs"] = self.verbalizer_langs
        return [records, words]

    def load(self):
        return load_glm(self.args.model, dropout=self.settings["dropout"])

    def save(self, model, tokenizer, folder: Path) -> None:
        save_glm(model, tokenizer, folder, self.args.model)

    def context_window(self) -> None:
        return None

    def _items(self, inputs, tokenizer, labelled: bool):
        records, words = inputs
        return encode(self.kind, records, tokenizer, max_seq_len=self.settings["max_seq_len"],
                      scoring=self.settings["scoring"], words=words, labelled=labelled)

    def train(self, model, tokenizer, records: list, inputs, device, precision: str, log):
        settings = {**self.settings, "grad_accum": self.args.grad_accum,
                    "log_every": self.args.log_every}
        if self.task == "eqa":
            from finetune import glm_qa

            return glm_qa.train_form(model, tokenizer, records, settings, device=device,
                                     precision=precision, log=log)
        items = self._items(inputs, tokenizer, labelled=True)
        cut = sum(item.truncated for item in items)
        note(f"train ({self.kind}, GLM PET {self.settings['pattern']}, "
             f"{self.settings['scoring']}-token): {len(items)} pairs ({cut} truncated) on "
             f"{device} in {precision}")
        history = fine_tune(model, tokenizer, items, settings, device=device,
                            precision=precision, log=log)
        return history, {"loss_cells": None, "train_features": len(items)}

    def predict(self, model, tokenizer, inputs, device, precision: str):
        if self.task == "eqa":
            from finetune import glm_qa

            return glm_qa.predict_form(model, tokenizer, inputs, self.settings, device=device,
                                       precision=precision)
        items = self._items(inputs, tokenizer, labelled=False)
        classes = predict_classes(model, tokenizer, items, device=device, precision=precision)
        labels = LABELS[self.kind]
        stats = Counter(contexts_truncated=sum(item.truncated for item in items))
        return {str(item.index): labels[k] for item, k in zip(items, classes)}, None, stats


def defaults(task: str, kind: str) -> dict:
    """`finetune.run` settings of the GLM form for a dataset kind."""
    if task == "pair":
        return dict(DEFAULTS[kind])
    from finetune import glm_qa

    return dict(glm_qa.DEFAULTS)


__all__ = ["DEFAULTS", "GlmForm", "GlmIds", "GlmSequence", "LABELS", "LANG_VERBALIZERS",
           "VERBALIZERS", "blank_sequence", "class_scores", "collate_sequences", "defaults",
           "encode", "encode_pair", "fine_tune", "is_glm_folder", "load_glm", "pattern_parts",
           "pattern_text", "predict_classes", "truncate", "verbalizer_ids"]
