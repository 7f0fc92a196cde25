"""Generative extractive QA with a GLM folder (spec mGLM.md A4.4): `python -m finetune.run --task
eqa --model GLM_DIR --train squad/train-v1.1.json --eval en=xquad.en.json … --out DIR` (XQuAD,
MLQA, TyDiQA-GoldP; a GLM folder picks `--form glm` by itself).

* Prompts (`--qa-prompt`): "mlqa" = `[CLS] ⟨context⟩ . Question: ⟨q⟩ Answer: [sMASK]`
  (M:tasks/seq2seq/pvp.py:75-116, English words as the reference forces them); "squad" =
  `[CLS] ⟨q⟩ [sMASK] . ⟨context⟩ [eos]` (M:tasks/seq2seq/dataset.py:1376-1389). Default ("auto"):
  "squad" for TyDiQA (a --train file named *tydiqa*, the reference's tydiqa task) and "mlqa" for
  SQuAD-trained runs — XQuAD included: mGLM's cross-lingual QA recipe (config_tasks/seq_mlqa.sh)
  trains on SQuAD v1.1 with the MLQA prompt, and XQuAD shares that training set, so one
  fine-tuned model serves both test sets (the slides: the English MLQA prompt scored best,
  S3:296-300). The context is cut to fit `max_seq_len` source tokens; the pieces are encoded
  separately as the reference does (context, " Question: q", " Answer: ", the "." piece).
* The "squad" source ends with `[eos]` (the reference has none but right-pads with eos ids it
  attends to; `pretrain.generate` appends eos to every query that does not end with a mask, and
  training sees exactly the ids decoding sees).
* Padding is NOT attended to (A5, THUDM/GLM#70; GLM's later `--mask-pad-token`): each sample's
  sep is its own source length and batches are right-padded after Part B, where causal rows never
  look — the sep vector alone hides it, no attention_mask needed.
* Target: `" " + answer` tokens + `[eop]`, cut to `tgt_seq_len` (64); input `source + [sop] +
  target[:-1]`, position = the `[sMASK]` index, block positions 1… (A4.4). Loss: label-smoothed
  cross-entropy, ε = 0.1, summed over the target tokens / the step's target tokens
  (M:tasks/seq2seq/finetune.py:40-53; torch's `label_smoothing` is the same (1−ε)·CE + ε·mean).
* Decoding: `pretrain.generate.BlankFiller`, 5 beams, length penalty 0, at most 64 tokens
  (M:config_tasks/seq_mlqa.sh); the filled blank is the answer, scored by `finetune.metrics`
  (SQuAD v1.1 / MLQA normalisation, as every other form). The call is isolated in
  `generate_answers`.

Defaults (`DEFAULTS`): M:config_tasks/seq_mlqa.sh TRAIN_ARGS (linear decay, warmup 0, ε 0.1,
10 epochs, src 512 / tgt 64) and M:config_tasks/config_blocklm_large_squad.json (lr 1e-5, weight
decay 0.01 — the JSON overrides the script's 0 —, Adam betas (0.9, 0.95), micro-batch 2 × 8 GPUs,
clipping 1.0). Never imports DeepSpeed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from finetune.forms import note, warn
from finetune.glm_prompt import (IGNORE, GlmIds, GlmSequence, LossSideForward, blank_sequence,
                                 collate_sequences, glm_logits)

PROMPTS = ("auto", "mlqa", "squad")
DEFAULTS = {"lr": 1e-5, "epochs": 10.0, "batch_size": 2 * 8, "max_seq_len": 512,
            "tgt_seq_len": 64, "warmup_ratio": 0.0, "weight_decay": 0.01, "max_grad_norm": 1.0,
            "label_smoothing": 0.1, "num_beams": 5, "length_penalty": 0.0, "seed": 42,
            "dropout": 0.1, "doc_stride": None, "max_query_tokens": None,
            "adam_betas": (0.9, 0.95)}


@dataclass
class QAItem:
    """One question: its query (the source, `[CLS]` first, what decoding fills) and, when it has
    an answer, the training sequence `source + [sop] + target[:-1]`."""

    id: str
    query: list[int]
    mask_index: int
    sequence: GlmSequence | None
    truncated: bool

    @property
    def input_ids(self) -> list[int]:
        return self.sequence.input_ids if self.sequence is not None else self.query


def complete_settings(settings: dict, args, kind: str) -> None:
    """The QA-only settings: the prompt (auto → squad for tydiqa, mlqa otherwise) and
    --max-answer-tokens as the target length."""
    prompt = getattr(args, "qa_prompt", None) or "auto"
    settings["qa_prompt"] = ("squad" if kind == "tydiqa" else "mlqa") if prompt == "auto" \
        else prompt
    if getattr(args, "max_answer_tokens", None):
        settings["tgt_seq_len"] = args.max_answer_tokens


def _period_ids(tokenizer) -> list[int]:
    period = tokenizer.convert_tokens_to_ids(".")
    if period is None or period == tokenizer.unk_token_id:
        return list(tokenizer.encode(".", add_special_tokens=False))
    return [int(period)]


def build_source(question: str, context: str, tokenizer, ids: GlmIds, *, prompt: str,
                 max_seq_len: int) -> tuple[list[int], int, bool]:
    """(source ids, index of [sMASK], context truncated?) for one question (module docstring)."""
    encode = tokenizer.encode
    ctx = list(encode(" " + context.rstrip(), add_special_tokens=False))
    period = _period_ids(tokenizer)
    if prompt == "mlqa":
        q = list(encode(" Question: " + question.strip(), add_special_tokens=False))
        a = list(encode(" Answer: ", add_special_tokens=False))
        budget = max_seq_len - len(q) - len(a) - len(period) - 2  # [CLS], [sMASK]
        if budget <= 0:
            raise ValueError(f"question {question[:40]!r}… leaves no room for the context in "
                             f"{max_seq_len} tokens")
        source = [ids.cls] + ctx[:budget] + period + q + a + [ids.smask]
        return source, len(source) - 1, len(ctx) > budget
    if prompt == "squad":
        q = list(encode(" " + question.strip(), add_special_tokens=False))
        budget = max_seq_len - len(q) - len(period) - 3  # [CLS], [sMASK], [eos]
        if budget <= 0:
            raise ValueError(f"question {question[:40]!r}… leaves no room for the context in "
                             f"{max_seq_len} tokens")
        source = [ids.cls] + q + [ids.smask] + period + ctx[:budget] + [ids.eos]
        return source, 1 + len(q), len(ctx) > budget
    raise ValueError(f"--qa-prompt must be one of {PROMPTS[1:]}, got {prompt!r}")


def target_ids(answer: str, tokenizer, ids: GlmIds, tgt_seq_len: int) -> list[int]:
    """`" " + answer` tokens + [eop], cut to `tgt_seq_len` (the reference cuts after adding
    [eop], so an over-long answer loses it)."""
    tokens = list(tokenizer.encode(" " + answer.strip(), add_special_tokens=False))
    return (tokens + [ids.eop])[:tgt_seq_len]


def encode(records: Sequence, tokenizer, settings: dict, *, labelled: bool) -> list[QAItem]:
    """`finetune.tasks.QAExample`s → items; labelled: the first gold answer is the target
    (records without one get no training sequence)."""
    ids = GlmIds.from_hf_tokenizer(tokenizer)
    items = []
    for r in records:
        source, mask_index, cut = build_source(r.question, r.context, tokenizer, ids,
                                               prompt=settings["qa_prompt"],
                                               max_seq_len=settings["max_seq_len"])
        sequence = None
        if labelled and r.answers:
            target = target_ids(r.answers[0][0], tokenizer, ids, settings["tgt_seq_len"])
            sequence = blank_sequence(source, mask_index, target, ids)
        items.append(QAItem(r.id, source, mask_index, sequence, cut))
    return items


def collate(items: Sequence[QAItem], pad_id: int) -> dict[str, torch.Tensor]:
    return collate_sequences([item.sequence for item in items], pad_id)


def label_smoothed_sum(logits: torch.Tensor, labels: torch.Tensor,
                       epsilon: float) -> torch.Tensor:
    """Σ over labelled tokens of (1−ε)·CE + ε·mean_v(−log p_v); logits [N, S, V], labels [N, S]."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                           ignore_index=IGNORE, label_smoothing=epsilon, reduction="sum")


