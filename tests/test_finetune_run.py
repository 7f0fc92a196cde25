"""finetune.run / finetune.train_loop: fine-tuning a tiny mPMR HF folder on real XLU samples
(PAN-X, XQuAD, PAWS-X) on CPU, zero-shot evaluation whose prediction files `finetune.evaluate`
scores to the same numbers, translated queries, MLQA normalisation, rationales, the reference's
loss cells (Z_00 alone for pairs, context cells for spans), the reference's large-model defaults,
determinism, plain XLM-R folders and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from finetune import evaluate as evaluate_cli
from finetune import forms, metrics, run, train_loop
from finetune.mrc_form import encode, pair_instances, tagging_instances
from finetune.queries import WIKIANN_QUERIES
from finetune.tasks import read_ner, read_pair, read_squad
from paths import SHARED_DATA

REPO = Path(__file__).resolve().parents[1]
XLU = SHARED_DATA / "xlu"
pytestmark = pytest.mark.skipif(not XLU.is_dir(), reason="shared XLU samples not available")
LANGS = ("en", "de", "zh")


def first_sentences(src: Path, dst: Path, n: int) -> Path:
    """The first n blank-line separated sentences of a tagging file."""
    blocks = [b for b in src.read_text(encoding="utf-8").split("\n\n") if b.strip()][:n]
    dst.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return dst


def first_lines(src: Path, dst: Path, n: int) -> Path:
    dst.write_text("\n".join(src.read_text(encoding="utf-8").splitlines()[:n]) + "\n",
                   encoding="utf-8")
    return dst


def first_questions(src: Path, dst: Path, n_paragraphs: int, n_questions: int) -> Path:
    """SQuAD JSON cut to the first paragraphs of the first article, n questions each."""
    doc = json.loads(src.read_text(encoding="utf-8"))
    article = doc["data"][0]
    paragraphs = [{**p, "qas": p["qas"][:n_questions]}
                  for p in article["paragraphs"][:n_paragraphs]]
    dst.write_text(json.dumps({"data": [{**article, "paragraphs": paragraphs}]},
                              ensure_ascii=False), encoding="utf-8")
    return dst


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """Small slices of the shared samples (files the CLI reads)."""
    root = tmp_path_factory.mktemp("xlu")
    out: dict[str, Path] = {}
    for lang in LANGS:
        out[f"ner-{lang}"] = first_sentences(XLU / "panx" / f"dev-{lang}.tsv",
                                             root / f"ner-{lang}.tsv", 24)
        out[f"pawsx-{lang}"] = first_lines(XLU / "pawsx" / f"test-{lang}.tsv",
                                           root / f"pawsx-{lang}.tsv", 12)
    for lang in ("en", "zh"):
        out[f"xquad-{lang}"] = first_questions(XLU / "xquad" / f"xquad.{lang}.json",
                                               root / f"xquad-{lang}.json", 2, 3)
    # the same questions under MLQA's file name: scored with MLQA's zh normalisation by default
    (root / "mlqa").mkdir()
    out["mlqa-zh"] = root / "mlqa" / "test-context-zh-question-zh.json"
    out["mlqa-zh"].write_bytes(out["xquad-zh"].read_bytes())
    return out


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, data) -> Path:
    """Tiny random `MPMRForSpanExtraction` (2 layers, hidden 32, 128 positions like the demo)
    + a SentencePiece tokenizer trained on the samples, saved as a HF folder."""
    from data_prep.tokenizer import load_tokenizer, train_tokenizer
    from pretrain.hf_mpmr import MPMRConfig, MPMRForSpanExtraction

    root = tmp_path_factory.mktemp("model")
    text = [p.read_text(encoding="utf-8") for p in data.values()]
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(text), encoding="utf-8")
    tokenizer = load_tokenizer(train_tokenizer([corpus], 1000, root / "tok",
                                               character_coverage=0.99, num_threads=1))
    torch.manual_seed(0)
    config = MPMRConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=130,
                        type_vocab_size=1, pad_token_id=tokenizer.pad_token_id,
                        bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
                        extractor_size=64)
    folder = root / "hf"
    MPMRForSpanExtraction(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def cli_scores(task: str, gold: Path, pred: Path, *args: str) -> dict:
    """What `python -m finetune.evaluate` prints, run in-process."""
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert evaluate_cli.main(["--task", task, "--gold", str(gold), "--pred", str(pred),
                                  *args]) == 0
    return json.loads(buffer.getvalue())


# ---------------------------------------------------------------------------- NER end to end

def run_cli(argv: list[str]) -> str:
    """`finetune.run.main(argv)` in-process; asserts exit 0 and returns what it printed."""
    import contextlib
    import io

    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert run.main(argv) == 0
    return stdout.getvalue()


@pytest.fixture(scope="module")
def ner_run(tmp_path_factory, model_dir, data):
    """Zero-shot evaluation over en / de / zh after one step at a negligible learning rate: the
    near-random model predicts many spans, so the scores (and their parity) are not all 0."""
    out = tmp_path_factory.mktemp("ner-run")
    argv = ["--task", "ner", "--model", str(model_dir), "--train", str(data["ner-en"]),
            "--out", str(out), "--epochs", "0.1", "--lr", "1e-9", "--batch-size", "12"]
    for lang in LANGS:
        argv += ["--eval", f"{lang}={data[f'ner-{lang}']}"]
    return out, run_cli(argv)


def test_ner_loss_decreases(tmp_path, model_dir, data):
    out = tmp_path / "train"
    run_cli(["--task", "ner", "--model", str(model_dir), "--train", str(data["ner-en"]),
             "--eval", f"de={data['ner-de']}", "--out", str(out), "--epochs", "4", "--lr", "3e-3",
             "--batch-size", "12", "--warmup-ratio", "0.1", "--seed", "7", "--log-every", "1"])
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log]
    assert [r["step"] for r in log] == list(range(1, len(log) + 1))
    assert len(log) == 6 * 4  # 72 features (24 sentences × 3 labels) / 12 per step × 4 epochs
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:3]), losses
    results = json.loads((out / "results.json").read_text())
    assert results["train_loss"]["last"] == losses[-1]
    assert results["settings"]["max_seq_len"] == 128  # clamped to the model's positions
    assert list(results["scores"]) == ["de"]


def test_ner_table_predictions_and_evaluate_parity(ner_run, data):
    out, printed = ner_run
    results = json.loads((out / "results.json").read_text())
    assert list(results["scores"]) == list(LANGS)
    assert results["task"] == "ner/wikiann"
    # each language is queried in its own language (PMR NER/Data/wikiann2mrc.py test files)
    assert results["query_langs"] == {"train": "en", "en": "en", "de": "de", "zh": "zh"}
    table = printed.strip().splitlines()
    assert table[0].split() == ["lang", "precision", "recall", "f1"]
    rows = {line.split()[0].rstrip("*"): line.split()[1:] for line in table[1:5]}
    assert list(rows) == [*LANGS, "avg"]
    for lang in LANGS:
        pred = out / "predictions" / f"{lang}.json"
        predictions = json.loads(pred.read_text())
        assert set(predictions) == {str(i) for i in range(24)}  # every sentence has a key
        assert sum(map(len, predictions.values())) > 0
        official = cli_scores("ner", data[f"ner-{lang}"], pred)
        assert official == results["scores"][lang]
        assert rows[lang] == [f"{official[c]:.2f}" for c in ("precision", "recall", "f1")]
    for column in ("precision", "recall", "f1"):
        mean = sum(results["scores"][lang][column] for lang in LANGS) / len(LANGS)
        assert results["average"][column] == pytest.approx(mean)
        assert rows["avg"][("precision", "recall", "f1").index(column)] == f"{mean:.2f}"


def test_ner_evaluate_cli_subprocess_reproduces(ner_run, data):
    out, _ = ner_run
    proc = subprocess.run([sys.executable, "-m", "finetune.evaluate", "--task", "ner", "--gold",
                           str(data["ner-de"]), "--pred", str(out / "predictions" / "de.json")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((out / "results.json").read_text())
    assert json.loads(proc.stdout) == results["scores"]["de"]


def test_saved_model_reloads_and_predicts_the_same(ner_run, data):
    out, _ = ner_run
    from data_prep.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(out / "model")
    model = train_loop.load_model(out / "model")
    gold = read_ner(data["ner-zh"])
    queries, used = forms.task_queries("wikiann", "zh")
    assert used == "zh"
    settings = json.loads((out / "results.json").read_text())["settings"]
    predictions, _ = forms.predict("ner", model, tokenizer,
                                   forms.make_instances("ner", gold, queries), settings,
                                   device=torch.device("cpu"), precision="fp32")
    saved = json.loads((out / "predictions" / "zh.json").read_text())
    assert {k: [s[:3] for s in v] for k, v in predictions.items()} == \
        {k: [s[:3] for s in v] for k, v in saved.items()}


# ---------------------------------------------------------------------------- other tasks

def test_eqa_end_to_end_with_windows_and_mlqa_normalisation(tmp_path, model_dir, data):
    out = tmp_path / "eqa"
    argv = ["--task", "eqa", "--model", str(model_dir), "--train", str(data["xquad-en"]),
            "--eval", f"en={data['xquad-en']}", "--eval", f"zh={data['xquad-zh']}",
            "--eval", f"mlqa:zh={data['xquad-zh']}", "--eval", f"zhm={data['mlqa-zh']}",
            "--out", str(out), "--epochs", "1", "--batch-size", "4", "--lr", "1e-3",
            "--max-seq-len", "96", "--doc-stride", "24", "--max-query-tokens", "24"]
    assert run.main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["task"] == "eqa/squad"
    assert results["settings"]["train_features"] > 6  # 6 questions, long contexts → windows
    assert results["settings"]["doc_stride"] == 24 and results["settings"]["loss_cells"] == \
        "context"
    assert results["settings"]["max_answer_tokens"] is None  # no hidden cap
    # MLQA's normalisation for mlqa:LANG and MLQA-named files, SQuAD's otherwise
    assert results["eqa_norm"] == {"en": "squad", "zh": "squad", "mlqa-zh": "mlqa-zh",
                                   "zhm": "mlqa-zh"}
    gold_zh = read_squad(data["xquad-zh"])
    for name, gold, lang in (("en", data["xquad-en"], None), ("zh", data["xquad-zh"], None),
                             ("mlqa-zh", data["xquad-zh"], "zh"), ("zhm", data["mlqa-zh"], "zh")):
        pred = out / "predictions" / f"{name}.json"
        predictions = json.loads(pred.read_text())
        gold_ids = {q["id"] for a in json.loads(Path(gold).read_text())["data"]
                    for p in a["paragraphs"] for q in p["qas"]}
        assert set(predictions) == gold_ids
        assert all(isinstance(v, str) and v for v in predictions.values())
        expected = metrics.eqa_scores(read_squad(gold), predictions, lang)
        assert results["scores"][name] == expected
        # finetune.evaluate reproduces them: MLQA-named files need no --lang
        extra = ["--lang", lang] if lang and name == "mlqa-zh" else []
        assert cli_scores("eqa", gold, pred, *extra) == expected
    assert results["scores"]["zh"] == metrics.eqa_scores(
        gold_zh, json.loads((out / "predictions" / "zh.json").read_text()))
    assert cli_scores("eqa", data["mlqa-zh"], out / "predictions" / "zhm.json", "--lang",
                      "squad") == results["scores"]["zh"]


@pytest.mark.parametrize("mode", ["paper", "reference"])
def test_pair_with_explain_writes_rationales(tmp_path, model_dir, data, mode):
    out = tmp_path / "pair"
    argv = ["--task", "pair", "--model", str(model_dir), "--train", str(data["pawsx-en"]),
            "--eval", f"de={data['pawsx-de']}", "--out", str(out), "--epochs", "1",
            "--batch-size", "8", "--lr", "1e-3", "--explain"]
    if mode == "reference":  # read from the classification run: window it so no sentence is cut
        argv += ["reference", "--doc-stride", "48"]
    assert run.main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["task"] == "pair/pawsx"
    settings = results["settings"]
    assert settings["lr"] == 1e-3 and settings["epochs"] == 1.0 and settings["batch_size"] == 8
    assert settings["max_query_tokens"] == 64 and settings["warmup_ratio"] == 0.06  # PAWS-X
    assert settings["explain"] == mode and settings["loss_cells"] == "cls"
    assert results["train_loss"]["steps"] == 2  # 12 pairs at 8 pairs (16 label queries) a step
    predictions = json.loads((out / "predictions" / "de.json").read_text())
    rationales = json.loads((out / "rationales" / "de.json").read_text())
    pairs = read_pair(data["pawsx-de"])
    assert set(predictions) == set(rationales) == {str(p.index) for p in pairs}
    for pair in pairs:
        entry = rationales[str(pair.index)]
        assert entry["label"] == predictions[str(pair.index)] in ("0", "1")
        assert [r["sentence"] for r in entry["rationales"]] == [0, 1]
        for r, sentence in zip(entry["rationales"], (pair.sentence1, pair.sentence2)):
            assert r["text"] and sentence[r["start"]:r["end"]] == r["text"]
    assert cli_scores("pair", data["pawsx-de"], out / "predictions" / "de.json") == \
        results["scores"]["de"]


def test_pair_batches_hold_whole_pairs(model_dir, data):
    """The reference batches pairs ([batch, choice, L]): a step of batch_size pairs holds every
    label query of each; grad_accum splits by pairs too."""
    from data_prep.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(model_dir)
    instances = pair_instances(read_pair(XLU / "xnli" / "dev-en.tsv")[:10], "xnli")
    features = encode(instances, tokenizer, max_seq_len=128, doc_stride=None)
    groups = [f.example_id.split(":")[0] for f in features]
    units = train_loop._units(len(features), groups)
    assert [len(u) for u in units] == [3] * 10
    options = train_loop.TrainOptions(batch_size=4, grad_accum=2, seed=3)
    steps = list(train_loop._step_batches(features, units, options, micro=2, total_steps=6))
    seen = []
    for step in steps:
        for micro in step:
            pairs = [f.example_id.split(":")[0] for f in micro]
            assert all(pairs.count(p) == 3 for p in pairs) and len(set(pairs)) <= 2
            seen += pairs
    assert [len(step) for step in steps] == [2, 2, 1, 2, 2, 1]  # 10 pairs: 4 + 4 + 2 per epoch
    assert sorted(seen[:30]) == sorted(groups)  # each pair once per epoch


def forward_batch(model_dir, features):
    """(q, k, batch) of a tiny model in eval mode, q and k leaves of the graph."""
    from data_prep.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(model_dir)
    batch = train_loop.collate(features, tokenizer.pad_token_id, 128)
    model = train_loop.load_model(model_dir).eval()
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    q = out.query_states.detach().double().requires_grad_()
    k = out.last_hidden_state.detach().double().requires_grad_()
    return q, k, batch


def test_pair_loss_is_bce_on_z00_alone(model_dir, data):
    """PMR NLI/mNLI/data.py label_mask = [1] + [0] * …: only the (0, 0) cell is in the loss,
    target 1 for the gold label's query."""
    from data_prep.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(model_dir)
    features = encode(pair_instances(read_pair(data["pawsx-en"])[:6], "pawsx"), tokenizer,
                      max_seq_len=128, doc_stride=None)
    q, k, batch = forward_batch(model_dir, features)
    relevant = torch.tensor([f.relevant for f in features], dtype=torch.float64)
    assert torch.equal(batch["relevant"].double(), relevant) and 0 < relevant.sum() < len(features)
    loss = train_loop.span_loss(q, k, batch, "cls")
    z = torch.bmm(q, k.transpose(1, 2))  # [B, T, T]
    by_hand = F.binary_cross_entropy_with_logits(z[:, 0, 0], relevant)
    torch.testing.assert_close(loss.double(), by_hand)
    grads = torch.autograd.grad(loss, (q, k))
    torch.testing.assert_close(grads, torch.autograd.grad(by_hand, (q, k)))
    assert grads[0][:, 1:].abs().max() == 0 and grads[1][:, 1:].abs().max() == 0  # Z_00 only


