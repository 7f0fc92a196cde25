"""Tests for the text data_prep.wiki produces: inline templates, template husks, Chinese conversion."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest
from wikiextractor import extract as wx

from data_prep.wiki import _split_anchors, _wikiextractor_clean, canonical_title, read_wiki
from data_prep.wiki_templates import DROPPED, HUSK_PATTERNS, repair_husks
from data_prep.zh_convert import rule_display, to_simplified
from test_wiki import BODY, SAMPLE, _dump, _page, needs_data


def _text(wikitext: str, extractor_cls: type | None = None) -> str:
    kwargs = {"extractor_cls": extractor_cls} if extractor_cls else {}
    return _split_anchors(_wikiextractor_clean("T", wikitext, "2020-05-01T00:00:00Z", **kwargs))[0]


# ------------------------------------------------------------------------------------ templates


@pytest.mark.parametrize(
    "wikitext, expected",
    [
        ("The war (1775{{ndash}}1783) ended.", "The war (1775–1783) ended."),
        ("Paris{{snd}}the capital.", "Paris\xa0– the capital."),
        ("A{{spaced ndash}}B and C{{Spnd}}D.", "A\xa0– B and C\xa0– D."),
        ("Yes{{mdash}}no{{mdashb}}maybe.", "Yes—no—maybe."),
        ("5{{nbsp}}km and 5&nbsp;km.", "5\xa0km and 5\xa0km."),  # {{nbsp}} renders like &nbsp;
        ("It is {{convert|5|km|mi}} long.", "It is 5 km long."),
        ("It is {{convert|5|-|10|km|mi}} wide.", "It is 5–10 km wide."),
        ("It is {{convert|3|to|4|sqmi|km2|abbr=on}}.", "It is 3 to 4 sq mi."),
        ("At {{convert|30|C|0}} and {{cvt|2|and(-)|3|ft}}.", "At 30 °C and 2 and 3 ft."),
        ("Gas ({{convert|15700|ft3|disp=output number only}} bn m3).", "Gas (bn m3)."),
        ("Greek {{lang|grc|Ἀπόλλων}}.", "Greek Ἀπόλλων."),
        ("French {{lang-fr|Paris}}, {{Lang-grc-gre|Ἀριστοτέλης}}.", "French Paris, Ἀριστοτέλης."),
        ("'''Albedo''' ({{IPAc-en|æ|l|ˈ|b|iː|d|oʊ}}) or whiteness.", "Albedo or whiteness."),
        ("'''Achilles''' ({{IPAc-en|ə|ˈ|k|ɪ}}; {{lang-grc|Ἀχιλλεύς}}, ''Akhilleus'', {{IPA-el|akʰilːéu̯s|pron}}) was",
         'Achilles (Ἀχιλλεύς, "Akhilleus") was'),
        ("'''Alain''' ({{IPA-fr|alɛ̃ kɔn}}; born 1 April 1947) is", "Alain (born 1 April 1947) is"),
        ("Rand ({{IPAc-en|ˈ|aɪ|n}};<ref>{{harvnb|Branden|1986}}</ref> born 1905) was", "Rand (born 1905) was"),
        ("{{nowrap|a b}}, {{small|GEN}}, {{smaller|x}} and {{sc|Lord}}.", "a b, GEN, x and Lord."),
        ("It's wrong {{sic}} and {{sic|recieve}} and {{sic|hide=y|teh}}.",
         "It's wrong [sic] and recieve [sic] and teh."),
        ("Built {{circa|1900}}, or {{c.}} 1901.", "Built c.\xa01900, or c. 1901."),
        ("The end.{{efn|A note.}} Next.{{refn|group=n|Other.}} Last.", "The end. Next. Last."),
        ("{{As of|2010}}, a; {{as of|2010|5|lc=y}}, b.", "As of 2010, a; as of May 2010, b."),
        ("{{nihongo|Tokyo|東京|Tōkyō}} and {{angbr|e}}.", "Tokyo (東京, Tōkyō) and ⟨e⟩."),
        ("{{frac|1|2}}, {{frac|3|1|2}}, {{chem|H|2|O}}, {{val|1.5|u=m}}.", "1⁄2, 3 1⁄2, H2O, 1.5\xa0m."),
        ("Born {{OldStyleDate|February 2|1905|January 20}}.", "Born February 2 [O.S. January 20] 1905."),
        ("{{transl|grc|Akhilleus}} and {{transl|ar|DIN|Qurʾān}}.", "Akhilleus and Qurʾān."),
    ],
)
def test_inline_template(wikitext: str, expected: str) -> None:
    assert _text(wikitext) == expected


@pytest.mark.parametrize(
    "wikitext, expected",
    [
        ("A claim ({{citation needed}}) here.", "A claim here."),
        ("x ({{foo}}; {{bar}}) y", "x y"),
        ("x, {{foo}}; y", "x; y"),
        ("a {{foo}} b", "a b"),
        ("x (a, {{IPA-de|x}}) y", "x (a) y"),
        # an entity's ";" is no separator (the "&gt;" of a ref before a dropped template stays whole)
        ("It is directed.<ref name=Aleut>{{cite book|title=T}}, at p. 49</ref> It is also known.",
         "It is directed. It is also known."),
    ],
)
def test_dropped_templates_leave_no_husks(wikitext: str, expected: str) -> None:
    assert _text(wikitext) == expected


def test_text_without_templates_is_unchanged() -> None:
    wikitext = BODY + "\n\n==History==\nIt (the city) was founded; [[Rome|Romans]] came, saw: and left (; )."
    assert _text(wikitext) == _text(wikitext, wx.Extractor)


def test_repair_removes_every_marker() -> None:
    assert repair_husks(f"a{DROPPED}b ({DROPPED}) c{DROPPED}") == "ab c"
    assert repair_husks("no markers (; ) at all") == "no markers (; ) at all"


@needs_data
def test_real_excerpt_has_no_template_husks() -> None:
    corpus = read_wiki(SAMPLE, "en", progress=False)
    titles = {a.title: a for a in corpus.articles}
    husks = sum(len(p.findall(a.text)) for a in corpus.articles for p in HUSK_PATTERNS.values())
    assert husks <= 6  # measured 4 (197 with plain WikiExtractor); the 4 are no template's: bench/wiki_text.py
    assert titles["Albedo"].text.startswith("Albedo or reflection coefficient")
    assert titles["Achilles"].text.startswith('In Greek mythology, Achilles (Ἀχιλλεύς, "Akhilleus") was a Greek hero')
    assert titles["Aristotle"].text.startswith('Aristotle (Ἀριστοτέλης, "Aristotélēs"; 384–322\xa0BC) was')
    assert titles["Abraham Lincoln"].text.startswith("Abraham Lincoln (February 12, 1809 – April 15, 1865) was")
    assert "about 500 mi of British Columbia" in titles["Alaska"].text
    assert not any(DROPPED in a.text for a in corpus.articles)


# ------------------------------------------------------------------------------ Chinese variants


@pytest.mark.parametrize(
    "markup, expected",
    [
        ("-{zh-hans:悉尼;zh-hant:雪梨;}-", "悉尼"),
        ("-{zh-cn:软件; zh-tw:軟體; zh-hk:軟件}-", "软件"),  # zh-hans falls back to zh-cn
        ("-{zh-tw:軟體; zh-my:软件}-", "软件"),  # ... then zh-sg, zh-my
        ("-{zh:原文字; zh-tw:軟體}-", "原文字"),  # no Simplified variant: the zh text (MediaWiki: an error)
        ("-{zh-tw:軟體; zh-hk:軟件}-", "软体"),  # ... or the first one, converted
        ("-{乾燥}-", "乾燥"),  # no conversion
        ("-{R|乾燥}-", "乾燥"),
        ("-{zh-hans:甲;乙;zh-hant:丙}-", "甲;乙"),  # ";" splits only before a variant
        ("-{foo:bar}-", "foo:bar"),  # not a rule: shown as is
        ("-{H|zh-hans:悉尼;zh-hant:雪梨}-", ""),
        ("-{T|zh-hans:悉尼;zh-hant:雪梨}-", ""),
        ("-{-|zh-hans:悉尼;zh-hant:雪梨}-", ""),
        ("-{H|單位=>zh-hans:单元;}-", ""),
        ("-{A|zh-hans:悉尼;zh-hant:雪梨}-", "悉尼"),
        ("-{A|雪梨}-", "雪梨"),
        ("-{zh-hans;zh-hant|漢字}-", "汉字"),  # converted to the reader's variant
        ("-{zh-hant|漢字}-", "漢字"),
        ("-{N|zh-hant}-", "繁體"),
        ("-{D|zh-cn:a;zh-tw:b}-", "大陆：a；臺灣：b；"),
        ("-{zh-hans:[[计算机|電腦]];zh-hant:[[電腦]]}-", "[[计算机|電腦]]"),  # pipes in links are no flags
        ("-{zh-hans:{{lang|en|a;b}};zh-hant:{{lang|en|c}}}-", "{{lang|en|a;b}}"),
        ("外-{zh-hans:内-{乾}-;zh-hant:內}-", "外内乾"),  # nested
        ("x -{ unclosed 漢", "x -{ unclosed 汉"),
        ("2010-{{CURRENTYEAR}}年", "2010-{{CURRENTYEAR}}年"),  # a hyphen before a template
        ("<math>x^-{1}-</math>", "<math>x^-{1}-</math>"),
        ("臺灣的軟體", "台湾的软体"),  # plain text: OpenCC t2s (no regional vocabulary)
    ],
)
def test_zh_conversion(markup: str, expected: str) -> None:
    assert to_simplified(markup) == expected


def test_rule_display_says_what_opencc_may_convert() -> None:
    assert rule_display("R|乾燥") == ("乾燥", False)
    assert rule_display("zh-hans;zh-hant|漢字") == ("漢字", True)
    assert rule_display("zh-tw:軟體; zh-hk:軟件") == ("軟體", True)


def test_titles_are_converted_for_zh_only() -> None:
    assert canonical_title("漢字_系統", "zh") == "汉字 系统"
    assert canonical_title("漢字", "ja") == "漢字"


ZH_PAGES = [
    ("漢字", "'''漢字'''是[[書寫系統|文字]]，用於書寫[[漢語]]。-{zh-hans:计算机;zh-hant:電腦}-可以處理[[漢字]]，"
            "英文稱{{lang|en|Chinese characters}}（{{IPAc-en|x}}）。"),
    ("漢語", "'''漢語'''是[[漢藏語系|漢藏語]]，使用[[漢字]]書寫，也稱[[中文]]，常用於[[計算機|電腦]]。"),
    ("電腦", "'''電腦'''（-{zh-cn:计算机;zh-tw:電腦;zh-hk:電腦}-）是處理[[漢字]]的機器。-{R|乾燥}-的地方也有"
            "[[汉语]]書籍。-{H|zh-hans:软件;zh-hant:軟體}-"),
]
ZH_REDIRECTS = [("中文", "漢語"), ("汉字", "漢字"), ("計算機", "電腦")]


def _zh_expect(corpus) -> None:
    assert [a.title for a in corpus.articles] == ["汉字", "汉语", "电脑"]
    by_title = {a.title: a for a in corpus.articles}
    assert by_title["汉字"].text == "汉字是文字，用于书写汉语。计算机可以处理汉字，英文称Chinese characters。"
    assert "乾燥的地方" in by_title["电脑"].text and "软件" not in by_title["电脑"].text
    assert by_title["电脑"].text.startswith("电脑（计算机）是处理汉字的机器。")
    for article in corpus.articles:
        for link in article.links:
            assert link.target == to_simplified(link.target)
            if link.target not in ("书写系统", "汉藏语系"):  # no such pages in this dump
                resolved = corpus.resolve(link.target)  # JSON has no redirects: there the sources stay
                assert resolved in by_title or (not corpus.redirects and resolved in ("中文", "计算机")), link
    surfaces = [(by_title["汉语"].text[l.start:l.end], l.target) for l in by_title["汉语"].links]
    assert surfaces == [("汉藏语", "汉藏语系"), ("汉字", "汉字"), ("中文", "中文"), ("电脑", "计算机")]


def test_zh_dump_reads_simplified_and_links_resolve(tmp_path: Path) -> None:
    pages = [_page(title, text, page_id=i) for i, (title, text) in enumerate(ZH_PAGES, 1)]
    pages += [_page(src, f"#重定向 [[{dst}]]", page_id=10 + i) for i, (src, dst) in enumerate(ZH_REDIRECTS)]
    path = tmp_path / "zhwiki.xml"
    path.write_text(_dump(*pages), encoding="utf-8")
    corpus = read_wiki(path, "zh", progress=False, min_article_chars=10)
    _zh_expect(corpus)
    assert corpus.redirects == {"中文": "汉语", "计算机": "电脑"}  # "汉字" -> "漢字" is the article itself now
    assert dict(corpus.skipped) == {"redirect": 3}
    as_japanese = read_wiki(path, "ja", progress=False, min_article_chars=10)
    assert [a.title for a in as_japanese.articles] == ["漢字", "漢語", "電腦"]  # other languages: unconverted


def test_zh_wikiextractor_json_reads_like_the_dump(tmp_path: Path) -> None:
    def anchor(target: str, surface: str) -> str:
        return f'<a href="{quote(target)}">{surface}</a>'

    texts = {  # what WikiExtractor leaves: links as anchors, conversion markup untouched
        "漢字": f"漢字是{anchor('書寫系統', '文字')}，用於書寫{anchor('漢語', '漢語')}。-{{zh-hans:计算机;zh-hant:電腦}}-"
              f"可以處理{anchor('漢字', '漢字')}，英文稱Chinese characters。",
        "漢語": f"漢語是{anchor('漢藏語系', '漢藏語')}，使用{anchor('漢字', '漢字')}書寫，也稱{anchor('中文', '中文')}，"
              f"常用於{anchor('計算機', '電腦')}。",
        "電腦": f"電腦（-{{zh-cn:计算机;zh-tw:電腦;zh-hk:電腦}}-）是處理{anchor('漢字', '漢字')}的機器。-{{R|乾燥}}-的地方也有"
              f"{anchor('汉语', '汉语')}書籍。-{{H|zh-hans:软件;zh-hant:軟體}}-",
    }
    path = tmp_path / "wiki_00"
    path.write_text("".join(json.dumps({"id": "1", "title": t, "text": x}) + "\n" for t, x in texts.items()))
    _zh_expect(read_wiki(path, "zh", progress=False, min_article_chars=10))


def test_zh_titles_that_meet_after_conversion(tmp_path: Path) -> None:
    text = "這是一篇關於[[乾坤]]的條目，內容足夠長。" * 2
    pages = [_page("乾", text, page_id=1), _page("幹", text, page_id=2), _page("干", "#重定向 [[乾坤]]", page_id=3),
             _page("乾坤", text, page_id=4)]
    path = tmp_path / "zhwiki.xml"
    path.write_text(_dump(*pages), encoding="utf-8")
    corpus = read_wiki(path, "zh", progress=False, min_article_chars=10)
    assert [a.title for a in corpus.articles] == ["干", "乾坤"]  # 乾 and 幹 both read 干: the first one is kept
    assert corpus.redirects == {}  # and redirect 干 -> 乾坤 gives way to the article
    assert corpus.skipped["duplicate_title"] == 1 and corpus.skipped["redirect_shadowed"] == 1


def test_a_title_met_twice_keeps_the_first_article_in_any_language(tmp_path: Path) -> None:
    text = "This article is about [[Paris]] and it is long enough to be kept. " * 2
    pages = [_page("Paris", text, page_id=1), _page("Paris", text + " Later copy.", page_id=2),
             _page("Lyon", text, page_id=3)]
    path = tmp_path / "enwiki.xml"
    path.write_text(_dump(*pages), encoding="utf-8")
    corpus = read_wiki(path, "en", progress=False, min_article_chars=10)
    assert [a.title for a in corpus.articles] == ["Paris", "Lyon"]
    assert "Later copy" not in corpus.articles[0].text
    assert corpus.skipped["duplicate_title"] == 1
