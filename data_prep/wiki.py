"""Wikipedia input layer of the mPMR pipeline: dump or WikiExtractor JSON -> clean articles with link spans.

Accepts a pages-articles dump (``.xml``, ``.xml.bz2``, ``.xml.gz``; UTF-8 or UTF-16) that is cleaned with
WikiExtractor 3.1 used as a library (links kept), or ready WikiExtractor ``--json`` output (one file, a
compressed file, or a folder tree like ``AA/wiki_00.bz2``; links raw or HTML-escaped). Produces
:class:`WikiCorpus`: content articles in input order, the redirect map, and a counter of every skipped
page or problem. Bad pages and lines never raise: they are counted under ``WikiCorpus.skipped[reason]``;
a file that is no dump or JSON (empty, HTML, SQuAD JSON, binary) raises ValueError naming it. zh is read
in Simplified Chinese (text, titles, link targets and redirects; :mod:`data_prep.zh_convert`).

Never: resolve link targets through redirects (callers do, with :meth:`WikiCorpus.resolve`), iterate a set
to build output, or let the worker count change the result.
"""

from __future__ import annotations

import bz2
import codecs
import collections
import functools
import gzip
import html
import json
import logging
import multiprocessing
import re
import sys
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator
from urllib.parse import unquote
from xml.sax.saxutils import escape as xml_escape

from tqdm import tqdm
from wikiextractor import extract as wx

from data_prep import sniff, zh_convert
from data_prep.wiki_templates import TemplateExtractor

log = logging.getLogger(__name__)


@dataclass
class Link:
    """One anchor in :attr:`Article.text`; ``text[start:end]`` is the surface, link trail included."""

    start: int  # char offset where the anchor starts
    end: int  # exclusive; [[vein]]s -> anchor "veins"
    target: str  # normalise_title() of the href, NOT redirect-resolved


@dataclass
class Article:
    """A content article: plain text (paragraphs joined by "\\n") and its links sorted by start."""

    title: str
    text: str
    links: list[Link]


@dataclass
class WikiCorpus:
    """Articles in input order, redirects (source -> final target, chains resolved) and skip counts."""

    articles: list[Article]
    redirects: dict[str, str]
    skipped: collections.Counter = field(default_factory=collections.Counter)

    def resolve(self, title: str) -> str:
        """Final target of an already normalised ``title`` (itself when it is not a redirect)."""
        return self.redirects.get(title, title)


# ---------------------------------------------------------------------------------------------- titles

_ENTITY_RE = re.compile(r"&(?:#\d+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")
_SPACES_RE = re.compile(r"[\s_]+")


def _unescape_entities(text: str) -> str:
    """html.unescape restricted to ';'-terminated entities (so "&para..." in plain text survives)."""
    for _ in range(3):  # targets can be escaped twice (&amp;amp;)
        if "&" not in text:
            break
        new = _ENTITY_RE.sub(lambda m: html.unescape(m.group()), text)
        if new == text:
            break
        text = new
    return text


@functools.lru_cache(maxsize=1 << 16)  # link targets repeat a lot within a dump
def normalise_title(raw: str) -> str:
    """MediaWiki-style title: unquote, unescape, '_' -> ' ', no '#section', spaces collapsed, ucfirst.

    >>> normalise_title("united_states"), normalise_title("Vienna%23History"), normalise_title("AT&amp;T")
    ('United states', 'Vienna', 'AT&T')
    """
    title = _unescape_entities(unquote(raw))
    title = title.split("#", 1)[0]
    title = _SPACES_RE.sub(" ", title).strip(" ")
    title = title.lstrip(":").lstrip(" ")  # [[:Foo]] is a plain link to Foo
    if not title:
        return ""
    first = title[0].upper()
    if len(first) != 1:  # 'ß'.upper() == 'SS': MediaWiki keeps such letters as they are
        first = title[0]
    return first + title[1:]


# Wikis read in one script variant: page text, titles, link targets and redirects alike, so that links
# still resolve (zh: Simplified, see data_prep.zh_convert). Text converters see wikitext or WikiExtractor text.
_TEXT_CONVERTERS = {"zh": zh_convert.to_simplified}
_TITLE_CONVERTERS = {"zh": functools.lru_cache(maxsize=1 << 16)(zh_convert.t2s)}


def canonical_title(raw: str, lang: str) -> str:
    """:func:`normalise_title`, then in the script variant ``lang`` is read in ("漢字" -> "汉字" for zh)."""
    title = normalise_title(raw)
    convert = _TITLE_CONVERTERS.get(lang)
    return convert(title) if convert else title


# ----------------------------------------------------------------------------- per-language page rules

# Redirect magic words; a page is a redirect when its text starts with "#<any of these> [[...]]"
# in any language (tolerant: a German dump may hold English "#REDIRECT" pages).
_REDIRECT_WORDS = (
    "REDIRECT", "تحويل", "পুনর্নির্দেশ", "WEITERLEITUNG", "ΑΝΑΚΑΤΕΥΘΥΝΣΗ", "REDIRECCIÓN", "REDIRECCION",
    "REDIRIGIR", "UUDELLEENOHJAUS", "OHJAUS", "REDIRECTION", "पुनर्निर्देशन", "अनुप्रेषित", "ALIH", "RINVIA",
    "RINVIO", "RIMANDO", "転送", "リダイレクト", "넘겨주기", "DOORVERWIJZING", "PATRZ", "PRZEKIERUJ", "TAM",
    "REDIRECIONAMENTO", "REDIRECIONAR", "ПЕРЕНАПРАВЛЕНИЕ", "ПЕРЕНАПР", "OMDIRIGERING", "ELEKEZA",
    "దారిమార్పు", "เปลี่ยนทาง", "YÖNLENDİRME", "YÖNLENDİR", "ĐỔI", "重定向",
)
_REDIRECT_RE = re.compile(
    r"\s*#\s*(?:%s)\s*:?\s*\[\[([^\]|]*)" % "|".join(map(re.escape, _REDIRECT_WORDS)), re.IGNORECASE
)

