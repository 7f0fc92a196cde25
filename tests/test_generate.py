"""Blank filling (`pretrain.generate`, spec mGLM.md A3.1) with a tiny GLM network that memorised
four sentences in-process (blank-infilling samples built as spec A1.5 lays them out), plus an
untrained twin whose near-uniform outputs exercise sampling, beams and padding."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from pretrain.generate import BlankFiller, GenerationConfig, _Stepper, load_filler, main
from tests.paths import REPO

SENTENCES = [
    "the cat sat on the red mat .",
    "a dog ran in the green park .",
    "birds sing songs at dawn .",
    "yes the dog saw the dog run .",  # a repeated bigram for no_repeat_ngram_size
]
MAX_POSITIONS = 64


def _network(info: dict, seed: int):
    from pretrain.hf_glm import GlmConfig, GlmForBlankInfilling

    config = GlmConfig(vocab_size=info["padded_vocab_size"], hidden_size=64, num_layers=2,
                       num_heads=4, intermediate_size=256,
                       max_position_embeddings=MAX_POSITIONS, hidden_dropout=0.0,
                       attention_dropout=0.0, pad_token_id=info["pad_id"],
                       eos_token_id=info["eos_id"], cls_token_id=info["cls_id"],
                       mask_token_id=info["mask_id"], smask_token_id=info["smask_id"],
                       gmask_token_id=info["gmask_id"], sop_token_id=info["sop_id"],
                       eop_token_id=info["eop_id"])
    torch.manual_seed(seed)
    return GlmForBlankInfilling(config)


def _blank_sample(tokens: list[int], spans: list[tuple[int, int]], mask: int, ids) -> dict:
    """Spec A1.5 for spans [start, end) of `tokens` kept in left-to-right order (the order
    inference fills them in): Part A = text with each span as one mask token (compressed
    positions, block position 0); Part B per span = [sop] + span, labels span + [eop],
    position = the span's mask position, block positions 1…L+1; sep = |Part A|."""
    part_a, positions_a, mask_positions = [], [], []
    cursor = 0
    for start, end in spans:
        part_a += tokens[cursor:start]
        mask_positions.append(len(part_a))
        part_a.append(mask)
        cursor = end
    part_a += tokens[cursor:]
    positions_a = list(range(len(part_a)))
    inputs, labels, pos, block = list(part_a), [-100] * len(part_a), positions_a, \
        [0] * len(part_a)
    pos = list(pos)
    for (start, end), mask_pos in zip(spans, mask_positions):
        span = tokens[start:end]
        inputs += [ids.sop] + span
        labels += span + [ids.eop]
        pos += [mask_pos] * (len(span) + 1)
        block += list(range(1, len(span) + 2))
    return {"input_ids": inputs, "labels": labels, "positions": [pos, block], "sep": len(part_a)}


def _training_samples(sentence_ids: list[list[int]], ids) -> list[dict]:
    samples = []
    for words in sentence_ids:
        tokens = [ids.cls] + words + [ids.eos]
        inner = range(1, len(tokens) - 1)
        singles = [(s, s + n) for s in inner for n in (1, 2, 3) if s + n <= len(tokens) - 1]
        for span in singles:
            samples.append(_blank_sample(tokens, [span], ids.mask, ids))
        for first in singles:
            for second in singles:
                if first[1] < second[0] and first[1] - first[0] <= 2 and \
                        second[1] - second[0] <= 2:
                    samples.append(_blank_sample(tokens, [first, second], ids.mask, ids))
        for prefix in range(1, len(words)):  # [gMASK]: the suffix, no eos in Part A (A1.4)
            samples.append(_blank_sample(tokens[:-1], [(prefix + 1, len(tokens) - 1)],
                                         ids.gmask, ids))
    return samples


def _collate(samples: list[dict], pad: int) -> dict:
    width = max(len(s["input_ids"]) for s in samples)
    batch = {"input_ids": torch.full((len(samples), width), pad),
             "labels": torch.full((len(samples), width), -100),
             "position_ids": torch.zeros((len(samples), 2, width), dtype=torch.long),
             "sep": torch.tensor([s["sep"] for s in samples])}
    for b, s in enumerate(samples):
        n = len(s["input_ids"])
        batch["input_ids"][b, :n] = torch.tensor(s["input_ids"])
        batch["labels"][b, :n] = torch.tensor(s["labels"])
        batch["position_ids"][b, :, :n] = torch.tensor(s["positions"])
    return batch


