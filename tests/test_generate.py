"""Blank filling (`pretrain.generate`, spec mGLM.md A3.1) with a tiny GLM that memorised four
sentences in-process (fill-time blank samples from `pretrain.glm_blank.make_block_data`), plus
an untrained twin with peaked random outputs for sampling, beams, cache and padding checks."""

from __future__ import annotations

import io
import json
import math
import random
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pretrain.generate import BlankFiller, GenerationConfig, _Stepper, load_filler, main
from tests.paths import REPO

SENTENCES = [
    "the cat sat on the red mat .",
    "a dog ran in the green park .",
    "birds sing songs at dawn .",
    "yes the dog saw the dog run .",  # a repeated bigram, for no_repeat_ngram_size
]
MAX_POSITIONS = 32
TRAIN_STEPS = 300


def _network(info: dict, seed: int, init_std: float = 0.02):
    from pretrain.glm_export import CONFIG_TOKEN_IDS
    from pretrain.hf_glm import GlmConfig, GlmForBlankInfilling

    config = GlmConfig(vocab_size=info["padded_vocab_size"], hidden_size=64, num_layers=2,
                       num_heads=4, intermediate_size=256, max_position_embeddings=MAX_POSITIONS,
                       hidden_dropout=0.0, attention_dropout=0.0, initializer_range=init_std,
                       attention="sdpa",
                       **{name: info[key] for name, key in CONFIG_TOKEN_IDS.items()})
    torch.manual_seed(seed)
    return GlmForBlankInfilling(config).eval()


def _fill_time_samples(sentence_ids: list[list[int]], ids) -> list:
    """What `BlankFiller` asks the model (A3.1), teacher-forced: every one-word [MASK] of
    `[CLS] text eos`; every pair of one-word masks with only the left one in Part B (the first
    round of a two-blank fill; its second round is a one-mask sample); every [gMASK] suffix of
    `[CLS] text` (no eos after a trailing mask, M:generate_samples.py:74-87)."""
    from pretrain.glm_blank import make_block_data

    samples = []
    for words in sentence_ids:
        text = np.array([ids.cls, *words, ids.eos])
        slots = range(1, len(words) + 1)
        samples += [make_block_data(text, [(i, i + 1)], [0], ids.mask, ids) for i in slots]
        samples += [make_block_data(text, [(i, i + 1), (j, j + 1)], [0], ids.mask, ids)
                    for i in slots for j in slots if i < j]
        samples += [make_block_data(text[:-1], [(p, len(words) + 1)], [0], ids.gmask, ids)
                    for p in range(2, len(words) + 1)]
    return samples


