"""mPMR model: WAE loss against a hand-written float64 loop, parts, fused path, eval counts,
HF loading, FLOPs."""

from __future__ import annotations

import math

import pytest
import torch

from pretrain.config import ModelConfig
from pretrain.model import (
    MPMRModel, build_model, count_parameters, flops_per_token, param_groups, parts_by_language,
    span_eval_counts, summarize_eval, summarize_parts, tiny_encoder_config, wae_loss,
)

TOKENIZER = {"vocab_size": 50, "pad_id": 1, "cls_id": 0, "sep_id": 2}


def tiny_model(dropout: float = 0.0, **kw) -> MPMRModel:
    torch.manual_seed(0)
    cfg = ModelConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32,
                      max_position_embeddings=40, extractor_size=8, dropout=dropout, **kw)
    return build_model(cfg, TOKENIZER)


def hand_batch() -> dict[str, torch.Tensor]:
    """Example 0: L=6, query at 1-2, context [3, 5), gold (3, 4) → answerable.
    Example 1: 5 real tokens + 1 pad, query at 1, context [3, 4), no gold."""
    return {
        "input_ids": torch.tensor([[0, 7, 2, 9, 11, 2], [0, 8, 2, 12, 2, 1]]),
        "attention_mask": torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0]]),
        "context_start": torch.tensor([3, 3]),
        "context_end": torch.tensor([5, 4]),
        "answer_spans": torch.tensor([[0, 3, 4]]),
        "answer_counts": torch.tensor([1, 0]),
        "lang_id": torch.tensor([1, 0]),
    }


def loop_loss(q, k, contexts, gold, answerable):
    """Explicit double loop: mean BCE over cells i ≤ j, i, j ∈ {0} ∪ context, pooled over the
    batch; also returns the (0, 0) part and the rest separately."""
    cls_sum = span_sum = 0.0
    cells = 0
    for b, (start, end) in enumerate(contexts):
        allowed = [0] + list(range(start, end))
        for i in allowed:
            for j in allowed:
                if i > j:
                    continue
                z = float(q[b, i] @ k[b, j])
                y = 1.0 if ((i, j) == (0, 0) and answerable[b]) or (b, i, j) in gold else 0.0
                p = 1 / (1 + math.exp(-z))
                bce = -(y * math.log(p) + (1 - y) * math.log(1 - p))
                cells += 1
                if (i, j) == (0, 0):
                    cls_sum += bce
                else:
                    span_sum += bce
    return (cls_sum + span_sum) / cells, cls_sum, span_sum, cells


