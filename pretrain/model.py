"""mPMR model: a `transformers` XLM-R encoder plus the span extractor, and the WAE loss.

Logits Z_ij = FFN(H)_i · H_j with FFN = Linear(h, E) → GELU → dropout → Linear(E, h).
WAE loss (DESIGN.md "mPMR model and loss"): binary cross-entropy with logits, averaged over all
valid cells of the micro-batch. A cell (i, j) is valid iff i ≤ j and both i and j lie in
{0} ∪ [context_start, context_end) — query tokens, separators and padding never are. The target
is 1 at (0, 0) iff the example has at least one gold span, and 1 at every gold (start, end).

The (0, 0) cell is the *relevance* ("cls") cell; every other valid cell is a *span* cell.
Losses are reported both as the total and split into these two parts per language.

Batches are the dicts built by `pretrain.data.collate` (shapes there). This module never
touches torch.distributed; the trainer reduces the per-language parts across ranks.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import XLMRobertaConfig, XLMRobertaModel

from pretrain.config import ModelConfig

PART_NAMES = ("cls_loss_sum", "cls_count", "span_loss_sum", "span_count")
EVAL_KEYS = ("span_tp", "span_fp", "span_fn", "relevance_correct", "relevance_total",
             "answerable", "best_span_exact", "random_span_exact")


class MPMRModel(nn.Module):
    """XLM-R encoder (no pooler) + span extractor.

    Call it as DeepSpeed calls a module (`engine(**batch, task=...)`) so that ZeRO-3's hooks on
    the root module run:
      * `task=None`   → `(q, k)`: q = FFN(H) [B, T, h], k = H [B, T, h];
      * `task="loss"` → `(loss, parts)` as `loss(batch)`;
      * `task="eval"` → counts as `eval_counts(batch)`.
    """

    def __init__(self, encoder: XLMRobertaModel, extractor_size: int = 1024, dropout: float = 0.1,
                 fused_span_loss: bool = False, relevance_weight: float = 1.0):
        super().__init__()
        hidden = encoder.config.hidden_size
        self.encoder = encoder
        self.extractor = nn.Sequential(
            nn.Linear(hidden, extractor_size), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(extractor_size, hidden))
        self.fused_span_loss = fused_span_loss
        self.relevance_weight = relevance_weight
        std = encoder.config.initializer_range
        for layer in (self.extractor[0], self.extractor[3]):
            nn.init.normal_(layer.weight, std=std)
            nn.init.zeros_(layer.bias)

    @property
    def config(self) -> XLMRobertaConfig:
        return self.encoder.config

    # ------------------------------------------------------------------ forward
    def forward(self, input_ids: Tensor, attention_mask: Tensor, task: str | None = None,
                **batch: Tensor):
        if task is None:
            return self.encode(input_ids, attention_mask)
        batch = {"input_ids": input_ids, "attention_mask": attention_mask, **batch}
        if task == "loss":
            return self._loss(batch)
        if task == "eval":
            return self._eval_counts(batch)
        raise ValueError(f"unknown task {task!r}; expected None, 'loss' or 'eval'")

    def encode(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:
        """input_ids, attention_mask [B, T] → q = FFN(H), k = H, both [B, T, h]."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.extractor(hidden), hidden

    def loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """WAE loss of one micro-batch (scalar fp32 mean over all its valid cells) and its
        detached parts, one row per language present in the batch:

        parts = {"cls_loss_sum", "cls_count", "span_loss_sum", "span_count": float64 [G],
                 "lang_id": long [G]}; loss == (Σ cls_loss_sum + Σ span_loss_sum) /
        (Σ cls_count + Σ span_count). `parts_by_language` turns them into a fixed [4, L] tensor
        to accumulate over micro-steps and all-reduce; `summarize_parts` into log numbers.
        """
        return self(**batch, task="loss")

    def eval_counts(self, batch: dict[str, Tensor]) -> dict[str, int]:
        """Counts for `summarize_eval` (no grad): span tp/fp/fn at logit > 0 over context cells
        only (i ≤ j, both in the context; the (0, 0) cell is never a span), and relevance
        correct/total where "answerable" is predicted iff Z_00 > 0."""
        return self(**batch, task="eval")

    # ------------------------------------------------------------------ tasks
    def _loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        q, k = self.encode(batch["input_ids"], batch["attention_mask"])
        return wae_loss(q, k, batch, fused=self.fused_span_loss,
                        relevance_weight=self.relevance_weight)

    @torch.no_grad()
    def _eval_counts(self, batch: dict[str, Tensor]) -> dict[str, int]:
        q, k = self.encode(batch["input_ids"], batch["attention_mask"])
        return span_eval_counts(span_logits(q, k), batch["context_start"], batch["context_end"],
                                batch["answer_spans"])


