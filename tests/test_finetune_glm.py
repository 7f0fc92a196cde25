"""mGLM fine-tuning (spec mGLM.md A4) with a tiny GLM network and tokenizer, on CPU:

* PET (`finetune.glm_prompt`): the reference's pattern texts and verbalizers verbatim, the A4.1
  layout position by position (single- and multi-token), truncation, A4.2 scoring; a synthetic
  XNLI set whose label hangs on a word of the hypothesis is learnt through `finetune.run` (dev
  accuracy of held-out pairs above the majority class, in a per-language table), multi-token too.
* generative QA (`finetune.glm_qa`): both prompts' ids, the target layout, padding invisible;
  eight short XQuAD questions are learnt through `finetune.run` until beam search reproduces the
  answers (EM above the empty-answer baseline)."""

from __future__ import annotations

import json
import shutil
import string
from pathlib import Path

import pytest
import torch

from finetune import glm_prompt, glm_qa, run
from finetune.metrics import eqa_scores
from finetune.tasks import QAExample, read_pair, read_squad
from paths import SHARED_DATA

XQUAD = SHARED_DATA / "xlu" / "xquad" / "xquad.en.json"
ANIMALS = ["cat", "dog", "bird", "horse", "fish", "mouse", "cow", "goat"]
PLACES = ["house", "garden", "car", "park", "river", "forest"]
QA_QUESTIONS = 8


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Two threads on two shared cores run these tiny models far slower than one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _nli_rows(held_out: bool) -> list[tuple[str, str, str]]:
    """Premise "The X is in the Y."; the label is read off the hypothesis: the same sentence
    (entailment), with "not" (contradiction) or with "maybe" (neutral). Every fourth
    (animal, place) pair is held out (dev): its words were seen, the pair was not."""
    rows = []
    for k, (animal, place) in enumerate((a, p) for a in ANIMALS for p in PLACES):
        if (k % 4 == 0) != held_out:
            continue
        premise = f"The {animal} is in the {place}."
        label = ("entailment", "contradiction", "neutral")[k % 3]
        middle = {"entailment": "is", "contradiction": "is not", "neutral": "is maybe"}[label]
        rows.append((premise, f"The {animal} {middle} in the {place}.", label))
    return rows


