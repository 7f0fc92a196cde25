"""mGLM's training module: the GLM network (`pretrain.hf_glm`) and its loss — token cross-
entropy averaged over the Part-B targets (loss_mask), in fp32 (spec mGLM.md A1.5, A2.1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pretrain.hf_glm import GlmConfig, GlmForBlankInfilling

NUM_MODES = 3  # glm_blank: [MASK], [sMASK], [gMASK]


class GlmPretrainingModel(nn.Module):
    """The network and its Part-B loss. Only the Part-B positions (loss_mask > 0) go through the
    tied output projection — the reference projects every position (A2.1), which at mGLM-Large
    size is ~1/3 of a step's FLOPs for the ~20 % of positions that have a target."""

    def __init__(self, net: GlmForBlankInfilling):
        super().__init__()
        self.net = net

    def forward(self, input_ids: Tensor, position_ids: Tensor, labels: Tensor, loss_mask: Tensor,
                sep: Tensor, lengths: Tensor | None = None, mode: Tensor | None = None,
                redrawn: Tensor | None = None, task: str = "loss"):
        hidden, _ = self.net.hidden_states(input_ids, position_ids, sep=sep)
        where = loss_mask > 0
        rows = where.nonzero()[:, 0]  # batch row of each target
        weights = loss_mask[where].float()
        targets = labels[where]
        logits = self.net.logits(hidden[where])  # [T, V] fp32
        token_loss = F.cross_entropy(logits, targets, reduction="none") * weights
        loss = token_loss.sum() / weights.sum().clamp_min(1.0)
        with torch.no_grad():
            correct = (logits.argmax(-1) == targets).double() * weights
            per_row = torch.zeros(len(labels), 3, dtype=torch.float64, device=labels.device)
            per_row.index_add_(0, rows, torch.stack([token_loss.detach().double(),
                                                     weights.double(), correct], 1))
            modes = mode if mode is not None else torch.zeros(len(labels), dtype=torch.long,
                                                              device=labels.device)
            onehot = F.one_hot(modes, NUM_MODES).double()  # [B, 3]
            parts = {"stats": onehot.T @ per_row}  # [modes, (loss, targets, correct)]
            if redrawn is not None:
                parts["redrawn"] = redrawn.detach().double()
            if task == "eval":
                parts["label_counts"] = torch.bincount(
                    targets, minlength=logits.shape[-1]).double()
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


def flops_per_token(model: GlmPretrainingModel, seq_len: int, target_share: float = 1.0) -> float:
    """Training FLOPs per real token, forward + backward = 3 × forward, matmuls only:
    6·N (non-embedding parameters) + 12·L·h·T (attention scores and values) + 6·h·V·share (the
    tied output projection, run only on the Part-B targets: `target_share` of the tokens)."""
    net = model.net
    c = net.config
    n = sum(p.numel() for name, p in net.named_parameters() if "embeddings" not in name)
    return float(6 * n + 12 * c.num_layers * c.hidden_size * seq_len
                 + 6 * c.hidden_size * c.vocab_size * target_share)