def test_span_loss_counts_the_reference_context_cells(model_dir, data):
    """PMR NER/mNER/data.py and QA/mQA/data.py label_mask = [0] * doc_offset + [1] * context +
    [0]: every context cell i ≤ j, never the [CLS] row, Z_00 or the query; loss = the masked
    BCE sum / the number of masked cells (PMR */model.py compute_loss)."""
    from data_prep.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(model_dir)
    gold = read_ner(data["ner-en"])[:4]
    features = encode(tagging_instances(gold, WIKIANN_QUERIES), tokenizer, max_seq_len=128,
                      doc_stride=None)
    assert any(len(f.answer_spans) for f in features)
    q, k, batch = forward_batch(model_dir, features)
    size, length = batch["input_ids"].shape
    mask = torch.zeros(size, length, length, dtype=torch.bool)
    target = torch.zeros(size, length, length, dtype=torch.float64)
    for b, f in enumerate(features):
        label_mask = torch.tensor([0] * f.context_start + [1] * (f.context_end - f.context_start)
                                  + [0] * (length - f.context_end), dtype=torch.bool)
        mask[b] = (label_mask[:, None] & label_mask[None, :]).triu()
        for start, end in f.answer_spans:
            target[b, start, end] = 1.0
    z = torch.bmm(q, k.transpose(1, 2))
    by_hand = (F.binary_cross_entropy_with_logits(z, target, reduction="none") * mask).sum() \
        / mask.sum()
    loss = train_loop.span_loss(q, k, batch, "context")
    torch.testing.assert_close(loss.double(), by_hand)
    grads = torch.autograd.grad(loss, (q, k))
    torch.testing.assert_close(grads, torch.autograd.grad(by_hand, (q, k)))
    first = min(f.context_start for f in features)
    assert grads[0][:, :first].abs().max() == 0  # no [CLS] / query row is in the loss