def _short_xquad() -> list[dict]:
    """The first QA_QUESTIONS questions of distinct paragraphs with an answer of at most 3 words
    near the start; each context cut after the sentence holding the answer."""
    doc = json.loads(XQUAD.read_text(encoding="utf-8"))
    found = []
    for article in doc["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                answer = qa["answers"][0]
                end = answer["answer_start"] + len(answer["text"])
                stop = paragraph["context"].find(". ", end)
                if len(answer["text"].split()) <= 3 and 0 < stop < 220:
                    found.append({"context": paragraph["context"][:stop + 1],
                                  "qas": [{"id": qa["id"], "question": qa["question"],
                                           "answers": [answer]}]})
                    break
            if len(found) == QA_QUESTIONS:
                return found
    return found


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    if not (XQUAD.is_file() and (SHARED_DATA / "xlu" / "xnli" / "dev-en.tsv").is_file()):
        pytest.skip("shared XLU samples not available")
    root = tmp_path_factory.mktemp("glm_data")
    train, dev = _nli_rows(held_out=False), _nli_rows(held_out=True)  # 36 and 12 pairs
    files = {"xnli-train": root / "xnli-train.tsv", "xnli-dev": root / "xnli-dev.tsv",
             "qa": root / "qa.json"}
    for name, rows in (("xnli-train", train), ("xnli-dev", dev)):
        files[name].write_text("".join("\t".join(r) + "\n" for r in rows), encoding="utf-8")
    files["qa"].write_text(json.dumps({"version": "1.1", "data": [
        {"title": "short", "paragraphs": _short_xquad()}]}), encoding="utf-8")
    return files


@pytest.fixture(scope="module")
def glm_dir(tmp_path_factory, data) -> Path:
    """A GLM tokenizer trained on the samples (plus the patterns and verbalizers, so the label
    words are pieces) and a tiny random `GlmForBlankInfilling` saved with it in one folder."""
    from data_prep.tokenizer import load_tokenizer, tokenizer_info, train_tokenizer
    from pretrain.hf_glm import GlmConfig, GlmForBlankInfilling

    root = tmp_path_factory.mktemp("glm_model")
    rows = read_pair(data["xnli-train"]) + read_pair(data["xnli-dev"])
    lines = [glm_prompt.pattern_text("xnli", r.sentence1, r.sentence2) for r in rows]
    lines += [glm_prompt.pattern_text("pawsx", r.sentence1, r.sentence2) for r in rows]
    lines += [f"{q.context} Question: {q.question} Answer: {q.answers[0][0]}"
              for q in read_squad(data["qa"])]
    # a word thrice a line, 200 lines: SentencePiece then keeps it as one piece
    lines += [" ".join([word.strip()] * 3) for words in glm_prompt.VERBALIZERS.values()
              for word in words.values() for _ in range(200)]
    lines += (SHARED_DATA / "xlu" / "xnli" / "dev-en.tsv").read_text(
        encoding="utf-8").splitlines()[:300]
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tok_dir = train_tokenizer([corpus], 700, root / "tok", layout="glm", num_threads=1,
                              character_coverage=1.0)  # every digit of the answers
    info = tokenizer_info(load_tokenizer(tok_dir))
    config = GlmConfig(vocab_size=info["padded_vocab_size"], hidden_size=64, num_layers=2,
                       num_heads=4, intermediate_size=256, max_position_embeddings=128,
                       hidden_dropout=0.0, attention_dropout=0.0, attention="sdpa",
                       pad_token_id=info["pad_id"], eos_token_id=info["eos_id"],
                       cls_token_id=info["cls_id"], mask_token_id=info["mask_id"],
                       smask_token_id=info["smask_id"], gmask_token_id=info["gmask_id"],
                       sop_token_id=info["sop_id"], eop_token_id=info["eop_id"])
    torch.manual_seed(0)
    folder = root / "glm"
    GlmForBlankInfilling(config).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "glm.spm.model"):
        shutil.copyfile(tok_dir / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def tokenizer(glm_dir):
    return glm_prompt.load_glm(glm_dir)[1]


def _enc(tokenizer, text: str) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=False))


# ---------------------------------------------------------------------------- PET: patterns

def test_reference_labels_verbalizers_and_pattern_texts():
    assert glm_prompt.LABELS["xnli"] == ("neutral", "entailment", "contradiction")
    assert [glm_prompt.VERBALIZERS["xnli"][k] for k in glm_prompt.LABELS["xnli"]] == \
        [" Maybe", " True", " False"]
    assert [glm_prompt.VERBALIZERS["pawsx"][k] for k in ("0", "1")] == [" No", " Yes"]
    assert glm_prompt.PATTERNS == {"xnli": 4, "pawsx": 0}
    assert glm_prompt.pattern_text("xnli", " The cat sat. ", "A cat is sitting!?") == (
        'Based on the fact written in foreign language: "The cat sat.". Is the followling '
        'statement reasonably True or definitely False: "A cat is sitting"? Answer:[MASK]')
    assert glm_prompt.pattern_text("pawsx", "Paris is big.", "Paris is large...") == \
        '"Paris is large" ?[MASK], "Paris is big."'
    # XNLI strips punctuation first, then spaces (the reference's order)
    parts_a, _ = glm_prompt.pattern_parts("xnli", "a", "it is. ")
    assert parts_a[4] == ("it is.", True)
    assert set(string.punctuation) >= {"!", "?", "."}


