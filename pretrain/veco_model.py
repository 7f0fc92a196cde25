"""VECO's training module: the network of `pretrain.hf_veco` plus Eq. 1 of the paper and TLM.

For a micro-batch of pairs (x, y) with masked copies (x̂, ŷ) (`pretrain.veco_data`):

* H-stream (cross-attention unplugged): H_x = XLM-R(x̂), H_y = XLM-R(ŷ); terms `mlm_x`, `mlm_y`
  = −log P(x | x̂), −log P(y | ŷ) (Eqs. 10-11).
* S-stream (plugged in): S_x = the same layers on x̂ with every layer cross-attending to
  H^L_y **detached**, S_y likewise with H^L_x; terms `ca_mlm_x`, `ca_mlm_y` (Eqs. 12-13). The
  stop-gradient means the S-stream terms train θ_s only through the S-stream's own pass and
  θ_c, never through the H-stream that produced the memory (S2:90-92).
* TLM on bilingual batches (`veco.tlm`): MLM over `<s> x̂ </s></s> ŷ </s>` with its own mask.
* loss = the unweighted sum of the terms present, each the mean cross-entropy over its masked
  tokens (Eq. 1; TLM added as S2:143-144 says). `veco.loss: mlm` keeps the H-stream terms only.

x and y are padded to one length and run as one batch of 2B sequences per stream (one pass
instead of two); the LM head `f` is the same tied XLM-R head in every term (decision, spec B6.7).

Parts (`PART_NAMES`): per batch kind (mono / bilingual) and term, the summed cross-entropy, the
masked-token count and the correct argmax predictions; plus, in evaluation, a histogram of the
masked labels for the most-frequent-token baseline.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

TERMS = ("mlm_x", "mlm_y", "ca_mlm_x", "ca_mlm_y", "tlm")
KINDS = ("mono", "bilingual")
STATS = ("loss_sum", "count", "correct")
NUM_PARTS = len(KINDS) * len(TERMS) * len(STATS)


def _pad_to(t: Tensor, length: int, value: int) -> Tensor:
    return F.pad(t, (0, length - t.shape[1]), value=value) if t.shape[1] < length else t


class VecoPretrainingModel(nn.Module):
    """`engine(**batch, task="loss")` → (loss, parts); parts["stats"] is float64
    [len(KINDS), len(TERMS), len(STATS)] (see `PART_NAMES`), parts["label_counts"] (only with
    `task="eval"`) is float64 [vocab]."""

    def __init__(self, net: nn.Module, loss: str = "ca_mlm", tlm: bool = True):
        super().__init__()
        self.net = net
        self.ca_mlm = loss == "ca_mlm"
        self.tlm = tlm
        self.pad_id = int(net.config.pad_token_id)

    @property
    def config(self):
        return self.net.config

    def forward(self, task: str = "loss", **batch: Tensor):
        if task not in ("loss", "eval"):
            raise ValueError(f"unknown task {task!r}; expected 'loss' or 'eval'")
        return self.loss(batch, with_labels=task == "eval")

    def _term(self, hidden: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """MLM over the masked positions: (CE sum, count, correct, the labels there)."""
        where = labels != -100
        target = labels[where]
        logits = self.net.lm_head(hidden[where]).float()  # only masked rows reach the head
        ce = F.cross_entropy(logits, target, reduction="sum")
        correct = (logits.argmax(-1) == target).sum()
        return ce, where.sum(), correct, target

    def loss(self, batch: dict[str, Tensor], with_labels: bool = False):
        net = self.net
        kind = int(batch["kind"][0])
        length = max(batch["x_ids"].shape[1], batch["y_ids"].shape[1])
        ids = torch.cat([_pad_to(batch["x_ids"], length, self.pad_id),
                         _pad_to(batch["y_ids"], length, self.pad_id)])
        mask = torch.cat([_pad_to(batch["x_mask"], length, 0), _pad_to(batch["y_mask"], length, 0)])
        labels = torch.cat([_pad_to(batch["x_labels"], length, -100),
                            _pad_to(batch["y_labels"], length, -100)])
        size = batch["x_ids"].shape[0]
        hidden = net.h_stream(ids, mask)  # [2B, T, h]: H_x then H_y
        streams = [("mlm_x", hidden[:size], labels[:size]), ("mlm_y", hidden[size:], labels[size:])]
        if self.ca_mlm:
            # Stop-gradient: the partner's last-layer H is a constant for the S-stream.
            memory = torch.cat([hidden[size:], hidden[:size]]).detach()
            memory_mask = torch.cat([mask[size:], mask[:size]])
            s = net.s_stream(ids, mask, memory, memory_mask)
            streams += [("ca_mlm_x", s[:size], labels[:size]), ("ca_mlm_y", s[size:], labels[size:])]
        if self.tlm and "tlm_ids" in batch:
            streams.append(("tlm", net.h_stream(batch["tlm_ids"], batch["tlm_mask"]),
                            batch["tlm_labels"]))
        stats = torch.zeros(len(KINDS), len(TERMS), len(STATS), dtype=torch.float64,
                            device=ids.device)
        total = hidden.new_zeros((), dtype=torch.float32)
        seen = []
        for name, h, lab in streams:
            ce, count, correct, target = self._term(h, lab)
            total = total + ce / count.clamp(min=1)
            stats[kind, TERMS.index(name)] = torch.stack(
                [ce.detach().double(), count.double(), correct.double()])
            seen.append(target)
        parts = {"stats": stats}
        if with_labels:
            parts["label_counts"] = torch.bincount(
                torch.cat(seen), minlength=int(net.config.vocab_size)).double()
        return total, parts


# ---------------------------------------------------------------------- construction

def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups, cross-attention first (so group 0's lr is the one always trained and
    logged): {cross_attention, base} × {decay, no decay}; each group carries a "name"
    (`freeze` sets the base groups' lr to 0). Empty groups are left out."""
    groups = {(part, decay): [] for part in ("cross_attention", "base") for decay in (1, 0)}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        part = "cross_attention" if ".cross_attention." in f".{name}" else "base"
        decay = 0 if param.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else 1
        groups[(part, decay)].append(param)
    return [{"params": params, "weight_decay": weight_decay if decay else 0.0, "name": part}
            for (part, decay), params in groups.items() if params]


