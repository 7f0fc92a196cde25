"""finetune.tasks: readers on the real XLU samples, IOB1/IOB2 chunking, malformed input, MLQA file
names; finetune.queries / mrc_form: the reference's query texts and pair template, verbatim."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from finetune import queries
from finetune.mrc_form import pair_instances, tagging_instances
from finetune.tasks import (
    TaskFormatError,
    mlqa_context_lang,
    pair_task_of,
    read_absa,
    read_ner,
    read_pair,
    read_squad,
)
from paths import SHARED_DATA

XLU = SHARED_DATA / "xlu"
pytestmark = pytest.mark.skipif(not XLU.is_dir(), reason="shared XLU samples not available")


def _raw_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")


# ---------------------------------------------------------------------------- SQuAD

@pytest.mark.parametrize("lang", ["en", "zh", "th"])
def test_xquad_counts_and_offsets_round_trip(lang):
    path = XLU / "xquad" / f"xquad.{lang}.json"
    examples = read_squad(path, lang=lang)
    raw = json.loads(path.read_text(encoding="utf-8"))
    n_qas = sum(len(p["qas"]) for a in raw["data"] for p in a["paragraphs"])
    assert len(examples) == n_qas == 1190
    assert len({e.id for e in examples}) == 1190
    assert all(e.lang == lang and e.answers for e in examples)
    for e in examples:
        for text, start in e.answers:
            assert e.context[start:start + len(text)] == text


def test_xquad_languages_share_question_ids():
    ids = [[e.id for e in read_squad(XLU / "xquad" / f"xquad.{lang}.json")]
           for lang in ("en", "zh", "th")]
    assert ids[0] == ids[1] == ids[2]


def test_squad_offset_repaired_to_nearest_occurrence(tmp_path):
    doc = {"version": "1.1", "data": [{"title": "t", "paragraphs": [{
        "context": "cat dog cat dog",
        "qas": [{"id": "q1", "question": "?", "answers": [{"text": "dog", "answer_start": 10}]}],
    }]}]}
    path = tmp_path / "s.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    [example] = read_squad(path)
    assert example.answers == (("dog", 12),)  # 12 is nearer to 10 than 4


# ---------------------------------------------------------------------------- NER

def _expected_entities(path: Path) -> tuple[int, int]:
    """(sentences, entities) counted straight from the tags: an entity starts at B-X, or at I-X
    after O / another type / a sentence start."""
    sentences = entities = 0
    previous = "O"
    in_sentence = False
    for line in _raw_lines(path):
        if not line.strip():
            sentences += in_sentence
            in_sentence, previous = False, "O"
            continue
        in_sentence = True
        tag = line.split("\t")[-1]
        if tag.startswith("B-") or (tag.startswith("I-") and previous[2:] != tag[2:]):
            entities += 1
        previous = tag
    return sentences + in_sentence, entities


@pytest.mark.parametrize("lang", ["en", "de", "zh"])
def test_panx_counts_and_entity_spans(lang):
    path = XLU / "panx" / f"dev-{lang}.tsv"
    sentences = read_ner(path)
    n_sentences, n_entities = _expected_entities(path)
    assert len(sentences) == n_sentences
    assert sum(len(s.spans) for s in sentences) == n_entities
    assert [s.index for s in sentences] == list(range(len(sentences)))
    for s in sentences:
        assert s.text == " ".join(s.tokens)
        for (start, end), token in zip(s.token_char_spans, s.tokens):
            assert s.text[start:end] == token
        for span in s.spans:
            assert span.label in {"PER", "LOC", "ORG"}
            assert s.text[span.start:span.end] == " ".join(
                s.tokens[span.token_start:span.token_end + 1])


@pytest.mark.parametrize("lang", ["en", "de"])
def test_panx_iob2_tags_round_trip(lang):
    path = XLU / "panx" / f"dev-{lang}.tsv"
    tags = [line.split("\t")[1] for line in _raw_lines(path) if line.strip()]
    sentences = read_ner(path, scheme="iob2")  # these files are valid IOB2
    assert [t for s in sentences for t in s.tags] == tags


def test_panx_zh_is_not_strict_iob2():
    path = XLU / "panx" / "dev-zh.tsv"
    with pytest.raises(TaskFormatError, match=rf"^{path}:\d+: I-\w+ does not continue"):
        read_ner(path, scheme="iob2")


def test_xtreme_language_prefix_is_stripped(tmp_path):
    path = tmp_path / "panx.tsv"
    path.write_text("en:Paris\tB-LOC\nen:is\tO\nen:nice\tO\n\nen:Ada\tB-PER\nen::\tO\n",
                    encoding="utf-8")
    first, second = read_ner(path)
    assert first.tokens == ("Paris", "is", "nice")
    assert second.tokens == ("Ada", ":")
    assert (first.spans[0].start, first.spans[0].end, first.spans[0].label) == (0, 5, "LOC")


def test_no_prefix_stripping_when_not_every_token_has_it(tmp_path):
    path = tmp_path / "panx.tsv"
    path.write_text("en:Paris\tB-LOC\nis\tO\n", encoding="utf-8")
    assert read_ner(path)[0].tokens == ("en:Paris", "is")


CONLL_IOB1 = """-DOCSTART- -X- -X- O

