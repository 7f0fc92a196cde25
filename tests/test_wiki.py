"""Tests for data_prep.wiki: real dump excerpt, WikiExtractor JSON forms, and every counted kind of bad input."""

from __future__ import annotations

import bz2
import html
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from data_prep.wiki import Article, WikiCorpus, normalise_title, read_wiki
from paths import SHARED_DATA

DATA = SHARED_DATA / "wiki"
SAMPLE = DATA / "enwiki-sample.xml.bz2"
EXTRACTED = DATA / "enwiki-extracted-links"
REPO = Path(__file__).resolve().parents[1]

needs_data = pytest.mark.skipif(not SAMPLE.exists(), reason="shared wiki test data missing")


@pytest.fixture(scope="module")
def xml_corpus() -> WikiCorpus:
    return read_wiki(SAMPLE, "en", progress=False)


@pytest.fixture(scope="module")
def json_corpus() -> WikiCorpus:
    return read_wiki(EXTRACTED, "en", progress=False)


def _by_title(corpus: WikiCorpus) -> dict[str, Article]:
    return {a.title: a for a in corpus.articles}


def _check_links_are_spans(article: Article) -> None:
    prev_end = 0
    for link in article.links:
        surface = article.text[link.start:link.end]
        assert surface and surface == surface.strip(), (article.title, link)
        assert link.start >= prev_end, (article.title, link)
        first = link.target[:1]
        assert first and (first == first.upper() or len(first.upper()) > 1) and "_" not in link.target  # ß stays
        prev_end = link.end


# ----------------------------------------------------------------------------- synthetic inputs

BODY = "Lyon is a city in [[France]] on the [[Rhône (river)|Rhône]] with many [[museum]]s and old streets. " * 4


def _page(title: str, text: str, ns: int = 0, redirect: str | None = None, page_id: int = 1) -> str:
    redirect_el = f'<redirect title="{escape(redirect, {chr(34): "&quot;"})}" />' if redirect is not None else ""
    return (
        f"  <page>\n    <title>{escape(title)}</title>\n    <ns>{ns}</ns>\n    <id>{page_id}</id>\n"
        f"    {redirect_el}\n    <revision>\n      <id>{page_id + 1000}</id>\n"
        f"      <timestamp>2020-05-01T00:00:00Z</timestamp>\n"
        f'      <text xml:space="preserve">{escape(text)}</text>\n    </revision>\n  </page>\n'
    )


HEADER = (
    '<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/" version="0.11" xml:lang="en">\n'
    "  <siteinfo>\n    <namespaces>\n"
    '      <namespace key="0" case="first-letter" />\n'
    '      <namespace key="14" case="first-letter">Category</namespace>\n'
    "    </namespaces>\n  </siteinfo>\n"
)
FOOTER = "</mediawiki>\n"


def _dump(*pages: str) -> str:
    return HEADER + "".join(pages) + FOOTER


def _good_pages() -> list[str]:
    return [_page("Lyon", BODY, page_id=1), _page("Marseille", BODY.replace("Lyon", "Marseille"), page_id=2)]


def _json_line(title: str, text: str) -> str:
    return json.dumps({"id": "1", "revid": "2", "url": "u", "title": title, "text": text})


# ------------------------------------------------------------------------------------ real dump