# Disambiguation templates. English ones apply to every language (many wikis use {{disambig}} too).
_DAB_TEMPLATES_EN = (
    "disambiguation", "disambig", "disamb", "dab", "hndis", "geodis", "numberdis", "set index article", "sia",
    "shipindex", "mountainindex", "roadindex", "surname", "given name", "mathdab", "schooldis", "hospitaldis",
    "letter-number combination disambiguation", "dmbox",
)
_DAB_TEMPLATES = {
    "ar": ("توضيح", "صفحة توضيح"), "bn": ("দ্ব্যর্থতা নিরসন",), "de": ("Begriffsklärung", "BKL"),
    "el": ("αποσαφήνιση",), "es": ("desambiguación", "desambiguacion", "desambig", "des"),
    "fi": ("täsmennyssivu", "täsmennys"), "fr": ("homonymie", "bandeau standard pour page d'homonymie"),
    "hi": ("बहुविकल्पी शब्द", "बहुविकल्पी"), "id": ("disambiguasi",), "it": ("disambigua", "disambiguazione"),
    "ja": ("aimai", "曖昧さ回避"), "ko": ("동음이의", "동음이의어"), "nl": ("dp", "dpintro"),
    "pl": ("ujednoznacznienie",), "pt": ("desambiguação", "desambiguacao", "desambig"),
    "ru": ("неоднозначность", "многозначность"), "sv": ("förgrening", "gren"), "sw": ("maana",),
    "te": ("అయోమయ నివృత్తి",), "th": ("แก้ความกำกวม",), "tr": ("anlam ayrımı",),
    "vi": ("định hướng", "trang định hướng"), "zh": ("消歧义", "消歧義", "消歧异"),
}
# Title suffix of disambiguation pages, "Mercury (disambiguation)".
_DAB_TITLE_WORDS = {
    "ar": ("توضيح",), "bn": ("দ্ব্যর্থতা নিরসন",), "de": ("Begriffsklärung",), "el": ("αποσαφήνιση",),
    "es": ("desambiguación",), "fi": ("täsmennyssivu",), "fr": ("homonymie",), "hi": ("बहुविकल्पी",),
    "id": ("disambiguasi",), "it": ("disambigua",), "ja": ("曖昧さ回避",), "ko": ("동음이의",),
    "nl": ("doorverwijspagina",), "pl": ("ujednoznacznienie",), "pt": ("desambiguação",), "ru": ("значения",),
    "sv": ("olika betydelser",), "sw": ("maana",), "te": ("అయోమయ నివృత్తి",), "th": ("แก้ความกำกวม",),
    "tr": ("anlam ayrımı",), "vi": ("định hướng",), "zh": ("消歧义", "消歧義"),
}
# "X may refer to:" lines, the only disambiguation signal left in WikiExtractor JSON (best effort).
_MAY_REFER = {
    "en": ("may refer to", "may also refer to", "can refer to", "may stand for"),
    "de": ("steht für", "bezeichnet"), "es": ("puede referirse a", "puede hacer referencia a"),
    "fr": ("peut désigner", "peut faire référence"), "it": ("può riferirsi a", "può indicare"),
    "pt": ("pode referir-se a", "pode se referir a"), "nl": ("kan verwijzen naar",),
    "ru": ("может означать", "может относиться"), "pl": ("może oznaczać", "może odnosić się do"),
    "sv": ("kan syfta på", "kan avse"), "fi": ("voi tarkoittaa",), "tr": ("şu anlamlara gelebilir",),
    "id": ("dapat merujuk", "bisa merujuk"), "vi": ("có thể là", "có thể chỉ"), "zh": ("可以指", "可能指"),
    "ja": ("以下のものを指す",), "ko": ("다음을 가리킨다",),
}
_NON_ENTITY_LINK_PREFIXES = ("wikt:", "wiktionary:")  # WikiExtractor keeps these; they are no entities


def _names_regex(names: Iterable[str]) -> str:
    return "|".join(r"[ _]+".join(map(re.escape, n.split())) for n in names)


@dataclass(frozen=True)
class _Settings:
    """Everything a worker needs; small and picklable."""
    lang: str
    min_article_chars: int
    max_article_chars: int
    pack: object = None  # module-level (articles, lang) -> payload, run in the worker; None: keep Articles