def _train(model, samples: list, pad: int) -> float:
    """Full-batch AdamW on the Part B targets; returns the last loss (nats per token)."""
    width = max(len(s.input_ids) for s in samples)
    input_ids = torch.full((len(samples), width), pad)
    labels = torch.full((len(samples), width), -100)
    position_ids = torch.zeros((len(samples), 2, width), dtype=torch.long)
    for b, s in enumerate(samples):
        n = len(s.input_ids)
        input_ids[b, :n] = torch.from_numpy(s.input_ids)
        labels[b, :n] = torch.from_numpy(np.where(s.loss_mask > 0, s.labels, -100))
        position_ids[b, :, :n] = torch.from_numpy(s.position_ids)
    sep = torch.tensor([s.sep for s in samples])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    model.train()
    for _ in range(TRAIN_STEPS):
        logits = model(input_ids=input_ids, position_ids=position_ids, sep=sep).logits
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return loss.item()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The memorising GLM, its tokenizer, an untrained twin and a saved HF folder."""
    from data_prep.tokenizer import load_tokenizer, tokenizer_info, train_tokenizer
    from pretrain.glm_blank import GlmIds

    root = tmp_path_factory.mktemp("generate")
    # random word salad, so the unigram model keeps every word as one piece
    words = sorted({w for s in SENTENCES for w in s.split()})
    rng = random.Random(0)
    corpus = root / "words.txt"
    corpus.write_text("\n".join(" ".join(rng.choices(words, k=8)) for _ in range(400)) + "\n",
                      encoding="utf-8")
    tok = load_tokenizer(train_tokenizer([corpus], 64, root / "tokenizer", layout="glm"))
    info = tokenizer_info(tok)
    ids = GlmIds.from_tokenizer(info)
    sentence_ids = [tok.encode(s, add_special_tokens=False) for s in SENTENCES]
    assert [len(s) for s in sentence_ids] == [len(s.split()) for s in SENTENCES]  # word pieces
    model = _network(info, seed=0)
    loss = _train(model, _fill_time_samples(sentence_ids, ids), info["pad_id"])
    folder = root / "model"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return SimpleNamespace(tok=tok, info=info, ids=ids, sentence_ids=sentence_ids, loss=loss,
                           decoded=[tok.decode(s) for s in sentence_ids],
                           filler=BlankFiller(model, tok), folder=folder,
                           random_filler=BlankFiller(_network(info, 1, init_std=0.3), tok))


def _masked(sentence: str, *word_indices: int) -> str:
    return " ".join("[MASK]" if i in word_indices else w
                    for i, w in enumerate(sentence.split(" ")))


def _prefix(sentence: str, words: int) -> str:
    return " ".join(sentence.split(" ")[:words])


QUERIES = [(q, k) for k, s in enumerate(SENTENCES)  # (query, index of its sentence)
           for q in (_masked(s, 2), _masked(s, 1, 4), _prefix(s, 2))]


def _ngram_repeats(ids: list[int], n: int) -> bool:
    grams = [tuple(ids[i:i + n]) for i in range(len(ids) - n + 1)]
    return len(grams) != len(set(grams))


class _Recorder(torch.nn.Module):
    """The model, recording the inputs of every forward without a cache (first step of a blank)."""

    def __init__(self, model):
        super().__init__()
        self.model, self.config, self.calls = model, model.config, []

    def forward(self, **kwargs):
        if kwargs.get("past_key_values") is None:
            self.calls.append({k: kwargs[k] for k in ("input_ids", "position_ids")})
        return self.model(**kwargs)


# --------------------------------------------------------------------------- memorisation


def test_greedy_fills_memorised_blanks(tiny):
    assert tiny.loss < 0.02, f"the tiny model did not memorise its samples (loss {tiny.loss})"
    results = tiny.filler.fill([q for q, _ in QUERIES],
                               strategy=GenerationConfig(max_new_tokens=10))
    for (query, k), result in zip(QUERIES, results, strict=True):
        assert result["input"] == query
        assert result["output"] == tiny.decoded[k], query
        assert result["output_ids"] == tiny.sentence_ids[k]
        assert len(result["blanks"]) == max(query.count("[MASK]"), 1)
        assert all(b["stop"] == "eop" for b in result["blanks"]), result
        assert all(-0.1 < b["score"] <= 0.0 for b in result["blanks"])
    words = SENTENCES[0].split(" ")
    assert [b["text"] for b in results[1]["blanks"]] == [words[1], words[4]]  # left first


def test_each_blank_is_a_fresh_pass_over_the_filled_text(tiny):
    """A3.1 layout: round 2 sees round 1's words in place of its mask; [sop] and the generated
    slots take the mask's position and block positions 1, 2, …; the context 0…L−1 and 0."""
    recorder = _Recorder(tiny.filler.model)
    filler = BlankFiller(recorder, tiny.tok)
    query = _masked(SENTENCES[0], 1, 4)
    filler.fill([query], strategy=GenerationConfig(use_cache=False))
    ids, cat = tiny.ids, tiny.sentence_ids[0][1]
    rounds = [c for c in recorder.calls if c["input_ids"][0, -1] == ids.sop]  # each blank's 1st
    assert len(rounds) == 2
    first, second = (c["input_ids"][0].tolist() for c in rounds)
    context = filler.prepare(query)
    assert first == context + [ids.sop]
    filled = context[:2] + [cat] + context[3:]
    assert second == filled + [ids.sop] and filled.count(ids.mask) == 1
    positions = recorder.calls[-1]["position_ids"][0]  # last recompute of blank 2: [2, S]
    n = len(filled)
    assert positions[0, :n].tolist() == list(range(n))
    assert positions[1, :n].tolist() == [0] * n
    generated = positions.shape[1] - n
    assert positions[0, n:].tolist() == [filled.index(ids.mask)] * generated
    assert positions[1, n:].tolist() == list(range(1, generated + 1))