def _train(model, samples: list[dict], pad: int, steps: int = 300) -> float:
    batch = _collate(samples, pad)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    model.train()
    for _ in range(steps):
        logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                       sep=batch["sep"]).logits
        loss = F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(),
                               ignore_index=-100)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return loss.item()


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """The memorising GLM, its tokenizer, an untrained twin and their exported folder."""
    from data_prep.tokenizer import load_tokenizer, tokenizer_info, train_tokenizer

    root = tmp_path_factory.mktemp("generate")
    text = root / "sentences.txt"
    text.write_text("\n".join(SENTENCES * 3) + "\n", encoding="utf-8")
    tok_dir = train_tokenizer([text], 64, root / "tokenizer", layout="glm")
    tok = load_tokenizer(tok_dir)
    info = tokenizer_info(tok)
    ids = SimpleNamespace(cls=info["cls_id"], eos=info["eos_id"], mask=info["mask_id"],
                          gmask=info["gmask_id"], sop=info["sop_id"], eop=info["eop_id"],
                          smask=info["smask_id"])
    sentence_ids = [tok.encode(s, add_special_tokens=False) for s in SENTENCES]
    decoded = {s: tok.decode(i) for s, i in zip(SENTENCES, sentence_ids)}  # what fill returns
    model = _network(info, seed=0)
    loss = _train(model, _training_samples(sentence_ids, ids), info["pad_id"])
    folder = root / "model"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    untrained = _network(info, seed=1).eval()
    return SimpleNamespace(tok=tok, info=info, ids=ids, sentence_ids=sentence_ids, loss=loss,
                           decoded=decoded,
                           filler=BlankFiller(model, tok), folder=folder,
                           random_filler=BlankFiller(untrained, tok))


def _words(sentence: str) -> list[str]:
    return sentence.split(" ")


def _masked(sentence: str, *word_indices: int) -> str:
    words = _words(sentence)
    return " ".join("[MASK]" if i in word_indices else w for i, w in enumerate(words))


def _queries() -> list[str]:
    """One blank, two blanks and a [gMASK] suffix (no mask: ' [gMASK]' appended) per sentence."""
    queries = []
    for sentence in SENTENCES:
        queries.append(_masked(sentence, 2))
        queries.append(_masked(sentence, 1, 4))
        queries.append(" ".join(_words(sentence)[:2]))
    return queries


def _expected(query: str) -> str:
    for sentence in SENTENCES:
        if sentence.startswith(query) or _matches(query, sentence):
            return sentence
    raise AssertionError(query)


def _matches(query: str, sentence: str) -> bool:
    q, s = _words(query), _words(sentence)
    return len(q) == len(s) and all(a in ("[MASK]", b) for a, b in zip(q, s))


def _ngram_repeats(ids: list[int], n: int) -> bool:
    grams = [tuple(ids[i:i + n]) for i in range(len(ids) - n + 1)]
    return len(grams) != len(set(grams))


# --------------------------------------------------------------------------- memorisation


def test_greedy_fills_memorised_blanks_left_to_right(tiny):
    assert tiny.loss < 0.05, f"the tiny model did not memorise its samples (loss {tiny.loss})"
    queries = _queries()
    results = tiny.filler.fill(queries, strategy=GenerationConfig(max_new_tokens=12))
    for query, result in zip(queries, results):
        sentence = _expected(query)
        assert result["input"] == query
        assert result["output"] == tiny.decoded[sentence], query
        assert result["output_ids"] == tiny.sentence_ids[SENTENCES.index(sentence)]
        assert all(blank["stop"] == "eop" for blank in result["blanks"]), result
        n_blanks = query.count("[MASK]") or 1
        assert len(result["blanks"]) == n_blanks
    # two blanks: the left one first, each a memorised word, scores are log-probs
    two = results[1]
    words = _words(SENTENCES[0])
    assert [b["text"].strip() for b in two["blanks"]] == [words[1], words[4]]
    assert all(-1.0 < b["score"] <= 0.0 and b["logprob"] <= 0.0 for b in two["blanks"])


def test_prepare_builds_mglm_queries(tiny):
    filler, ids = tiny.filler, tiny.ids
    plain = filler.prepare("the cat")
    assert plain[0] == ids.cls and plain[-1] == ids.gmask  # [gMASK] appended, no eos after it
    assert plain[1:-1] == tiny.tok.encode("the cat", add_special_tokens=False)
    middle = filler.prepare("the [MASK] sat")
    assert middle[0] == ids.cls and middle[-1] == ids.eos and middle.count(ids.mask) == 1
    assert filler.prepare("the cat [sMASK]")[-1] == ids.smask
    # a literal "MASK]" inside a word is text, not a mask (the reference's substring test)
    literal = filler.prepare("the xMASK]")
    assert literal[-1] == ids.gmask and ids.mask not in literal
    with pytest.raises(ValueError, match="positions"):
        filler.prepare(" ".join(["cat"] * MAX_POSITIONS))
    with pytest.raises(ValueError, match="input 1"):
        filler.fill(["the [MASK]", " ".join(["cat"] * MAX_POSITIONS)])