def test_wae_loss_matches_hand_loop_float64():
    torch.manual_seed(1)
    batch = hand_batch()
    q = torch.randn(2, 6, 4, dtype=torch.float64)
    k = torch.randn(2, 6, 4, dtype=torch.float64)
    loss, parts = wae_loss(q, k, batch)
    expected, cls_sum, span_sum, cells = loop_loss(q, k, [(3, 5), (3, 4)], {(0, 3, 4)}, [True, False])
    assert cells == (1 + 2 + 3) + (1 + 1 + 1)  # (0,0) + row 0 over context + upper triangle
    assert loss.dtype == torch.float64
    torch.testing.assert_close(loss.item(), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(parts["cls_loss_sum"].sum().item(), cls_sum, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(parts["span_loss_sum"].sum().item(), span_sum, rtol=1e-12, atol=1e-12)
    assert parts["cls_count"].sum().item() == 2 and parts["span_count"].sum().item() == cells - 2


def test_query_padding_and_lower_cells_do_not_change_the_loss():
    torch.manual_seed(2)
    batch = hand_batch()
    q = torch.randn(2, 6, 4, dtype=torch.float64)
    k = torch.randn(2, 6, 4, dtype=torch.float64)
    loss, _ = wae_loss(q, k, batch)
    q2, k2 = q.clone(), k.clone()
    q2[:, 1:3] = 50.0  # query rows and separators
    k2[:, 1:3] = -50.0  # query columns
    q2[1, 5] = k2[1, 5] = 1e3  # padding
    q2[0, 5] = k2[0, 5] = 7.0  # final </s>
    loss2, _ = wae_loss(q2, k2, batch)
    torch.testing.assert_close(loss2, loss, rtol=1e-12, atol=1e-12)


def test_parts_sum_to_total_and_split_by_language():
    model = tiny_model()
    batch = hand_batch()
    batch["lang_id"] = torch.tensor([1, 0])
    loss, parts = model.loss(batch)
    total = (parts["cls_loss_sum"].sum() + parts["span_loss_sum"].sum()) / \
        (parts["cls_count"].sum() + parts["span_count"].sum())
    torch.testing.assert_close(total.float(), loss.detach(), rtol=1e-6, atol=1e-7)
    sums = parts_by_language(parts, 3)
    assert sums.shape == (4, 3) and sums[:, 2].abs().sum() == 0  # language 2 absent
    summary = summarize_parts(sums, ["de", "en", "fr"])
    assert "loss/fr" not in summary
    torch.testing.assert_close(summary["loss"], loss.item(), rtol=1e-6, atol=1e-7)
    # per-language loss = loss of that language's examples alone
    for row, lang in ((0, "en"), (1, "de")):  # lang_id [1, 0]
        alone = {key: value[row:row + 1] for key, value in batch.items() if key != "answer_spans"}
        spans = batch["answer_spans"]
        alone["answer_spans"] = spans[spans[:, 0] == row] - torch.tensor([row, 0, 0])
        expected, _ = model.loss(alone)
        torch.testing.assert_close(summary[f"loss/{lang}"], expected.item(), rtol=1e-5, atol=1e-6)


def test_engine_style_call_matches_methods():
    model = tiny_model()
    batch = hand_batch()
    q, k = model(batch["input_ids"], batch["attention_mask"])
    assert q.shape == k.shape == (2, 6, 16)
    loss, _ = model(**batch, task="loss")
    torch.testing.assert_close(loss, model.loss(batch)[0])
    assert model(**batch, task="eval") == model.eval_counts(batch)
    with pytest.raises(ValueError, match="unknown task"):
        model(**batch, task="nope")


def test_loss_backward_reaches_encoder_and_extractor():
    model = tiny_model()
    loss, _ = model.loss(hand_batch())
    loss.backward()
    assert model.extractor[0].weight.grad.abs().sum() > 0
    assert model.encoder.encoder.layer[0].attention.self.query.weight.grad.abs().sum() > 0


def test_fused_loss_matches_naive():
    model = tiny_model()
    batch = hand_batch()
    batch["input_ids"] = torch.cat([batch["input_ids"], batch["input_ids"][:1]])
    batch["attention_mask"] = torch.cat([batch["attention_mask"], batch["attention_mask"][:1]])
    batch["context_start"] = torch.tensor([3, 3, 4])
    batch["context_end"] = torch.tensor([5, 4, 5])
    batch["answer_spans"] = torch.tensor([[2, 4, 4], [0, 3, 4], [0, 4, 4]])
    batch["answer_counts"] = torch.tensor([2, 0, 1])
    batch["lang_id"] = torch.tensor([1, 0, 1])
    naive, naive_parts = model.loss(batch)
    naive.backward()
    naive_grad = model.extractor[0].weight.grad.clone()
    model.zero_grad()
    model.fused_span_loss = True
    fused, fused_parts = model.loss(batch)
    fused.backward()
    torch.testing.assert_close(fused, naive, rtol=1e-5, atol=1e-6)
    for name in ("cls_loss_sum", "cls_count", "span_loss_sum", "span_count", "lang_id"):
        torch.testing.assert_close(fused_parts[name], naive_parts[name], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.extractor[0].weight.grad, naive_grad, rtol=1e-4, atol=1e-6)


def test_eval_counts_ignore_cls_cell_and_non_context_cells():
    batch = hand_batch()
    logits = torch.full((2, 6, 6), -5.0)
    logits[0, 0, 0] = 3.0  # answerable predicted, gold answerable → correct; not a span
    logits[0, 3, 4] = 2.0  # gold span hit → tp
    logits[0, 3, 3] = 1.0  # context cell, not gold → fp
    logits[0, 0, 4] = 4.0  # [CLS] row: never a span
    logits[0, 1, 2] = 4.0  # query cells: never a span
    logits[0, 4, 3] = 4.0  # lower triangle: never a span
    logits[1, 0, 0] = 1.0  # unanswerable predicted answerable → wrong
    logits[1, 1, 5] = 9.0  # padding / query: ignored
    counts = span_eval_counts(logits, batch["context_start"], batch["context_end"],
                              batch["answer_spans"])
    assert counts == pytest.approx({
        "span_tp": 1, "span_fp": 1, "span_fn": 0, "relevance_correct": 1, "relevance_total": 2,
        # best context span (3, 4) is gold; a random span of example 0's 3 context cells hits
        # its one gold span with probability 1/3; example 1 has no answer
        "answerable": 1, "best_span_exact": 1, "random_span_exact": 1 / 3})
    logits[0, 3, 4] = -1.0
    counts = span_eval_counts(logits, batch["context_start"], batch["context_end"],
                              batch["answer_spans"])
    assert (counts["span_tp"], counts["span_fp"], counts["span_fn"]) == (0, 1, 1)
    assert counts["best_span_exact"] == 0  # now (3, 3) wins: not gold


def test_summarize_eval():
    summary = summarize_eval({"span_tp": 3, "span_fp": 1, "span_fn": 3,
                              "relevance_correct": 7, "relevance_total": 10})
    assert summary["precision"] == pytest.approx(0.75)
    assert summary["recall"] == pytest.approx(0.5)
    assert summary["f1"] == pytest.approx(2 * 0.75 * 0.5 / 1.25)
    assert summary["relevance_acc"] == pytest.approx(0.7)
    assert summarize_eval({})["f1"] == 0.0
    summary = summarize_eval({"relevance_correct": 7, "relevance_total": 10, "answerable": 4,
                              "best_span_exact": 3, "random_span_exact": 0.02})
    assert summary["relevance_majority"] == pytest.approx(0.6)  # 6 of 10 unanswerable
    assert summary["best_span_em"] == pytest.approx(0.75)
    assert summary["random_span_em"] == pytest.approx(0.005)


@pytest.mark.parametrize("fused", [False, True])
def test_relevance_weight_weighs_the_cls_cells(fused):
    batch = hand_batch()
    model = tiny_model()
    q, k = model.encode(batch["input_ids"], batch["attention_mask"])
    q, k = q.double(), k.double()
    plain, parts = wae_loss(q, k, batch, fused=fused)
    weighted, weighted_parts = wae_loss(q, k, batch, fused=fused, relevance_weight=5.0)
    cls_sum, cls_n = parts["cls_loss_sum"].sum(), parts["cls_count"].sum()
    span_sum, span_n = parts["span_loss_sum"].sum(), parts["span_count"].sum()
    torch.testing.assert_close(plain, (cls_sum + span_sum) / (cls_n + span_n))
    torch.testing.assert_close(weighted, (5 * cls_sum + span_sum) / (5 * cls_n + span_n))
    assert not torch.isclose(weighted, plain)
    for name in ("cls_loss_sum", "span_loss_sum"):  # the logged parts are never weighted
        torch.testing.assert_close(weighted_parts[name], parts[name])


def test_build_from_local_hf_folder(tmp_path):
    from transformers import XLMRobertaModel

    torch.manual_seed(3)
    config = tiny_encoder_config(ModelConfig(hidden_size=16, num_layers=1, num_heads=2,
                                             intermediate_size=32, max_position_embeddings=40),
                                 TOKENIZER)
    saved = XLMRobertaModel(config, add_pooling_layer=False).eval()
    saved.save_pretrained(tmp_path / "hf")
    model = build_model(ModelConfig(init_from=str(tmp_path / "hf"), extractor_size=8),
                        TOKENIZER).eval()
    batch = hand_batch()
    with torch.no_grad():
        expected = saved(input_ids=batch["input_ids"],
                         attention_mask=batch["attention_mask"]).last_hidden_state
        q, k = model(batch["input_ids"], batch["attention_mask"])
    torch.testing.assert_close(k, expected)
    assert q.shape == k.shape
    with pytest.raises(ValueError, match="token embeddings"):
        build_model(ModelConfig(init_from=str(tmp_path / "hf")), {**TOKENIZER, "vocab_size": 99})


def test_flops_per_token_counts_match_formula():
    model = tiny_model()
    by_model = flops_per_token(model, 128)
    by_config = flops_per_token(model.config, 128, extractor_size=8)
    assert by_model == by_config
    h, layers = 16, 1
    non_embedding = sum(p.numel() for name, p in model.named_parameters()
                        if not name.startswith("encoder.embeddings."))
    assert count_parameters(model) == non_embedding
    assert by_model == 6 * non_embedding + 12 * layers * h * 128 + 6 * h * 128


def test_param_groups_skip_bias_and_layernorm():
    model = tiny_model()
    decay, no_decay = param_groups(model, 0.01)
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    assert all(p.ndim >= 2 for p in decay["params"])
    assert any(p is model.extractor[0].bias for p in no_decay["params"])
    assert any(p is model.extractor[0].weight for p in decay["params"])