def test_prepare_builds_mglm_queries(tiny):
    filler, ids = tiny.filler, tiny.ids
    plain = filler.prepare("the cat")
    assert plain == [ids.cls, *tiny.tok.encode("the cat", add_special_tokens=False), ids.gmask]
    middle = filler.prepare("the [MASK] sat")
    assert middle[0] == ids.cls and middle[-1] == ids.eos and middle.count(ids.mask) == 1
    assert filler.prepare("the cat [sMASK]")[-1] == ids.smask
    literal = filler.prepare("the xMASK]")  # text that merely contains "MASK]" is not a mask
    assert literal[-1] == ids.gmask and ids.mask not in literal
    too_long = " ".join(["cat"] * MAX_POSITIONS)
    with pytest.raises(ValueError, match="positions"):
        filler.prepare(too_long)
    with pytest.raises(ValueError, match="input 1"):
        filler.fill(["the [MASK]", too_long])


# --------------------------------------------------------------------------- strategies


def test_beam_search_is_deterministic_and_at_least_greedy(tiny):
    queries = [q for q, _ in QUERIES]
    beam = GenerationConfig(max_new_tokens=10, num_beams=4)
    first, again = (tiny.filler.fill(queries, strategy=beam) for _ in range(2))
    assert first == again
    assert [r["output"] for r in first] == [tiny.decoded[k] for _, k in QUERIES]
    singles = ["the", "a dog [MASK] in", "birds [MASK] songs", "[MASK] [MASK]"]
    for lp in (1.0, 0.7):
        greedy = tiny.random_filler.fill(singles, strategy=GenerationConfig(
            max_new_tokens=6, length_penalty=lp))
        beams = tiny.random_filler.fill(singles, strategy=GenerationConfig(
            max_new_tokens=6, num_beams=4, length_penalty=lp))
        for g, b in zip(greedy, beams, strict=True):
            assert b["blanks"][0]["score"] >= g["blanks"][0]["score"] - 1e-9
        assert [b["output"] for b in beams] != [g["output"] for g in greedy]  # beams matter


def test_beam_search_covering_the_vocabulary_is_exhaustive(tiny):
    """With 2 tokens per blank and num_beams >= |V| nothing is pruned: the answer must be the
    brute-force best of every 0-, 1- and 2-token blank (end token counted in the length)."""
    filler = tiny.random_filler
    query = filler.prepare("birds [MASK] songs")
    vocab = tiny.info["vocab_size"]
    cfg = GenerationConfig(max_new_tokens=2, num_beams=vocab)
    best = filler.fill_ids([query], strategy=cfg)[0]["blanks"][0]
    stepper = _Stepper(filler.model, [query] * vocab, [query.index(tiny.ids.mask)] * vocab,
                       filler.ids, True, filler.device)
    with torch.inference_mode():
        first = filler._constrained_logprobs(stepper.first(), [[]] * vocab, cfg)[0]
        second = filler._constrained_logprobs(stepper.step(torch.arange(vocab)),
                                              [[t] for t in range(vocab)], cfg)
    end = filler.ids.end
    candidates = [(float(first[e]), []) for e in end]  # (score, ids)
    for a in range(vocab):
        if a in end or not math.isfinite(float(first[a])):
            continue
        for b in range(vocab):
            value = float(first[a] + second[a, b])
            candidates.append((value / 2, [a] if b in end else [a, b]))
    score, ids = max(candidates, key=lambda c: c[0])
    assert best["ids"] == ids and best["score"] == pytest.approx(score, abs=1e-6)


