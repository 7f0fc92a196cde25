"""The GLM transformer with 2D positions as Hugging Face classes (spec mGLM.md A2.1), self-
contained (torch + transformers only) so that exported folders carry it as remote code.

Embeddings = word + position + block position (no LayerNorm, no token types), dropout; pre-LN
layers with a fused QKV projection, GELU (tanh) MLP; final LayerNorm; logits tied to the word
embeddings. Attention is structured by `sep` (A1.6): row i sees column j iff j <= i or j < sep.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput

MODEL_TYPE = "xpretrain-glm"
ATTENTIONS = ("auto", "flex", "sdpa", "dense")


class GlmConfig(PretrainedConfig):
    model_type = MODEL_TYPE

    def __init__(self, vocab_size: int = 128, hidden_size: int = 32, num_layers: int = 2,
                 num_heads: int = 2, intermediate_size: int = 128,
                 max_position_embeddings: int = 64, hidden_dropout: float = 0.1,
                 attention_dropout: float = 0.1, layer_norm_eps: float = 1e-5,
                 initializer_range: float = 0.02, attention: str = "auto", **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.hidden_size = vocab_size, hidden_size
        self.num_layers, self.num_heads = num_layers, num_heads
        self.intermediate_size = intermediate_size
        self.max_position_embeddings = max_position_embeddings
        self.hidden_dropout, self.attention_dropout = hidden_dropout, attention_dropout
        self.layer_norm_eps, self.initializer_range = layer_norm_eps, initializer_range
        self.attention = attention


@dataclass
class GlmOutput(ModelOutput):
    logits: Tensor | None = None
    past_key_values: list | None = None


def sep_mask(sep: Tensor, q_len: int, k_len: int | None = None) -> Tensor:
    """bool [B, 1, Q, K]: True = attend; row i sees column j iff j <= i or j < sep (A1.6)."""
    k_len = q_len if k_len is None else k_len
    rows = torch.arange(q_len, device=sep.device)[:, None]
    cols = torch.arange(k_len, device=sep.device)[None, :]
    return ((cols <= rows)[None] | (cols[None] < sep[:, None, None]))[:, None]


def _flex_block_mask(sep: Tensor, length: int):
    from torch.nn.attention.flex_attention import create_block_mask

    def mask_mod(b, h, q, k):
        return (k <= q) | (k < sep[b])

    return create_block_mask(mask_mod, sep.shape[0], None, length, length, device=sep.device)


_FLEX: list = []


def _compiled_flex():
    """FlexAttention compiled once per process (uncompiled it runs an unfused reference);
    dynamic shapes, since the batch width changes from batch to batch."""
    if not _FLEX:
        from torch.nn.attention.flex_attention import flex_attention

        _FLEX.append(torch.compile(flex_attention, dynamic=True))
    return _FLEX[0]


class GlmAttention(nn.Module):
    def __init__(self, config: GlmConfig):
        super().__init__()
        self.heads = config.num_heads
        self.query_key_value = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = config.attention_dropout

    def forward(self, x: Tensor, mask, kind: str, past: tuple[Tensor, Tensor] | None):
        b, s, h = x.shape
        q, k, v = self.query_key_value(x).view(b, s, 3, self.heads, h // self.heads).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B, H, S, D]
        if past is not None:
            k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)
        p = self.dropout if self.training else 0.0
        if kind == "flex":  # no attention-probability dropout on this path (README)
            out = _compiled_flex()(q, k, v, block_mask=mask)
        elif kind == "dense":  # the reference's way: an additive float mask (A1.6)
            scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
            scores = scores * mask - 10000.0 * (1.0 - mask)
            out = F.dropout(scores.softmax(-1), p, self.training) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        return self.dense(out.transpose(1, 2).reshape(b, s, h)), (k, v)


class GlmLayer(nn.Module):
    def __init__(self, config: GlmConfig):
        super().__init__()
        h, eps = config.hidden_size, config.layer_norm_eps
        self.input_layernorm = nn.LayerNorm(h, eps=eps)
        self.attention = GlmAttention(config)
        self.post_attention_layernorm = nn.LayerNorm(h, eps=eps)
        self.dense_h_to_4h = nn.Linear(h, config.intermediate_size)
        self.dense_4h_to_h = nn.Linear(config.intermediate_size, h)
        self.dropout = nn.Dropout(config.hidden_dropout)

    def forward(self, x, mask, kind, past):
        attn, present = self.attention(self.input_layernorm(x), mask, kind, past)
        x = x + self.dropout(attn)
        mlp = self.dense_4h_to_h(F.gelu(self.dense_h_to_4h(self.post_attention_layernorm(x)),
                                        approximate="tanh"))
        return x + self.dropout(mlp), present


class GlmForBlankInfilling(PreTrainedModel):
    config_class = GlmConfig
    base_model_prefix = "glm"
    _tied_weights_keys = []

    def __init__(self, config: GlmConfig):
        super().__init__(config)
        h = config.hidden_size
        self.word_embeddings = nn.Embedding(config.vocab_size, h)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, h)
        self.block_position_embeddings = nn.Embedding(config.max_position_embeddings, h)
        self.embedding_dropout = nn.Dropout(config.hidden_dropout)
        self.layers = nn.ModuleList(GlmLayer(config) for _ in range(config.num_layers))
        self.final_layernorm = nn.LayerNorm(h, eps=config.layer_norm_eps)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        """N(0, 0.02); the attention output and 4h→h layers N(0, 0.02/√(2L)); biases 0 (A2.1)."""
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            scaled = any(module is layer.attention.dense or module is layer.dense_4h_to_h
                         for layer in getattr(self, "layers", []))
            nn.init.normal_(module.weight, 0.0,
                            std / math.sqrt(2 * self.config.num_layers) if scaled else std)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, 0.0, std)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def get_input_embeddings(self):
        return self.word_embeddings

    def attention_kind(self, device: torch.device, training: bool) -> str:
        kind = self.config.attention
        if kind == "auto":
            return "flex" if device.type == "cuda" else "sdpa"
        return kind

    def forward(self, input_ids: Tensor, position_ids: Tensor, sep: Tensor | None = None,
                attention_mask: Tensor | None = None, past_key_values: list | None = None,
                use_cache: bool = False) -> GlmOutput:
        hidden, presents = self.hidden_states(input_ids, position_ids, sep, attention_mask,
                                              past_key_values)
        return GlmOutput(logits=self.logits(hidden),
                         past_key_values=presents if use_cache else None)

    def logits(self, hidden: Tensor) -> Tensor:
        """fp32 logits of final hidden states [..., h] (tied to the word embeddings)."""
        return F.linear(hidden, self.word_embeddings.weight).float()

    def hidden_states(self, input_ids: Tensor, position_ids: Tensor, sep: Tensor | None = None,
                      attention_mask: Tensor | None = None, past_key_values: list | None = None
                      ) -> tuple[Tensor, list]:
        """Final-LayerNorm hidden states [B, S, h] and each layer's (key, value) cache; the
        arguments as `forward`'s."""
        b, s = input_ids.shape
        x = (self.word_embeddings(input_ids) + self.position_embeddings(position_ids[:, 0])
             + self.block_position_embeddings(position_ids[:, 1]))
        x = self.embedding_dropout(x)
        past_len = past_key_values[0][0].shape[2] if past_key_values else 0
        kind = self.attention_kind(input_ids.device, self.training)
        if attention_mask is not None:
            mask = attention_mask if attention_mask.dim() == 4 else attention_mask[:, None]
            kind = "sdpa" if kind == "flex" else kind
        elif past_len:  # new tokens: every cached key, causally among themselves
            rows = torch.arange(s, device=x.device)[:, None] + past_len
            mask = (torch.arange(past_len + s, device=x.device)[None] <= rows)[None, None]
            kind = "sdpa" if kind == "flex" else kind
        else:
            if sep is None:
                raise ValueError("GLM needs sep (or attention_mask) without a cache")
            if kind == "flex":
                mask = _flex_block_mask(sep, s)
            else:
                mask = sep_mask(sep, s)
        if kind == "dense":
            mask = mask.to(x.dtype)
        presents = []
        for i, layer in enumerate(self.layers):
            x, present = layer(x, mask, kind, past_key_values[i] if past_key_values else None)
            presents.append(present)
        return self.final_layernorm(x), presents


GlmConfig.register_for_auto_class("AutoConfig")
GlmForBlankInfilling.register_for_auto_class("AutoModel")


def register() -> None:
    """Register the classes with the Auto factories in this process."""
    AutoConfig.register(MODEL_TYPE, GlmConfig, exist_ok=True)
    AutoModel.register(GlmConfig, GlmForBlankInfilling, exist_ok=True)


__all__ = ["GlmConfig", "GlmForBlankInfilling", "GlmOutput", "MODEL_TYPE", "register",
           "sep_mask"]