def test_single_token_layout_position_by_position(tokenizer):
    ids = glm_prompt.GlmIds.from_hf_tokenizer(tokenizer)
    answers = glm_prompt.verbalizer_ids("xnli", glm_prompt.VERBALIZERS["xnli"], tokenizer, ids,
                                        "single")
    assert all(len(a) == 1 and a[0] < ids.pieces for a in answers)
    (seq,), cut = glm_prompt.encode_pair("xnli", "The cat is in the car.", "The cat is not in "
                                         "the car.", tokenizer, ids, max_seq_len=96,
                                         answers=answers, scoring="single")
    parts = ['Based on the fact written in foreign language: "', "The cat is in the car.", '".',
             ' Is the followling statement reasonably True or definitely False: "',
             "The cat is not in the car", '"?', " Answer:"]
    body = [t for p in parts for t in _enc(tokenizer, p)] + [ids.mask]
    expected = [ids.cls] + body + [ids.eos, ids.sop]
    assert not cut and seq.input_ids == expected
    sep = len(body) + 2
    mask_at = sep - 2
    assert seq.sep == sep and expected[mask_at] == ids.mask and seq.score_index == sep
    for i in range(len(expected)):
        assert seq.positions[i] == (i if i < sep else mask_at), i
        assert seq.block_positions[i] == (0 if i < sep else 1), i
        assert seq.targets[i] == -100, i


def test_multi_token_layout_pawsx(tokenizer):
    ids = glm_prompt.GlmIds.from_hf_tokenizer(tokenizer)
    answers = [[5, 6], [7]]  # two pieces, one piece
    seqs, _ = glm_prompt.encode_pair("pawsx", "The dog is in the park.", "The dog is in the "
                                     "garden.", tokenizer, ids, max_seq_len=96, answers=answers,
                                     scoring="multi")
    part_a = [t for p in ('"', "The dog is in the garden", '" ?') for t in _enc(tokenizer, p)]
    part_b = [ids.mask] + [t for p in (",", ' "', "The dog is in the park.", '"')
                           for t in _enc(tokenizer, p)]
    source = [ids.cls] + part_a + part_b + [ids.eos]
    mask_at = 1 + len(part_a)
    assert len(seqs) == 2 and source[mask_at] == ids.mask
    for seq, answer in zip(seqs, answers):
        full = answer + [ids.eop]
        assert seq.input_ids == source + [ids.sop] + full[:-1]
        assert seq.sep == len(source)
        assert seq.positions == list(range(len(source))) + [mask_at] * len(full)
        assert seq.block_positions == [0] * len(source) + list(range(1, len(full) + 1))
        assert seq.targets == [-100] * len(source) + full


def test_truncation_as_the_reference(tokenizer):
    """M:tasks/superglue/pvp.py:343-361: cut the side (parts_a / parts_b) with more shortenable
    tokens, at the end of its last non-empty shortenable part. XNLI pattern 4 keeps both
    sentences in parts_a, so the hypothesis goes first; PAWS-X puts a in parts_b."""
    ids = glm_prompt.GlmIds.from_hf_tokenizer(tokenizer)
    a, b = "the cat is in the house", "the dog is in the car"
    b_tokens = _enc(tokenizer, b)
    answers = glm_prompt.verbalizer_ids("xnli", glm_prompt.VERBALIZERS["xnli"], tokenizer, ids,
                                        "single")
    (full,), cut = glm_prompt.encode_pair("xnli", a, b, tokenizer, ids, max_seq_len=512,
                                          answers=answers, scoring="single")
    assert not cut
    limit = len(full.input_ids) - 2
    (seq,), cut = glm_prompt.encode_pair("xnli", a, b, tokenizer, ids, max_seq_len=limit,
                                         answers=answers, scoring="single")
    assert cut and len(seq.input_ids) == limit
    parts, _ = glm_prompt.pattern_parts("xnli", a, b)
    k = 1 + sum(len(_enc(tokenizer, text)) for text, _ in parts[:4])  # where b starts
    assert full.input_ids[k:k + len(b_tokens)] == b_tokens
    assert seq.input_ids == full.input_ids[:k + len(b_tokens) - 2] \
        + full.input_ids[k + len(b_tokens):]
    long_a = " ".join([a] * 6)
    pawsx = glm_prompt.verbalizer_ids("pawsx", glm_prompt.VERBALIZERS["pawsx"], tokenizer, ids,
                                      "single")
    (seq,), cut = glm_prompt.encode_pair("pawsx", long_a, b, tokenizer, ids, max_seq_len=40,
                                         answers=pawsx, scoring="single")
    head = [ids.cls] + _enc(tokenizer, '"') + b_tokens  # part A: "b" ? — kept whole
    tail = _enc(tokenizer, '"') + [ids.eos, ids.sop]
    assert cut and len(seq.input_ids) == 40 and seq.input_ids[:len(head)] == head
    assert seq.input_ids[-len(tail):] == tail and ids.mask in seq.input_ids
    parts_a = [(list(range(10)), True), ([99], False)]
    parts_b = [(list(range(4)), True)]
    glm_prompt.truncate(parts_a, parts_b, 9)  # 15 → 9: a loses 6 (a 10 > b 4 throughout)
    assert parts_a == [(list(range(4)), True), ([99], False)] and parts_b == [([0, 1, 2, 3], True)]
    glm_prompt.truncate(parts_a, parts_b, 8)  # a 4 = b 4: the tie goes to b
    assert parts_b == [([0, 1, 2], True)]
    with pytest.raises(ValueError, match="max-seq-len"):
        glm_prompt.truncate([([1, 2], False)], [], 1)


