"""Tests for data_prep.wordtok: real sentences in all 24 mPMR languages, span invariants,
evidence that the dictionary/statistical segmenters are really used, fallbacks, processes."""

from __future__ import annotations

import multiprocessing
import pickle
import random

import pytest

from data_prep import wordtok
from data_prep.wordtok import SUPPORTED_LANGS, backend_info, get_word_tokenizer, word_spans, words

MPMR_LANGS = "ar bn de el en es fi fr hi id it ja ko nl pl pt ru sv sw te th tr vi zh".split()

# Opening sentences of the Wikipedia-style articles on each language's capital / a landmark,
# typed by hand (ru keeps the stress mark of "Москва́", a combining character).
SENTENCES = {
    "ar": "القاهرة هي عاصمة جمهورية مصر العربية وأكبر مدنها، وتقع على ضفاف نهر النيل.",
    "bn": "বাংলাদেশ দক্ষিণ এশিয়ার একটি সার্বভৌম রাষ্ট্র, যার রাজধানী ঢাকা।",
    "de": "Berlin ist die Hauptstadt und ein Land der Bundesrepublik Deutschland; mit rund 3,8 "
    "Millionen Einwohnern ist sie die bevölkerungsreichste Stadt Deutschlands.",
    "el": "Η Αθήνα είναι η πρωτεύουσα και η μεγαλύτερη πόλη της Ελλάδας.",
    "en": "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France.",
    "es": "Madrid es un municipio y una ciudad de España, y es la capital del país.",
    "fi": "Helsinki on Suomen pääkaupunki ja maan väkirikkain kaupunki.",
    "fr": "Paris est la capitale de la France et la commune la plus peuplée du pays ; "
    "l'agglomération compte plus de dix millions d'habitants.",
    "hi": "भारत दक्षिण एशिया में स्थित एक देश है, जिसकी राजधानी नई दिल्ली है।",
    "id": "Jakarta adalah ibu kota negara Indonesia dan kota terbesar di Asia Tenggara.",
    "it": "Roma è la capitale d'Italia e la città più popolosa del Paese.",
    "ja": "東京都は、日本の首都であり、関東地方に位置する都である。",
    "ko": "서울특별시는 대한민국의 수도이자 최대 도시이다.",
    "nl": "Amsterdam is de hoofdstad en de grootste stad van Nederland.",
    "pl": "Warszawa jest stolicą Polski i największym miastem w kraju.",
    "pt": "Lisboa é a capital e a maior cidade de Portugal.",
    "ru": "Москва́ — столица России, крупнейший по численности населения город страны.",
    "sv": "Stockholm är Sveriges huvudstad och landets största stad.",
    "sw": "Kiswahili ni lugha ya Kibantu inayozungumzwa na watu wengi wa Afrika ya Mashariki, "
    "na ni lugha rasmi ya Tanzania.",
    "te": "హైదరాబాదు తెలంగాణ రాష్ట్ర రాజధాని మరియు అతిపెద్ద నగరం.",
    "th": "กรุงเทพมหานครเป็นเมืองหลวงและนครที่มีประชากรมากที่สุดของประเทศไทย",
    "tr": "İstanbul, Türkiye'nin en kalabalık şehri ve ekonomik merkezidir.",
    "vi": "Hà Nội là thủ đô của nước Cộng hòa Xã hội chủ nghĩa Việt Nam.",
    "zh": "北京大学是中国的一所综合性研究型大学，位于北京市海淀区。",
}

# Words each sentence must yield: punctuation split from words, clitics split where the
# language's rules say so, and multi-character/multi-syllable words kept whole.
EXPECTED_WORDS = {
    "ar": ["مدنها", "،", "النيل", "."],
    "bn": ["রাষ্ট্র", ",", "ঢাকা", "।"],
    "de": ["Deutschland", ";", "3,8", "bevölkerungsreichste", "Deutschlands", "."],
    "el": ["Αθήνα", "Ελλάδας", "."],
    "en": ["wrought", "-", "iron", "Paris", ",", "France", "."],
    "es": ["España", ",", "país", "."],
    "fi": ["pääkaupunki", "väkirikkain", "kaupunki", "."],
    "fr": ["pays", ";", "l'", "agglomération", "d'", "habitants", "."],
    "hi": ["है", ",", "दिल्ली", "।"],
    "id": ["Jakarta", "Tenggara", "."],
    "it": ["d'", "Italia", "città", "Paese", "."],
    "ja": ["東京", "日本", "首都", "関東", "地方", "位置", "。"],
    "ko": ["서울", "특별시", "는", "대한민국", "의", "수도", "도시", "."],
    "nl": ["Amsterdam", "Nederland", "."],
    "pl": ["stolicą", "kraju", "."],
    "pt": ["Lisboa", "Portugal", "."],
    "ru": ["Москва́", "—", "России", ",", "страны", "."],
    "sv": ["Sveriges", "stad", "."],
    "sw": ["Mashariki", ",", "Tanzania", "."],
    "te": ["హైదరాబాదు", "నగరం", "."],
    "th": ["กรุงเทพมหานคร", "เมืองหลวง", "ประชากร", "ที่สุด"],
    "tr": ["İstanbul", ",", "merkezidir", "."],
    "vi": ["Hà Nội", "thủ đô", "Cộng hòa", "Xã hội", "chủ nghĩa", "Việt Nam", "."],
    "zh": ["北京大学", "中国", "综合性", "研究型", "大学", "，", "北京市", "海淀区", "。"],
}


