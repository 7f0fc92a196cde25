"""VECO as an objective: `corpus` folders (adjacent segments as (x, y)) and `parallel` folders
(sentence pairs) → alternating monolingual / bilingual steps (`pretrain.veco_data`), the
plug-in cross-attention network (`pretrain.hf_veco`) with CA-MLM + TLM (`pretrain.veco_model`),
masked-token accuracy on held-out documents and pairs, and the three exports
(`pretrain.veco_export`)."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from pretrain.config import ConfigError
from pretrain.objectives import Objective

LOSSES = ("ca_mlm", "mlm")
CROSS_INITS = ("random", "self")


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


class VecoObjective(Objective):
    name = "veco"

    # ------------------------------------------------------------ validation
    def validate(self, world_size: int) -> None:
        from pretrain.veco_data import check_veco_data

        cfg = self.cfg
        v, m = cfg.veco, cfg.model
        _check(v.loss in LOSSES, f"veco.loss must be one of {LOSSES}, got {v.loss!r}")
        _check(v.cross_attention_init in CROSS_INITS,
               f"veco.cross_attention_init must be one of {CROSS_INITS}, got "
               f"{v.cross_attention_init!r}")
        _check(v.freeze_steps >= 0, f"veco.freeze_steps must be >= 0, got {v.freeze_steps}")
        _check(not (v.freeze_steps and v.loss == "mlm"),
               "veco.freeze_steps trains only the cross-attention, which veco.loss=mlm does not "
               "use; set veco.freeze_steps=0 or veco.loss=ca_mlm")
        _check(v.freeze_steps < cfg.train.train_steps,
               f"veco.freeze_steps={v.freeze_steps} leaves no joint training in "
               f"train.train_steps={cfg.train.train_steps}")
        _check(v.seq2seq_decoder_layers >= 1, "veco.seq2seq_decoder_layers must be >= 1")
        if m.init_from == "tiny":
            _check(v.seq2seq_decoder_layers <= m.num_layers,
                   f"veco.seq2seq_decoder_layers={v.seq2seq_decoder_layers} > model.num_layers="
                   f"{m.num_layers}: the decoder takes the last N pretrained layers")
        check_veco_data(cfg)  # folders, kinds, tokenizers, lengths, masks, held-out splits
        self._validate_model()

    def _validate_model(self) -> None:
        """The model source, with positions for the longest input (a monolingual segment or
        the TLM pair: `veco_data.longest_sequence`)."""
        from pretrain.config import _validate_model
        from pretrain.veco_data import _manifests, longest_sequence

        cfg = self.cfg
        corpus, parallel = _manifests(cfg)
        tokenizer = (corpus + parallel)[0][1]["tokenizer"]
        longest = longest_sequence(cfg)
        probe = replace(cfg, data=replace(cfg.data, max_seq_len=longest))
        try:
            _validate_model(probe, tokenizer)
        except ConfigError as err:
            raise ConfigError(f"{err} (VECO's longest input: data.max_seq_len or the TLM pair "
                              f"of 2 × veco.bilingual_max_len = {longest})") from None

    # ------------------------------------------------------------ data
    def load_data(self):
        from pretrain.veco_data import veco_data_info

        self.info = veco_data_info(self.cfg)
        return self.info

    def describe_data(self) -> str:
        v = self.cfg.veco
        return (f"{self.info.describe(self.cfg.data.alpha)}\nschedule {v.schedule}, loss "
                f"{v.loss}{' + TLM' if v.tlm else ''}, freeze_steps {v.freeze_steps}")

    def train_batches(self, rank, world_size, consumed_samples):
        from pretrain.veco_data import train_batches

        return train_batches(self.cfg, rank, world_size, consumed_samples, self.info)

    def eval_batches(self, rank, world_size):
        from pretrain.veco_data import eval_batches

        return eval_batches(self.cfg, rank, world_size, self.info)

    # ------------------------------------------------------------ model
    def build_model(self):
        from pretrain.veco_model import build_model

        return build_model(self.cfg.model, self.cfg.veco, self.info.tokenizer)

    def param_groups(self, model):
        from pretrain.veco_model import param_groups

        return param_groups(model, self.cfg.optim.weight_decay)

    def before_step(self, step: int, optimizer) -> None:
        from pretrain.veco_model import freeze

        freeze(optimizer, step, self.cfg.veco.freeze_steps)

    # ------------------------------------------------------------ metrics
    def batch_counts(self, batch: dict[str, Tensor]) -> tuple[Tensor, int]:
        """Token-passes: each x / y token once per stream it runs through, TLM tokens once."""
        streams = 2 if self.cfg.veco.loss == "ca_mlm" else 1
        tokens = (batch["x_mask"].sum() + batch["y_mask"].sum()) * streams
        if self.cfg.veco.tlm and "tlm_mask" in batch:
            tokens = tokens + batch["tlm_mask"].sum()
        return tokens, int(batch["x_mask"].shape[0])

    def num_part_sums(self) -> int:
        from pretrain.veco_model import NUM_PARTS

        return NUM_PARTS

    def part_sums(self, parts: dict[str, Tensor]) -> Tensor:
        return parts["stats"].flatten()

    def summarize(self, sums: Tensor) -> dict[str, float]:
        """{term}_loss / {term}_acc over both kinds, {kind}/{term}_loss, masked token counts."""
        from pretrain.veco_model import KINDS, STATS, TERMS

        stats = sums.double().cpu().view(len(KINDS), len(TERMS), len(STATS))
        out: dict[str, float] = {}
        for t, term in enumerate(TERMS):
            loss, count, correct = stats[:, t].sum(0).tolist()
            if count > 0:
                out[f"{term}_loss"] = loss / count
                out[f"{term}_acc"] = correct / count
            for k, kind in enumerate(KINDS):
                loss, count, _ = stats[k, t].tolist()
                if count > 0:
                    out[f"{kind}/{term}_loss"] = loss / count
        return out

    def log_text(self, summary: dict[str, float]) -> str:
        from pretrain.veco_model import TERMS

        shown = [f"{term} {summary[f'{term}_loss']:.4f}" for term in TERMS
                 if f"{term}_loss" in summary]
        return f"({', '.join(shown)})"

    def eval_batch(self, engine, batch: dict[str, Tensor]) -> Tensor:
        _, parts = engine(**batch, task="eval")
        return torch.cat([parts["stats"].flatten(), parts["label_counts"].to(parts["stats"])])

    def summarize_eval(self, sums: Tensor) -> dict[str, float]:
        """Held-out masked-token accuracy and loss per term, and the trivial baseline: always
        predicting the most frequent masked token of the held-out set (`majority_acc`)."""
        from pretrain.veco_model import NUM_PARTS

        out = self.summarize(sums[:NUM_PARTS])
        labels = sums[NUM_PARTS:].double().cpu()
        total = float(labels.sum())
        out["masked_tokens"] = total
        out["majority_acc"] = float(labels.max()) / total if total else 0.0
        return out

    def eval_text(self, result: dict[str, float]) -> str:
        from pretrain.veco_model import TERMS

        accs = ", ".join(f"{term} {result[f'{term}_acc']:.3f}" for term in TERMS
                         if f"{term}_acc" in result)
        losses = ", ".join(f"{term} {result[f'{term}_loss']:.4f}" for term in TERMS
                           if f"{term}_loss" in result)
        return (f"masked-token acc {accs} (most frequent token "
                f"{result.get('majority_acc', 0.0):.3f}) | loss {losses}")

    def flops_per_token(self, model, mean_len: int) -> float:
        from pretrain.veco_model import flops_per_token

        return flops_per_token(model, mean_len)
