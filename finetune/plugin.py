"""VECO's plug-in fine-tuning for sentence-pair classification (spec VECO.md B5.1):
`python -m finetune.run --form plug-in --task pair --model PLUG_IN_DIR --pair-lang de
--train train-en.tsv --pair-train train-de.tsv --eval en=test-en.tsv --eval de=test-de.tsv`.

Every example x (a PAWS-X / XNLI pair `<s> s1 </s></s> s2 </s>` in language A) is fed together
with its translation y (the same row of the file in `--pair-lang` B; the files are row-aligned
translations of each other). PLUG_IN_DIR is a `pretrain.hf_veco.VecoForMaskedLM` folder
(`pretrain.veco_export.plug_in_model`).

* Representation (our reading of B5.1, which the spec marks UNCONFIRMED: the paper's bracket is
  garbled): for x, [H^L_x ; S^L_x] at `<s>`, 2h wide, with H^L_x = `h_stream(x)` and S^L_x =
  `s_stream(x, memory=H^L_y)`; symmetrically [H^L_y ; S^L_y] for y.
* The memory is detached, as in pretraining (B2.4, `pretrain.veco_model`): the S-stream trains
  through its own pass and the cross-attention, the H-stream through the H half of the features.
* One XLM-R-style head (dropout → dense 2h→2h → tanh → dropout → out_proj) on both sides;
  loss = mean of the two cross-entropies (both sides carry the row's label).
* Prediction = argmax of the mean of the two softmaxes: it uses both directions the head was
  trained on, and it is symmetric, so a test pair gets one answer whichever side is "the"
  example (en scored with its de translation predicts what de with its en translation does).
  Averaging probabilities, not logits, is the usual two-view ensemble and keeps a confident view
  from being cancelled by an unbounded logit of the other.
* Test-time pairs (UNCONFIRMED in the spec): the --eval file of LANG with the --eval file of
  `--pair-lang`, row by row; the `--pair-lang` set itself is paired with the `--train-lang` set.
  Plug-in needs a translation for every test example; it has no zero-shot use (S2:110).
* Training pairs whose two labels differ are dropped with a warning: PAWS-X's translated sets
  mark untranslated rows "NS" with label 0 (12 of the 2000 test rows in de); evaluation keeps
  every row and scores it against its own file's label.

Defaults (`DEFAULTS`) are VECO's XNLI recipe. Training is `finetune.train_loop.train`: x and y
are padded to one length and run as one batch of 2B sequences per stream (`PlugInClassifier`),
which is what the loop calls as `model(input_ids=…, attention_mask=…)`.
Never imports DeepSpeed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from finetune.forms import note, warn

HEAD_WEIGHTS = "plugin_head.safetensors"
HEAD_CONFIG = "plugin_head.json"
EVAL_BATCH_SIZE = 64
# A:VECO/NLU/scripts/train_xnli.sh:19-31: LR 2e-5, EPOCH 2, TOTAL_BATCH_SIZE 64 (2 per step × 32
# accumulation), MAXL 128; A:VECO/NLU/third_party/run_classify.py argparse: --warmup_steps 0,
# --weight_decay 0.0, --seed 42 (dropout: XLM-R's config, 0.1). VECO releases no PAWS-X script;
# PAWS-X takes the same values.
DEFAULTS = {"lr": 2e-5, "epochs": 2.0, "batch_size": 64, "max_seq_len": 128,
            "max_query_tokens": None, "doc_stride": None, "warmup_ratio": 0.0,
            "weight_decay": 0.0, "seed": 42, "dropout": 0.1}


@dataclass
class PairedWindow:
    """An example's window and its translation's (`finetune.standard.Window`s); `target` the
    label id or None."""

    x: object
    y: object
    target: int | None = None

    @property
    def input_ids(self) -> list[int]:  # `train_loop.infer` batches by this length
        return max(self.x.input_ids, self.y.input_ids, key=len)


@dataclass(frozen=True)
class PairedRecord:
    """A record of the file read and the same row of its translation."""

    record: object  # finetune.tasks.PairExample
    partner: object


# ---------------------------------------------------------------------------- model

class PairHead(nn.Module):
    """XLM-R's classification head (`XLMRobertaClassificationHead`) at width `width`:
    features [N, width] → logits [N, num_labels]."""

    def __init__(self, width: int, num_labels: int, dropout: float):
        super().__init__()
        self.dense = nn.Linear(width, width)
        self.dropout = nn.Dropout(dropout)
        self.out_proj = nn.Linear(width, num_labels)

    def forward(self, features: Tensor) -> Tensor:
        x = torch.tanh(self.dense(self.dropout(features)))
        return self.out_proj(self.dropout(x))


class PlugInClassifier(nn.Module):
    """A `VecoForMaskedLM` (`network`) with a `PairHead` on [H^L ; S^L] at `<s>`.

    `forward(input_ids, attention_mask)`: [2B, T] each, rows 0..B-1 the examples x, rows B..2B-1
    their translations y (row b of y translates row b of x) → logits [2B, num_labels] in the
    same order."""

    def __init__(self, network, labels: Sequence[str], dropout: float):
        super().__init__()
        self.network = network
        self.labels = list(labels)
        self.head = PairHead(2 * network.config.hidden_size, len(self.labels), dropout)
        std = float(getattr(network.config, "initializer_range", 0.02))
        for linear in (self.head.dense, self.head.out_proj):
            nn.init.normal_(linear.weight, std=std)
            nn.init.zeros_(linear.bias)

    @property
    def config(self):
        return self.network.config

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        size = input_ids.shape[0] // 2
        hidden = self.network.h_stream(input_ids, attention_mask)  # [2B, T, h]
        # Stop-gradient as in pretraining: the partner's H^L is a constant for the S-stream.
        memory = torch.cat([hidden[size:], hidden[:size]]).detach()
        memory_mask = torch.cat([attention_mask[size:], attention_mask[:size]])
        s = self.network.s_stream(input_ids, attention_mask, memory, memory_mask)  # [2B, T, h]
        return self.head(torch.cat([hidden[:, 0], s[:, 0]], dim=-1))  # [2B, C]

    def save_pretrained(self, folder: str | Path) -> None:
        """The network as a plug-in folder (loadable by `VecoForMaskedLM.from_pretrained`) plus
        `plugin_head.safetensors` and `plugin_head.json` (labels, width)."""
        from safetensors.torch import save_file

        folder = Path(folder)
        self.network.save_pretrained(folder)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()},
                  folder / HEAD_WEIGHTS)
        (folder / HEAD_CONFIG).write_text(json.dumps(
            {"labels": self.labels, "width": self.head.dense.in_features,
             "dropout": self.head.dropout.p}, indent=1) + "\n", encoding="utf-8")


def load_plugin_classifier(path: str | Path, labels: Sequence[str], *,
                           dropout: float | None = None, seed: int = 42) -> PlugInClassifier:
    """A `PlugInClassifier` on the plug-in folder `path`, on CPU: its head too when the folder
    has one (a fine-tuned `model/`; its labels must be `labels`), else a fresh head seeded by
    `seed`. `dropout` (None: the folder's) sets the network's hidden dropout and the head's."""
    import transformers

    path = Path(path)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"--model {path}: no config.json — pass a plug-in folder "
                                "(pretrain.veco_export.plug_in_model(net).save_pretrained)")
    from pretrain.hf_veco import VecoConfig, VecoForMaskedLM

    model_type = json.loads(config_file.read_text(encoding="utf-8")).get("model_type")
    if model_type != VecoConfig.model_type:
        raise ValueError(f"--model {path}: model_type {model_type!r} is not "
                         f"{VecoConfig.model_type!r}; --form plug-in needs the cross-attention "
                         "(pretrain.veco_export.plug_in_model). A plug-out (xlm-roberta) folder "
                         "fine-tunes with --form standard")
    overrides = {} if dropout is None else {"hidden_dropout_prob": dropout}
    network = VecoForMaskedLM.from_pretrained(path, **overrides)
    transformers.set_seed(seed)  # the fresh head's initialisation
    model = PlugInClassifier(network, labels, network.config.hidden_dropout_prob
                             if dropout is None else dropout)
    if (path / HEAD_WEIGHTS).is_file():
        from safetensors.torch import load_file

        saved = json.loads((path / HEAD_CONFIG).read_text(encoding="utf-8"))
        if saved["labels"] != list(labels):
            raise ValueError(f"--model {path}: its plug-in head predicts {saved['labels']}, "
                             f"not {list(labels)}")
        model.head.load_state_dict(load_file(path / HEAD_WEIGHTS))
    return model