EU NNP I-NP I-ORG
rejects VBZ I-VP O
German JJ I-NP I-MISC
call NN I-NP O
. . O O

Peter NNP I-NP I-PER
Blackburn NNP I-NP I-PER

-DOCSTART- -X- -X- O

Spain NNP I-NP I-LOC
Portugal NNP I-NP B-LOC
and CC O O
New NNP I-NP I-LOC
York NNP I-NP I-LOC
Knicks NNP I-NP I-ORG
"""


def test_conll_iob1_to_entity_spans(tmp_path):
    path = tmp_path / "eng.testa"
    path.write_text(CONLL_IOB1, encoding="utf-8")
    sentences = read_ner(path)
    found = [[(s.text[x.start:x.end], x.label) for x in s.spans] for s in sentences]
    assert found == [
        [("EU", "ORG"), ("German", "MISC")],
        [("Peter Blackburn", "PER")],
        [("Spain", "LOC"), ("Portugal", "LOC"), ("New York", "LOC"), ("Knicks", "ORG")],
    ]
    assert sentences[2].tags == ["B-LOC", "B-LOC", "O", "B-LOC", "I-LOC", "B-ORG"]
    assert read_ner(path, scheme="iob1") == sentences
    with pytest.raises(TaskFormatError, match=rf"^{path}:3: I-ORG does not continue"):
        read_ner(path, scheme="iob2")


# ---------------------------------------------------------------------------- ABSA

@pytest.mark.parametrize("name", ["en-dev", "en-train", "es-dev", "es-train"])
def test_absa_counts_and_aspect_spans(name):
    path = XLU / "absa" / f"gold-{name}.txt"
    sentences = read_absa(path)
    blocks = [b for b in path.read_text(encoding="utf-8").split("\n\n") if b.strip()]
    assert len(sentences) == len(blocks)
    runs = 0
    for block in blocks:
        previous = "O"
        for line in block.split("\n"):
            tag = line.split("\t")[1]
            runs += tag != "O" and tag != previous
            previous = tag
    assert sum(len(s.spans) for s in sentences) == runs > 300
    for s in sentences:
        for span in s.spans:
            assert span.label in {"POS", "NEG", "NEU"}
            assert s.text[span.start:span.end] == " ".join(
                s.tokens[span.token_start:span.token_end + 1])
    assert sentences[0].text.startswith(("The lamb was tender", "pero la experiencia",
                                         "The food arrived", "Lo recomiendo"))


def test_absa_runs_split_at_polarity_change(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("fish\tT-POS\tF\nchips\tT-POS\tF\nwine\tT-NEG\tD\nok\tO\tNIL\n",
                    encoding="utf-8")
    [s] = read_absa(path)
    assert [(s.text[x.start:x.end], x.label) for x in s.spans] == [("fish chips", "POS"),
                                                                    ("wine", "NEG")]


# ---------------------------------------------------------------------------- pairs

@pytest.mark.parametrize("rel, task, count", [
    ("pawsx/test-en.tsv", "pawsx", 2000), ("pawsx/test-de.tsv", "pawsx", 2000),
    ("pawsx/test-zh.tsv", "pawsx", 2000), ("xnli/dev-en.tsv", "xnli", 2490),
    ("xnli/dev-zh.tsv", "xnli", 2490)])
def test_pair_readers(rel, task, count):
    pairs = read_pair(XLU / rel, task=task)
    assert len(pairs) == count
    assert pair_task_of(pairs) == task
    assert read_pair(XLU / rel) == pairs  # "auto" finds the same task
    assert all("\r" not in p.sentence2 + p.label and p.sentence1 for p in pairs)
    labels = {p.label for p in pairs}
    assert labels == ({"0", "1"} if task == "pawsx" else {"entailment", "neutral",
                                                          "contradiction"})


def test_pair_header_skipped(tmp_path):
    path = tmp_path / "x.tsv"
    path.write_text("sentence1\tsentence2\tlabel\na\tb\t1\n", encoding="utf-8")
    [pair] = read_pair(path, task="pawsx")
    assert (pair.sentence1, pair.sentence2, pair.label, pair.line_no) == ("a", "b", "1", 2)


# ---------------------------------------------------------------------------- malformed input

@pytest.mark.parametrize("reader, content, line, message", [
    (read_ner, "Paris\tB-LOC\n\nberlin\n", 3, "expected 'token<TAB>TAG'"),
    (read_ner, "Paris\tB-LOC\nis\tX-LOC\n", 2, "bad tag 'X-LOC'"),
    (read_absa, "food\tT-POS\tF\n\nbad\tT-GOOD\tF\n", 3, "bad tag 'T-GOOD'"),
    (read_absa, "food\n", 1, "expected 'token<TAB>T-POL|O"),
    (lambda p: read_pair(p, task="xnli"), "a\tb\tneutral\nc\td\n", 2, "expected 3"),
    (lambda p: read_pair(p, task="xnli"), "a\tb\tneutral\nc\td\t1\n", 2, "not one of"),
    (read_pair, "a\tb\tmaybe\n", 1, "unknown label 'maybe'"),
    (read_squad, '{"data": [\n  {"paragraphs": [}\n]}', 2, "invalid JSON"),
])
def test_malformed_files_name_file_and_line(tmp_path, reader, content, line, message):
    path = tmp_path / "bad.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(TaskFormatError) as err:
        reader(path)
    assert str(err.value).startswith(f"{path}:{line}: ")
    assert message in str(err.value)


def test_squad_structure_errors_name_the_question_line(tmp_path):
    doc = ('{"data": [{"paragraphs": [{"context": "abc",\n'
           ' "qas": [\n'
           '  {"id": "q1", "question": "?", "answers": [{"text": "b", "answer_start": 1}]},\n'
           '  {"id": "q2", "answers": []}\n'
           ']}]}]}')
    path = tmp_path / "s.json"
    path.write_text(doc, encoding="utf-8")
    with pytest.raises(TaskFormatError, match=rf"^{path}:4: .*question q2.*'question'"):
        read_squad(path)
    path.write_text(doc.replace('"q2", "answers": []', '"q2", "question": "?", "answers": '
                                '[{"text": "zzz", "answer_start": 0}]'), encoding="utf-8")
    with pytest.raises(TaskFormatError, match=rf"^{path}:4: answer 'zzz' of question q2"):
        read_squad(path)


def test_missing_file_and_bad_scheme(tmp_path):
    with pytest.raises(FileNotFoundError, match="task file not found"):
        read_ner(tmp_path / "nope.tsv")
    with pytest.raises(ValueError, match="scheme must be one of"):
        read_ner(tmp_path / "nope.tsv", scheme="bioes")


# ---------------------------------------------------------------------------- MLQA file names

@pytest.mark.parametrize("name, lang", [
    ("test-context-de-question-de.json", "de"), ("dev-context-zh-question-en.json", "zh"),
    ("mlqa/test/test-context-ar-question-hi.json", "ar"), ("xquad.de.json", None),
    ("test-context-de-question-de.json.bak", None), ("tydiqa.goldp.en.dev.json", None)])
def test_mlqa_context_lang_from_the_official_names(name, lang):
    assert mlqa_context_lang(name) == lang


# ---------------------------------------------------------------------------- reference queries
# Verbatim from github.com/DAMO-NLP-SG/PMR @ e2ca84b (the file is named beside each).

def test_ner_queries_are_the_reference_texts():
    # PMR NER/Data/wikiann2mrc.py (lang "en"), query built as NER/mNER/data.py '"{}". {}'
    assert queries.WIKIANN_QUERIES == {
        "ORG": '"ORG". Organization entities are limited to named corporate, governmental, or '
               'other organizational entities.',
        "PER": '"PER". Person entities are named persons or family.',
        "LOC": '"LOC". Location entities are the name of politically or geographically defined '
               'locations such as cities, provinces, countries, international regions, bodies '
               'of water, mountains, etc.',
    }
    # PMR NER/Data/conll2mrc.py (capitalised like the English wikiann texts)
    assert queries.CONLL_QUERIES == {
        **queries.WIKIANN_QUERIES,
        "MISC": '"MISC". Examples of miscellaneous entities include events, nationalities, '
                'products and works of art.'}
    # PMR NER/Data/conll/es-mrc-ner.test
    es, used = queries.tagging_queries("conll", "es")
    assert used == "es" and es == {
        "ORG": '"ORG". Las entidades organizativas se limitan a entidades corporativas, '
               'gubernamentales u otras entidades organizativas nombradas.',
        "PER": '"PER". Las entidades persona son personas nombradas o familia.',
        "LOC": '"LOC". Las entidades de ubicación son el nombre de ubicaciones definidas '
               'política o geográficamente, como ciudades, provincias, países, regiones '
               'internacionales, masas de agua, montañas, etc.',
        "MISC": '"MISC". Ejemplos de entidades misceláneas incluyen eventos, nacionalidades, '
                'productos y obras de arte.'}


def test_wikiann_translations_are_pinned():
    """PMR NER/Data/wikiann2mrc.py: the WikiAnn test file of each of its 40 languages uses that
    language's table. A digest pins the whole table against edits."""
    table = queries.NER_DESCRIPTIONS
    assert sorted(table) == sorted(
        "af ar bg bn de el en es et eu fa fi fr he hi hu id it ja jv ka kk ko ml mr ms my nl pt "
        "ru sw ta te th tl tr ur vi yo zh".split())
    assert all(list(labels) == ["ORG", "PER", "LOC"] for labels in table.values())
    digest = hashlib.sha256(json.dumps(table, ensure_ascii=False, sort_keys=True).encode())
    assert digest.hexdigest() == \
        "799dac3620c992a8ef6ca467a5aa930429918586ae1b1c5105ab27afa0001117"
    de, used = queries.tagging_queries("wikiann", "de")
    assert used == "de"
    assert de["PER"] == '"PER". Personeneinheiten sind benannte Personen oder Familien.'
    assert queries.tagging_queries("wikiann", "zh")[0]["PER"] == '"PER". 个人实体被命名为个人或家庭。'
    # no reference MISC translation for de / nl, no table at all for xx: English for every label
    assert queries.tagging_queries("conll", "de") == (queries.CONLL_QUERIES, "en")
    assert queries.tagging_queries("wikiann", "xx") == (queries.WIKIANN_QUERIES, "en")