def fine_tune(model, tokenizer, items: Sequence[QAItem], settings: dict, *, device,
              precision: str = "fp32", log=None) -> list[dict]:
    """Fine-tune in place on the items with a target; returns `train_loop.train`'s records
    (loss = label-smoothed CE per target token)."""
    from finetune.train_loop import TrainOptions, train

    trainable = [item for item in items if item.sequence is not None]
    if not trainable:
        raise ValueError("no training question has an answer")
    options = TrainOptions.from_settings(settings)
    torch.manual_seed(settings["seed"])  # dropout
    pad_id = GlmIds.from_hf_tokenizer(tokenizer).eos
    epsilon = settings["label_smoothing"]

    def loss(_, batch):
        return label_smoothed_sum(glm_logits(model, batch, device, precision), batch["labels"],
                                  epsilon)

    return train(LossSideForward(model), trainable, options,
                 collate_fn=lambda chunk: collate(chunk, pad_id), loss_fn=loss,
                 units_fn=lambda chunk: sum(sum(t != IGNORE for t in i.sequence.targets)
                                            for i in chunk),
                 reduction="sum", device=torch.device(device), precision=precision, log=log)


def generate_answers(model, tokenizer, queries: Sequence[list[int]], *, num_beams: int,
                     max_new_tokens: int, length_penalty: float, device="cpu") -> list[str]:
    """The text `pretrain.generate.BlankFiller` fills into each query's blank ("" when none).
    `fill_ids` takes our ids as they are, the ids training saw."""
    from pretrain.generate import BlankFiller, GenerationConfig

    filler = BlankFiller(model, tokenizer, device=device)
    strategy = GenerationConfig(num_beams=num_beams, length_penalty=length_penalty,
                                max_new_tokens=max_new_tokens)
    results = filler.fill_ids([list(q) for q in queries], strategy=strategy)
    return [r["blanks"][0]["text"].strip() if r.get("blanks") else "" for r in results]