@needs_data
def test_real_dump_articles_with_links(xml_corpus: WikiCorpus) -> None:
    titles = _by_title(xml_corpus)
    for known in ("Anarchism", "Aristotle", "Albert Einstein", "Algorithm", "Apollo 11", "Alabama"):
        assert known in titles
    assert len(xml_corpus.articles) >= 90
    assert sum(len(a.links) for a in xml_corpus.articles) > 15_000
    for article in xml_corpus.articles:
        assert len(article.text) >= 200 and "<a" not in article.text and "</a>" not in article.text
        assert "{{" not in article.text and "'''" not in article.text and "[[" not in article.text
        assert all(line.strip() for line in article.text.split("\n"))  # paragraphs, no blank lines
        _check_links_are_spans(article)
    anarchism = titles["Anarchism"]
    assert anarchism.text.startswith("Anarchism is a political philosophy")
    first = anarchism.links[0]
    assert (anarchism.text[first.start:first.end], first.target) == ("political philosophy", "Political philosophy")
    targets = {link.target for link in anarchism.links}
    assert "Free association (communism and anarchism)" in targets  # %28 %29 unquoted
    assert not any(t.lower().startswith("wikt:") for t in targets)  # Wiktionary links are no entities
    assert xml_corpus.skipped["non_article_namespace"] == 1


@needs_data
def test_table_markup_is_removed() -> None:
    corpus = read_wiki(DATA / "enwiki-table-markup.xml.bz2", "en", progress=False)
    titles = _by_title(corpus)
    assert {"Economy of Estonia", "List of Prison Break characters", "Brahui language"} <= set(titles)
    for article in corpus.articles:
        for markup in ("{|", "|-", "|}", "colspan", "wikitable", "<onlyinclude>"):
            assert markup not in article.text, (article.title, markup)
        assert all(line.strip() for line in article.text.split("\n"))
        _check_links_are_spans(article)
    prison = titles["List of Prison Break characters"]
    assert any(prison.text[l.start:l.end] == "Lincoln Burrows" for l in prison.links)


@needs_data
def test_redirects_found_and_resolved(xml_corpus: WikiCorpus) -> None:
    assert xml_corpus.skipped["redirect"] >= 90
    assert xml_corpus.redirects["AccessibleComputing"] == "Computer accessibility"
    assert xml_corpus.resolve("AfghanistanHistory") == "History of Afghanistan"
    assert xml_corpus.resolve("Anarchism") == "Anarchism"
    assert not set(xml_corpus.redirects) & set(_by_title(xml_corpus))


@needs_data
def test_disambiguation_pages_skipped(xml_corpus: WikiCorpus) -> None:
    titles = _by_title(xml_corpus)
    for dab in ("Austin (disambiguation)", "Aberdeen (disambiguation)", "Ada", "Alien", "Aa River"):
        assert dab not in titles  # by title, by {{disambiguation}} and by {{geodis}}
    assert xml_corpus.skipped["disambiguation"] == 8


@needs_data
def test_link_trail_is_part_of_anchor(xml_corpus: WikiCorpus) -> None:
    titles = _by_title(xml_corpus)
    found = {}
    for title, surface in (("Anatomy", "veins"), ("Anarchism", "strikebreakers")):  # [[vein]]s, [[strikebreaker]]s
        article = titles[title]
        found[surface] = [l.target for l in article.links if article.text[l.start:l.end] == surface]
    assert "Vein" in found["veins"] and "Strikebreaker" in found["strikebreakers"]
    trailed = sum(
        1 for a in xml_corpus.articles for l in a.links
        if len(a.text[l.start:l.end]) > len(l.target) and a.text[l.start:l.end].lower().startswith(l.target.lower())
    )
    assert trailed > 1000  # the original pipeline split 1,170 of these ("vein s")


@needs_data
def test_json_input_matches_xml(xml_corpus: WikiCorpus, json_corpus: WikiCorpus) -> None:
    assert [a.title for a in json_corpus.articles] == [a.title for a in xml_corpus.articles]
    assert json_corpus.redirects == {}
    shared = total = 0
    for from_xml, from_json in zip(xml_corpus.articles, json_corpus.articles):
        _check_links_are_spans(from_json)
        xml_links = Counter((from_xml.text[l.start:l.end], l.target) for l in from_xml.links)
        json_links = Counter((from_json.text[l.start:l.end], l.target) for l in from_json.links)
        shared += (xml_links & json_links).total()
        total += (xml_links | json_links).total()
    # measured 0.997: the XML path expands inline templates ({{convert}}, {{lang}}, …) that the WikiExtractor
    # CLI dropped from the JSON, which moves offsets and keeps the links inside them ({{small|[[Genitive|GEN]]}})
    assert shared / total > 0.99


