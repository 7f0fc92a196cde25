"""VECO's three fine-tuning paths (spec VECO.md B5) on tiny random networks, on CPU:

* plug-out: `pretrain.veco_export.plug_out_model` writes a stock XLM-R folder that
  `finetune.run --form standard` fine-tunes (loss falls, accuracy above the majority class);
* plug-in (`finetune.plugin`): [H^L ; S^L] at <s> for a PAWS-X row and its German translation,
  the partner's memory detached, learns the training rows, predicts symmetrically, reloads;
* seq2seq (`finetune.seq2seq`): `veco_export.seq2seq_model` fine-tuned on 64 short Tatoeba de-en
  pairs: loss falls, BLEU on those pairs beats copying the source, two runs decode the same."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import torch

from finetune import plugin, run, seq2seq
from finetune.tasks import read_pair
from paths import SHARED_DATA

PAWSX = SHARED_DATA / "xlu" / "pawsx"
TATOEBA = {side: SHARED_DATA / "parallel" / f"tatoeba.deu-eng.{side}" for side in ("deu", "eng")}
PAIR_ROWS = 32
TRANSLATION_PAIRS = 64


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Two threads on two shared cores run these tiny models far slower than one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """The first PAWS-X test rows in en and de (translations, row by row) and the first 64
    Tatoeba de-en pairs of at most 6 words a side."""
    if not (PAWSX.is_dir() and all(p.is_file() for p in TATOEBA.values())):
        pytest.skip("shared XLU / parallel samples not available")
    root = tmp_path_factory.mktemp("veco_data")
    files = {}
    for lang in ("en", "de"):
        rows = (PAWSX / f"test-{lang}.tsv").read_text(encoding="utf-8").splitlines()[:PAIR_ROWS]
        files[f"pawsx-{lang}"] = root / f"pawsx-{lang}.tsv"
        files[f"pawsx-{lang}"].write_text("\n".join(rows) + "\n", encoding="utf-8")
    sides = [TATOEBA[s].read_text(encoding="utf-8").splitlines() for s in ("deu", "eng")]
    short = [(d, e) for d, e in zip(*sides) if len(d.split()) <= 6 and len(e.split()) <= 6]
    for k, side in enumerate(("deu", "eng")):
        files[side] = root / f"tatoeba.deu-eng.{side}"
        files[side].write_text("".join(pair[k] + "\n" for pair in short[:TRANSLATION_PAIRS]),
                               encoding="utf-8")
    return files


@pytest.fixture(scope="module")
def folders(tmp_path_factory, data) -> dict[str, Path]:
    """A SentencePiece tokenizer trained on the samples; a tiny random `VecoForMaskedLM`
    (hidden 32) exported as plug-out and plug-in folders, and a wider one (hidden 64, which
    memorises 64 sentence pairs in seconds) exported as seq2seq with one decoder layer."""
    from data_prep.tokenizer import load_tokenizer, train_tokenizer
    from pretrain import veco_export
    from pretrain.hf_veco import VecoConfig, VecoForMaskedLM

    root = tmp_path_factory.mktemp("veco_models")
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(p.read_text(encoding="utf-8") for p in data.values()),
                      encoding="utf-8")
    tokenizer = load_tokenizer(train_tokenizer([corpus], 1000, root / "tok",
                                               character_coverage=0.99, num_threads=1))

    def network(hidden: int, seed: int):
        torch.manual_seed(seed)
        return VecoForMaskedLM(VecoConfig(
            vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=2,
            num_attention_heads=2, intermediate_size=2 * hidden, max_position_embeddings=130,
            type_vocab_size=1, pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id))

    net = network(32, 0)
    made = {"plug_out": veco_export.plug_out_model(net), "plug_in": veco_export.plug_in_model(net),
            "seq2seq": veco_export.seq2seq_model(network(64, 1), decoder_layers=1)}
    out = {}
    for name, model in made.items():
        model.save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
        out[name] = root / name
    return out


def majority_accuracy(path: Path) -> float:
    labels = [r.label for r in read_pair(path)]
    return 100.0 * Counter(labels).most_common(1)[0][1] / len(labels)


def results_of(out: Path) -> dict:
    return json.loads((out / "results.json").read_text(encoding="utf-8"))


def pair_argv(data, model: Path, out: Path, *extra: str) -> list[str]:
    """Train on the en rows, score the training rows (memorisation shows it learns)."""
    return ["--task", "pair", "--model", str(model), "--train", str(data["pawsx-en"]),
            "--eval", f"en={data['pawsx-en']}", "--out", str(out), "--epochs", "15",
            "--lr", "3e-3", "--batch-size", "8", "--dropout", "0", "--log-every", "1", *extra]


# ---------------------------------------------------------------------------- plug-out

def test_plug_out_folder_fine_tunes_with_the_standard_heads(tmp_path, data, folders):
    config = json.loads((folders["plug_out"] / "config.json").read_text())
    assert config["model_type"] == "xlm-roberta"  # cross-attention unplugged: stock XLM-R
    out = tmp_path / "plug_out"
    assert run.main(["--form", "standard", *pair_argv(data, folders["plug_out"], out)]) == 0
    results = results_of(out)
    assert results["form"] == "standard"
    assert results["train_loss"]["last"] < 0.5 * results["train_loss"]["first"]
    assert results["scores"]["en"]["accuracy"] > majority_accuracy(data["pawsx-en"]) + 10


# ---------------------------------------------------------------------------- plug-in

def test_plug_in_learns_pairs_and_predicts_symmetrically(tmp_path, data, folders):
    from data_prep.tokenizer import load_tokenizer

    out = tmp_path / "plug_in"
    argv = pair_argv(data, folders["plug_in"], out, "--eval", f"de={data['pawsx-de']}",
                     "--form", "plug-in", "--pair-lang", "de", "--pair-train",
                     str(data["pawsx-de"]))
    assert run.main(argv) == 0
    results = results_of(out)
    assert results["form"] == "plug-in" and results["pair_lang"] == "de"
    assert results["partners"] == {"train": str(data["pawsx-de"]), "en": str(data["pawsx-de"]),
                                   "de": str(data["pawsx-en"])}
    assert results["train_loss"]["last"] < 0.5 * results["train_loss"]["first"]
    assert results["scores"]["en"]["accuracy"] > majority_accuracy(data["pawsx-en"]) + 10
    # the mean of the two softmaxes does not care which side is the evaluated example
    predictions = {lang: json.loads((out / "predictions" / f"{lang}.json").read_text())
                   for lang in ("en", "de")}
    assert predictions["en"] == predictions["de"]
    # model/ reloads with its head and predicts the same
    model = plugin.load_plugin_classifier(out / "model", ("0", "1"))
    tokenizer = load_tokenizer(out / "model")
    paired = plugin.pair_records(read_pair(data["pawsx-en"]), read_pair(data["pawsx-de"]),
                                 paths=("en", "de"), drop_mismatched=False)
    again = plugin.predict(model, tokenizer, paired, {"max_seq_len": 128, "doc_stride": None},
                           device="cpu")
    assert again == predictions["en"]


def test_plug_in_features_are_h_and_s_at_cls_with_a_detached_memory(folders, data):
    """logits(x) = head([H^L_x ; S^L_x] at <s>), S^L_x cross-attending to H^L_y; no gradient
    reaches y's tokens through x's logits (the stop-gradient), while y still changes them."""
    from data_prep.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(folders["plug_in"])
    model = plugin.load_plugin_classifier(folders["plug_in"], ("0", "1"), seed=3).eval()
    net = model.network
    paired = plugin.pair_records(read_pair(data["pawsx-en"])[:3], read_pair(data["pawsx-de"]),
                                 paths=("en", "de"), drop_mismatched=False)
    batch = plugin.collate(plugin.encode(paired, tokenizer, {"max_seq_len": 128}),
                           tokenizer.pad_token_id)
    ids, mask = batch["input_ids"], batch["attention_mask"]  # [6, T]: x rows, then y rows
    logits = model(ids, mask)
    with torch.no_grad():
        h_x, h_y = net.h_stream(ids[:3], mask[:3]), net.h_stream(ids[3:], mask[3:])
        s_x = net.s_stream(ids[:3], mask[:3], h_y, mask[3:])
        expected = model.head(torch.cat([h_x[:, 0], s_x[:, 0]], dim=-1))
    torch.testing.assert_close(logits[:3], expected, rtol=1e-5, atol=1e-5)

    embeddings = net.get_input_embeddings().weight
    x_tokens, y_tokens = (set(ids[rows][mask[rows].bool()].tolist())
                          for rows in (slice(0, 3), slice(3, 6)))
    only_y = sorted(y_tokens - x_tokens)
    assert only_y, "the German rows should have tokens the English ones lack"
    (grad,) = torch.autograd.grad(logits[:3].sum(), embeddings)
    assert grad[only_y].abs().max() == 0
    with torch.no_grad():
        other = model(torch.cat([ids[:3], ids[:3]]), torch.cat([mask[:3], mask[:3]]))
    assert not torch.allclose(other[:3], logits[:3].detach())  # the memory matters
    # the prediction is symmetric: (x, y) and (y, x) get the same distribution
    with torch.no_grad():
        swapped = model(torch.cat([ids[3:], ids[:3]]), torch.cat([mask[3:], mask[:3]]))
    torch.testing.assert_close(plugin.pair_probabilities(swapped),
                               plugin.pair_probabilities(logits.detach()))


@pytest.mark.parametrize("argv, message", [
    (["--task", "pair", "--form", "plug-in", "--pair-train", "t"], "needs --pair-lang"),
    (["--task", "pair", "--form", "plug-in", "--pair-lang", "de"], "needs --pair-train"),
    (["--task", "ner", "--form", "plug-in", "--pair-lang", "de", "--pair-train", "t"],
     "applies to --task pair only"),
    (["--task", "pair", "--pair-lang", "de"], "apply to --form plug-in only"),
    (["--task", "translation", "--train-src", "a", "--train-tgt", "b", "--eval-src", "c"],
     "needs --eval-tgt"),
    (["--task", "translation", "--train-src", "a", "--train-tgt", "b", "--eval-src", "c",
      "--eval-tgt", "d", "--form", "standard"], "--form does not apply to --task translation"),
    (["--task", "pair", "--train", "t", "--num-beams", "3"], "applies to --task translation"),
])
def test_cli_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        needs_train = argv[1] != "translation" and "--train" not in argv
        run.main([*argv, "--model", "m", "--out", "o", *(["--train", "t"] if needs_train else [])])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_plug_in_needs_the_partner_eval_set_and_a_veco_folder(tmp_path, data, folders, capsys):
    base = pair_argv(data, folders["plug_in"], tmp_path / "o", "--form", "plug-in",
                     "--pair-lang", "zh", "--pair-train", str(data["pawsx-de"]))
    assert run.main(base) == 2
    assert "needs its translation in zh: add --eval zh=FILE" in capsys.readouterr().err
    base = pair_argv(data, folders["plug_out"], tmp_path / "o", "--form", "plug-in",
                     "--pair-lang", "de", "--pair-train", str(data["pawsx-de"]),
                     "--eval", f"de={data['pawsx-de']}")
    assert run.main(base) == 2
    assert "fine-tunes with --form standard" in capsys.readouterr().err


# ---------------------------------------------------------------------------- seq2seq

def translation_argv(data, model: Path, out: Path) -> list[str]:
    """Fit the 64 pairs: a high learning rate, no dropout, the spec's label smoothing and beam."""
    return ["--task", "translation", "--model", str(model), "--out", str(out),
            "--train-src", str(data["deu"]), "--train-tgt", str(data["eng"]),
            "--eval-src", str(data["deu"]), "--eval-tgt", str(data["eng"]),
            "--epochs", "40", "--lr", "3e-3", "--batch-size", "16", "--dropout", "0",
            "--warmup-ratio", "0.05", "--max-grad-norm", "1", "--log-every", "10"]