def test_training_is_deterministic_for_a_seed(model_dir, data):
    from data_prep.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(model_dir)
    gold = read_ner(data["ner-en"])[:4]
    queries = forms.task_queries("wikiann")[0]
    features = encode(forms.make_instances("ner", gold, queries), tokenizer, max_seq_len=128,
                      doc_stride=32)

    def losses(seed: int) -> list[float]:
        torch.manual_seed(123)
        model = train_loop.load_model(model_dir)
        options = train_loop.TrainOptions(epochs=1, lr=1e-3, batch_size=4, grad_accum=2,
                                          seed=seed, log_every=1)
        return [r["loss"] for r in train_loop.train_mrc(model, features, options, pad_id=1,
                                                        max_seq_len=128,
                                                        device=torch.device("cpu"))]

    first = losses(5)
    assert len(first) == 3 and first == losses(5)
    assert first != losses(6)  # another seed shuffles differently


def test_plain_xlmr_folder_gets_a_fresh_extractor(tmp_path, model_dir):
    from transformers import XLMRobertaConfig, XLMRobertaModel

    from pretrain.hf_mpmr import MPMRForSpanExtraction

    mpmr = json.loads((model_dir / "config.json").read_text())
    fields = {k: v for k, v in mpmr.items() if k in XLMRobertaConfig().to_dict()
              and k not in ("model_type", "architectures", "auto_map", "transformers_version")}
    torch.manual_seed(1)
    encoder = XLMRobertaModel(XLMRobertaConfig(**fields), add_pooling_layer=False)
    encoder.save_pretrained(tmp_path / "xlmr")
    model = train_loop.load_model(tmp_path / "xlmr", extractor_size=48, dropout=0.25)
    assert isinstance(model, MPMRForSpanExtraction)
    assert model.config.extractor_size == 48 and model.extractor[0].out_features == 48
    assert model.config.hidden_dropout_prob == 0.25 and model.extractor[2].p == 0.25
    loaded = train_loop.encoder_module(model).state_dict()
    for name, value in encoder.state_dict().items():
        torch.testing.assert_close(loaded[name], value, rtol=0, atol=0)