@needs_data
def test_anchor_spans_match_wikiextractor_markup(json_corpus: WikiCorpus) -> None:
    with bz2.open(EXTRACTED / "AA" / "wiki_00.bz2", "rt", encoding="utf-8") as f:
        raw = next(json.loads(line)["text"] for line in f if '"title": "Anarchism"' in line)
    expected = [
        (anchor + trail).strip()
        for href, anchor, trail in re.findall(r'<a href="([^"]*)">([^<]*)</a>(\w*)', raw)
        if not href.startswith("wikt%3A") and (anchor + trail).strip()
    ]
    article = _by_title(json_corpus)["Anarchism"]
    assert [article.text[l.start:l.end] for l in article.links] == expected
    assert len(expected) > 300


@needs_data
def test_html_escaped_json_equals_raw(tmp_path: Path, json_corpus: WikiCorpus) -> None:
    out = tmp_path / "extracted" / "AA"
    out.mkdir(parents=True)
    with bz2.open(EXTRACTED / "AA" / "wiki_00.bz2", "rt", encoding="utf-8") as raw, open(out / "wiki_00", "w") as f:
        for line in raw:
            record = json.loads(line)
            assert '&lt;a href="' not in record["text"]
            record["text"] = html.escape(record["text"], quote=False)  # what wikiextractor's html-safe does
            f.write(json.dumps(record) + "\n")
    escaped = read_wiki(tmp_path / "extracted", "en", progress=False)
    assert escaped == json_corpus


@needs_data
def test_workers_do_not_change_output(xml_corpus: WikiCorpus) -> None:
    assert read_wiki(SAMPLE, "en", workers=2, progress=False) == xml_corpus


# ---------------------------------------------------------------------------------- titles


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("united_states", "United states"),
        ("Vienna%23History", "Vienna"),
        ("AT&amp;T", "AT&T"),
        ("AT%26amp%3BT", "AT&T"),  # wikiextractor's double escaping
        ("  museum  of__modern   art ", "Museum of modern art"),
        ("Free%20association%20%28communism%29", "Free association (communism)"),
        ("iPhone", "IPhone"),
        ("ñandú", "Ñandú"),
        ("straße", "Straße"),
        ("#History", ""),
    ],
)
def test_normalise_title(raw: str, expected: str) -> None:
    assert normalise_title(raw) == expected


# ----------------------------------------------------------------------------- synthetic dumps


def test_synthetic_dump_pages_redirects_and_dabs(tmp_path: Path) -> None:
    pages = [
        *_good_pages(),
        _page("Category:Cities", BODY, ns=14, page_id=3),
        _page("Lyons", "#REDIRECT [[Lyon]]", redirect="Lyon", page_id=4),
        _page("Lugdunum", "#REDIRECT [[Lyons]]", page_id=5),  # text-only redirect, chained
        _page("Ping", "#redirect [[Pong]]", page_id=6),
        _page("Pong", "#REDIRECT [[Ping]]", page_id=7),  # cycle
        _page("Lyon (disambiguation)", BODY, page_id=8),
        _page("Lyon (name)", BODY + "\n{{Set index article|name}}", page_id=9),
        _page("Tiny", "Too short.", page_id=10),
        _page("Blank", "", page_id=11),
    ]
    path = tmp_path / "dump.xml"
    path.write_text(_dump(*pages), encoding="utf-8")
    corpus = read_wiki(path, "en", progress=False)
    assert [a.title for a in corpus.articles] == ["Lyon", "Marseille"]
    lyon = corpus.articles[0]
    assert [(lyon.text[l.start:l.end], l.target) for l in lyon.links[:3]] == [
        ("France", "France"), ("Rhône", "Rhône (river)"), ("museums", "Museum")]
    assert corpus.redirects == {"Lyons": "Lyon", "Lugdunum": "Lyon"}
    assert corpus.resolve("Lugdunum") == "Lyon"
    assert dict(corpus.skipped) == {
        "disambiguation": 2, "empty_article": 1, "non_article_namespace": 1, "redirect": 4,
        "redirect_cycle": 2, "short_article": 1,
    }