def predict(model, tokenizer, items: Sequence[QAItem], settings: dict, *,
            device="cpu") -> dict[str, str]:
    """{question id: answer text} for every item."""
    answers = generate_answers(model, tokenizer, [item.query for item in items],
                               num_beams=settings["num_beams"],
                               max_new_tokens=settings["tgt_seq_len"],
                               length_penalty=settings["length_penalty"], device=device)
    return {item.id: answer for item, answer in zip(items, answers)}


# ---------------------------------------------------------------------------- form hooks

def train_form(model, tokenizer, records: list, settings: dict, *, device, precision: str,
               log) -> tuple[list[dict], dict]:
    """`glm_prompt.GlmForm.train` for eqa."""
    items = encode(records, tokenizer, settings, labelled=True)
    unanswered = sum(item.sequence is None for item in items)
    if unanswered:
        warn(f"{unanswered} training questions have no answer; left out")
    note(f"train (GLM generative QA, {settings['qa_prompt']} prompt): "
         f"{len(items) - unanswered} questions ({sum(i.truncated for i in items)} contexts cut "
         f"at --max-seq-len) on {device} in {precision}")
    history = fine_tune(model, tokenizer, items, settings, device=device, precision=precision,
                        log=log)
    return history, {"loss_cells": None, "train_features": len(items) - unanswered}


def predict_form(model, tokenizer, records: list, settings: dict, *, device, precision: str):
    """`glm_prompt.GlmForm.predict` for eqa: (predictions, None, stats)."""
    if precision != "fp32":
        warn("GLM generation runs in the model's dtype (fp32); --precision applies to training")
    items = encode(records, tokenizer, settings, labelled=False)
    stats = Counter(contexts_truncated=sum(item.truncated for item in items))
    return predict(model, tokenizer, items, settings, device=device), None, stats