def test_finetune_never_imports_deepspeed():
    code = ("import sys, finetune.run, finetune.train_loop, finetune.decode, pretrain.hf_mpmr, "
            "finetune.forms, finetune.standard\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'deepspeed', 'megatron'}))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# ---------------------------------------------------------------------------- standard form

@pytest.fixture(scope="module")
def xlmr_dir(tmp_path_factory, model_dir) -> Path:
    """A plain XLM-R folder (encoder with its pooler, like an official download) of the tiny
    model's shape, with its tokenizer."""
    from transformers import XLMRobertaConfig, XLMRobertaModel

    from data_prep.tokenizer import load_tokenizer

    mpmr = json.loads((model_dir / "config.json").read_text())
    fields = {k: v for k, v in mpmr.items() if k in XLMRobertaConfig().to_dict()
              and k not in ("model_type", "architectures", "auto_map", "transformers_version")}
    folder = tmp_path_factory.mktemp("xlmr") / "hf"
    torch.manual_seed(2)
    XLMRobertaModel(XLMRobertaConfig(**fields)).save_pretrained(folder)
    load_tokenizer(model_dir).save_pretrained(folder)
    return folder


STANDARD_RUNS = {  # task → (training file, eval languages, model, extra options)
    # ner as ner_run: two steps at a negligible learning rate leave the random head predicting
    # many spans, so the scores (and their parity) are not all 0
    "ner": ("ner-en", LANGS, "mpmr", ["--epochs", "1", "--lr", "1e-9", "--batch-size", "12"]),
    "pair": ("pawsx-en", LANGS, "xlmr", ["--epochs", "3", "--lr", "3e-3", "--batch-size", "4",
                                         "--grad-accum", "2"]),
    "eqa": ("xquad-en", ("en", "zh"), "xlmr", ["--epochs", "2", "--lr", "3e-3", "--batch-size",
                                               "4", "--max-seq-len", "96", "--doc-stride", "80",
                                               "--max-query-tokens", "24"]),
}
HEADS = {"ner": ("AutoModelForTokenClassification", "XLMRobertaForTokenClassification"),
         "pair": ("AutoModelForSequenceClassification", "XLMRobertaForSequenceClassification"),
         "eqa": ("AutoModelForQuestionAnswering", "XLMRobertaForQuestionAnswering")}


@pytest.mark.parametrize("task", list(STANDARD_RUNS))
def test_standard_form_end_to_end(tmp_path, model_dir, xlmr_dir, data, ner_run, task):
    """--form standard: the stock heads from an exported or a plain XLM-R folder, with the same
    readers, defaults, output files and table as the MRC form; finetune.evaluate prints the
    scores results.json holds."""
    import transformers

    train, langs, start, extra = STANDARD_RUNS[task]
    gold = {lang: data[f"{train.split('-')[0]}-{lang}"] for lang in langs}
    out = tmp_path / "standard"
    argv = ["--form", "standard", "--task", task, "--train", str(data[train]), "--out", str(out),
            "--model", str(model_dir if start == "mpmr" else xlmr_dir), "--log-every", "1",
            *extra, *(f"--eval={lang}={path}" for lang, path in gold.items())]
    table = run_cli(argv).strip().splitlines()
    results = json.loads((out / "results.json").read_text())
    assert results["form"] == "standard" and results["query_langs"] is None
    assert results["task"] == {"ner": "ner/wikiann", "pair": "pair/pawsx", "eqa": "eqa/squad"}[task]
    settings = results["settings"]
    assert settings["loss_cells"] is None and settings["explain"] is None
    assert settings["warmup_ratio"] == 0.06 and settings["dropout"] == 0.1  # the MRC defaults
    assert settings["max_query_tokens"] == (24 if task == "eqa" else None)  # questions only
    if task == "eqa":
        assert settings["max_answer_tokens"] == 30  # XTREME's cap, not the MRC form's none
        assert settings["doc_stride"] == 96 - 24 - 4  # clamped to the context window
        assert settings["train_features"] > 6  # long contexts → windows
    else:
        assert settings["train_features"] == settings["train_records"]  # one window each
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, results["train_loss"]["steps"] + 1))
    assert results["train_loss"]["last"] == log[-1]["loss"]
    if task != "ner":
        assert log[-1]["loss"] < log[0]["loss"]
    # the same files and results keys as the MRC form
    mrc_out, _ = ner_run
    mrc = json.loads((mrc_out / "results.json").read_text())
    assert list(results) == list(mrc) and list(settings) == list(mrc["settings"])
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in mrc_out.iterdir())
    assert sorted(p.name for p in (out / "predictions").iterdir()) == \
        sorted(f"{lang}.json" for lang in langs)
    auto = getattr(transformers, HEADS[task][0])
    assert type(auto.from_pretrained(out / "model")).__name__ == HEADS[task][1]
    columns = run.METRIC_COLUMNS[task]
    assert table[0].split() == ["lang", *columns]
    rows = {line.split()[0].rstrip("*"): line.split()[1:] for line in table[1:len(langs) + 2]}
    assert list(rows) == [*langs, "avg"]
    for lang, path in gold.items():
        official = cli_scores(task, path, out / "predictions" / f"{lang}.json")
        assert official == results["scores"][lang]
        assert rows[lang] == [f"{official[c]:.2f}" for c in columns]
    if task == "ner":
        assert any(results["scores"][lang]["f1"] > 0 for lang in langs), results["scores"]