def test_localised_redirects_and_disambiguation(tmp_path: Path) -> None:
    pages = [
        _page("Köln", BODY, page_id=1),
        _page("Koeln", "#WEITERLEITUNG [[Köln]]", page_id=2),
        _page("Bank", BODY + "\n{{begriffsklärung}}", page_id=3),
        _page("Golf (Begriffsklärung)", BODY, page_id=4),
    ]
    path = tmp_path / "dewiki.xml"
    path.write_text(_dump(*pages), encoding="utf-8")
    corpus = read_wiki(path, "de", progress=False)
    assert [a.title for a in corpus.articles] == ["Köln"]
    assert corpus.redirects == {"Koeln": "Köln"}
    assert corpus.skipped["disambiguation"] == 2


def test_utf16_dump_parses_like_utf8(tmp_path: Path) -> None:
    text = '<?xml version="1.0" encoding="UTF-16"?>\n' + _dump(*_good_pages())
    utf8, utf16 = tmp_path / "a.xml", tmp_path / "b.xml"
    utf8.write_text(_dump(*_good_pages()), encoding="utf-8")
    utf16.write_bytes(text.encode("utf-16"))  # with BOM
    expected = read_wiki(utf8, "en", progress=False)
    got = read_wiki(utf16, "en", progress=False)
    assert got == expected and len(got.articles) == 2 and not got.skipped


def test_invalid_utf8_page_is_counted_and_others_kept(tmp_path: Path) -> None:
    good_1, good_2 = _good_pages()
    bad = _page("Broken", BODY, page_id=9).encode("utf-8").replace(b"many", b"m\xff\xfeny")
    path = tmp_path / "dump.xml.bz2"
    path.write_bytes(bz2.compress(HEADER.encode() + good_1.encode() + bad + good_2.encode() + FOOTER.encode()))
    corpus = read_wiki(path, "en", progress=False)
    assert [a.title for a in corpus.articles] == ["Lyon", "Marseille"]
    assert dict(corpus.skipped) == {"invalid_utf8": 1}