def test_absa_queries_are_the_reference_texts_per_language():
    # PMR ABSA/Data/res2mrc.py = ABSA/Data/rest/{lang}-mrc-absa.test; ABSA/mABSA/data.py format
    assert queries.ABSA_QUERIES == {
        "POS": '"POS". for aspect terms of positive sentiment.',
        "NEG": '"NEG". for aspect terms of negative sentiment.',
        "NEU": '"NEU". for aspect terms of neutral sentiment.'}
    expected = {
        "es": ("para términos de aspecto de sentimiento positivo.",
               "para términos de aspecto de sentimiento negativo.",
               "para términos de aspecto de sentimiento neutral."),
        "fr": ("pour les termes d'aspect du sentiment positif.",
               "pour les termes d'aspect du sentiment négatif.",
               "pour les termes d'aspect du sentiment neutre."),
        "nl": ("voor aspect termen van positief sentiment.",
               "voor aspect termen van negatief sentiment.",
               "voor aspect termen van neutraal sentiment."),
        "ru": ("для аспектов положительного настроения.", "для аспектов отрицательного настроения.",
               "для аспектов нейтрального настроения."),
        "tr": ("Pozitif duyguların görünüş açısından.", "olumsuz duyguların en boy terimleri için.",
               "nötr duygunun görünüş terimleri için."),
    }
    for lang, texts in expected.items():
        got, used = queries.tagging_queries("absa", lang)
        assert used == lang
        assert got == {label: f'"{label}". {text}' for label, text in zip(("POS", "NEG", "NEU"),
                                                                          texts)}
    assert queries.tagging_queries("absa", "de") == (queries.ABSA_QUERIES, "en")
    sentences = read_absa(XLU / "absa" / "gold-es-dev.txt")[:2]
    spanish = tagging_instances(sentences, queries.tagging_queries("absa", "es")[0])
    assert spanish[0].query == '"POS". para términos de aspecto de sentimiento positivo.'