# --------------------------------------------------------------------------- strategies


def test_beam_search_is_deterministic_and_at_least_greedy(tiny):
    queries = _queries()
    beam = GenerationConfig(max_new_tokens=12, num_beams=4)
    runs = [tiny.filler.fill(queries, strategy=beam) for _ in range(3)]
    assert runs[0] == runs[1] == runs[2]
    assert [r["output"] for r in runs[0]] == [tiny.decoded[_expected(q)] for q in queries]
    for filler in (tiny.filler, tiny.random_filler):
        singles = [_masked(s, 2) for s in SENTENCES] + ["the", "birds sing"]
        greedy = filler.fill(singles, strategy=GenerationConfig(max_new_tokens=6))
        beams = filler.fill(singles, strategy=GenerationConfig(max_new_tokens=6, num_beams=4))
        for g, b in zip(greedy, beams):
            assert b["blanks"][0]["score"] >= g["blanks"][0]["score"] - 1e-6


def test_beam_search_with_beams_covering_the_vocabulary_is_exact(tiny):
    """With 2 tokens per blank and num_beams >= |V| no hypothesis is ever pruned, so the answer
    must be the brute-force best of every 1- and 2-token blank."""
    filler = tiny.random_filler
    query = filler.prepare("birds [MASK] songs")
    vocab = tiny.info["vocab_size"]
    cfg = GenerationConfig(max_new_tokens=2, num_beams=vocab, length_penalty=1.0)
    best = filler.fill_ids([query], strategy=cfg)[0]["blanks"][0]

    mask_pos = query.index(tiny.ids.mask)
    stepper = _Stepper(filler.model, [query] * vocab, [mask_pos] * vocab, filler.ids, True,
                       filler.device)
    with torch.inference_mode():
        first = filler._constrained_logprobs(stepper.first(), [[]] * vocab, cfg)[0]
        second = filler._constrained_logprobs(
            stepper.step(torch.arange(vocab)), [[t] for t in range(vocab)], cfg)
    end = list(filler.ids.end)
    candidates = []  # (score, ids)
    for token in end:
        candidates.append((float(first[token]), []))
    for token in range(vocab):
        if token in end or not math.isfinite(float(first[token])):
            continue
        for nxt in range(vocab):
            value = float(first[token] + second[token, nxt])
            if math.isfinite(value):
                candidates.append((value / 2, [token] if nxt in end else [token, nxt]))
    score, ids = max(candidates, key=lambda c: c[0])
    assert best["ids"] == ids
    assert best["score"] == pytest.approx(score, abs=1e-5)


def test_sampling_is_reproducible_by_seed(tiny):
    filler = tiny.random_filler
    queries = ["the", "a dog [MASK] in the park ."]

    def sample(seed, batch_size=8):
        cfg = GenerationConfig(max_new_tokens=8, do_sample=True, seed=seed, top_k=20,
                               top_p=0.95, temperature=1.5, batch_size=batch_size)
        return [r["output_ids"] for r in filler.fill(queries, strategy=cfg)]

    assert sample(3) == sample(3)
    assert sample(3, batch_size=1) == sample(3)  # an input's draws do not depend on the batch
    assert len({json.dumps(sample(seed)) for seed in range(5)}) > 1
    greedy = filler.fill(queries, strategy=GenerationConfig(max_new_tokens=8))
    assert sample(3) != [r["output_ids"] for r in greedy]


@pytest.mark.parametrize("num_beams", [1, 3])
def test_cache_and_batching_do_not_change_outputs(tiny, num_beams):
    for filler in (tiny.filler, tiny.random_filler):
        queries = _queries() + ["", "[MASK] [MASK] [MASK]"]
        outputs = {}
        for use_cache in (True, False):
            for batch_size in (1, 5, 16):
                cfg = GenerationConfig(max_new_tokens=7, num_beams=num_beams,
                                       use_cache=use_cache, batch_size=batch_size)
                outputs[use_cache, batch_size] = filler.fill(queries, strategy=cfg)
        reference = outputs[True, 1]
        for key, results in outputs.items():
            for got, want in zip(results, reference):
                assert got["output_ids"] == want["output_ids"], key
                assert [b["ids"] for b in got["blanks"]] == [b["ids"] for b in want["blanks"]]
                for b, w in zip(got["blanks"], want["blanks"]):
                    assert b["score"] == pytest.approx(w["score"], abs=1e-4), key


