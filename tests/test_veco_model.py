"""pretrain.veco_model: Eq. 1 with the stop-gradient on the training wrapper's parameter
gradients, the parts, the frozen first stage and FLOPs per token."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pretrain.hf_veco import VecoConfig, VecoForMaskedLM
from pretrain.veco_model import (KINDS, STATS, TERMS, VecoPretrainingModel, flops_per_token, freeze,
                                 param_groups)

VOCAB, PAD = 50, 1


def make_net(seed: int = 0) -> VecoForMaskedLM:
    torch.manual_seed(seed)
    return VecoForMaskedLM(VecoConfig(
        vocab_size=VOCAB, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=40, pad_token_id=PAD, bos_token_id=0,
        eos_token_id=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        type_vocab_size=1)).train()


def sequences(seed: int, size: int, length: int, short_row: int | None = None):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, VOCAB, (size, length), generator=gen)
    ids[:, 0], ids[:, -1] = 0, 2
    mask = torch.ones_like(ids)
    if short_row is not None:
        ids[short_row, length - 3] = 2
        ids[short_row, length - 2:] = PAD
        mask[short_row, length - 2:] = 0
    labels = torch.where((torch.rand(ids.shape, generator=gen) < 0.3) & mask.bool() &
                         (ids > 3), ids, torch.full_like(ids, -100))
    labels[:, 1] = ids[:, 1]  # at least one masked token per row
    return ids, mask, labels


@pytest.fixture
def batch():
    x, mx, lx = sequences(1, 3, 9, short_row=1)
    y, my, ly = sequences(2, 3, 7, short_row=2)
    t, mt, lt = sequences(3, 3, 14)
    return {"x_ids": x, "x_mask": mx, "x_labels": lx, "y_ids": y, "y_mask": my, "y_labels": ly,
            "tlm_ids": t, "tlm_mask": mt, "tlm_labels": lt, "kind": torch.ones(3).long(),
            "lang_id": torch.zeros(3).long()}


def grads(module, loss) -> dict[str, torch.Tensor]:
    module.zero_grad(set_to_none=True)
    loss.backward()
    return {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}


def term(net, hidden, labels):
    where = labels != -100
    return F.cross_entropy(net.lm_head(hidden[where]), labels[where])


def test_loss_is_eq1_plus_tlm_with_the_partners_H_as_a_constant(batch):
    """The wrapper's gradients equal those of Eq. 1 written out with the partner's last-layer H
    computed under no_grad: no gradient of a CA-MLM term reaches the H-stream that made it."""
    model = VecoPretrainingModel(make_net(), loss="ca_mlm", tlm=True)
    net = model.net
    loss, parts = model(task="loss", **batch)
    got = grads(model, loss)

    x, mx, lx = batch["x_ids"], batch["x_mask"], batch["x_labels"]
    y, my, ly = batch["y_ids"], batch["y_mask"], batch["y_labels"]
    with torch.no_grad():
        hx_c, hy_c = net.h_stream(x, mx), net.h_stream(y, my)
    manual = (term(net, net.h_stream(x, mx), lx) + term(net, net.h_stream(y, my), ly)
              + term(net, net.s_stream(x, mx, hy_c, my), lx)
              + term(net, net.s_stream(y, my, hx_c, mx), ly)
              + term(net, net.h_stream(batch["tlm_ids"], batch["tlm_mask"]),
                     batch["tlm_labels"]))
    torch.testing.assert_close(loss, manual, atol=1e-5, rtol=1e-5)
    expected = grads(model, manual)
    assert got.keys() == expected.keys() and any("cross_attention" in n for n in got)
    for name in got:
        torch.testing.assert_close(got[name], expected[name], atol=1e-6, rtol=1e-4)

    stats = parts["stats"]
    assert stats.shape == (len(KINDS), len(TERMS), len(STATS))
    assert stats[0].abs().sum() == 0  # a bilingual batch fills only the bilingual row
    counts = stats[1, :, STATS.index("count")].tolist()
    assert counts == [float((lx != -100).sum()), float((ly != -100).sum()),
                      float((lx != -100).sum()), float((ly != -100).sum()),
                      float((batch["tlm_labels"] != -100).sum())]


def test_mlm_loss_uses_no_cross_attention(batch):
    model = VecoPretrainingModel(make_net(), loss="mlm", tlm=False)
    loss, parts = model(task="loss", **batch)
    got = grads(model, loss)
    assert not any("cross_attention" in n for n in got)
    assert parts["stats"][1, TERMS.index("ca_mlm_x")].abs().sum() == 0
    assert parts["stats"][1, TERMS.index("tlm")].abs().sum() == 0


def test_eval_counts_the_masked_labels(batch):
    model = VecoPretrainingModel(make_net()).eval()
    with torch.no_grad():
        _, parts = model(task="eval", **batch)
    labels = torch.cat([batch[k][batch[k] != -100] for k in ("x_labels", "y_labels")] * 2 +
                       [batch["tlm_labels"][batch["tlm_labels"] != -100]])
    assert torch.equal(parts["label_counts"], torch.bincount(labels, minlength=VOCAB).double())


def test_frozen_first_stage_trains_only_the_cross_attention(batch):
    model = VecoPretrainingModel(make_net())
    groups = param_groups(model, 0.01)
    assert groups[0]["name"] == "cross_attention" and {g["name"] for g in groups} == \
        {"cross_attention", "base"}
    optimizer = torch.optim.AdamW(groups, lr=1e-2)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for step in (1, 2, 3):
        for group in optimizer.param_groups:  # what the LR schedule does every step
            group["lr"] = 1e-2
        freeze(optimizer, step, freeze_steps=2)
        loss, _ = model(task="loss", **batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
        if step <= 2:  # weight decay included: lr 0 leaves the base bit-identical
            assert changed and all(".cross_attention." in f".{n}" for n in changed), step
        else:
            assert any(".cross_attention." not in f".{n}" for n in changed)


def test_flops_per_token_counts_the_cross_attention_in_half_the_passes():
    ca = VecoPretrainingModel(make_net(), loss="ca_mlm")
    mlm = VecoPretrainingModel(make_net(), loss="mlm")
    assert flops_per_token(ca, 32) > flops_per_token(mlm, 32) > 0
    assert flops_per_token(ca, 64) > flops_per_token(ca, 32)