def test_kv_cache_matches_full_recompute(tiny):
    """Step logits with the cache equal those of recomputing the whole sequence (ragged
    contexts, so padding is exercised), and so do the filled outputs."""
    filler = tiny.random_filler
    contexts = [filler.prepare(q) for q in ("the [MASK]", "a dog ran [MASK] the green park .")]
    mask_pos = [c.index(tiny.ids.mask) for c in contexts]
    steppers = [_Stepper(filler.model, contexts, mask_pos, filler.ids, cache, filler.device)
                for cache in (True, False)]
    with torch.inference_mode():
        logits = [s.first() for s in steppers]
        for _ in range(5):
            torch.testing.assert_close(logits[0], logits[1], atol=1e-5, rtol=1e-5)
            token = logits[0].argmax(-1)
            logits = [s.step(token) for s in steppers]
    queries = [q for q, _ in QUERIES] + ["[MASK] [MASK] [MASK]"]
    for num_beams in (1, 3):
        runs = [filler.fill(queries, strategy=GenerationConfig(
            max_new_tokens=6, num_beams=num_beams, use_cache=cache, batch_size=size))
            for cache, size in ((True, 8), (False, 8), (True, 1))]
        for run in runs[1:]:
            assert [r["output_ids"] for r in run] == [r["output_ids"] for r in runs[0]]
            for got, want in zip(run, runs[0]):
                assert [b["score"] for b in got["blanks"]] == pytest.approx(
                    [b["score"] for b in want["blanks"]], abs=1e-5)
    commands = set(range(tiny.ids.eos, tiny.info["padded_vocab_size"]))
    assert not commands & {t for r in runs[0] for t in r["output_ids"][:-1]}  # never generated


def test_sampling_is_seeded(tiny):
    filler = tiny.random_filler
    queries = ["the", "a dog [MASK] in the park ."]

    def sample(seed, batch_size=8, **kw):
        cfg = GenerationConfig(max_new_tokens=8, do_sample=True, seed=seed,
                               batch_size=batch_size, **{"top_p": 0.9, "top_k": 20, **kw})
        return [r["output_ids"] for r in filler.fill(queries, strategy=cfg)]

    assert sample(3) == sample(3)
    assert sample(3, batch_size=1) == sample(3)  # an input's draws do not depend on its batch
    assert len({json.dumps(sample(seed)) for seed in range(4)}) > 1
    greedy = [r["output_ids"] for r in filler.fill(queries, strategy=GenerationConfig(
        max_new_tokens=8))]
    assert sample(3) != greedy
    assert sample(5, top_k=1, top_p=1.0, temperature=2.0) == greedy
    assert sample(5, top_k=0, top_p=1e-6) == greedy  # top-p keeps the most likely token only


@pytest.mark.parametrize("num_beams", [1, 4])
def test_no_repeat_ngram_size_binds(tiny, num_beams):
    query = "yes"  # memorised continuation: "the dog saw the dog run ."
    free = tiny.filler.fill([query], strategy=GenerationConfig(num_beams=num_beams))[0]
    assert free["output"] == tiny.decoded[3] and _ngram_repeats(free["blanks"][0]["ids"], 2)
    banned = tiny.filler.fill([query], strategy=GenerationConfig(
        num_beams=num_beams, no_repeat_ngram_size=2))[0]
    assert not _ngram_repeats(banned["blanks"][0]["ids"], 2)
    assert banned["blanks"][0]["ids"][:3] == free["blanks"][0]["ids"][:3]  # same until the ban


@pytest.mark.parametrize("num_beams", [1, 4])
def test_min_and_max_new_tokens_bind(tiny, num_beams):
    query = _masked(SENTENCES[0], 5)  # "red": one memorised token, then [eop]
    free = tiny.filler.fill([query], strategy=GenerationConfig(num_beams=num_beams))[0]
    assert free["output"] == tiny.decoded[0] and len(free["blanks"][0]["ids"]) == 1
    forced = tiny.filler.fill([query], strategy=GenerationConfig(
        num_beams=num_beams, min_new_tokens=3, max_new_tokens=8))[0]["blanks"][0]
    assert len(forced["ids"]) >= 3 and forced["ids"][0] == free["blanks"][0]["ids"][0]
    cut = tiny.filler.fill(["birds"], strategy=GenerationConfig(
        num_beams=num_beams, max_new_tokens=2))[0]["blanks"][0]
    assert cut["stop"] == "length" and cut["ids"] == tiny.sentence_ids[2][1:3]