# ---------------------------------------------------------------------- loss and metrics

def wae_loss(q: Tensor, k: Tensor, batch: dict[str, Tensor], fused: bool = False,
             relevance_weight: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
    """WAE loss from q = FFN(H), k = H [B, T, h] and the batch's context_start / context_end [B],
    answer_spans [N, 3], lang_id [B] (and attention_mask [B, T] for the naive path).
    Returns (loss, parts) as `MPMRModel.loss`. fp32 (fp64 for fp64 inputs).

    `relevance_weight` w weighs the (0, 0) cells: loss = (w·Σ ℓ_00 + Σ ℓ_span) /
    (w·#(0,0) + #span cells); w = 1 is the plain mean over all valid cells (paper, reference).
    The parts are never weighted."""
    if fused:
        return _fused_wae_loss(q, k, batch, relevance_weight)
    logits = span_logits(q, k)  # [B, T, T]
    valid = valid_cells(batch["context_start"], batch["context_end"],
                        batch.get("attention_mask"), length=logits.shape[1])  # [B, T, T]
    target = span_targets(batch["answer_spans"], logits.shape[0], logits.shape[1],
                          logits.device).to(logits.dtype)  # [B, T, T]
    cell_loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    cell_loss = cell_loss.masked_fill(~valid, 0.0)
    per_example = cell_loss.sum(dim=(1, 2))  # [B]
    cls_loss = cell_loss[:, 0, 0]  # [B]
    count = valid.sum(dim=(1, 2)).to(logits.dtype)  # [B]
    cls_count = valid[:, 0, 0].to(logits.dtype)
    if relevance_weight == 1.0:
        loss = per_example.sum() / count.sum().clamp_min(1.0)
    else:
        loss = _weighted_mean(cls_loss.sum(), cls_count.sum(), (per_example - cls_loss).sum(),
                              (count - cls_count).sum(), relevance_weight)
    groups, member = torch.unique(batch["lang_id"], return_inverse=True)  # [G], [B]

    def by_language(values: Tensor) -> Tensor:  # [B] → [G]
        out = torch.zeros(len(groups), dtype=torch.float64, device=values.device)
        return out.index_add_(0, member.to(values.device), values.detach().double())

    return loss, _parts(by_language(cls_loss), by_language(cls_count),
                        by_language(per_example - cls_loss), by_language(count - cls_count), groups)


def _weighted_mean(cls_sum: Tensor, cls_count: Tensor, span_sum: Tensor, span_count: Tensor,
                   weight: float) -> Tensor:
    return (weight * cls_sum + span_sum) / (weight * cls_count + span_count).clamp_min(1.0)


def _fused_wae_loss(q: Tensor, k: Tensor, batch: dict[str, Tensor],
                    relevance_weight: float = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
    """Tiled loss from `kernels.span_scores` (no [B, T, T] tensor), one call per language present
    so the parts stay per language; the total is the same mean over all valid cells."""
    try:
        from kernels.span_scores import span_bce_loss
    except ImportError as err:
        raise ImportError("model.fused_span_loss=true needs kernels.span_scores (span_bce_loss): "
                          f"{err}") from err
    lang_id = batch["lang_id"]
    spans = batch["answer_spans"].long()
    groups = torch.unique(lang_id)  # [G], sorted
    rows = []
    for lang in groups.tolist():
        index = torch.nonzero(lang_id == lang).flatten()  # examples of this language
        remap = torch.full((lang_id.shape[0],), -1, dtype=torch.long, device=spans.device)
        remap[index.to(spans.device)] = torch.arange(len(index), device=spans.device)
        mine = spans[remap[spans[:, 0]] >= 0]
        mine = torch.cat([remap[mine[:, 0]][:, None], mine[:, 1:]], dim=1)  # renumbered rows
        rows.append(span_bce_loss(q[index], k[index], batch["context_start"][index],
                                  batch["context_end"][index], mine,
                                  answer_counts(mine, len(index)), reduction="parts"))
    parts = torch.stack(rows)  # [G, 4] = cls_sum, cls_count, span_sum, span_count
    if relevance_weight == 1.0:
        loss = (parts[:, 0].sum() + parts[:, 2].sum()) / (parts[:, 1].sum() + parts[:, 3].sum())
    else:
        loss = _weighted_mean(*parts.sum(0), relevance_weight)
    return loss, _parts(parts[:, 0], parts[:, 1], parts[:, 2], parts[:, 3], groups)


def span_eval_counts(logits: Tensor, context_start: Tensor, context_end: Tensor,
                     answer_spans: Tensor) -> dict[str, float]:
    """logits [B, T, T] → counts (sums over the batch):

    * span_tp / span_fp / span_fn at logit > 0 over context cells only (i ≤ j, both in
      [context_start, context_end); the (0, 0) cell and the [CLS] row never count as spans);
    * relevance_correct / relevance_total with "answerable" predicted iff Z_00 > 0, and
      `answerable` (examples with a gold span: the majority-class baseline);
    * best_span_exact: answerable examples whose highest-logit context span is a gold span, and
      random_span_exact: its expectation for a span drawn uniformly from the context cells
      (Σ #gold / #cells) — the trivial baseline printed beside it."""
    size, length = logits.shape[0], logits.shape[1]
    positions = torch.arange(length, device=logits.device)
    in_context = (positions >= context_start[:, None]) & (positions < context_end[:, None])  # [B, T]
    context_cells = in_context[:, :, None] & in_context[:, None, :]  # [B, T, T]
    context_cells &= torch.ones(length, length, dtype=torch.bool, device=logits.device).triu()
    gold = span_targets(answer_spans, size, length, logits.device).bool()
    gold[:, 0, 0] = False
    predicted = (logits > 0) & context_cells
    answerable = answer_counts(answer_spans, size).to(logits.device) > 0
    best = logits.float().masked_fill(~context_cells, float("-inf")).flatten(1).argmax(1)  # [B]
    best_is_gold = gold.flatten(1).gather(1, best[:, None]).squeeze(1) & answerable
    n_cells = context_cells.flatten(1).sum(1).clamp_min(1)  # [B]
    n_gold = gold.flatten(1).sum(1)  # [B]
    return {
        "span_tp": int((predicted & gold).sum()),
        "span_fp": int((predicted & ~gold).sum()),
        "span_fn": int((gold & ~predicted).sum()),
        "relevance_correct": int(((logits[:, 0, 0] > 0) == answerable).sum()),
        "relevance_total": int(size),
        "answerable": int(answerable.sum()),
        "best_span_exact": int(best_is_gold.sum()),
        "random_span_exact": float((n_gold / n_cells)[answerable].double().sum()),
    }


# ---------------------------------------------------------------------- building blocks

def span_logits(q: Tensor, k: Tensor) -> Tensor:
    """Z = q kᵀ per example: q, k [B, T, h] → [B, T, T], at least fp32 (bf16/fp16 upcast)."""
    dtype = torch.promote_types(q.dtype, torch.float32)
    return torch.bmm(q.to(dtype), k.to(dtype).transpose(1, 2))


def valid_cells(context_start: Tensor, context_end: Tensor,
                attention_mask: Tensor | None = None, length: int | None = None) -> Tensor:
    """Bool [B, T, T]: i ≤ j and i, j ∈ {0} ∪ [context_start, context_end) (and not padding)."""
    if length is None:
        length = attention_mask.shape[1]
    positions = torch.arange(length, device=context_start.device)
    rows = (positions == 0) | ((positions >= context_start[:, None]) &
                               (positions < context_end[:, None]))  # [B, T]
    if attention_mask is not None:
        rows &= attention_mask.bool()
    upper = torch.ones(length, length, dtype=torch.bool, device=rows.device).triu()
    return rows[:, :, None] & rows[:, None, :] & upper


def answer_counts(answer_spans: Tensor, batch_size: int) -> Tensor:
    """Gold spans per example [B] from sparse rows [N, 3] = (batch, start, end)."""
    return torch.bincount(answer_spans[:, 0].long(), minlength=batch_size)[:batch_size]


def span_targets(answer_spans: Tensor, batch_size: int, length: int,
                 device: torch.device) -> Tensor:
    """Dense fp32 targets [B, T, T]: 1 at each gold (start, end), 1 at (0, 0) iff answerable."""
    target = torch.zeros(batch_size, length, length, device=device)
    spans = answer_spans.to(device).long()
    target[spans[:, 0], spans[:, 1], spans[:, 2]] = 1.0
    target[:, 0, 0] = (answer_counts(spans, batch_size) > 0).float()
    return target


def _parts(cls_sum: Tensor, cls_count: Tensor, span_sum: Tensor, span_count: Tensor,
           lang_id: Tensor) -> dict[str, Tensor]:
    """Detached float64 parts [G], one row per language present (`lang_id` [G])."""
    values = (cls_sum, cls_count, span_sum, span_count)
    out = {name: v.detach().double() for name, v in zip(PART_NAMES, values)}
    out["lang_id"] = lang_id.detach()
    return out


def parts_by_language(parts: dict[str, Tensor], num_languages: int) -> Tensor:
    """Parts of `loss` → float64 [4, L] sums (rows in PART_NAMES order); all-reduce-able."""
    lang = parts["lang_id"].long()
    out = torch.zeros(len(PART_NAMES), num_languages, dtype=torch.float64, device=lang.device)
    for row, name in enumerate(PART_NAMES):
        out[row].index_add_(0, lang, parts[name].to(out.device))
    return out


def summarize_parts(sums: Tensor, languages: list[str]) -> dict[str, float]:
    """[4, L] sums (see `parts_by_language`) → {"loss", "cls_loss", "span_loss",
    "loss/<lang>", "cls_loss/<lang>", "span_loss/<lang>"} (means; NaN-free: empty → skipped)."""
    cls_sum, cls_n, span_sum, span_n = sums.double().cpu()
    out: dict[str, float] = {}

    def put(suffix: str, cs, cn, ss, sn) -> None:
        if cn + sn > 0:
            out["loss" + suffix] = float((cs + ss) / (cn + sn))
        if cn > 0:
            out["cls_loss" + suffix] = float(cs / cn)
        if sn > 0:
            out["span_loss" + suffix] = float(ss / sn)

    put("", cls_sum.sum(), cls_n.sum(), span_sum.sum(), span_n.sum())
    for i, lang in enumerate(languages):
        put(f"/{lang}", cls_sum[i], cls_n[i], span_sum[i], span_n[i])
    return out


def summarize_eval(counts: dict[str, float]) -> dict[str, float]:
    """Summed eval counts → span precision / recall / f1, relevance_acc and its majority-class
    baseline relevance_majority, best-span exact match on answerable examples (best_span_em)
    and its random-span baseline random_span_em (0 where undefined)."""
    tp, fp, fn = (counts.get(k, 0) for k in ("span_tp", "span_fp", "span_fn"))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    total = counts.get("relevance_total", 0)
    answerable = counts.get("answerable", 0)
    accuracy = counts.get("relevance_correct", 0) / total if total else 0.0
    majority = max(answerable, total - answerable) / total if total else 0.0
    best = counts.get("best_span_exact", 0) / answerable if answerable else 0.0
    random = counts.get("random_span_exact", 0) / answerable if answerable else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "relevance_acc": accuracy,
            "relevance_majority": majority, "best_span_em": best, "random_span_em": random}


# ---------------------------------------------------------------------- construction

def tiny_encoder_config(cfg: ModelConfig, tokenizer_info: dict) -> XLMRobertaConfig:
    """Random XLM-R config from the tiny sizes and the data's tokenizer ids."""
    return XLMRobertaConfig(
        vocab_size=int(tokenizer_info["vocab_size"]),
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        intermediate_size=cfg.intermediate_size,
        max_position_embeddings=cfg.max_position_embeddings,
        hidden_dropout_prob=cfg.dropout,
        attention_probs_dropout_prob=cfg.dropout,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
        pad_token_id=int(tokenizer_info.get("pad_id", 1)),
        bos_token_id=int(tokenizer_info.get("cls_id", 0)),
        eos_token_id=int(tokenizer_info.get("sep_id", 2)),
    )


def build_model(cfg: ModelConfig, tokenizer_info: dict) -> MPMRModel:
    """`init_from: tiny` → random encoder; otherwise `XLMRobertaModel.from_pretrained` of a
    local folder or hub name. Seed torch before calling for a reproducible init."""
    if cfg.init_from == "tiny":
        encoder = XLMRobertaModel(tiny_encoder_config(cfg, tokenizer_info), add_pooling_layer=False)
    else:
        source = cfg.init_from
        local = Path(source).is_dir()
        encoder = XLMRobertaModel.from_pretrained(source, add_pooling_layer=False,
                                                  local_files_only=local)
        vocab = int(tokenizer_info.get("vocab_size", 0))
        if encoder.config.vocab_size < vocab:
            raise ValueError(f"model.init_from={source} has {encoder.config.vocab_size} token "
                             f"embeddings but the data's tokenizer has {vocab} ids; build the data "
                             f"with the model's tokenizer")
    return MPMRModel(encoder, cfg.extractor_size, cfg.dropout, cfg.fused_span_loss,
                     cfg.relevance_weight)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: weight decay on matrices only (no decay on biases, LayerNorm, embeddings'
    LayerNorm); order is deterministic (module order)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "LayerNorm" in name else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def count_parameters(model: nn.Module, *, embeddings: bool = False) -> int:
    """Parameter count (ZeRO-3 aware through `ds_numel`); the embedding block (lookups and its
    LayerNorm) is excluded by default."""
    total = 0
    for name, param in model.named_parameters():
        if not embeddings and ".embeddings." in f".{name}":
            continue
        total += int(getattr(param, "ds_numel", param.numel()))
    return total


def flops_per_token(cfg_or_model: MPMRModel | XLMRobertaConfig, seq_len: int,
                    extractor_size: int = 1024) -> float:
    """Training FLOPs per token (forward + backward = 3 × forward, matmuls only):

        6·N + 12·L·h·T + 6·h·T

    N = non-embedding parameters (encoder layers + extractor; lookups cost no matmul),
    12·L·h·T = QKᵀ and attention·V in L layers over T positions, 6·h·T = the span logits
    Z = q kᵀ. MFU = flops_per_token × non-padding tokens per second / peak FLOP/s
    (padding tokens are not counted as useful work).
    """
    if isinstance(cfg_or_model, MPMRModel):
        cfg = cfg_or_model.config
        params = count_parameters(cfg_or_model)
    else:
        cfg = cfg_or_model
        h, f, layers = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
        per_layer = 4 * h * h + 4 * h + 2 * h * f + h + f + 4 * h  # attention, FFN, 2 LayerNorms
        params = layers * per_layer + 2 * h * extractor_size + extractor_size + h
    h, layers = cfg.hidden_size, cfg.num_hidden_layers
    return float(6 * params + 12 * layers * h * seq_len + 6 * h * seq_len)


def mfu(tokens_per_second: float, flops_token: float, peak_flops: float) -> float:
    """Model FLOPs utilisation in [0, 1]; 0 when the peak is unknown (≤ 0)."""
    return tokens_per_second * flops_token / peak_flops if peak_flops > 0 else 0.0


__all__ = [
    "MPMRModel", "build_model", "param_groups", "flops_per_token", "mfu", "count_parameters",
    "wae_loss", "span_eval_counts", "span_logits", "valid_cells", "span_targets", "answer_counts",
    "parts_by_language", "summarize_parts", "summarize_eval", "PART_NAMES", "EVAL_KEYS",
    "tiny_encoder_config",
]