@functools.lru_cache(maxsize=None)
def _dab_regexes(lang: str) -> tuple[re.Pattern, re.Pattern, re.Pattern]:
    """(template in raw wikitext, title suffix, "may refer to" line) for ``lang``."""
    templates = _DAB_TEMPLATES_EN + _DAB_TEMPLATES.get(lang, ())
    template_re = re.compile(
        r"\{\{\s*(?:template\s*:\s*)?(?:%s|[^{}|\n]*\bdisambiguation)\s*(?:\||\}\})" % _names_regex(templates),
        re.IGNORECASE,
    )
    title_re = re.compile(
        r"\((?:disambiguation|%s)\)\s*$" % _names_regex(_DAB_TITLE_WORDS.get(lang, ())), re.IGNORECASE
    )
    phrases = _MAY_REFER["en"] + (_MAY_REFER.get(lang, ()) if lang != "en" else ())
    refer_re = re.compile("|".join(map(re.escape, phrases)), re.IGNORECASE)
    return template_re, title_re, refer_re


def _is_dab_by_first_lines(text: str, refer_re: re.Pattern) -> bool:
    """A short line ending in ':' with a "may refer to" phrase among the first three paragraphs."""
    for line in text.split("\n", 3)[:3]:
        line = line.strip()
        if len(line) < 300 and line.endswith(":") and refer_re.search(line):
            return True
    return False


# ------------------------------------------------------------------------------------ anchors -> links

_ANCHOR_TOKEN_RE = re.compile(  # one literal "<" first: 15x faster than three alternatives each starting with "<"
    r'<(?:[aA]\s+href="(?P<href>[^"<>\n]*)"\s*>|(?P<close>/[aA]\s*>)|(?P<bad>[aA](?:\s+href\b[^>\n]*>?|\s*>)))'
)
_TRAIL_RE = re.compile(r"\w+")  # Unicode letters/digits right after </a> join the anchor ([[vein]]s)
# MediaWiki's link trail is per language and empty where words are not space-delimited.
NO_LINK_TRAIL = frozenset({"zh", "ja", "th"})
# Tags WikiExtractor leaves in place (e.g. <onlyinclude>); removed, content kept. Anchors are handled above.
_LEFTOVER_TAG_RE = re.compile(
    r"</?(?:%s)\b[^<>\n]*>" % "|".join("""onlyinclude includeonly noinclude span div font small big center sup sub br
    hr p b i u s abbr cite code tt blockquote poem ref references gallery math chem ce score syntaxhighlight source
    timeline imagemap mapframe maplink graph templatedata templatestyles nowiki pre table tr td th caption ul ol li
    dl dt dd section ins del mark var kbd samp q ruby rt rp rb wbr bdi bdo strike strong em time data hiero
    categorytree inputbox indicator charinsert languages translate""".split()),
    re.IGNORECASE,
)
_BLANK_LINES_RE = re.compile(r"\n[ \t]*(?=\n)")  # lines emptied by the removals above
_LEFTOVER_TEMPLATE_RE = re.compile(r"\{\{[^{}\n]*\}\}")  # e.g. {{eqm}} inside <chem>, left by WikiExtractor


def _split_anchors(marked: str, link_trail: bool = True) -> tuple[str, list[Link], int]:
    """Strip ``<a href="t">anchor</a>trail`` markup; return (text, links, number of broken anchors).

    Broken anchors (unclosed, stray close, no/empty href) lose their link but keep their text.
    """
    if "<" in marked:
        marked = _LEFTOVER_TAG_RE.sub("", marked)
    if "{{" in marked:
        marked = _LEFTOVER_TEMPLATE_RE.sub("", marked)
    marked = _BLANK_LINES_RE.sub("", marked).strip("\n")
    pieces: list[str] = []
    out_len = 0
    cursor = 0
    open_at, open_href = -1, None
    spans: list[tuple[int, int, str]] = []
    broken = 0
    for m in _ANCHOR_TOKEN_RE.finditer(marked):
        pieces.append(marked[cursor:m.start()])
        out_len += m.start() - cursor
        cursor = m.end()
        if m.group("href") is not None:
            broken += open_href is not None  # previous <a> never closed
            open_at, open_href = out_len, m.group("href")
        elif m.group("close"):
            if open_href is None:
                broken += 1
                continue
            trail = _TRAIL_RE.match(marked, cursor) if link_trail else None
            spans.append((open_at, out_len + (len(trail.group()) if trail else 0), open_href))
            open_href = None
        else:
            broken += 1
    pieces.append(marked[cursor:])
    broken += open_href is not None
    text = "".join(pieces)

    links: list[Link] = []
    prev_end = 0
    for start, end, href in spans:
        if not href.strip():
            broken += 1
            continue
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start == end or start < prev_end:
            continue
        target = normalise_title(href)
        lowered = target.lower()
        if lowered.startswith("w:"):
            target = normalise_title(target[2:])
        if not target or lowered.startswith(_NON_ENTITY_LINK_PREFIXES):  # "#Section" links: same page
            continue
        links.append(Link(start, end, target))
        prev_end = end
    return text, links, broken


# ---------------------------------------------------------------------------------- per-page cleaning

# A page job is (kind, title, text, timestamp): kind "xml" = raw wikitext, "json" = WikiExtractor text.
_Job = tuple[str, str, str, str]
_Result = tuple[str, "Article | None", int]  # (skip reason or "", article, broken anchors)