def test_generation_config_rejects_bad_values():
    for bad, message in [({"do_sample": True, "num_beams": 2}, "do_sample"),
                         ({"top_p": 0.0}, "top_p"), ({"max_new_tokens": 0}, "max_new_tokens"),
                         ({"temperature": 0.0}, "temperature")]:
        with pytest.raises(ValueError, match=message):
            GenerationConfig(**bad)


# --------------------------------------------------------------------------- folder and CLI


def test_cli_reads_stdin_and_files(tiny, tmp_path, monkeypatch, capsys):
    lines = [("q1", _masked(SENTENCES[1], 2)), ("q2", "birds sing"),
             ("q3", _masked(SENTENCES[2], 1, 4))]
    expected = [tiny.decoded[1], tiny.decoded[2], tiny.decoded[2]]
    stdin = "".join(f"{i}\t{t}\n" for i, t in lines) + "\n"
    run = subprocess.run([sys.executable, "-m", "pretrain.generate", "--model", str(tiny.folder),
                          "--with-id", "--num-beams", "2", "--batch-size", "2"],
                         input=stdin, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    records = [json.loads(line) for line in run.stdout.splitlines()]
    assert [r["id"] for r in records] == ["q1", "q2", "q3"]
    assert [r["input"] for r in records] == [t for _, t in lines]
    assert [r["output"] for r in records] == expected
    assert set(records[2]["blanks"][0]) == {"text", "ids", "score", "logprob", "stop"}

    source, out = tmp_path / "in.txt", tmp_path / "out.jsonl"
    source.write_text("".join(f"{t}\n" for _, t in lines), encoding="utf-8")
    assert main(["--model", str(tiny.folder), "--input", str(source), "--output", str(out)]) == 0
    from_file = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in from_file] == ["1", "2", "3"]  # line numbers without --with-id
    assert [r["output"] for r in from_file] == expected
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{lines[0][1]}\n"))
    assert main(["--model", str(tiny.folder), "--input", "-"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["output"] == expected[0], captured


def test_load_filler_reads_a_saved_folder(tiny):
    loaded = load_filler(tiny.folder)
    queries = [q for q, _ in QUERIES[:4]]
    cfg = GenerationConfig(num_beams=2)
    assert loaded.fill(queries, strategy=cfg) == tiny.filler.fill(queries, strategy=cfg)


@pytest.mark.parametrize("argv, message", [
    (["--model", "/nonexistent/glm"], "model folder not found"),
    (["--model", "X", "--num-beams", "two"], "invalid int value"),
    (["--model", "X", "--num-beams", "2", "--do-sample"], "do_sample"),
    (["--model", "X", "--input", "/nonexistent/in.txt"], "No such file"),
    ([], "required"),
])
def test_cli_errors_are_one_line(argv, message, capsys, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("the [MASK]\n", encoding="utf-8")
    try:
        code = main(["--input", str(source)] + argv)
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert code == 2 and captured.out == ""
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def test_cli_rejects_bad_folders_and_lines(tiny, tmp_path, capsys):
    source = tmp_path / "in.txt"
    source.write_text("no tab here\n", encoding="utf-8")
    assert main(["--model", str(tiny.folder), "--input", str(source), "--with-id"]) == 2
    assert "line 1" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    source.write_text("the [MASK]\n", encoding="utf-8")
    assert main(["--model", str(tmp_path / "empty"), "--input", str(source)]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    too_long = " ".join(["cat"] * MAX_POSITIONS)
    source.write_text(f"the [MASK]\n{too_long}\n", encoding="utf-8")
    assert main(["--model", str(tiny.folder), "--input", str(source)]) == 2
    captured = capsys.readouterr()
    assert "input 2" in captured.err and captured.out == ""