def assert_valid_spans(text: str, spans: list[tuple[int, int]], lang: str) -> None:
    """The invariants every result must satisfy (vi: single spaces inside a word allowed)."""
    previous_end = 0
    for start, end in spans:
        assert previous_end <= start < end <= len(text), (spans, lang)
        surface = text[start:end]
        inner_whitespace = [c for c in surface if c.isspace()]
        if lang == "vi":
            assert set(inner_whitespace) <= {" "} and surface == surface.strip(), surface
        else:
            assert not inner_whitespace, repr(surface)
        previous_end = end
    surfaces = "".join(text[start:end] for start, end in spans)
    assert "".join(surfaces.split()) == "".join(text.split())


def test_supported_langs_are_the_mpmr_languages():
    assert sorted(SUPPORTED_LANGS) == sorted(MPMR_LANGS)
    assert set(SENTENCES) == set(MPMR_LANGS) == set(EXPECTED_WORDS)


@pytest.mark.parametrize("lang", MPMR_LANGS)
def test_real_sentence(lang):
    text = SENTENCES[lang]
    spans = word_spans(text, lang)
    assert_valid_spans(text, spans, lang)
    found = words(text, lang)
    assert found == [text[s:e] for s, e in spans]
    missing = [w for w in EXPECTED_WORDS[lang] if w not in found]
    assert not missing, f"{lang}: {missing} not among {found}"
    assert word_spans(text, lang) == spans  # deterministic


def test_zh_uses_a_word_segmenter_not_characters():
    text = SENTENCES["zh"]
    found = words(text, "zh")
    multi_char = [w for w in found if len(w) > 1]
    assert len(multi_char) >= 8
    assert len(found) < 0.6 * len(text)


def test_ja_keeps_kanji_compounds_and_splits_particles():
    found = words(SENTENCES["ja"], "ja")
    for compound in ("日本", "首都", "関東", "位置"):
        assert compound in found
    assert found[found.index("日本") + 1] == "の"


def test_th_splits_unspaced_text_into_dictionary_words():
    text = SENTENCES["th"]
    assert " " not in text
    found = words(text, "th")
    assert len(found) >= 10
    assert found[0] == "กรุงเทพมหานคร"  # 13 characters, one word
    assert found[-2:] == ["ประเทศ", "ไทย"]


def test_ko_splits_particles_and_endings_from_stems():
    text = SENTENCES["ko"]
    found = words(text, "ko")
    assert found[found.index("대한민국") + 1] == "의"
    assert found[found.index("특별시") + 1] == "는"
    assert len(found) > len(text.split()) + 5  # morphemes, not eojeol


def test_ko_fast_lattice_walk_matches_the_public_mecab_api():
    mecab = pytest.importorskip("mecab")
    text = SENTENCES["ko"] + " 한국어는 한국에서 사용되는 언어이다."
    assert words(text, "ko") == mecab.MeCab().morphs(text)


def test_vi_keeps_multi_syllable_words_whole_but_only_across_single_spaces():
    found = words(SENTENCES["vi"], "vi")
    assert "Việt Nam" in found and "Hà Nội" in found
    text = "Việt  Nam và Việt\u00a0Nam và Việt\nNam"
    spans = word_spans(text, "vi")
    assert_valid_spans(text, spans, "vi")
    assert "Việt  Nam" not in words(text, "vi")
    assert words(text, "vi").count("Việt") == 3


@pytest.mark.parametrize(
    ("lang", "spacy_config"),
    [("ja", {}), ("vi", {}), ("zh", {"nlp": {"tokenizer": {"segmenter": "jieba"}}})],
)
def test_direct_backend_matches_spacy_wrapper(lang, spacy_config):
    """ja/zh/vi call the segmenter that spaCy wraps; the words must be spaCy's words."""
    spacy = pytest.importorskip("spacy")
    tokenizer = spacy.blank(lang, config=spacy_config).tokenizer
    text = SENTENCES[lang] + " " + SENTENCES[lang][::-1]
    expected = [(t.idx, t.idx + len(t)) for t in tokenizer(text) if not t.is_space]
    assert word_spans(text, lang) == expected