@pytest.mark.parametrize("num_beams", [1, 4])
def test_no_repeat_ngram_size_binds(tiny, num_beams):
    query = "yes"  # memorised continuation: "the dog saw the dog run ."
    free = tiny.filler.fill([query], strategy=GenerationConfig(max_new_tokens=12,
                                                               num_beams=num_beams))[0]
    assert free["output"] == tiny.decoded[SENTENCES[3]]
    assert _ngram_repeats(free["blanks"][0]["ids"], 2)
    cfg = GenerationConfig(max_new_tokens=12, num_beams=num_beams, no_repeat_ngram_size=2)
    banned = tiny.filler.fill([query], strategy=cfg)[0]
    assert not _ngram_repeats(banned["blanks"][0]["ids"], 2)
    assert banned["output"] != tiny.decoded[SENTENCES[3]]


@pytest.mark.parametrize("num_beams", [1, 4])
def test_min_and_max_new_tokens_bind(tiny, num_beams):
    query = _masked(SENTENCES[0], 5)  # "red": one memorised token, then [eop]
    free = tiny.filler.fill([query], strategy=GenerationConfig(num_beams=num_beams))[0]
    assert free["output"] == tiny.decoded[SENTENCES[0]] and len(free["blanks"][0]["ids"]) == 1
    cfg = GenerationConfig(num_beams=num_beams, min_new_tokens=3, max_new_tokens=8)
    forced = tiny.filler.fill([query], strategy=cfg)[0]["blanks"][0]
    assert len(forced["ids"]) >= 3
    cut = tiny.filler.fill(["birds"], strategy=GenerationConfig(num_beams=num_beams,
                                                                max_new_tokens=2))[0]
    assert cut["blanks"][0]["stop"] == "length" and len(cut["blanks"][0]["ids"]) == 2


def test_generation_config_rejects_bad_values():
    with pytest.raises(ValueError, match="do_sample"):
        GenerationConfig(do_sample=True, num_beams=2)
    with pytest.raises(ValueError, match="top_p"):
        GenerationConfig(top_p=0.0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        GenerationConfig(max_new_tokens=0)


# --------------------------------------------------------------------------- folder and CLI


def test_cli_round_trip(tiny, tmp_path):
    queries = [("q1", _masked(SENTENCES[1], 2)), ("q2", "birds sing"),
               ("q3", _masked(SENTENCES[2], 1, 4))]
    source = tmp_path / "in.txt"
    source.write_text("".join(f"{i}\t{t}\n" for i, t in queries) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    run = subprocess.run([sys.executable, "-m", "pretrain.generate", "--model", str(tiny.folder),
                          "--input", str(source), "--output", str(out), "--with-id",
                          "--num-beams", "2", "--max-new-tokens", "10", "--batch-size", "2"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in records] == ["q1", "q2", "q3"]
    assert [r["input"] for r in records] == [t for _, t in queries]
    assert [r["output"] for r in records] == [tiny.decoded[_expected(t)] for _, t in queries]
    assert set(records[0]) == {"id", "input", "output", "blanks"}
    assert set(records[2]["blanks"][0]) == {"text", "ids", "score", "logprob", "stop"}
    # the exported folder loads through AutoModel (remote code) and fills the same way
    loaded = load_filler(tiny.folder)
    api = loaded.fill([t for _, t in queries], strategy=GenerationConfig(num_beams=2,
                                                                         max_new_tokens=10))
    assert [r["blanks"] for r in api] == [r["blanks"] for r in records]


@pytest.mark.parametrize("argv, message", [
    (["--model", "/nonexistent/glm"], "model folder not found"),
    (["--model", "X", "--num-beams", "two"], "invalid int value"),
    (["--model", "X", "--num-beams", "2", "--do-sample"], "do_sample"),
    ([], "required"),
])
def test_cli_errors_are_one_line(argv, message, capsys, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("the [MASK]\n", encoding="utf-8")
    code = None
    try:
        code = main(argv + ["--input", str(source)])
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def test_cli_with_id_needs_a_tab(tiny, tmp_path, capsys):
    source = tmp_path / "in.txt"
    source.write_text("no tab here\n", encoding="utf-8")
    assert main(["--model", str(tiny.folder), "--input", str(source), "--with-id"]) == 2
    assert "line 1" in capsys.readouterr().err
