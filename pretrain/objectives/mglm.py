"""mGLM as an objective: `corpus` folders built with a GLM tokenizer → packed windows blended
over languages by bytes (α = 0.3, `pretrain.glm_data`) → blank-infilling batches in three modes
(`pretrain.glm_blank`) → the GLM transformer with 2D positions and the `sep` attention
(`pretrain.hf_glm`, loss = token mean over Part B in `pretrain.glm_model`), evaluated on
held-out documents against the most-frequent-token baseline, exported by `pretrain.glm_export`."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor

from pretrain.config import ConfigError
from pretrain.objectives import Objective

ATTENTIONS = ("auto", "flex", "sdpa", "dense")
MODES = ("mask", "smask", "gmask")  # batch modes of glm_blank, in its `mode` numbering


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


class MglmObjective(Objective):
    name = "mglm"

    # ------------------------------------------------------------ validation
    def validate(self, world_size: int) -> None:
        from pretrain.glm_data import check_glm_data

        cfg = self.cfg
        g, d = cfg.mglm, cfg.data
        _check(not d.parallel_paths, "data.parallel_paths is for VECO; mGLM reads corpus "
               "folders from data.paths only")
        for name in ("bert_prob", "gap_sentence_prob", "bert_ratio", "gap_sentence_ratio",
                     "gpt_min_ratio", "gpt_infill_prob", "block_mask_prob", "short_seq_prob"):
            value = getattr(g, name)
            _check(0.0 <= value <= 1.0, f"mglm.{name} must be in [0, 1], got {value}")
        _check(g.bert_prob + g.gap_sentence_prob <= 1.0 + 1e-9,
               f"mglm.bert_prob + mglm.gap_sentence_prob = "
               f"{g.bert_prob + g.gap_sentence_prob:g} > 1 (the rest is the [gMASK] share)")
        _check(g.avg_block_length > 0, f"mglm.avg_block_length must be > 0, got "
               f"{g.avg_block_length}")
        _check(g.max_block_length >= 2, f"mglm.max_block_length must be >= 2, got "
               f"{g.max_block_length} (span lengths are 1 .. max_block_length - 1)")
        _check(g.eval_documents >= 0, "mglm.eval_documents must be >= 0")
        _check(g.attention in ATTENTIONS,
               f"mglm.attention must be one of {ATTENTIONS}, got {g.attention!r}")
        _check(d.max_seq_len >= 16, f"data.max_seq_len={d.max_seq_len} is too short for blank "
               f"infilling (need >= 16)")
        check_glm_data(cfg)  # folders, layout, GLM tokenizer, same tokenizer, held-out split
        self._validate_model()

    def _validate_model(self) -> None:
        """Positions: both tables index Part-A positions and block positions, each
        < data.max_seq_len (spec mGLM.md A1.5, A1.7)."""
        cfg = self.cfg
        m = cfg.model
        if m.init_from == "tiny":
            for name in ("hidden_size", "num_layers", "num_heads", "intermediate_size"):
                _check(getattr(m, name) > 0, f"model.{name} must be > 0")
            _check(m.hidden_size % m.num_heads == 0, f"model.hidden_size={m.hidden_size} is "
                   f"not divisible by model.num_heads={m.num_heads}")
            positions = m.max_position_embeddings
        else:
            config_file = Path(m.init_from) / "config.json"
            _check(config_file.is_file(), f"model.init_from: {m.init_from} is not an exported "
                   f"GLM folder (no config.json); use 'tiny' or a convert_to_hf output")
            hf = json.loads(config_file.read_text(encoding="utf-8"))
            from pretrain.hf_glm import MODEL_TYPE

            _check(hf.get("model_type") == MODEL_TYPE, f"model.init_from: {m.init_from} holds "
                   f"a {hf.get('model_type')!r} model, not {MODEL_TYPE!r}")
            positions = int(hf.get("max_position_embeddings", 0))
        _check(positions > cfg.data.max_seq_len,
               f"model max_position_embeddings={positions} <= data.max_seq_len="
               f"{cfg.data.max_seq_len}: positions run to max_seq_len - 1 and block positions "
               f"to max_seq_len (a span of the whole window + [sop]), so both tables need "
               f"max_seq_len + 1 rows (the reference: 1025 for 512)")

    # ------------------------------------------------------------ data
    def load_data(self):
        from pretrain.glm_data import glm_data_info

        self.info = glm_data_info(self.cfg)
        return self.info

    def describe_data(self) -> str:
        g = self.cfg.mglm
        gpt = 1.0 - g.bert_prob - g.gap_sentence_prob
        return (f"{self.info.describe(self.cfg.data.alpha)}\nblank infilling: [MASK] "
                f"{g.bert_prob:g} / [sMASK] {g.gap_sentence_prob:g} / [gMASK] {gpt:g} of the "
                f"batches, attention {g.attention}")

    def train_batches(self, rank, world_size, consumed_samples):
        from pretrain.glm_data import train_batches

        return train_batches(self.cfg, rank, world_size, consumed_samples, self.info)

    def eval_batches(self, rank, world_size):
        from pretrain.glm_data import eval_batches

        return eval_batches(self.cfg, rank, world_size, self.info)

    # ------------------------------------------------------------ model
    def build_model(self):
        from pretrain.glm_model import build_model

        return build_model(self.cfg.model, self.cfg.mglm, self.info.tokenizer)

    def param_groups(self, model):
        from pretrain.glm_model import param_groups

        return param_groups(model, self.cfg.optim.weight_decay)

    # ------------------------------------------------------------ metrics
    def batch_counts(self, batch: dict[str, Tensor]) -> tuple[Tensor, int]:
        """Real tokens (Part A + Part B, padding excluded) and sequences; also counts the
        Part-B targets, whose share of the tokens `flops_per_token` needs."""
        tokens = batch["lengths"].sum()
        self._share = getattr(self, "_share", [0.0, 0.0])
        self._share[0] += float(batch["loss_mask"].sum())
        self._share[1] += float(tokens)
        return tokens, int(batch["lengths"].shape[0])

    def num_part_sums(self) -> int:
        return len(MODES) * 3 + 1  # per mode (loss sum, targets, correct) + re-drawn samples

    def part_sums(self, parts: dict[str, Tensor]) -> Tensor:
        stats = parts["stats"].double().flatten()
        redrawn = parts.get("redrawn", torch.zeros((), dtype=torch.float64, device=stats.device))
        return torch.cat([stats, redrawn.double().reshape(1).to(stats.device)])

    def summarize(self, sums: Tensor) -> dict[str, float]:
        """Part-B loss / accuracy over all modes and per mode ({mode}_loss), re-drawn samples."""
        sums = sums.double().cpu()
        stats = sums[:len(MODES) * 3].view(len(MODES), 3)
        loss, count, correct = stats.sum(0).tolist()
        out: dict[str, float] = {}
        if count > 0:
            out["blank_loss"] = loss / count
            out["blank_acc"] = correct / count
            out["target_tokens"] = count
        for k, mode in enumerate(MODES):
            loss, count, _ = stats[k].tolist()
            if count > 0:
                out[f"{mode}_loss"] = loss / count
        out["redrawn"] = float(sums[len(MODES) * 3])
        return out

    def log_text(self, summary: dict[str, float]) -> str:
        shown = [f"{mode} {summary[f'{mode}_loss']:.4f}" for mode in MODES
                 if f"{mode}_loss" in summary]
        return f"({', '.join(shown)})"

    def eval_batch(self, engine, batch: dict[str, Tensor]) -> Tensor:
        _, parts = engine(**batch, task="eval")
        return torch.cat([self.part_sums(parts), parts["label_counts"].double().flatten()])

    def summarize_eval(self, sums: Tensor) -> dict[str, float]:
        """Held-out Part-B loss and token accuracy, and the trivial baseline: always predicting
        the most frequent target token of the held-out set (`majority_acc`)."""
        n = self.num_part_sums()
        out = self.summarize(sums[:n])
        labels = sums[n:].double().cpu()
        total = float(labels.sum())
        out["majority_acc"] = float(labels.max()) / total if total else 0.0
        return out

    def eval_text(self, result: dict[str, float]) -> str:
        modes = ", ".join(f"{mode} {result[f'{mode}_loss']:.4f}" for mode in MODES
                          if f"{mode}_loss" in result)
        return (f"blank-token acc {result.get('blank_acc', 0.0):.3f} (most frequent token "
                f"{result.get('majority_acc', 0.0):.3f}) | loss {result.get('blank_loss', 0.0):.4f}"
                f" ({modes})")

    def flops_per_token(self, model, mean_len: int) -> float:
        """With the Part-B share of the tokens counted since the last call (the output
        projection runs on those only)."""
        from pretrain.glm_model import flops_per_token

        targets, tokens = getattr(self, "_share", [0.0, 0.0])
        self._share = [0.0, 0.0]
        return flops_per_token(model, mean_len, targets / tokens if tokens else 1.0)