# ---------------------------------------------------------------------------- data

def pair_records(records: Sequence, partners: Sequence, *, paths: tuple, drop_mismatched: bool
                 ) -> list[PairedRecord]:
    """Records with their translations, by row (`record.index`). `drop_mismatched`: leave out
    rows whose two labels differ (warned); otherwise keep them (warned)."""
    if records and max(r.index for r in records) >= len(partners):
        raise ValueError(f"{paths[1]} has {len(partners)} examples but {paths[0]} has more: the "
                         "translation must be row-aligned with it")
    paired = [PairedRecord(r, partners[r.index]) for r in records]
    mismatched = [p for p in paired if p.record.label != p.partner.label]
    if mismatched:
        rows = ", ".join(str(p.record.line_no) for p in mismatched[:5])
        what = "dropped from training" if drop_mismatched else "kept, scored by their own label"
        warn(f"{len(mismatched)} rows of {paths[0]} have another label in {paths[1]} (e.g. "
             f"untranslated 'NS' rows; lines {rows}…): {what}")
    if drop_mismatched:
        paired = [p for p in paired if p.record.label == p.partner.label]
    return paired


def encode(paired: Sequence[PairedRecord], tokenizer, settings: dict, *,
           label2id: dict[str, int] | None = None) -> list[PairedWindow]:
    """Both sides through `finetune.standard.encode` (`<s> s1 </s></s> s2 </s>`, cut
    longest_first to max_seq_len); targets from the record's label when `label2id` is given."""
    from finetune.standard import encode as encode_pairs

    xs = encode_pairs("pair", [p.record for p in paired], tokenizer, settings)
    ys = encode_pairs("pair", [p.partner for p in paired], tokenizer, settings)
    return [PairedWindow(x, y, None if label2id is None else label2id[p.record.label])
            for p, x, y in zip(paired, xs, ys)]