def _wikiextractor_clean(title: str, wikitext: str, timestamp: str, extractor_cls: type = TemplateExtractor) -> str:
    """WikiExtractor's cleaning of one page, links kept as ``<a href>``; paragraphs joined by "\\n".

    Fed XML-escaped text exactly like the WikiExtractor CLI (its pipeline assumes it), templates expanded
    against :mod:`data_prep.wiki_templates` (common inline templates; the rest dropped without leaving empty
    brackets; ``extractor_cls=wx.Extractor`` gives plain WikiExtractor), date magic words from the revision
    timestamp so output is reproducible.
    """
    extractor = extractor_cls("", "", "", title, [], keepLinks=True, keepSections=True)
    magic = extractor.magicWords
    magic["pagename"] = magic["fullpagename"] = title
    magic["namespace"] = ""
    magic["currentyear"], magic["currentmonth"] = timestamp[0:4], timestamp[5:7]
    magic["currentday"], magic["currenthour"], magic["currenttime"] = timestamp[8:10], timestamp[11:13], timestamp[11:19]
    escaped = xml_escape(wikitext, {'"': "&quot;"})
    text = wx.clean(extractor, escaped, expand_templates=True, html_safe=False)
    return "\n".join(wx.compact(text, extractor=extractor))


_ESCAPED = {"&lt;": "<", "&gt;": ">", "&amp;": "&"}
_ESCAPED_RE = re.compile("|".join(_ESCAPED))


def _unescape_json_text(text: str) -> str:
    """Undo ``html.escape(quote=False)`` of WikiExtractor's default html-safe output (a no-op on raw)."""
    return _ESCAPED_RE.sub(lambda m: _ESCAPED[m.group()], text) if "&" in text else text


def _process_page(settings: _Settings, job: _Job) -> _Result:
    """Clean one page (runs in a worker). Returns a skip reason or an Article."""
    kind, raw_title, body, timestamp = job
    title = canonical_title(raw_title, settings.lang)
    template_re, title_re, refer_re = _dab_regexes(settings.lang)
    if not title:
        return "missing_field", None, 0
    if not body.strip():
        return "empty_article", None, 0
    if len(body) > settings.max_article_chars:
        return "huge_article", None, 0
    if title_re.search(title) or (kind == "xml" and template_re.search(body)):
        return "disambiguation", None, 0
    convert_text, convert_title = _TEXT_CONVERTERS.get(settings.lang), _TITLE_CONVERTERS.get(settings.lang)
    if kind == "xml":
        if convert_text:  # on the wikitext: conversion markup may span lines and template arguments
            raw_title, body = convert_title(raw_title), convert_text(body)
        try:
            marked = _wikiextractor_clean(raw_title, body, timestamp)
        except Exception as err:  # noqa: BLE001 -- one odd page must not stop a whole-dump build
            log.debug("wikiextractor failed on %r: %s", raw_title, err)
            return "extractor_error", None, 0
    else:
        marked = _unescape_json_text(body)
        if convert_text:
            marked = convert_text(marked)
    text, links, broken = _split_anchors(marked, settings.lang not in NO_LINK_TRAIL)
    if convert_title:  # hrefs are URL-quoted and -{R|…}- text is kept as written: convert every target
        links = [Link(link.start, link.end, convert_title(link.target)) for link in links]
    if not text.strip():
        return "empty_article", None, broken
    if _is_dab_by_first_lines(text, refer_re):
        return "disambiguation", None, broken
    if len(text) < settings.min_article_chars:
        return "short_article", None, broken
    return "", Article(title, text, links), broken


# -------------------------------------------------------------------------------------------- reading

def _open_decompressed(path: Path) -> BinaryIO:
    """Open ``path`` for binary reading, transparently decompressing bz2/gzip (detected by magic bytes)."""
    with open(path, "rb") as probe:
        magic = probe.read(3)
    if magic == b"BZh":
        return bz2.open(path, "rb")
    if magic[:2] == b"\x1f\x8b":
        return gzip.open(path, "rb")
    return open(path, "rb")


# First two bytes of a UTF-16 dump -> codec ("utf-16" reads and drops the BOM itself); anything else is UTF-8.
_UTF16_CODECS = sniff.UTF16_STARTS


def _utf8_chunks(raw: BinaryIO, size: int = 1 << 20) -> Iterator[bytes]:
    """The stream in UTF-8 chunks whatever its encoding. Raises EOFError/OSError where a stream is cut.

    read1 takes one decompressor step at a time, so the data before a cut is yielded before the error.
    """
    head = raw.read(4)
    codec = _UTF16_CODECS.get(head[:2])
    if codec is None:
        yield head[3:] if head.startswith(b"\xef\xbb\xbf") else head
        while chunk := raw.read1(size):
            yield chunk
        return
    decoder = codecs.getincrementaldecoder(codec)(errors="replace")
    chunk = head
    while chunk:
        yield decoder.decode(chunk).encode("utf-8", "surrogatepass")
        chunk = raw.read1(size)
    yield decoder.decode(b"", final=True).encode("utf-8", "surrogatepass")


_PAGE_OPEN_RE = re.compile(rb"<page[\s>]")
_PAGE_CLOSE_RE = re.compile(rb"</page\s*>")
_ROOT_RE = re.compile(rb"<((?:\w+:)?mediawiki)\b[^>]*>")
_ROOT_CLOSE_RE = re.compile(rb"</(?:\w+:)?mediawiki\s*>")
_NAMESPACE_RE = re.compile(rb'<namespace\s+key="(-?\d+)"[^>/]*>([^<]+)</namespace>')


