"""data_prep.synth: the synthetic multilingual pages-articles dumps used by `make demo`."""

from __future__ import annotations

import bz2
import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

import pytest

from data_prep.__main__ import main
from data_prep.synth import MIN_INBOUND, write_synthetic_wiki

LANGS = ["en", "de", "ru", "zh", "th", "ar", "hi"]
NS = "{http://www.mediawiki.org/xml/export-0.10/}"
SCRIPT = {"en": "[A-Za-z]", "de": "[äöüß]", "ru": "[\u0400-\u04ff]", "zh": "[\u4e00-\u9fff]",
          "th": "[\u0e00-\u0e7f]", "ar": "[\u0600-\u06ff]", "hi": "[\u0900-\u097f]"}
LINK = re.compile(r"\[\[([^\[\]|]+)(?:\|([^\[\]]*))?\]\](\w*)")


@pytest.fixture(scope="module")
def dumps(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("synth")
    paths = write_synthetic_wiki(out, LANGS)
    assert [p.name for p in paths] == [f"{lang}wiki-synth-pages-articles.xml.bz2" for lang in LANGS]
    return dict(zip(LANGS, paths))


def pages(path: Path) -> list[dict]:
    root = ET.fromstring(bz2.decompress(path.read_bytes()))
    assert root.tag == f"{NS}mediawiki" and root.get("version") == "0.10"
    out = []
    for page in root.iter(f"{NS}page"):
        redirect = page.find(f"{NS}redirect")
        out.append({"title": page.findtext(f"{NS}title"), "ns": int(page.findtext(f"{NS}ns")),
                    "id": int(page.findtext(f"{NS}id")),
                    "redirect": None if redirect is None else redirect.get("title"),
                    "text": page.find(f"{NS}revision/{NS}text").text})
    return out


def content(all_pages: list[dict]) -> list[dict]:
    return [p for p in all_pages if p["ns"] == 0 and p["redirect"] is None
            and "{{disambiguation}}" not in p["text"]]


def upper_first(title: str) -> str:
    return title[:1].upper() + title[1:]


@pytest.mark.parametrize("lang", LANGS)
def test_page_kinds_and_script(dumps, lang):
    path = dumps[lang]
    assert path.stat().st_size < 300_000
    all_pages = pages(path)
    assert len({p["id"] for p in all_pages}) == len(all_pages)
    articles = content(all_pages)
    assert 40 <= len(articles) <= 80
    redirects = [p for p in all_pages if p["redirect"]]
    assert len(redirects) >= 5
    assert all(p["text"].startswith("#") and f"[[{p['redirect']}]]" in p["text"]
               for p in redirects)
    dabs = [p for p in all_pages if "{{disambiguation}}" in p["text"]]
    assert len(dabs) == 1 and dabs[0]["text"].count("\n* [[") >= 2
    categories = [p for p in all_pages if p["ns"] == 14]
    assert categories and all(":" in p["title"] for p in categories)
    assert any(re.search(r"\S \([^()]+\)$", p["title"]) for p in articles)  # Mercury (planet)
    assert any(len(p["text"]) < 200 for p in articles)  # stubs
    text = "\n".join(p["text"] for p in articles)
    assert len(re.findall(SCRIPT[lang], text)) > (200 if lang == "de" else 1000)


@pytest.mark.parametrize("lang", LANGS)
def test_entities_are_defined_and_linked_from_enough_articles(dumps, lang):
    all_pages = pages(dumps[lang])
    redirects = {p["title"]: p["redirect"] for p in all_pages if p["redirect"]}
    titles = {p["title"]: p for p in content(all_pages)}
    inbound: dict[str, set[str]] = defaultdict(set)
    forms = defaultdict(int)
    for page in titles.values():
        for target, alias, trail in LINK.findall(page["text"]):
            target = upper_first(target.strip())
            forms["redirect"] += target in redirects
            forms["alias"] += bool(alias)
            forms["trail"] += bool(trail)
            target = redirects.get(target, target)
            if target in titles and target != page["title"]:
                inbound[target].add(page["title"])
    assert len(inbound) >= 10
    assert min(len(sources) for sources in inbound.values()) >= MIN_INBOUND
    for entity in inbound:
        name = re.sub(r" \([^()]*\)$", "", entity)
        first_paragraph = titles[entity]["text"].split("\n\n")[0]
        assert name.lower() in first_paragraph.lower()
    assert forms["redirect"] and forms["alias"]
    if lang in ("en", "de", "ru"):
        assert forms["trail"]
    lower = sum(1 for p in titles.values() for t, _, _ in LINK.findall(p["text"])
                if t[:1] != t[:1].upper())
    if lang in ("en", "ru"):
        assert lower > 0  # [[telescope]] -> Telescope


def test_read_wiki_parses_every_language(dumps):
    wiki = pytest.importorskip("data_prep.wiki")
    for lang, path in dumps.items():
        corpus = wiki.read_wiki(path, lang, progress=False)
        assert len(corpus.articles) >= 40, lang
        assert len(corpus.redirects) >= 5, lang
        assert corpus.skipped["disambiguation"] == 1, lang
        assert corpus.skipped["non_article_namespace"] == 3, lang
        titles = {a.title for a in corpus.articles}
        resolved = [corpus.resolve(link.target) in titles
                    for a in corpus.articles for link in a.links]
        assert len(resolved) > 200 and all(resolved), lang


def test_deterministic_for_a_seed(tmp_path):
    a = write_synthetic_wiki(tmp_path / "a", ["en", "th"], seed=3)
    b = write_synthetic_wiki(tmp_path / "b", ["en", "th"], seed=3)
    c = write_synthetic_wiki(tmp_path / "c", ["en", "th"], seed=4)
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert all(x.read_bytes() != y.read_bytes() for x, y in zip(a, c))


def test_articles_per_lang_and_cli(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path), "--langs", "de,hi", "--articles-per-lang",
                 "80", "--seed", "1"]) == 0
    assert "dewiki-synth-pages-articles.xml.bz2" in capsys.readouterr().out
    assert len(content(pages(tmp_path / "hiwiki-synth-pages-articles.xml.bz2"))) == 80 - 1
    assert main(["synth", "--out", str(tmp_path), "--langs", "en,xx"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no synthetic lexicon for xx" in err


def test_demo_options_add_entities_and_described_mentions(tmp_path, dumps):
    """--generated-entities: one entity per 4 articles beyond the 16-entity lexicon;
    --described-mentions 1: every linked mention is followed by its entity's description.
    Both off (the default) leave the dumps exactly as they were."""
    from data_prep.synth_lexicon import LEXICON

    (path,) = write_synthetic_wiki(tmp_path / "demo", ["en"], articles_per_lang=120,
                                   generated_entities=True, described_mentions=1.0)
    text = "\n".join(p["text"] or "" for p in pages(path))
    lexicon = {e.title for e in LEXICON["en"]["entities"]}
    linked = {m.group(1) for m in LINK.finditer(text) if ":" not in m.group(1)}
    defined = {p["title"] for p in content(pages(path))
               if "'''" in (p["text"] or "") and p["title"] in linked}
    assert len(defined - lexicon) >= 10  # 30 entities, 16 from the lexicon at most
    kinds = {e.title: e.kind for e in LEXICON["en"]["entities"]}
    described = re.findall(r"\[\[([^\[\]|]+)(?:\|[^\[\]]*)?\]\]\w* \(([^()]*)\)", text)
    assert described and all(kind == kinds[title] for title, kind in described if title in kinds)
    plain, = write_synthetic_wiki(tmp_path / "plain", ["en"])
    assert plain.read_bytes() == dumps["en"].read_bytes()


def test_ner_sentences_tag_the_person(tmp_path):
    from data_prep.synth import write_synthetic_ner
    from data_prep.synth_lexicon import LEXICON
    from finetune.tasks import read_ner

    paths = write_synthetic_ner(tmp_path, ["en", "zh"], sentences=20)
    assert sorted(p.name for p in paths) == ["dev-en.tsv", "dev-zh.tsv", "train-en.tsv",
                                             "train-zh.tsv"]
    for lang in ("en", "zh"):
        people = set(LEXICON[lang]["people"].split("|"))
        train, dev = read_ner(tmp_path / f"train-{lang}.tsv"), read_ner(tmp_path / f"dev-{lang}.tsv")
        assert len(train) == len(dev) == 20
        assert [s.text for s in train] != [s.text for s in dev]
        for sentence in train:
            (span,) = sentence.spans  # one person per sentence, the only entity
            assert span.label == "PER"
            name = sentence.text[span.start:span.end]
            assert (name.replace(" ", "") if lang == "zh" else name) in \
                {p.replace(" ", "") if lang == "zh" else p for p in people}
    again = write_synthetic_ner(tmp_path / "again", ["en"], sentences=20)
    assert again[0].read_bytes() == (tmp_path / "train-en.tsv").read_bytes()


# ---------------------------------------------------------------- large dumps (--large N)

@pytest.fixture(scope="module")
def large_dump(tmp_path_factory) -> tuple[Path, dict]:
    from data_prep.synth_large import write_large_wiki

    return write_large_wiki(tmp_path_factory.mktemp("large"), "en", 2000)


def test_large_dump_is_deterministic(tmp_path):
    from data_prep.synth_large import write_large_wiki

    a, counts = write_large_wiki(tmp_path / "a", "en", 300, seed=5)
    b, _ = write_large_wiki(tmp_path / "b", "en", 300, seed=5)
    c, _ = write_large_wiki(tmp_path / "c", "en", 300, seed=6)
    assert a.name == "enwiki-large-300-pages-articles.xml.bz2"
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    assert counts["articles"] == 300
    with pytest.raises(ValueError, match="no title grammar for de"):
        write_large_wiki(tmp_path, "de", 300)


def test_large_dump_pages_and_link_forms(large_dump):
    path, counts = large_dump
    all_pages = pages(path)
    titles = [p["title"] for p in all_pages]
    assert len(set(titles)) == len(titles) and len({p["id"] for p in all_pages}) == len(all_pages)
    articles = content(all_pages)
    assert len(articles) == 2000 == counts["articles"]
    redirects = [p for p in all_pages if p["redirect"]]
    assert 0.3 < len(redirects) / len(articles) < 0.5 and len(redirects) == counts["redirects"]
    dabs = [p for p in all_pages if "{{disambiguation}}" in p["text"]]
    assert 0.01 < len(dabs) / len(articles) < 0.03
    assert all(p["text"].count("\n* [[") >= 2 for p in dabs)
    assert {p["ns"] for p in all_pages} == {0, 10, 14}
    assert sum(bool(re.search(r"\S \([^()]+\)$", p["title"])) for p in articles) > 50
    n_words = sum(len(p["text"].split()) for p in articles)
    n_links = sum(len(LINK.findall(p["text"])) for p in articles)
    assert 18 < n_words / n_links < 35  # about one link per 25 words
    lengths = sorted(len(p["text"].split()) for p in articles)
    assert 250 < lengths[len(lengths) // 2] < 450 and lengths[-1] > 5 * lengths[len(lengths) // 2]
    links = [m for p in articles for m in LINK.findall(p["text"])]
    redirect_titles = {p["title"] for p in redirects}
    assert sum(bool(alias) for _, alias, _ in links) > 100
    assert sum(bool(trail) for _, _, trail in links) > 100
    assert sum(t[:1].islower() for t, _, _ in links) > 100
    assert sum(upper_first(t) in redirect_titles for t, _, _ in links) > 100
    for page in articles:  # the lead names the article in bold
        name = re.sub(r" \([^()]*\)$", "", page["title"])
        assert f"'''{name}'''" in page["text"].split("\n\n")[0]


def test_large_dump_inbound_links_are_zipf(large_dump):
    import numpy as np
    from data_prep.wiki import read_wiki

    corpus = read_wiki(large_dump[0], "en", progress=False)
    titles = {a.title for a in corpus.articles}
    inbound = defaultdict(int)
    for article in corpus.articles:
        for link in article.links:
            target = corpus.resolve(link.target)
            assert target in titles or corpus.skipped["short_article"]
            inbound[target] += 1
    counts = np.array(sorted(inbound.values(), reverse=True), dtype=float)
    n = len(corpus.articles)
    assert counts[: n // 100].sum() / counts.sum() > 0.3  # a few entities take most links
    ranks = np.arange(1, len(counts) + 1)
    tail = (ranks >= 10) & (ranks <= n // 10)
    slope = np.polyfit(np.log(ranks[tail]), np.log(counts[tail]), 1)[0]
    assert -1.3 < slope < -0.7, slope
    assert corpus.skipped["disambiguation"] > 20 and len(corpus.redirects) > 600


@pytest.mark.slow
def test_large_dump_builds_mrc_examples(tmp_path, capsys):
    import json

    from data_prep.synth_large import write_large_wiki
    from data_prep.tokenizer import train_tokenizer

    dump, _ = write_large_wiki(tmp_path, "en", 1000)
    tok = train_tokenizer([dump], vocab_size=1000, out_dir=tmp_path / "tok", lang="en")
    assert main(["synth", "--out", str(tmp_path / "cli"), "--langs", "en", "--large", "1000"]) == 0
    assert (tmp_path / "cli" / dump.name).read_bytes() == dump.read_bytes()
    capsys.readouterr()
    assert main(["wiki-mrc", "--input", str(dump), "--lang", "en", "--tokenizer", str(tok),
                 "--out", str(tmp_path / "mrc"), "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["examples"] > 2000 and summary["answerable"] == summary["unanswerable"]