def collate(items: Sequence[PairedWindow], pad_id: int) -> dict[str, Tensor]:
    """input_ids / attention_mask [2B, T]: the B examples, then their B translations, padded to
    the longest of all 2B; labels [B] when the items carry targets."""
    rows = [i.x.input_ids for i in items] + [i.y.input_ids for i in items]
    input_ids = torch.full((len(rows), max(map(len, rows))), pad_id, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    for b, row in enumerate(rows):
        input_ids[b, :len(row)] = torch.tensor(row)
        attention_mask[b, :len(row)] = 1
    batch = {"input_ids": input_ids, "attention_mask": attention_mask}
    if items[0].target is not None:
        batch["labels"] = torch.tensor([i.target for i in items], dtype=torch.long)
    return batch


def loss_sum(logits: Tensor, batch: dict[str, Tensor]) -> Tensor:
    """Σ over the B pairs of (CE(x) + CE(y)) / 2, fp32; logits [2B, C]."""
    labels = batch["labels"]
    size = labels.shape[0]
    logits = logits.float()
    return (F.cross_entropy(logits[:size], labels, reduction="sum")
            + F.cross_entropy(logits[size:], labels, reduction="sum")) / 2


def pair_probabilities(logits: Tensor) -> Tensor:
    """The prediction's distribution: mean of the two sides' softmaxes, [2B, C] → [B, C]."""
    size = logits.shape[0] // 2
    probs = logits.float().softmax(-1)
    return (probs[:size] + probs[size:]) / 2


# ---------------------------------------------------------------------------- training / inference

def fine_tune(model: PlugInClassifier, tokenizer, paired: Sequence[PairedRecord],
              settings: dict, *, device, precision: str = "fp32", log=None) -> list[dict]:
    """Fine-tune in place (settings: `DEFAULTS`' keys + grad_accum, log_every); returns
    `train_loop.train`'s logged records (loss = the per-pair mean of the two CEs)."""
    from finetune.train_loop import TrainOptions, train

    label2id = {label: i for i, label in enumerate(model.labels)}
    items = encode(paired, tokenizer, settings, label2id=label2id)
    options = TrainOptions.from_settings(settings)
    torch.manual_seed(settings["seed"])  # dropout
    pad_id = tokenizer.pad_token_id
    return train(model, items, options, collate_fn=lambda chunk: collate(chunk, pad_id),
                 loss_fn=loss_sum, reduction="sum", device=torch.device(device),
                 precision=precision, log=log)


def predict(model: PlugInClassifier, tokenizer, paired: Sequence[PairedRecord], settings: dict,
            *, device, precision: str = "fp32") -> dict[str, str]:
    """{str(record.index): label} for every record (`pair_probabilities`' argmax)."""
    from finetune.train_loop import infer

    if not paired:
        return {}
    items = encode(paired, tokenizer, settings)
    pad_id = tokenizer.pad_token_id
    found = infer(model, items, collate_fn=lambda chunk: collate(chunk, pad_id),
                  read_fn=lambda logits, chunk: pair_probabilities(logits).argmax(-1).tolist(),
                  device=torch.device(device), precision=precision, batch_size=EVAL_BATCH_SIZE)
    return {str(p.record.index): model.labels[k] for p, k in zip(paired, found)}


# ---------------------------------------------------------------------------- the form

class PlugInForm:
    """`finetune.run --form plug-in`: the `finetune.forms` interface over this module."""

    name = "plug-in"

    def __init__(self, args, kind: str, settings: dict):
        from finetune.tasks import PAIR_LABELS

        self.args, self.kind, self.settings = args, kind, settings
        self.labels = PAIR_LABELS[kind]
        self.query_langs = None
        self.partners: dict[str, str] = {}  # input name → the file paired with it
        self._eval_paths = {spec.name: spec.path for spec in args.eval}

    def _partner_path(self, path, name: str) -> str:
        if name == "train":
            return self.args.pair_train
        lang = self.args.pair_lang if name != self.args.pair_lang else self.args.train_lang
        if lang not in self._eval_paths:
            raise ValueError(f"--form plug-in: --eval {name}={path} needs its translation in "
                             f"{lang}: add --eval {lang}=FILE (row-aligned with {path})")
        return self._eval_paths[lang]

    def inputs(self, records: list, path, lang: str, name: str) -> list[PairedRecord]:
        from finetune.tasks import read_pair

        partner_path = self._partner_path(path, name)
        self.partners[name] = str(partner_path)
        partners = read_pair(partner_path, self.kind)
        if name != "train" and len(partners) != len(records):
            raise ValueError(f"{path} has {len(records)} examples but its translation "
                             f"{partner_path} has {len(partners)}: they must be row-aligned")
        return pair_records(records, partners, paths=(path, partner_path),
                            drop_mismatched=name == "train")

    def load(self):
        from data_prep.tokenizer import load_tokenizer

        return (load_plugin_classifier(self.args.model, self.labels,
                                       dropout=self.settings["dropout"],
                                       seed=self.settings["seed"]),
                load_tokenizer(self.args.model))

    def context_window(self) -> None:
        return None

    def train(self, model, tokenizer, records: list, paired: list, device, precision: str, log):
        if not paired:
            raise ValueError(f"{self.args.train}: no training pair has the same label in "
                             f"{self.args.pair_train}")
        note(f"train ({self.kind}, plug-in with {self.args.pair_lang}): {len(paired)} pairs on "
             f"{device} in {precision}")
        settings = {**self.settings, "grad_accum": self.args.grad_accum,
                    "log_every": self.args.log_every}
        history = fine_tune(model, tokenizer, paired, settings, device=device,
                            precision=precision, log=log)
        return history, {"loss_cells": None, "train_features": len(paired)}

    def predict(self, model, tokenizer, paired: list, device, precision: str):
        return predict(model, tokenizer, paired, self.settings, device=device,
                       precision=precision), None, Counter()