def _iter_page_bytes(raw: BinaryIO, skipped: collections.Counter) -> Iterator[tuple[bytes, bytes]]:
    """Yield (dump header, page bytes) for every complete ``<page>…</page>``; count a cut-off dump once.

    Pages are cut from the byte stream and parsed one by one (see _parse_page), so a broken page costs
    only itself: expat cannot resume after an error inside one big iterparse.
    """
    chunks = _utf8_chunks(raw)
    buf, pos, header = b"", 0, None
    cut = seen_root_close = eof = False
    while not eof:
        try:
            chunk = next(chunks, b"")
        except (EOFError, OSError) as err:  # a compressed stream that stops mid-block
            log.warning("dump stream ends early (%s); keeping the pages read before the cut", err)
            chunk, cut = b"", True
        eof = not chunk
        buf = buf[pos:] + chunk
        pos = 0
        if header is None:
            first = _PAGE_OPEN_RE.search(buf)
            if first is None and not eof:
                continue
            pos = first.start() if first else len(buf)
            header = buf[:pos]
            seen_root_close = bool(_ROOT_CLOSE_RE.search(header))
        while True:
            start = _PAGE_OPEN_RE.search(buf, pos)
            if start is None:
                seen_root_close = seen_root_close or bool(_ROOT_CLOSE_RE.search(buf, pos))
                pos = max(pos, len(buf) - 16)  # keep a "<page" split across two reads
                break
            close = _PAGE_CLOSE_RE.search(buf, start.end())
            if close is None:
                pos = start.start()
                break
            inner = _PAGE_OPEN_RE.search(buf, start.end(), close.start())
            if inner is not None:  # a page lost its </page>: drop it, go on from the next one
                skipped["malformed_xml"] += 1
                pos = inner.start()
                continue
            yield header, buf[start.start():close.end()]
            pos = close.end()
    if header is not None and (cut or _PAGE_OPEN_RE.search(buf, pos) or not seen_root_close):
        skipped["truncated_dump"] += 1


def _parse_page(
    wrapper: tuple[bytes, bytes], page: bytes, namespaces: dict[str, int]
) -> tuple[str, int, str | None, str, str]:
    """(title, ns, redirect target or None, wikitext, timestamp) of one ``<page>`` inside the dump's own
    root tag (any export namespace). Raises ET.ParseError on bad XML."""
    element = ET.fromstring(wrapper[0] + page + wrapper[1])[0]
    title = element.findtext("{*}title") or ""
    ns_text = (element.findtext("{*}ns") or "").strip()
    if ns_text.lstrip("-").isdigit():
        ns = int(ns_text)
    else:  # dumps before export-0.5 have no <ns>: infer it from a known namespace prefix
        ns = namespaces.get(title.split(":", 1)[0], 0) if ":" in title else 0
    redirect_el = element.find("{*}redirect")
    redirect = None if redirect_el is None else redirect_el.get("title", "")
    revisions = element.findall("{*}revision")
    revision = revisions[-1] if revisions else element
    text, timestamp = revision.findtext("{*}text") or "", revision.findtext("{*}timestamp") or ""
    return title, ns, redirect, text, timestamp


@dataclass
class _PageBatch:
    """Raw pages cut from one input file by the reader (main process), cleaned by a worker."""

    kind: str  # "xml" | "json"
    wrapper: tuple[bytes, bytes]  # xml: the dump's root tag, so a page parses in its namespace
    namespaces: dict[str, int]
    pages: list[bytes]


_BATCH_BYTES = 1 << 19  # a worker gets ~0.5 MB of raw pages at a time: cheap to send, fair to share


def _xml_batches(path: Path, skipped: collections.Counter) -> Iterator[_PageBatch]:
    """The pages of one dump in batches; counts a cut-off dump (see _iter_page_bytes)."""
    batch, size = None, 0
    with _open_decompressed(path) as raw:
        for header, page_bytes in _iter_page_bytes(raw, skipped):
            if batch is None:
                root = _ROOT_RE.search(header)
                wrapper = (root.group(), b"</" + root.group(1) + b">") if root else (b"<mediawiki>", b"</mediawiki>")
                namespaces = {name.decode("utf-8", "replace").strip(): int(key)
                              for key, name in _NAMESPACE_RE.findall(header)}
                batch = _PageBatch("xml", wrapper, namespaces, [])
            batch.pages.append(page_bytes)
            size += len(page_bytes)
            if size >= _BATCH_BYTES:
                yield batch
                batch, size = _PageBatch("xml", wrapper, namespaces, []), 0
    if batch is not None and batch.pages:
        yield batch


def _json_batches(path: Path, skipped: collections.Counter) -> Iterator[_PageBatch]:
    """The non-blank lines of one WikiExtractor JSON-lines file in batches; counts a cut-off file."""
    lines, size = [], 0
    with _open_decompressed(path) as raw:
        it = iter(raw)
        while True:
            try:
                line = next(it, None)
            except (EOFError, OSError):
                skipped["truncated_dump"] += 1
                break
            if line is None:
                break
            if not line.strip():
                continue
            lines.append(line)
            size += len(line)
            if size >= _BATCH_BYTES:
                yield _PageBatch("json", (b"", b""), {}, lines)
                lines, size = [], 0
    if lines:
        yield _PageBatch("json", (b"", b""), {}, lines)


