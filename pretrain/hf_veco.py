"""VECO's network as Hugging Face classes: `VecoConfig` and `VecoForMaskedLM` (XLM-R + one
plug-and-play cross-attention block per layer, spec VECO.md B1-B2).

SELF-CONTAINED: imports only torch and transformers (plus an optional `kernels` import inside a
try block, see below). `save_pretrained` copies this very file into the exported folder
(`auto_map` → `hf_veco.VecoConfig` / `hf_veco.VecoForMaskedLM`), so
`AutoModelForMaskedLM.from_pretrained(DIR, trust_remote_code=True)` works in a process that has
never seen our packages. Never import `pretrain`, `finetune` or `data_prep` here.

Two streams over the same pretrained layers (`roberta.encoder.layer[i]`):

* H-stream (`h_stream`): exactly `XLMRobertaModel(...).last_hidden_state` — the cross-attention
  is unplugged, so the plug-out form is a stock XLM-R.
* S-stream (`s_stream`): per layer self-attention → `cross_attention[i]` → FFN, each sublayer
  post-LN with its own residual; the cross-attention's keys/values come from `memory` (the
  partner's last-layer H, detached by the caller — the op itself never detaches).

Weights: `roberta.*` (no pooler), `lm_head.*` (decoder.weight tied to the word embeddings, as
`XLMRobertaForMaskedLM`), `cross_attention.{i}.self.{query,key,value}.*` and
`cross_attention.{i}.output.{dense,LayerNorm}.*` (the pretraining names of alibaba/AliceMind#14).

DeepSpeed ZeRO-3: the streams call submodules only (embeddings, layer.attention, the FFN's
Linear modules, the cross-attention's Linear modules), so ZeRO-3's per-module hooks gather every
parameter used. `copy_self_attention_to_cross_attention` writes parameters directly: call it
before `deepspeed.initialize`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import AutoConfig, AutoModelForMaskedLM, XLMRobertaConfig, XLMRobertaModel
from transformers.masking_utils import create_bidirectional_mask, create_causal_mask
from transformers.modeling_outputs import MaskedLMOutput
from transformers.models.xlm_roberta.modeling_xlm_roberta import (
    XLMRobertaLMHead,
    XLMRobertaPreTrainedModel,
    XLMRobertaSelfOutput,
)

MODEL_TYPE = "xpretrain-veco"


def _sdpa_cross_attention(q: Tensor, k: Tensor, v: Tensor, key_padding_mask: Tensor | None = None,
                          *, scale: float | None = None) -> Tensor:
    """The math of `kernels.cross_attention` in PyTorch SDPA: q [B, H, Lq, Dh], k, v [B, H, Lk, Dh],
    key_padding_mask bool [B, Lk] (True = keep). Rows of an example without any kept key are zero."""
    if key_padding_mask is None:
        return F.scaled_dot_product_attention(q, k, v, scale=scale)
    any_key = key_padding_mask.any(dim=1)  # [B]
    keep = (key_padding_mask | ~any_key[:, None])[:, None, None, :]  # [B, 1, 1, Lk]
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, scale=scale)
    return out * any_key[:, None, None, None].to(out.dtype)


# Our fused op when this file runs inside xpretrain; a folder's copy loaded as remote code in a
# process without our `kernels` package falls back to `_sdpa_cross_attention` (the same math).
# `VecoCrossAttention` looks this global up at every call (tests patch it).
try:
    from kernels.cross_attention import cross_attention
except ImportError:
    cross_attention = _sdpa_cross_attention


class VecoConfig(XLMRobertaConfig):
    """Every `XLMRobertaConfig` field; the cross-attention blocks have the self-attention's shape
    (hidden_size, num_attention_heads, layer_norm_eps, hidden_dropout_prob)."""

    model_type = MODEL_TYPE


class VecoCrossAttentionProjections(nn.Module):
    """`cross_attention[i].self`: query from the attending stream, key/value from the memory."""

    def __init__(self, config: XLMRobertaConfig):
        super().__init__()
        hidden = config.hidden_size
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)


class VecoCrossAttention(nn.Module):
    """BERT-style cross-attention block: LayerNorm(hidden + Dropout(dense(attn(hidden, memory)))).

    No attention-probability dropout (the fused op has none); hidden dropout only.
    """

    def __init__(self, config: XLMRobertaConfig):
        super().__init__()
        if config.hidden_size % config.num_attention_heads:
            raise ValueError(f"hidden_size {config.hidden_size} is not a multiple of "
                             f"num_attention_heads {config.num_attention_heads}")
        self.num_heads = config.num_attention_heads
        self.head_size = config.hidden_size // config.num_attention_heads
        self.self = VecoCrossAttentionProjections(config)
        self.output = XLMRobertaSelfOutput(config)  # dense, LayerNorm, dropout

    def forward(self, hidden: Tensor, memory: Tensor, memory_mask: Tensor | None = None) -> Tensor:
        """hidden [B, Tq, h] (queries), memory [B, Tk, h] (keys/values), memory_mask [B, Tk]
        (1/True = keep; None = all) → [B, Tq, h]."""
        batch, q_len, _ = hidden.shape
        k_len = memory.shape[1]
        heads = (self.num_heads, self.head_size)
        q = self.self.query(hidden).view(batch, q_len, *heads).transpose(1, 2)  # [B, H, Tq, Dh]
        k = self.self.key(memory).view(batch, k_len, *heads).transpose(1, 2)  # [B, H, Tk, Dh]
        v = self.self.value(memory).view(batch, k_len, *heads).transpose(1, 2)
        keep = None if memory_mask is None else memory_mask.to(device=q.device, dtype=torch.bool)
        attn = cross_attention(q, k, v, keep)  # [B, H, Tq, Dh]
        attn = attn.transpose(1, 2).reshape(batch, q_len, self.num_heads * self.head_size)
        return self.output(attn, hidden)


class VecoForMaskedLM(XLMRobertaPreTrainedModel):
    """XLM-R masked LM (`roberta`, `lm_head`) + `cross_attention[i]` for every layer i.

    `forward(input_ids, attention_mask)` is the plug-out MLM (identical to
    `XLMRobertaForMaskedLM`); with `partner_input_ids` it is the plug-in MLM
    `lm_head(s_stream(x, memory=h_stream(partner).detach()))` (Eqs. 12-13 of the paper).
    """

    config_class = VecoConfig
    config: VecoConfig
    base_model_prefix = "roberta"
    _tied_weights_keys = {
        "lm_head.decoder.weight": "roberta.embeddings.word_embeddings.weight",
        "lm_head.decoder.bias": "lm_head.bias",
    }

    def __init__(self, config: VecoConfig):
        super().__init__(config)
        self.roberta = XLMRobertaModel(config, add_pooling_layer=False)
        self.lm_head = XLMRobertaLMHead(config)
        self.cross_attention = nn.ModuleList(
            [VecoCrossAttention(config) for _ in range(config.num_hidden_layers)])
        self.post_init()  # normal(0, initializer_range) / zero biases / LN 1, 0; ties lm_head

    def get_output_embeddings(self):
        return self.lm_head.decoder

    def set_output_embeddings(self, new_embeddings):
        self.lm_head.decoder = new_embeddings

    # ------------------------------------------------------------------------------ streams

    def h_stream(self, input_ids: Tensor, attention_mask: Tensor | None = None, **kwargs) -> Tensor:
        """[B, T] → H^L [B, T, h]: the plain XLM-R encoder (cross-attention unplugged). Extra
        keyword arguments (token_type_ids, position_ids, …) go to `XLMRobertaModel`."""
        return self.roberta(input_ids=input_ids, attention_mask=attention_mask, return_dict=True,
                            **kwargs).last_hidden_state

    def s_stream(self, input_ids: Tensor, attention_mask: Tensor | None, memory: Tensor,
                 memory_mask: Tensor | None, *, layers=None, causal: bool = False) -> Tensor:
        """S-stream: input_ids, attention_mask [B, T]; memory [B, Tk, h]; memory_mask [B, Tk]
        (1/True = keep) → S [B, T, h].

        Embeddings of input_ids, then for each pretrained layer i in `layers` (default: all, in
        order): self-attention (+ its post-LN) → `cross_attention[i]` over `memory` → FFN (+ its
        post-LN). `causal=True` makes the self-attention causal (the seq2seq decoder's view).
        The memory is used as given: detach it for VECO's stop-gradient.
        """
        count = len(self.roberta.encoder.layer)
        indices = list(range(count)) if layers is None else [int(i) for i in layers]
        bad = [i for i in indices if not 0 <= i < count]
        if bad:
            raise IndexError(f"s_stream layers {bad} out of range for a {count}-layer network")
        hidden = self.roberta.embeddings(input_ids=input_ids)  # [B, T, h]
        if causal:
            self_mask = create_causal_mask(config=self.config, inputs_embeds=hidden,
                                           attention_mask=attention_mask, past_key_values=None)
        else:
            self_mask = create_bidirectional_mask(config=self.config, inputs_embeds=hidden,
                                                  attention_mask=attention_mask)
        for i in indices:
            layer = self.roberta.encoder.layer[i]
            # is_causal matters where the mask builder returned None (sdpa / flash, no padding)
            attended, _ = layer.attention(hidden, self_mask, is_causal=causal)
            attended = self.cross_attention[i](attended, memory, memory_mask)
            hidden = layer.feed_forward_chunk(attended)
        return hidden

    # --------------------------------------------------------------------------- utilities

    @torch.no_grad()
    def copy_self_attention_to_cross_attention(self) -> None:
        """Initialisation option "self": cross_attention[i] ← a copy of layer i's self-attention
        (attention.self.{query,key,value}, attention.output.{dense,LayerNorm})."""
        for layer, cross in zip(self.roberta.encoder.layer, self.cross_attention, strict=True):
            source = layer.attention
            for name in ("query", "key", "value"):
                getattr(cross.self, name).load_state_dict(getattr(source.self, name).state_dict())
            cross.output.dense.load_state_dict(source.output.dense.state_dict())
            cross.output.LayerNorm.load_state_dict(source.output.LayerNorm.state_dict())

    def forward(self, input_ids: Tensor | None = None, attention_mask: Tensor | None = None,
                partner_input_ids: Tensor | None = None,
                partner_attention_mask: Tensor | None = None, labels: Tensor | None = None,
                **kwargs) -> MaskedLMOutput:
        """input_ids, attention_mask [B, T]; partner_* [B, Tp]; labels [B, T] (-100 = ignored).

        Without a partner: XLM-R's MLM (extra keyword arguments go to `XLMRobertaModel`). With
        one: the plug-in MLM over the partner's detached H^L (extra arguments must be unset).
        """
        if partner_input_ids is None:
            hidden = self.h_stream(input_ids, attention_mask, **kwargs)
        else:
            extra = sorted(k for k, v in kwargs.items()
                           if k != "return_dict" and v is not None and v is not False)
            if extra:
                raise TypeError(f"VecoForMaskedLM.forward with partner_input_ids does not take "
                                f"{extra}")
            memory = self.h_stream(partner_input_ids, partner_attention_mask).detach()
            hidden = self.s_stream(input_ids, attention_mask, memory, partner_attention_mask)
        logits = self.lm_head(hidden)  # [B, T, V]
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.view(-1, self.config.vocab_size),
                                   labels.to(logits.device).view(-1), ignore_index=-100)
        return MaskedLMOutput(loss=loss, logits=logits)


# save_pretrained copies this file and writes `auto_map` for these two Auto classes.
VecoConfig.register_for_auto_class("AutoConfig")
VecoForMaskedLM.register_for_auto_class("AutoModelForMaskedLM")


def register() -> None:
    """Map model_type "xpretrain-veco" to these classes in `AutoConfig` /
    `AutoModelForMaskedLM` (idempotent). Called when imported as `pretrain.hf_veco`; a copy
    loaded as a folder's remote code does not register itself."""
    AutoConfig.register(MODEL_TYPE, VecoConfig, exist_ok=True)
    AutoModelForMaskedLM.register(VecoConfig, VecoForMaskedLM, exist_ok=True)


if __name__ == "pretrain.hf_veco":
    register()


__all__ = ["MODEL_TYPE", "VecoConfig", "VecoCrossAttention", "VecoForMaskedLM", "register"]