def test_standard_form_rejects_eval_labels_the_dataset_lacks(tmp_path, model_dir, data, capsys):
    bad = tmp_path / "place.tsv"
    bad.write_text("Berlin\tB-PLACE\n", encoding="utf-8")
    code = run.main(["--form", "standard", "--task", "ner", "--model", str(model_dir), "--train",
                     str(data["ner-en"]), "--eval", f"de={bad}", "--out", str(tmp_path / "out")])
    assert code == 2
    assert f"error: {bad}: sentence 0 (line 1) has labels ['PLACE']" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # before loading or training anything


@pytest.mark.parametrize("argv, message", [
    (["--task", "pair", "--explain"], "--explain applies to --form mrc only (the standard heads "
                                      "have no queries)"),
    (["--task", "ner", "--query-lang", "eval"], "--query-lang applies to --form mrc only (the "
                                                "standard heads have no queries)"),
    (["--task", "ner", "--max-query-tokens", "8"], "--max-query-tokens applies to --task eqa "
                                                   "only with --form standard (questions; there "
                                                   "are no label queries)"),
    (["--task", "pair", "--doc-stride", "48"], "--doc-stride does not apply to --task pair with "
                                               "--form standard (pairs are cut longest_first)"),
])
def test_options_of_the_mrc_form_are_usage_errors_with_standard(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        run.main(["--form", "standard", *argv, "--model", "m", "--train", "t", "--out", "o"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"python -m finetune.run: error: {message}"


# ---------------------------------------------------------------------------- bad input

def test_malformed_train_file_exits_2_naming_file_and_line(tmp_path, model_dir, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_text("Paris\tB-LOC\nis\tO\n\nBerlin\tX-LOC\n", encoding="utf-8")
    code = run.main(["--task", "ner", "--model", str(model_dir), "--train", str(bad),
                     "--out", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {bad}:4: bad tag 'X-LOC' (expected O, B-TYPE or I-TYPE)"]


def test_unknown_label_names_the_file(tmp_path, model_dir, data, capsys):
    bad = tmp_path / "place.tsv"
    bad.write_text("Berlin\tB-PLACE\n", encoding="utf-8")
    code = run.main(["--task", "ner", "--model", str(model_dir), "--train", str(data["ner-en"]),
                     "--eval", f"de={bad}", "--out", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err
    assert f"error: {bad}: sentence 0 (line 1) has labels ['PLACE']" in err


def test_malformed_eval_file_fails_before_training(tmp_path, model_dir, data, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_text("a\tb\tc\tmaybe\n", encoding="utf-8")
    code = run.main(["--task", "pair", "--model", str(model_dir), "--train",
                     str(data["pawsx-en"]), "--eval", f"de={bad}", "--out", str(tmp_path / "o")])
    assert code == 2
    assert f"{bad}:1:" in capsys.readouterr().err
    assert not (tmp_path / "o" / "train_log.jsonl").exists()


@pytest.mark.parametrize("argv, message", [
    (["--task", "pos"], "invalid choice: 'pos'"),
    (["--task", "ner", "--eval", "de"], "expected LANG=FILE"),
    (["--task", "ner", "--explain"], "--explain applies to --task pair only"),
    (["--task", "pair", "--explain", "why"], "invalid choice: 'why'"),
    (["--task", "eqa", "--eval", "mlqa:fr=x.json"], "MLQA languages are"),
    (["--task", "eqa", "--eval", "squad:de=x.json"], "expected LANG=FILE or mlqa:LANG=FILE"),
    (["--task", "ner", "--eval", "mlqa:de=x.json"], "applies to --task eqa only"),
    (["--task", "eqa", "--eval", "fr=test-context-fr-question-fr.json"], "named like an MLQA"),
    (["--task", "eqa", "--doc-stride", "wide"], "expected a number of tokens or none"),
    (["--task", "ner", "--form", "xlmr"], "invalid choice: 'xlmr'"),
])
def test_cli_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        run.main([*argv, "--model", "m", "--train", "t", "--out", "o"])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


# ---------------------------------------------------------------------------- defaults

def test_task_defaults_are_the_reference_large_scripts():
    """PMR *-large.sh (batch = per-GPU batch × 4 GPUs; ABSA/rest-large.sh runs one GPU) and
    train-*.py argparse defaults."""
    assert run.TASK_DEFAULTS == {
        "squad": {"lr": 3e-5, "epochs": 3.0, "batch_size": 32, "max_seq_len": 384,
                  "max_query_tokens": 64, "doc_stride": 128},
        "tydiqa": {"lr": 2e-5, "epochs": 10.0, "batch_size": 32, "max_seq_len": 384,
                   "max_query_tokens": 64, "doc_stride": 128},
        "wikiann": {"lr": 1e-5, "epochs": 10.0, "batch_size": 64, "max_seq_len": 192,
                    "max_query_tokens": 32, "doc_stride": None},
        "conll": {"lr": 1e-5, "epochs": 10.0, "batch_size": 64, "max_seq_len": 192,
                  "max_query_tokens": 32, "doc_stride": None},
        "absa": {"lr": 2e-5, "epochs": 20.0, "batch_size": 32, "max_seq_len": 192,
                 "max_query_tokens": 32, "doc_stride": None},
        "pawsx": {"lr": 5e-5, "epochs": 10.0, "batch_size": 64, "max_seq_len": 192,
                  "max_query_tokens": 64, "doc_stride": None},
        "xnli": {"lr": 3e-5, "epochs": 3.0, "batch_size": 128, "max_seq_len": 192,
                 "max_query_tokens": 64, "doc_stride": None},
    }
    assert run.COMMON_DEFAULTS == {"warmup_ratio": 0.06, "weight_decay": 0.0, "seed": 42,
                                   "dropout": 0.1}
    options = train_loop.TrainOptions()
    assert (options.adam_eps, options.max_grad_norm) == (1e-8, 1.0)
    gold = read_ner(XLU / "panx" / "dev-en.tsv")[:5]
    assert run.task_kind("ner", gold) == "wikiann"
    assert run.task_kind("eqa", [], "data/tydiqa.goldp.en.train.json") == "tydiqa"
    assert run.task_kind("eqa", [], "squad/train-v1.1.json") == "squad"


def test_help_shows_the_defaults(capsys):
    with pytest.raises(SystemExit) as exc:
        run.main(["--help"])
    assert exc.value.code == 0
    shown = capsys.readouterr().out
    for line in (
            "squad: lr 3e-05, epochs 3, batch-size 32, max-seq-len 384, max-query-tokens 64, "
            "doc-stride 128",
            "tydiqa: lr 2e-05, epochs 10, batch-size 32, max-seq-len 384, max-query-tokens 64, "
            "doc-stride 128",
            "wikiann: lr 1e-05, epochs 10, batch-size 64, max-seq-len 192, max-query-tokens 32, "
            "doc-stride none",
            "absa: lr 2e-05, epochs 20, batch-size 32, max-seq-len 192, max-query-tokens 32, "
            "doc-stride none",
            "pawsx: lr 5e-05, epochs 10, batch-size 64, max-seq-len 192, max-query-tokens 64, "
            "doc-stride none",
            "xnli: lr 3e-05, epochs 3, batch-size 128, max-seq-len 192, max-query-tokens 64, "
            "doc-stride none",
            "all: warmup-ratio 0.06, weight-decay 0, seed 42, dropout 0.1"):
        assert line in shown