def _page_jobs(batch: _PageBatch, lang: str, redirects: list[tuple[str, str]],
               skipped: collections.Counter) -> Iterator[_Job]:
    """Jobs for the content pages of a batch (runs in a worker); collects redirects in page order
    and counts every other page."""
    if batch.kind == "json":
        for line in batch.pages:
            try:
                record = json.loads(line.decode("utf-8"))
            except UnicodeDecodeError:
                skipped["invalid_utf8"] += 1
                continue
            except ValueError:
                skipped["malformed_json"] += 1
                continue
            if not isinstance(record, dict) or not all(isinstance(record.get(k), str) for k in ("title", "text")):
                skipped["missing_field"] += 1
                continue
            yield "json", record["title"], record["text"], ""
        return
    for page_bytes in batch.pages:
        try:
            title, ns, target, text, timestamp = _parse_page(batch.wrapper, page_bytes, batch.namespaces)
        except ET.ParseError:
            try:
                page_bytes.decode("utf-8")
                skipped["malformed_xml"] += 1
            except UnicodeDecodeError:
                skipped["invalid_utf8"] += 1
            continue
        if ns != 0:
            skipped["non_article_namespace"] += 1
            continue
        if target is None or not target.strip():  # no <redirect title=…/>: try "#REDIRECT [[…]]"
            match = _REDIRECT_RE.match(text)
            target = match.group(1) if match else target
        if target is not None:
            skipped["redirect"] += 1
            source, target = canonical_title(title, lang), canonical_title(target, lang)
            if lang in _TITLE_CONVERTERS and source == target:  # a variant spelling of its target
                continue
            if source and target:
                redirects.append((source, target))
            continue
        yield "xml", title, text, timestamp


def _dump_jobs(path: Path, lang: str, raw_redirects: dict[str, str],
               skipped: collections.Counter) -> Iterator[_Job]:
    """Jobs for the content pages of one dump, read in this process (benchmarks); collects
    redirects (first one wins) and counts every other page."""
    for batch in _xml_batches(path, skipped):
        redirects: list[tuple[str, str]] = []
        yield from _page_jobs(batch, lang, redirects, skipped)
        for source, target in redirects:
            raw_redirects.setdefault(source, target)


class _NotJSONOutput(ValueError):
    """WikiExtractor output without --json: fatal even beside other input, it needs a rerun."""


_EXPECTED = "expected a pages-articles XML dump (.xml, .xml.bz2, .xml.gz) or WikiExtractor --json output"
_JSON_RECORD_START_RE = re.compile(r'^\{\s*"(?:id|revid|url|title|text)"\s*:')


def _is_wikiextractor_json(lines: list[str], whole: bool) -> bool:
    """One of the first complete lines is a {"title", "text"} record (or the first article is longer
    than the head and starts like one)."""
    complete = lines if whole else lines[:-1]  # the last line of a partial head may be cut
    for line in complete[:20]:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("title"), str) \
                and isinstance(record.get("text"), str):
            return True
    return not complete and bool(_JSON_RECORD_START_RE.match(lines[0]))


def _sniff(path: Path) -> str:
    """"xml" or "json", from the (decompressed) start of the file. Raises ValueError naming the file and
    what it looks like when it is neither: empty, HTML, SQuAD JSON, binary, plain text, …"""
    head, whole = sniff.read_head(path)
    if not head and not whole:  # cut-off compressed file: trust its name, reading will count the cut
        if ".xml" in path.name or path.name.startswith("wiki_"):
            return "xml" if ".xml" in path.name else "json"
        raise ValueError(f"{path} cannot be decompressed (a broken or cut-off .bz2/.gz file): {_EXPECTED}")
    text = sniff.head_text(head)
    stripped = text.lstrip()
    looks = sniff.unusable(head, text)
    if looks is None and stripped.startswith("<"):
        if stripped.startswith("<doc"):
            raise _NotJSONOutput(f"{path} is WikiExtractor output without --json: rerun WikiExtractor with --json")
        kind = sniff.markup(stripped)
        if kind == "mediawiki":
            return "xml"
        looks = "an HTML page" if kind == "html" else (
            f"XML without <mediawiki> or <page> in its first {sniff.SNIFF_BYTES >> 10} KiB")
    elif looks is None and stripped[:1] in ("{", "["):
        lines = stripped.split("\n")
        if _is_wikiextractor_json(lines, whole):
            return "json"
        looks = sniff.json_document(stripped) or _json_lines_kind(lines[0])
    elif looks is None:
        looks = f"plain text (first line {stripped.split(chr(10), 1)[0][:60]!r})"
    raise ValueError(f"{path} is {looks}: {_EXPECTED}")


def _json_lines_kind(first: str) -> str:
    try:
        record = json.loads(first)
    except ValueError:
        return "JSON that is not JSON lines (one object per line)"
    if isinstance(record, dict):
        keys = ", ".join(sorted(map(str, record))[:6]) or "none"
        return f'JSON lines without "title" and "text" (keys of the first: {keys})'
    return f'JSON lines of {type(record).__name__}s, not of {{"title", "text"}} objects'


# WikiExtractor output (AA/wiki_00[.bz2]), JSON lines, dumps incl. parts like "…articles1.xml-p1p41242.bz2"
_INPUT_NAME_RE = re.compile(r"^wiki_\d+(\.bz2|\.gz)?$|\.jsonl?(\.bz2|\.gz)?$|\.xml")


