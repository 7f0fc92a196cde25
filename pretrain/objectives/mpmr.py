"""mPMR as an objective: MRC folders → α-blended WAE batches (`pretrain.data`), the XLM-R +
span-extractor model and its loss / evaluation (`pretrain.model`)."""

from __future__ import annotations

import torch
from torch import Tensor

from pretrain.config import ConfigError
from pretrain.objectives import Objective


class MPMRObjective(Objective):
    name = "mpmr"

    def validate(self, world_size: int) -> None:
        from pretrain.config import _validate_data_lengths, _validate_model, read_manifests

        cfg = self.cfg
        m, d = cfg.model, cfg.data
        if d.parallel_paths:
            raise ConfigError("data.parallel_paths is for VECO; mPMR reads MRC folders from "
                              "data.paths only")
        if d.max_query_tokens <= 0:
            raise ConfigError("data.max_query_tokens must be > 0")
        if d.eval_entities < 0:
            raise ConfigError("data.eval_entities must be >= 0")
        if m.relevance_weight <= 0:
            raise ConfigError(f"model.relevance_weight must be > 0, got {m.relevance_weight}")
        if m.extractor_size <= 0:
            raise ConfigError(f"model.extractor_size must be > 0, got {m.extractor_size}")
        manifests = read_manifests(d)
        _validate_model(cfg, manifests[0][1]["tokenizer"])
        _validate_data_lengths(cfg, manifests)

    # ------------------------------------------------------------ data
    def load_data(self):
        from data_prep.format import manifest_hash
        from pretrain.data import data_info

        self.info = data_info(self.cfg)
        self.info.data_hashes = {lang: manifest_hash(folder)
                                 for lang, folder in zip(self.info.languages, self.info.folders)}
        return self.info

    def describe_data(self) -> str:
        from pretrain.data import format_weights

        weights = self.info.weights(self.cfg.data.alpha)
        return (f"languages (train examples → blend weight, alpha={self.cfg.data.alpha}): "
                f"{format_weights(self.info.train_sizes, weights)}")

    def train_batches(self, rank, world_size, consumed_samples):
        from pretrain.data import train_batches

        return train_batches(self.cfg, rank, world_size, consumed_samples, self.info)

    def eval_batches(self, rank, world_size):
        from pretrain.data import eval_batches

        return eval_batches(self.cfg, rank, world_size, self.info)

    # ------------------------------------------------------------ model
    def build_model(self):
        from pretrain.model import build_model

        return build_model(self.cfg.model, self.info.tokenizer)

    # ------------------------------------------------------------ metrics
    def num_part_sums(self) -> int:
        from pretrain.model import PART_NAMES

        return len(PART_NAMES) * len(self.info.languages)

    def part_sums(self, parts: dict[str, Tensor]) -> Tensor:
        from pretrain.model import parts_by_language

        return parts_by_language(parts, len(self.info.languages)).flatten()

    def summarize(self, sums: Tensor) -> dict[str, float]:
        from pretrain.model import PART_NAMES, summarize_parts

        return summarize_parts(sums.view(len(PART_NAMES), -1), self.info.languages)

    def log_text(self, summary: dict[str, float]) -> str:
        langs = " ".join(f"{lang} {summary[f'loss/{lang}']:.4f}" for lang in self.info.languages
                         if f"loss/{lang}" in summary)
        return (f"(cls {summary.get('cls_loss', float('nan')):.4f}, span "
                f"{summary.get('span_loss', float('nan')):.4f}) | {langs}")

    def eval_batch(self, engine, batch: dict[str, Tensor]) -> Tensor:
        from pretrain.model import EVAL_KEYS

        found = engine(**batch, task="eval")
        counts = torch.tensor([float(found[k]) for k in EVAL_KEYS], dtype=torch.float64,
                              device=batch["input_ids"].device)
        _, parts = engine(**batch, task="loss")
        return torch.cat([counts, self.part_sums(parts).to(counts.device)])

    def summarize_eval(self, sums: Tensor) -> dict[str, float]:
        from pretrain.model import EVAL_KEYS, summarize_eval

        totals = dict(zip(EVAL_KEYS, sums[:len(EVAL_KEYS)].tolist()))
        return {**summarize_eval(totals), **self.summarize(sums[len(EVAL_KEYS):])}

    def eval_text(self, result: dict[str, float]) -> str:
        return (f"best-span EM {result['best_span_em']:.3f} (random span "
                f"{result['random_span_em']:.4f}) | relevance acc {result['relevance_acc']:.3f} "
                f"(majority {result['relevance_majority']:.3f}) | span P "
                f"{result['precision']:.3f} R {result['recall']:.3f} F1 {result['f1']:.3f} | "
                f"loss {result.get('loss', float('nan')):.4f} (cls "
                f"{result.get('cls_loss', float('nan')):.4f}, span "
                f"{result.get('span_loss', float('nan')):.4f})")

    def flops_per_token(self, model, mean_len: int) -> float:
        from pretrain.model import flops_per_token

        return flops_per_token(model, mean_len)
