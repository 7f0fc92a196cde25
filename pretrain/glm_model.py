"""mGLM's training module: the GLM network (`pretrain.hf_glm`) and its loss — token cross-
entropy averaged over the Part-B targets (loss_mask), in fp32 (spec mGLM.md A1.5, A2.1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pretrain.hf_glm import GlmConfig, GlmForBlankInfilling

NUM_MODES = 3  # glm_blank: [MASK], [sMASK], [gMASK]


class GlmPretrainingModel(nn.Module):
    def __init__(self, net: GlmForBlankInfilling):
        super().__init__()
        self.net = net

    def forward(self, input_ids: Tensor, position_ids: Tensor, labels: Tensor, loss_mask: Tensor,
                sep: Tensor, lengths: Tensor | None = None, mode: Tensor | None = None,
                redrawn: Tensor | None = None, task: str = "loss"):
        logits = self.net(input_ids, position_ids, sep=sep).logits
        token_loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(),
                                     reduction="none").view_as(loss_mask)
        weights = loss_mask.float()
        loss = (token_loss * weights).sum() / weights.sum().clamp_min(1.0)
        with torch.no_grad():
            correct = (logits.argmax(-1) == labels).float() * weights
            modes = mode if mode is not None else torch.zeros(len(labels), dtype=torch.long,
                                                              device=labels.device)
            onehot = F.one_hot(modes, NUM_MODES).double()  # [B, 3]
            per_row = torch.stack([(token_loss.detach() * weights).sum(1), weights.sum(1),
                                   correct.sum(1)], 1).double()  # [B, 3]
            parts = {"stats": onehot.T @ per_row}  # [modes, (loss, targets, correct)]
            if redrawn is not None:
                parts["redrawn"] = redrawn.detach().double()
            if task == "eval":
                parts["label_counts"] = torch.bincount(
                    labels[weights > 0], minlength=logits.shape[-1]).double()
        return loss, parts


def network_config(model_cfg, mglm_cfg, tokenizer: dict) -> GlmConfig:
    return GlmConfig(vocab_size=int(tokenizer["padded_vocab_size"]),
                     hidden_size=model_cfg.hidden_size, num_layers=model_cfg.num_layers,
                     num_heads=model_cfg.num_heads, intermediate_size=model_cfg.intermediate_size,
                     max_position_embeddings=model_cfg.max_position_embeddings,
                     hidden_dropout=model_cfg.dropout, attention_dropout=model_cfg.dropout,
                     attention=mglm_cfg.attention)


def build_model(model_cfg, mglm_cfg, tokenizer: dict) -> GlmPretrainingModel:
    """"tiny" = a fresh network of cfg.model's shape (A2.1 init); else an exported GLM folder."""
    if model_cfg.init_from == "tiny":
        net = GlmForBlankInfilling(network_config(model_cfg, mglm_cfg, tokenizer))
    else:
        net = GlmForBlankInfilling.from_pretrained(model_cfg.init_from)
        net.config.attention = mglm_cfg.attention
    return GlmPretrainingModel(net)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on LayerNorm weights and biases (A2.4); embeddings decay like the
    reference (its no-decay set is LayerNorm + biases only)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if param.ndim < 2 or "layernorm" in name else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def flops_per_token(model: GlmPretrainingModel, seq_len: int) -> float:
    """Training FLOPs per real token, forward + backward = 3 × forward, matmuls only:
    6·N (non-embedding parameters) + 12·L·h·T (attention scores and values) + 6·h·V (the
    tied output projection, which GLM computes for every position)."""
    net = model.net
    c = net.config
    n = sum(p.numel() for name, p in net.named_parameters() if "embeddings" not in name)
    return float(6 * n + 12 * c.num_layers * c.hidden_size * seq_len
                 + 6 * c.hidden_size * c.vocab_size)