def _natural_key(relative: str) -> list:
    """"articles2" before "articles10", so dump parts are read in page order."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", relative)]


def _input_files(path: Path) -> list[tuple[Path, str]]:
    """(file, "xml" | "json") in reading order for a file or a WikiExtractor output folder."""
    if not path.exists():
        raise FileNotFoundError(
            f"wiki input {path} does not exist: pass a pages-articles dump (.xml/.xml.bz2) "
            "or WikiExtractor JSON output (a file or its output folder, e.g. OUT/AA/wiki_00.bz2)"
        )
    if path.is_file():
        return [(path, _sniff(path))]
    candidates = sorted(
        (p for p in path.rglob("*") if p.is_file() and _INPUT_NAME_RE.search(p.name)),
        key=lambda p: _natural_key(p.relative_to(path).as_posix()),
    )
    files, rejected = [], []
    for candidate in candidates:
        try:
            files.append((candidate, _sniff(candidate)))
        except _NotJSONOutput:
            raise
        except ValueError as err:
            rejected.append(str(err).split(": expected", 1)[0])
    if not files:
        found = (f"; {rejected[0]}" + (f" (and {len(rejected) - 1} more such files)" if len(rejected) > 1 else "")
                 if rejected else "")
        raise ValueError(
            f"no wiki input found under {path}{found}: expected WikiExtractor output files (AA/wiki_00, "
            "AA/wiki_00.bz2, *.json[l]) or dumps (*.xml, *.xml.bz2)"
        )
    for reason in rejected:  # a stray file beside the real input: said, not fatal
        log.warning("skipping %s", reason)
    return files


def dump_language(path: str | Path) -> str | None:
    """Language of the first XML input under ``path``, from its header: ``xml:lang`` of ``<mediawiki>``,
    else ``<dbname>`` ("dewiki" -> "de"). None for JSON input or a header with neither. Reads only the
    header (the bytes before the first ``<page>``)."""
    files = _input_files(Path(path))
    xml = next((file for file, kind in files if kind == "xml"), None)
    if xml is None:
        return None
    header = b""
    try:
        with _open_decompressed(xml) as raw:
            for chunk in _utf8_chunks(raw):
                header += chunk
                if _PAGE_OPEN_RE.search(header) or len(header) > 1 << 22:
                    break
    except (EOFError, OSError):  # a cut stream: the header read so far
        pass
    page = _PAGE_OPEN_RE.search(header)
    header = header[:page.start()] if page else header
    root = _ROOT_RE.search(header)
    lang = re.search(rb'\bxml:lang\s*=\s*["\']([^"\']+)["\']', root.group()) if root else None
    if lang:
        return lang.group(1).decode("utf-8", "replace").strip().lower()
    dbname = re.search(rb"<dbname>\s*([A-Za-z_-]+?)wiki\s*</dbname>", header)
    return dbname.group(1).decode().replace("_", "-").lower() if dbname else None


def _resolve_redirect_chains(raw: dict[str, str], skipped: collections.Counter) -> dict[str, str]:
    """Map every source to its final target; sources caught in a cycle are dropped (counted)."""
    resolved: dict[str, str] = {}
    for source, target in raw.items():
        chain = {source}
        while target in raw and target not in chain:
            chain.add(target)
            target = raw[target]
        if target in chain:
            skipped["redirect_cycle"] += 1
            continue
        resolved[source] = target
    return resolved


@dataclass
class CleanedBatch:
    """A worker's result for one batch: per content page (skip reason or "", title, broken
    anchors), the kept pages' payload, redirects in page order, and the pages skipped before
    cleaning. ``payload`` is the list of Articles, or what ``_Settings.pack`` made of it."""

    pages: list[tuple[str, str, int]]
    payload: object
    redirects: list[tuple[str, str]]
    skipped: collections.Counter


def _clean_batch(settings: _Settings, batch: _PageBatch) -> CleanedBatch:
    """Parse and clean one batch of pages (runs in a worker)."""
    redirects: list[tuple[str, str]] = []
    skipped: collections.Counter = collections.Counter()
    pages, articles = [], []
    for job in _page_jobs(batch, settings.lang, redirects, skipped):
        reason, article, broken = _process_page(settings, job)
        pages.append((reason, article.title if article else "", broken))
        if article is not None:
            articles.append(article)
    payload = settings.pack(articles, settings.lang) if settings.pack else articles
    return CleanedBatch(pages, payload, redirects, skipped)


class Keeper:
    """Decides, batch by batch in input order, which articles are kept (the first of a title),
    and collects redirects (the first of a source) and skip counts."""

    def __init__(self):
        self.skipped: collections.Counter = collections.Counter()
        self.raw_redirects: dict[str, str] = {}
        self.titles: set[str] = set()  # a title seen twice (zh: two variants that convert alike) keeps the first

    def keep(self, cleaned: CleanedBatch) -> list[bool]:
        """A keep mask over ``cleaned.payload``."""
        for source, target in cleaned.redirects:
            self.raw_redirects.setdefault(source, target)
        self.skipped.update(cleaned.skipped)
        keep = []
        for reason, title, broken in cleaned.pages:
            if broken:
                self.skipped["broken_anchor"] += broken
            if reason:
                self.skipped[reason] += 1
            elif title in self.titles:
                self.skipped["duplicate_title"] += 1
                keep.append(False)
            else:
                self.titles.add(title)
                keep.append(True)
        return keep

    def finish(self, reader_skipped: collections.Counter) -> tuple[dict[str, str], collections.Counter]:
        """(redirects: source -> final target, skip counts sorted by reason), after the last batch;
        ``reader_skipped``: what the page cutter counted (cut-off dumps, pages without </page>)."""
        self.skipped.update(reader_skipped)
        for title in sorted(self.titles & self.raw_redirects.keys()):  # an article wins over a redirect of its title
            del self.raw_redirects[title]
            self.skipped["redirect_shadowed"] += 1
        redirects = _resolve_redirect_chains(self.raw_redirects, self.skipped)
        self.raw_redirects = {}
        return redirects, collections.Counter({reason: self.skipped[reason] for reason in sorted(self.skipped)})


class WikiReader:
    """Reads a dump or WikiExtractor output batch by batch, cleaning in a ``workers``-process pool
    with input order kept. Iterate it for (batch, keep mask over ``batch.payload``), then call
    :meth:`finish` for the redirect map and the skip counts. ``part`` (i, N): only the batches
    b with b % N == i, for :meth:`cleaned` (see `wiki_store.write_store_part`)."""

    def __init__(self, path: str | Path, lang: str, *, workers: int = 1, min_article_chars: int = 200,
                 max_article_chars: int = 1_000_000, progress: bool = True, pack=None,
                 part: tuple[int, int] | None = None):
        if not lang or not isinstance(lang, str):
            raise ValueError(f"lang must be a Wikipedia language code such as 'en', got {lang!r}")
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.path, self.lang, self.workers, self.progress = Path(path), lang, workers, progress
        self.files = _input_files(self.path)
        self.settings = _Settings(lang, min_article_chars, max_article_chars, pack)
        self.part = part
        self.reader_skipped: collections.Counter = collections.Counter()
        self.keeper = Keeper()

    def _batches(self, reader_skipped: collections.Counter) -> Iterator[_PageBatch]:
        seq = 0
        for file, kind in self.files:
            for batch in (_xml_batches if kind == "xml" else _json_batches)(file, reader_skipped):
                if self.part is None or seq % self.part[1] == self.part[0]:
                    yield batch
                seq += 1

    def cleaned(self) -> Iterator[CleanedBatch]:
        """The cleaned batches in input order (of this part)."""
        reader_skipped: collections.Counter = collections.Counter()  # written by the batch generator only
        # Pool.imap pulls its input eagerly; the semaphore caps batches in flight so a 20 GB dump is not queued.
        in_flight, stop = threading.Semaphore(self.workers * 3), threading.Event()
        pool = None

        def batches() -> Iterator[_PageBatch]:
            for batch in self._batches(reader_skipped):
                while pool is not None and not in_flight.acquire(timeout=0.2):
                    if stop.is_set():  # the consumer is gone (error, Ctrl-C): let the pool shut down
                        return
                yield batch

        process = functools.partial(_clean_batch, self.settings)
        # fork where available: workers need no re-import, callers need no `if __name__ == "__main__"` guard
        start_method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        if self.workers > 1:
            pool = multiprocessing.get_context(start_method).Pool(self.workers)
        bar = tqdm(desc=f"wiki[{self.lang}]", unit="page", disable=not self.progress, file=sys.stderr)
        try:
            for cleaned in (pool.imap(process, batches()) if pool else map(process, batches())):
                if pool is not None:
                    in_flight.release()
                bar.update(len(cleaned.pages))
                yield cleaned
        finally:
            stop.set()
            bar.close()
            if pool is not None:
                pool.terminate()
                pool.join()
            self.reader_skipped.update(reader_skipped)

    def __iter__(self) -> Iterator[tuple[CleanedBatch, list[bool]]]:
        for cleaned in self.cleaned():
            yield cleaned, self.keeper.keep(cleaned)

    def finish(self) -> tuple[dict[str, str], collections.Counter]:
        """(redirects: source -> final target, skip counts sorted by reason), after iterating."""
        return self.keeper.finish(self.reader_skipped)


def read_wiki(
    path: str | Path,
    lang: str,
    *,
    workers: int = 1,
    min_article_chars: int = 200,
    max_article_chars: int = 1_000_000,
    progress: bool = True,
) -> WikiCorpus:
    """Read a dump or WikiExtractor JSON output into a :class:`WikiCorpus` (in memory; the MRC
    build streams it to disk instead, :mod:`data_prep.wiki_store`).

    ``lang`` picks the disambiguation rules (any code works; unknown ones get the English rules) and, for
    "zh", conversion to Simplified Chinese. A title met twice (overlapping inputs; in zh two variants that
    convert alike) keeps the first article, later ones are counted as ``duplicate_title``; a redirect whose
    title is an article's is dropped and counted as ``redirect_shadowed``.
    ``min_article_chars`` applies to the cleaned text, ``max_article_chars`` to the raw page text.
    Pages are cleaned in a ``workers``-process pool with order preserved: the result never depends
    on ``workers``.
    """
    reader = WikiReader(path, lang, workers=workers, min_article_chars=min_article_chars,
                        max_article_chars=max_article_chars, progress=progress)
    began = time.perf_counter()
    articles: list[Article] = []
    for cleaned, keep in reader:
        articles.extend(a for a, kept in zip(cleaned.payload, keep) if kept)
    redirects, skipped = reader.finish()
    log.info(
        "read %d articles, %d redirects from %s in %.1f s; skipped %s",
        len(articles), len(redirects), path, time.perf_counter() - began, dict(skipped),
    )
    return WikiCorpus(articles=articles, redirects=redirects, skipped=skipped)