def test_verbalizer_checks(tokenizer):
    ids = glm_prompt.GlmIds.from_hf_tokenizer(tokenizer)
    words = glm_prompt.LANG_VERBALIZERS["xnli"]["de"]
    with pytest.raises(ValueError, match="--scoring multi"):
        glm_prompt.verbalizer_ids("xnli", words, tokenizer, ids, "single")
    assert glm_prompt.verbalizers_for("xnli", "de", "eval") == (words, "de")
    assert glm_prompt.verbalizers_for("xnli", "de", "en")[1] == "en"
    assert glm_prompt.verbalizers_for("xnli", "sw", "eval")[1] == "en"


def test_scores_gather_sop_logits_and_sum_answer_logprobs():
    torch.manual_seed(1)
    logits = torch.randn(2, 5, 11)
    single = {"label_word_ids": torch.tensor([[3, 4, 9], [3, 4, 9]]),
              "score_index": torch.tensor([4, 2])}
    got = glm_prompt.class_scores(logits, single)
    assert torch.equal(got, torch.stack([logits[0, 4, [3, 4, 9]], logits[1, 2, [3, 4, 9]]]))
    labels = torch.full((2, 5), -100)
    labels[0, 3:] = torch.tensor([7, 8])
    labels[1, 3:4] = 8
    multi = {"labels": labels, "candidates": torch.tensor(2)}
    lp = logits.log_softmax(-1)
    want = torch.tensor([[lp[0, 3, 7] + lp[0, 4, 8], lp[1, 3, 8]]])
    torch.testing.assert_close(glm_prompt.class_scores(logits, multi), want)


# ---------------------------------------------------------------------------- PET: learning