def test_pair_queries_and_context_template_are_the_reference():
    """PMR NLI/mNLI/data.py: passage = "Hypothesis: " + item[0] + " Premise: " + item[1]; XNLI
    labels neutral / entailment / contradiction; PAWS-X 0 → contradiction, 1 → entailment."""
    neutral = ("neutral. The hypothesis is a sentence with mostly the same lexical items as the "
               "premise but a different meaning.")
    entailment = "entailment. The hypothesis is a sentence with a similar meaning as the premise."
    contradiction = ("contradiction. The hypothesis is a sentence with a contradictory meaning to "
                     "the premise.")
    assert queries.PAIR_QUERIES == {
        "xnli": {"neutral": neutral, "entailment": entailment, "contradiction": contradiction},
        "pawsx": {"0": contradiction, "1": entailment}}
    assert list(queries.PAIR_QUERIES["xnli"]) == ["neutral", "entailment", "contradiction"]
    pairs = read_pair(XLU / "pawsx" / "test-de.tsv")[:3]
    instances = pair_instances(pairs, "pawsx")
    for pair, inst0, inst1 in zip(pairs, instances[::2], instances[1::2]):
        context = "Hypothesis: " + pair.sentence1 + " Premise: " + pair.sentence2
        assert inst0.context == inst1.context == context
        assert (inst0.label, inst0.query) == ("0", contradiction)
        assert (inst1.label, inst1.query) == ("1", entailment)
        (a0, a1), (b0, b1) = inst0.segments
        assert (context[a0:a1], context[b0:b1]) == (pair.sentence1, pair.sentence2)
        assert [inst0.relevant, inst1.relevant] == [pair.label == "0", pair.label == "1"]