def test_spacy_tokenizer_rebuilt_when_vocab_grows_gives_same_words():
    bounded = wordtok._SpacyBlankTokenizer("en", max_strings=1)
    text = SENTENCES["en"]
    first = bounded(text)
    second = bounded(text + " Gustave Eiffel's company designed and built it.")
    assert bounded.rebuilds == 2
    assert first == word_spans(text, "en") == second[: len(first)]


def test_sw_moses_fast_predicates_match_sacremoses():
    sacremoses = pytest.importorskip("sacremoses")
    paragraph = (
        "Dkt. Jakaya Kikwete alisema: \"Tutashinda.\" Watu walifurahi. e.g. hapa. "
        "Bei ni Sh. 3,500.50 tu! Je, utakuja kesho? ndiyo. Mwl. Nyerere alizaliwa 1922."
    )
    plain = sacremoses.MosesTokenizer(lang="sw")
    fast = wordtok._fast_moses_class(sacremoses.MosesTokenizer)(lang="sw")
    assert fast.tokenize(paragraph, escape=False) == plain.tokenize(paragraph, escape=False)
    assert words(paragraph, "sw") == plain.tokenize(paragraph, escape=False)


def test_unalignable_chunk_falls_back_to_the_whitespace_word():
    # Moses deletes ASCII control characters, so "ab\x01cd" cannot be found in the text.
    text = "Watu wengi,  ab\x01cd  wa Afrika."
    spans = word_spans(text, "sw")
    assert_valid_spans(text, spans, "sw")
    assert words(text, "sw") == ["Watu", "wengi", ",", "ab\x01cd", "wa", "Afrika", "."]


ODD_WHITESPACE = "  \t{0}\u00a0{0}\n\n{0}\u2028{0}\u3000{0}\r\n  "


@pytest.mark.parametrize("lang", ["en", "ja", "ko", "sw", "th", "vi", "zh"])
def test_odd_whitespace_never_ends_up_inside_words(lang):
    text = ODD_WHITESPACE.format(SENTENCES[lang])
    spans = word_spans(text, lang)
    assert_valid_spans(text, spans, lang)
    assert len(spans) == 5 * len(word_spans(SENTENCES[lang], lang))


ODD_CHARACTERS = ["\x01", "\u200b", "\ufeff", "e\u0301", "😀", "_", "…", "Ａ", "ﬁ", "\u2028", "\t"]


@pytest.mark.parametrize("lang", ["en", "fr", "ja", "ko", "sw", "th", "vi", "zh"])
def test_random_mixed_script_text_keeps_the_invariants(lang):
    rng = random.Random(f"wordtok-{lang}")
    pool = "".join(SENTENCES.values())
    for _ in range(60):
        pieces = []
        for _ in range(rng.randrange(1, 12)):
            start = rng.randrange(len(pool))
            pieces.append(pool[start : start + rng.randrange(1, 25)])
            pieces.append(rng.choice(ODD_CHARACTERS + [" ", "  ", "\n"]))
        text = "".join(pieces)
        assert_valid_spans(text, word_spans(text, lang), lang)


def test_ja_text_longer_than_sudachi_input_limit():
    text = "\n".join([SENTENCES["ja"] * 40] * 20)  # ~66,000 UTF-8 bytes per line, 20 lines
    spans = word_spans(text, "ja")
    assert_valid_spans(text, spans, "ja")
    assert len(spans) == 800 * len(word_spans(SENTENCES["ja"], "ja"))


@pytest.mark.parametrize("lang", MPMR_LANGS)
def test_empty_and_blank_text(lang):
    assert word_spans("", lang) == []
    assert word_spans(" \n\t ", lang) == []
    assert words("", lang) == []


@pytest.mark.parametrize("bad", ["xx", "EN", "zh-cn", "sw_TZ", ""])
def test_unknown_language_is_rejected_with_the_supported_list(bad):
    with pytest.raises(ValueError, match="supported languages: ar bn .* zh"):
        word_spans("text", bad)
    with pytest.raises(ValueError, match="supported languages"):
        get_word_tokenizer(bad)


def test_backend_info_names_a_version_for_every_language():
    for lang in MPMR_LANGS:
        info = backend_info(lang)
        assert info["backend"] and "==" in info["versions"], (lang, info)
    with pytest.raises(ValueError):
        backend_info("xx")


def test_spawned_worker_processes_give_the_in_process_result():
    langs = ["ja", "ko", "sw", "zh"]  # the stateful/dictionary backends; spaCy's import is slow
    jobs = [(SENTENCES[lang], lang) for lang in langs] * 2
    pickle.dumps(word_spans)  # workers receive the function by reference
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        in_workers = pool.starmap(word_spans, jobs, chunksize=1)
    assert in_workers == [word_spans(text, lang) for text, lang in jobs]