def freeze(optimizer, step: int, freeze_steps: int) -> None:
    """VECO's first stage (S2:145-146): during steps 1..freeze_steps only the cross-attention
    learns — the other groups run at lr 0 (AdamW then changes nothing, weight decay included);
    the LR schedule puts their lr back from step freeze_steps + 1 on."""
    if step <= freeze_steps:
        for group in optimizer.param_groups:
            if group.get("name") == "base":
                group["lr"] = 0.0


def network_config(model_cfg, tokenizer_info: dict):
    """VecoConfig for `model.init_from: tiny` (the same fields as mPMR's tiny encoder)."""
    from pretrain.hf_veco import VecoConfig
    from pretrain.model import tiny_encoder_config

    return VecoConfig(**tiny_encoder_config(model_cfg, tokenizer_info).to_dict())


def build_network(model_cfg, veco_cfg, tokenizer_info: dict):
    """The VECO network: random (tiny) or XLM-R weights from `model.init_from` (any
    XLMRobertaForMaskedLM folder or hub name) with randomly initialised cross-attention, or,
    with `veco.cross_attention_init: self`, each layer's self-attention copied into it."""
    from transformers import XLMRobertaForMaskedLM

    from pretrain.hf_veco import VecoConfig, VecoForMaskedLM

    if model_cfg.init_from == "tiny":
        net = VecoForMaskedLM(network_config(model_cfg, tokenizer_info))
    else:
        source = model_cfg.init_from
        xlmr = XLMRobertaForMaskedLM.from_pretrained(source,
                                                     local_files_only=Path(source).is_dir())
        vocab = int(tokenizer_info.get("vocab_size", 0))
        if xlmr.config.vocab_size < vocab:
            raise ValueError(f"model.init_from={source} has {xlmr.config.vocab_size} token "
                             f"embeddings but the data's tokenizer has {vocab} ids")
        config = VecoConfig(**{k: v for k, v in xlmr.config.to_dict().items()
                               if k not in ("model_type", "architectures")})
        net = VecoForMaskedLM(config)
        missing, unexpected = net.load_state_dict(xlmr.state_dict(), strict=False)
        missing = [k for k in missing if not k.startswith("cross_attention.")
                   and k != "lm_head.decoder.weight"]
        if missing or unexpected:
            raise ValueError(f"model.init_from={source}: not an XLM-R masked-LM checkpoint "
                             f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
        del xlmr
    if veco_cfg.cross_attention_init == "self":
        net.copy_self_attention_to_cross_attention()
    return net


def build_model(model_cfg, veco_cfg, tokenizer_info: dict) -> VecoPretrainingModel:
    model = VecoPretrainingModel(build_network(model_cfg, veco_cfg, tokenizer_info),
                                 loss=veco_cfg.loss, tlm=veco_cfg.tlm)
    if veco_cfg.loss == "mlm":  # no S-stream: the cross-attention takes no part in training
        model.net.cross_attention.requires_grad_(False)
    return model


def count_parameters(module: nn.Module) -> int:
    """Non-embedding parameters of a module (ZeRO-3 aware)."""
    return sum(int(getattr(p, "ds_numel", p.numel())) for name, p in module.named_parameters()
               if ".embeddings." not in f".{name}")


def flops_per_token(model: VecoPretrainingModel, seq_len: int) -> float:
    """Training FLOPs per counted token-pass (`VecoObjective.batch_counts` counts each x / y
    token once per stream it passes and each TLM token once), forward + backward = 3 × forward:

        6·N_s + 12·L·h·T            every pass (self-attention stack + LM head ignored)
        + ½·(6·N_c + 12·L·h·T)      with CA-MLM, half of the passes are S-stream passes, which
                                     add the cross-attention blocks (memory of length ≈ T)

    N_s = non-embedding parameters outside the cross-attention, N_c = the cross-attention's.
    The stop-gradient changes no FLOPs here: without it the S-stream's key/value gradients would
    join the backward the H-stream runs anyway for its own terms (`bench/veco_step.py`: the
    S-stream terms alone are ~1.3x cheaper with it, the whole Eq. 1 about the same)."""
    net = model.net
    n_c = count_parameters(net.cross_attention)
    n_s = count_parameters(net) - n_c
    h, layers = net.config.hidden_size, net.config.num_hidden_layers
    per_pass = 6 * n_s + 12 * layers * h * seq_len
    if model.ca_mlm:
        per_pass += 0.5 * (6 * n_c + 12 * layers * h * seq_len)
    return float(per_pass)