def test_pet_learns_synthetic_xnli_through_the_cli(glm_dir, data, tmp_path, capsys):
    out = tmp_path / "pet"
    code = run.main(["--task", "pair", "--model", str(glm_dir), "--train",
                     str(data["xnli-train"]), "--eval", f"en={data['xnli-dev']}",
                     "--eval", f"de={data['xnli-dev']}", "--out", str(out), "--lr", "2e-3",
                     "--epochs", "20", "--batch-size", "12", "--warmup-ratio", "0.1",
                     "--max-seq-len", "96", "--log-every", "100"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["form"] == "glm" and results["settings"]["scoring"] == "single"
    assert results["settings"]["max_grad_norm"] == 1000.0  # A4.3 default kept
    dev = read_pair(data["xnli-dev"])
    majority = 100.0 * max(sum(r.label == k for r in dev) for k in glm_prompt.LABELS["xnli"]) \
        / len(dev)
    for lang in ("en", "de"):
        assert results["scores"][lang]["accuracy"] > majority + 20, results["scores"]
    assert results["train_loss"]["last"] < results["train_loss"]["first"]
    table = capsys.readouterr().out
    assert "en*" in table and "de " in table and "avg" in table
    predictions = json.loads((out / "predictions" / "de.json").read_text())
    assert set(predictions) == {str(r.index) for r in dev}
    model, tokenizer = glm_prompt.load_glm(out / "model")  # the saved folder reloads
    assert glm_prompt.is_glm_folder(out / "model") and (out / "model" / "glm.spm.model").is_file()


def test_pet_multi_token_learns(glm_dir, data):
    model, tokenizer = glm_prompt.load_glm(glm_dir, dropout=0.0)
    train = read_pair(data["xnli-train"])
    words = glm_prompt.VERBALIZERS["xnli"]
    items = glm_prompt.encode("xnli", train, tokenizer, max_seq_len=96, scoring="multi",
                              words=words)
    assert all(len(item.sequences) == 3 for item in items)
    settings = {**glm_prompt.DEFAULTS["xnli"], "lr": 2e-3, "epochs": 8.0, "batch_size": 12,
                "warmup_ratio": 0.1, "log_every": 100}
    before = glm_prompt.predict_classes(model, tokenizer, items, device="cpu")
    history = glm_prompt.fine_tune(model, tokenizer, items, settings, device="cpu")
    after = glm_prompt.predict_classes(model, tokenizer, items, device="cpu")
    gold = [item.target for item in items]
    accuracy = sum(p == g for p, g in zip(after, gold)) / len(gold)
    assert history[-1]["loss"] < history[0]["loss"]
    assert accuracy >= 0.8 > sum(p == g for p, g in zip(before, gold)) / len(gold)


# ---------------------------------------------------------------------------- generative QA

def test_qa_prompts_and_target_layout(tokenizer):
    ids = glm_prompt.GlmIds.from_hf_tokenizer(tokenizer)
    period = tokenizer.convert_tokens_to_ids(".")
    assert period != tokenizer.unk_token_id
    context, question = "The cat is in the house. It sleeps.", " Where is the cat? "
    source, mask_at, cut = glm_qa.build_source(question, context, tokenizer, ids,
                                               prompt="mlqa", max_seq_len=96)
    assert source == ([ids.cls] + _enc(tokenizer, " " + context) + [period]
                      + _enc(tokenizer, " Question: Where is the cat?")
                      + _enc(tokenizer, " Answer: ") + [ids.smask])
    assert mask_at == len(source) - 1 and not cut
    squad, squad_mask, _ = glm_qa.build_source(question, context, tokenizer, ids,
                                               prompt="squad", max_seq_len=96)
    q = _enc(tokenizer, " Where is the cat?")
    assert squad == [ids.cls] + q + [ids.smask, period] + _enc(tokenizer, context) + [ids.eos]
    assert squad[squad_mask] == ids.smask
    short, _, cut = glm_qa.build_source(question, context, tokenizer, ids, prompt="mlqa",
                                        max_seq_len=20)
    assert cut and len(short) == 20 and short[-1] == ids.smask
    target = glm_qa.target_ids("the house", tokenizer, ids, 64)
    assert target == _enc(tokenizer, " the house") + [ids.eop]
    seq = glm_prompt.blank_sequence(source, mask_at, target, ids)
    n = len(source)
    assert seq.input_ids == source + [ids.sop] + target[:-1] and seq.sep == n
    assert seq.positions == list(range(n)) + [mask_at] * len(target)
    assert seq.block_positions == [0] * n + list(range(1, len(target) + 1))
    assert seq.targets == [-100] * n + target


def test_qa_padding_is_invisible(glm_dir):
    """A short sample's logits do not change when a longer one pads it (pads follow Part B)."""
    model, tokenizer = glm_prompt.load_glm(glm_dir)
    model.eval()
    records = [QAExample("a", "Where is it?", "It is in the car.", (("the car", 9),)),
               QAExample("b", "What does the dog do in the green park?",
                         "The dog runs in the green park every morning with the cat.",
                         (("runs", 8),))]
    settings = {**glm_qa.DEFAULTS, "qa_prompt": "mlqa", "max_seq_len": 96, "tgt_seq_len": 8}
    items = glm_qa.encode(records, tokenizer, settings, labelled=True)
    pad = glm_prompt.GlmIds.from_hf_tokenizer(tokenizer).eos
    with torch.no_grad():
        both = glm_prompt.glm_logits(model, glm_qa.collate(items, pad), "cpu", "fp32")
        alone = glm_prompt.glm_logits(model, glm_qa.collate(items[:1], pad), "cpu", "fp32")
    n = len(items[0].input_ids)
    assert both.shape[1] > n
    torch.testing.assert_close(both[0, :n], alone[0], atol=1e-5, rtol=1e-5)


def test_generative_qa_learns_xquad_answers_through_the_cli(glm_dir, data, tmp_path):
    out = tmp_path / "qa"
    code = run.main(["--task", "eqa", "--model", str(glm_dir), "--train", str(data["qa"]),
                     "--eval", f"en={data['qa']}", "--out", str(out), "--lr", "3e-3",
                     "--epochs", "200", "--batch-size", "4", "--warmup-ratio", "0.05",
                     "--max-seq-len", "120", "--max-answer-tokens", "12", "--log-every", "100"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["qa_prompt"] == "mlqa" and results["settings"]["num_beams"] == 5
    assert results["settings"]["label_smoothing"] == 0.1
    gold = read_squad(data["qa"])
    empty = eqa_scores(gold, {q.id: "" for q in gold})["exact_match"]
    em = results["scores"]["en"]["exact_match"]
    assert em >= 75.0 > empty, results["scores"]
    predictions = json.loads((out / "predictions" / "en.json").read_text())
    assert eqa_scores(gold, predictions) == {k: v for k, v in results["scores"]["en"].items()}


def test_cli_rejects_options_outside_the_glm_form(glm_dir, data, tmp_path):
    base = ["--model", str(glm_dir), "--out", str(tmp_path / "x")]
    for extra in (["--task", "ner", "--train", str(data["xnli-train"])],
                  ["--task", "pair", "--train", str(data["xnli-train"]), "--qa-prompt", "mlqa"],
                  ["--task", "eqa", "--train", str(data["qa"]), "--scoring", "multi"],
                  ["--task", "pair", "--train", str(data["xnli-train"]), "--explain"]):
        with pytest.raises(SystemExit):
            run.main(base + extra)


def test_prompt_and_verbalizer_choices():
    from argparse import Namespace

    for kind, given, want in (("tydiqa", None, "squad"), ("squad", None, "mlqa"),
                              ("squad", "auto", "mlqa"), ("tydiqa", "mlqa", "mlqa")):
        settings = dict(glm_qa.DEFAULTS)
        glm_qa.complete_settings(settings, Namespace(qa_prompt=given, max_answer_tokens=None),
                                 kind)
        assert settings["qa_prompt"] == want and settings["tgt_seq_len"] == 64
    settings = dict(glm_qa.DEFAULTS)
    glm_qa.complete_settings(settings, Namespace(qa_prompt=None, max_answer_tokens=9), "squad")
    assert settings["tgt_seq_len"] == 9
    form = glm_prompt.GlmForm(Namespace(task="pair", scoring="multi", verbalizers="eval"),
                              "pawsx", glm_prompt.defaults("pair", "pawsx"))
    assert form.settings["epochs"] == 20.0 and form.settings["lr"] == 1e-5
    assert form.inputs([], "x.tsv", "de", "de")[1] == {"0": " Nein", "1": " Ja"}
    assert form.inputs([], "x.tsv", "sw", "sw")[1] == glm_prompt.VERBALIZERS["pawsx"]
    assert form.settings["verbalizer_langs"] == {"de": "de", "sw": "en"}


def test_qa_defaults_reach_the_optimizer_with_the_references_betas():
    """config_blocklm_large_squad.json's Adam betas (0.9, 0.95) (spec A4.4), not AdamW's."""
    from finetune import glm_qa
    from finetune.train_loop import TrainOptions

    options = TrainOptions.from_settings(dict(glm_qa.DEFAULTS))
    assert options.adam_betas == (0.9, 0.95) and options.lr == 1e-5
    assert TrainOptions.from_settings({**glm_qa.DEFAULTS, "adam_betas": None}).adam_betas == \
        (0.9, 0.999)