def test_seq2seq_learns_the_pairs_beats_copying_and_is_deterministic(tmp_path, data, folders):
    runs = []
    for k in range(2):
        out = tmp_path / f"s2s{k}"
        assert run.main(translation_argv(data, folders["seq2seq"], out)) == 0
        runs.append((results_of(out), (out / "predictions" / "deu-eng.txt").read_text()))
    (results, hypotheses), (results_again, hypotheses_again) = runs
    assert hypotheses == hypotheses_again and results == results_again
    settings = results["settings"]
    assert (settings["label_smoothing"], settings["num_beams"]) == (0.2, 5)  # spec defaults
    assert results["train_loss"]["last"] < 0.6 * results["train_loss"]["first"]
    scores = results["scores"]["deu-eng"]
    copy = seq2seq.bleu(data["deu"].read_text().splitlines(), data["eng"].read_text().splitlines())
    assert scores["copy_source_bleu"] == pytest.approx(copy["bleu"])
    assert scores["bleu"] > scores["copy_source_bleu"] + 10, scores
    assert len(hypotheses.splitlines()) == TRANSLATION_PAIRS


def test_label_smoothed_loss_is_torch_cross_entropy_with_smoothing():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 11)
    labels = torch.randint(0, 11, (2, 5))
    labels[1, 3:] = seq2seq.IGNORE
    kept = labels != seq2seq.IGNORE
    logp = logits.log_softmax(-1)[kept]  # [N, V]
    nll = -logp.gather(1, labels[kept][:, None]).squeeze(1)
    for eps in (0.0, 0.2):
        expected = ((1 - eps) * nll - eps * logp.mean(-1)).sum()
        torch.testing.assert_close(seq2seq.label_smoothed_loss_sum(logits, labels, eps), expected)


def test_translation_files_must_be_line_aligned(tmp_path, data, folders, capsys):
    short = tmp_path / "short.eng"
    short.write_text("".join(data["eng"].read_text().splitlines(keepends=True)[:10]))
    argv = translation_argv(data, folders["seq2seq"], tmp_path / "o")
    argv[argv.index("--eval-tgt") + 1] = str(short)
    assert run.main(argv) == 2
    err = capsys.readouterr().err
    assert f"has {TRANSLATION_PAIRS} lines but {short} has 10" in err
    assert not (tmp_path / "o" / "train_log.jsonl").exists()