def test_truncated_dump_keeps_complete_pages(tmp_path: Path) -> None:
    full = _dump(*_good_pages(), _page("Nice", BODY, page_id=3))
    cut = full[: full.index("Nice") + 40]
    plain = tmp_path / "cut.xml"
    plain.write_text(cut, encoding="utf-8")
    corpus = read_wiki(plain, "en", progress=False)
    assert [a.title for a in corpus.articles] == ["Lyon", "Marseille"]
    assert dict(corpus.skipped) == {"truncated_dump": 1}
    # multistream bz2 (like real dumps) whose second stream stops before its end-of-stream marker
    split = full.index("  <page>\n    <title>Nice")
    second = bz2.compress(full[split:].encode())
    cut_bz2 = tmp_path / "cut.xml.bz2"
    cut_bz2.write_bytes(bz2.compress(full[:split].encode()) + second[: len(second) // 2])
    corpus = read_wiki(cut_bz2, "en", progress=False)
    assert [a.title for a in corpus.articles] == ["Lyon", "Marseille"]
    assert dict(corpus.skipped) == {"truncated_dump": 1}


def test_huge_article_and_page_without_close_tag(tmp_path: Path) -> None:
    good_1, good_2 = _good_pages()
    unclosed = _page("Unclosed", BODY, page_id=5).replace("</page>", "")
    path = tmp_path / "dump.xml"
    path.write_text(_dump(good_1, _page("Huge", BODY * 50, page_id=4), unclosed, good_2), encoding="utf-8")
    corpus = read_wiki(path, "en", progress=False, max_article_chars=5000)
    assert [a.title for a in corpus.articles] == ["Lyon", "Marseille"]
    assert dict(corpus.skipped) == {"huge_article": 1, "malformed_xml": 1}


def test_bad_json_lines_are_counted(tmp_path: Path) -> None:
    good = 'Paris is the capital of <a href="France">France</a> and has many <a href="museum">museum</a>s. ' * 4
    lines = [
        _json_line("Paris", good).encode(),
        b'{"id": "3", "title": "Half',  # malformed
        json.dumps({"id": "4", "text": good}).encode(),  # no title
        _json_line("Bad bytes", good).encode().replace(b"capital", b"capit\xc3\x28l"),
        _json_line("Anchors", 'Broken <a href="Unclosed">anchor and <a href="">empty</a> and ' + good).encode(),
        _json_line("Empty", "").encode(),
        _json_line("Short", "Two words.").encode(),
        _json_line("Big", good * 100).encode(),
        _json_line("Mercury (disambiguation)", good).encode(),
        _json_line("Venus", "Venus may refer to:\n" + good).encode(),
        _json_line("Lyon", good.replace("Paris", "Lyon")).encode(),
    ]
    path = tmp_path / "wiki_00"
    path.write_bytes(b"\n".join(lines) + b"\n")
    corpus = read_wiki(path, "en", progress=False, max_article_chars=10_000)
    assert [a.title for a in corpus.articles] == ["Paris", "Anchors", "Lyon"]
    assert dict(corpus.skipped) == {
        "broken_anchor": 2, "disambiguation": 2, "empty_article": 1, "huge_article": 1, "invalid_utf8": 1,
        "malformed_json": 1, "missing_field": 1, "short_article": 1,
    }
    anchors = corpus.articles[1]
    assert anchors.text.startswith("Broken anchor and empty and Paris")
    assert [anchors.text[l.start:l.end] for l in anchors.links[:2]] == ["France", "museums"]
    for article in corpus.articles:
        _check_links_are_spans(article)


def test_missing_and_unrecognised_inputs(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_wiki(tmp_path / "nope.xml.bz2", "en", progress=False)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="wiki_00"):
        read_wiki(tmp_path, "en", progress=False)
    doc_format = tmp_path / "wiki_00"
    doc_format.write_text('<doc id="1" url="u" title="Lyon">\nLyon\n\ntext\n</doc>\n')
    with pytest.raises(ValueError, match="--json"):
        read_wiki(doc_format, "en", progress=False)


def test_folder_of_dump_parts_in_natural_order(tmp_path: Path) -> None:
    lyon, marseille = _good_pages()
    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "enwiki-pages-articles10.xml-p9p12.bz2").write_bytes(bz2.compress(_dump(marseille).encode()))
    (parts / "enwiki-pages-articles2.xml-p1p8").write_text(
        _dump(lyon, _page("Lyons", "#REDIRECT [[Lyon]]", page_id=5)), encoding="utf-8")
    (parts / "README.txt").write_text("not input")
    corpus = read_wiki(parts, "en", progress=False)
    assert [a.title for a in corpus.articles] == ["Lyon", "Marseille"]
    assert corpus.redirects == {"Lyons": "Lyon"}


def test_output_independent_of_hash_seed(tmp_path: Path) -> None:
    path = tmp_path / "dump.xml"
    path.write_text(_dump(*_good_pages(), _page("Lyons", "", redirect="Lyon", page_id=3)), encoding="utf-8")
    script = (
        "import dataclasses, json, sys; from data_prep.wiki import read_wiki; "
        f"c = read_wiki({str(path)!r}, 'en', progress=False); "
        "print(json.dumps([dataclasses.asdict(a) for a in c.articles] + [c.redirects, list(c.skipped.items())]))"
    )
    outputs = set()
    for seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        outputs.add(done.stdout)
    assert len(outputs) == 1
