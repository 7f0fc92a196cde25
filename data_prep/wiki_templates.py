"""Inline templates for WikiExtractor, and repair of what dropped templates leave in the text.

WikiExtractor 3.1 expands a template only when it is given the template's wikitext (its ``templates``
lookup); without the template namespace of a dump every ``{{ndash}}``, ``{{convert|5|km}}`` or
``{{lang|grc|…}}`` vanishes, leaving "(1775 1783)" and "Albedo () or". :data:`TEMPLATES` gives short bodies,
written in the parser functions WikiExtractor evaluates, for the inline templates frequent in article
text; every other template expands to :data:`DROPPED`, and :func:`repair_husks` then removes the empty
parentheses and dangling separators that dropped templates leave ("(; born 1947)" -> "(born 1947)").

Never: change text that no dropped template touched; leave a :data:`DROPPED` marker in the output.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping

from wikiextractor import extract as wx

DROPPED = "\ue010"  # private-use: what a template without a body leaves until repair_husks runs

_UNITS = {  # {{convert}} unit codes -> the symbol Wikipedia prints (abbreviated form)
    "C": "°C", "F": "°F", "K": "K", "C-change": "°C", "F-change": "°F", "km2": "km²", "sqkm": "km²",
    "m2": "m²", "sqm": "m²", "cm2": "cm²", "sqmi": "sq mi", "sqft": "sq ft", "ft2": "sq ft", "sqin": "sq in",
    "m3": "m³", "km3": "km³", "cm3": "cm³", "cuft": "cu ft", "ft3": "cu ft", "cumi": "cu mi",
    "Tcuft": "trillion cu ft", "e6acre": "million acres", "e3acre": "thousand acres", "e6ha": "million ha",
    "e6km2": "million km²", "e6sqmi": "million sq mi", "e6carat": "million carats", "oilbbl": "bbl",
    "koilbbl": "thousand bbl", "Moilbbl": "million bbl", "Goilbbl": "billion bbl", "oilbbl/d": "bbl/d",
    "koilbbl/d": "thousand bbl/d", "Moilbbl/d": "million bbl/d", "USgal": "US gal", "impgal": "imp gal",
    "MUSgal": "million US gal", "PD/sqmi": "/sq mi", "PD/km2": "/km²", "LT": "long tons", "ST": "short tons",
    "MT": "t", "ftin": "ft", "mph": "mph", "kph": "km/h", "kmh": "km/h", "kn": "kn", "degC": "°C", "degF": "°F",
}
_RANGES = {  # {{convert|5|-|10|km}}: the second argument joins two values
    "-": "–", "–": "–", "&ndash;": "–", "&amp;ndash;": "–", "to": " to ", "to(-)": " to ", "and": " and ",
    "and(-)": " and ", "or": " or ", "by": " by ", "x": " × ", "×": " × ", "+/-": " ± ", "±": " ± ",
}
_MONTHS = ("January February March April May June July August September October November December").split()


def _switch(argument: str, cases: dict[str, str], default: str) -> str:
    body = "|".join(f"{case}={value}" for case, value in cases.items())
    return "{{#switch:%s|%s|#default=%s}}" % (argument, body, default)


def _convert_body() -> str:
    """Value(s) and the first unit only, as in "5 km" (Wikipedia adds the converted value in brackets);
    nothing where Wikipedia would show the converted value alone (disp=output only)."""
    ranged = {word: "{{{1}}}%s{{{3|}}} {{Convert/unit|{{{4|}}}}}" % sep.replace(" ", "&#32;")
              for word, sep in _RANGES.items()}
    shown = _switch("{{{2|}}}", ranged, "{{{1}}} {{Convert/unit|{{{2|}}}}}")
    return _switch("{{{disp|}}}", {"output only": DROPPED, "output number only": DROPPED}, shown)


_SPACED_NDASH = "\xa0– "
# Lower-case template name (underscores as spaces) -> body. Bodies follow what Wikipedia renders, minus
# formatting, links to the template's own topic and footnotes: pronunciation guides (IPA, respellings,
# audio) and footnotes ({{efn}}, {{refn}}, {{sfn}}) are dropped like every undefined template.
TEMPLATES: dict[str, str] = {
    **dict.fromkeys(("ndash", "en dash"), "–"),
    **dict.fromkeys(("snd", "spnd", "sndash", "spaced ndash", "spaced en dash"), _SPACED_NDASH),
    "snds": _SPACED_NDASH + "{{{1|}}} –\xa0",
    **dict.fromkeys(("mdash", "em dash", "mdashb"), "—"),
    "spaced mdash": "\xa0— ",
    **dict.fromkeys(("nbsp", "spaces"), "\xa0"),  # as WikiExtractor renders &nbsp;
    "·": "\xa0· ", "•": "\xa0• ", "dot": "\xa0· ", "middot": "·", "'s": "'s", "okina": "ʻ",
    **dict.fromkeys(("convert", "cvt"), _convert_body()),
    "convert/unit": _switch("{{{1|}}}", _UNITS, "{{{1|}}}"),
    **dict.fromkeys(("lang", "script", "transl", "transliteration"), "{{#if:{{{3|}}}|{{{3}}}|{{{2|}}}}}"),
    **dict.fromkeys(("nowrap", "nobr", "no wrap", "nobreak", "small", "smaller", "big", "larger", "large",
                     "sc", "smallcaps", "small caps", "sup", "sub", "vanchor", "visible anchor", "nts",
                     "unicode", "polytonic", "iast", "ill", "interlanguage link", "nq", "nastaliq"), "{{{1|}}}"),
    "lang-zh": "{{{1|{{{c|{{{t|{{{s|{{{p|}}}}}}}}}}}}}}}",
    **dict.fromkeys(("circa", "c.", "ca."), "c.{{#if:{{{1|}}}|&nbsp;{{{1}}}}}"),
    "sic": "{{#if:{{{1|}}}|{{{1}}}{{{2|}}}&#32;}}{{#if:{{{hide|}}}||[sic]}}",
    "nihongo": "{{{1|}}} ({{{2|}}}{{#if:{{{3|}}}|, {{{3}}}}}{{#if:{{{4|}}}|, {{{4}}}}})",
    "angbr": "⟨{{{1|}}}⟩",
    **dict.fromkeys(("frac", "sfrac"),
                    "{{#if:{{{3|}}}|{{{1}}}&#32;{{{2}}}⁄{{{3}}}|{{#if:{{{2|}}}|{{{1}}}⁄{{{2}}}|1⁄{{{1|}}}}}}}"),
    "val": "{{{1|}}}{{#if:{{{u|{{{ul|}}}}}}|&nbsp;{{{u|{{{ul|}}}}}}}}",
    "chem": "".join("{{{%d|}}}" % i for i in range(1, 13)),
    **dict.fromkeys(("quote", "blockquote", "quotation"), "{{{text|{{{quote|{{{1|}}}}}}}}}"),
    "oldstyledate": "{{{1|}}} [O.S. {{{3|}}}] {{{2|}}}",
    "as of": "{{#if:{{{alt|}}}|{{{alt}}}|{{#if:{{{since|}}}|{{#if:{{{lc|}}}|since|Since}}|"
             "{{#if:{{{lc|}}}|as of|As of}}}}&#32;{{#if:{{{3|}}}|{{{3|}}}&#32;}}"
             "{{#if:{{{2|}}}|{{Month name|{{{2}}}}}&#32;}}{{{1|}}}}}",
    "month name": _switch("{{{1|}}}", {**{str(i): m for i, m in enumerate(_MONTHS, 1)},
                                       **{f"{i:02d}": m for i, m in enumerate(_MONTHS, 1)}}, "{{{1|}}}"),
}
_FAMILIES = (("lang-", "{{{1|}}}"), ("ipac-", DROPPED), ("ipa-", DROPPED))  # {{lang-grc|…}}, {{IPA-el|…}}


@functools.lru_cache(maxsize=4096)
def template_body(title: str) -> str:
    """Body for a template title as WikiExtractor qualifies it ("Ndash", "Template:Lang-fr"); DROPPED if unknown."""
    name = title.split(":", 1)[1] if title.lower().startswith("template:") else title
    name = " ".join(name.replace("_", " ").split()).lower()
    if name in TEMPLATES:
        return TEMPLATES[name]
    for prefix, body in _FAMILIES:
        if name.startswith(prefix):
            return body
    return DROPPED


class _InlineTemplates(Mapping):
    """WikiExtractor's template lookup: every title is defined; unknown ones expand to DROPPED."""

    def __contains__(self, title: object) -> bool:
        return isinstance(title, str)

    def __getitem__(self, title: str) -> str:
        return template_body(title)

    def __iter__(self):
        return iter(TEMPLATES)

    def __len__(self) -> int:
        return len(TEMPLATES)


INLINE_TEMPLATES = _InlineTemplates()


_PLAIN_NAME_RE = re.compile(r"\s*([^{}|:#<>\[\]&]+?)\s*(?:\||$)")  # a title that needs no expansion


class TemplateExtractor(wx.Extractor):
    """``wx.Extractor`` with :data:`INLINE_TEMPLATES`; the page-level expansion ends with :func:`repair_husks`."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, templates=INLINE_TEMPLATES, **kwargs)
        self._expansion_depth = 0

    def expandTemplate(self, body: str) -> str:  # noqa: N802 -- WikiExtractor's name
        name = _PLAIN_NAME_RE.match(body)  # unknown template: skip expanding arguments that are thrown away
        if name and name.group(1).lower() not in self.magicWords.values and template_body(name.group(1)) == DROPPED:
            return DROPPED
        return super().expandTemplate(body)

    def expandTemplates(self, wikitext: str) -> str:  # noqa: N802 -- WikiExtractor's name
        self._expansion_depth += 1
        try:
            text = super().expandTemplates(wikitext)
        finally:
            self._expansion_depth -= 1
        return repair_husks(text) if self._expansion_depth == 0 else text


# In WikiExtractor's input (XML-escaped wikitext) refs and comments are "&lt;ref…&gt;" and "&lt;!--…--&gt;";
# they sit between a template and its separator ("{{IPAc-en|…}};<ref>…</ref> born") and vanish later anyway.
# An entity's ";" is no separator: repair_husks hides it as _SEMI first, and the patterns spell it so.
_SEMI = "\ue011"
_SEPS = ",;:，；：、"  # separators, full-width ones too (zh, ja)
_ENTITY_RE = re.compile(r"&(?:amp;)*[#\w]+;")
_IGNORABLE = (r"&lt;ref\b(?:(?!&gt;).)*?/&gt;"
              r"|&lt;ref\b(?:(?!&gt;).)*&gt;(?:(?!&lt;/?ref\b).)*&lt;/ref\s*&gt;|&lt;!--(?:(?!--&gt;).)*--&gt;"
              ).replace(";", _SEMI)
_GAP = r"(?>[ \t\xa0]|&amp;nbsp;|%s)".replace(";", _SEMI) % _IGNORABLE  # atomic: no backtracking into a gap
_HUSK_RE = re.compile(  # a run of separators and gaps around at least one dropped template
    r"(?=[ \t\xa0(（&%s%s])(?P<pre>[ \t\xa0]*+)(?P<open>[(（])?(?P<run>(?:%s|[%s])*+%s(?:%s|%s|[%s])*+)"
    r"(?P<close>[)）])?" % (DROPPED, _SEPS, _GAP, _SEPS, DROPPED, _GAP, DROPPED, _SEPS),
    re.DOTALL,
)
_IGNORABLE_RE = re.compile(_IGNORABLE, re.DOTALL)


def _repair(m: re.Match) -> str:
    pre, run = m.group("pre"), m.group("run")
    opened, closed = m.group("open") is not None, m.group("close") is not None
    separators = [c for c in _IGNORABLE_RE.sub("", run) if c in _SEPS]
    if opened and closed:  # "Albedo ({{IPAc-en|…}}) or" -> "Albedo or"
        return ""
    if not separators:
        return m.group()
    if opened:  # "({{IPAc-en|…}}; born" -> "(born"
        return pre + m.group("open")
    if closed:  # ", {{IPA-el|…}})" -> ")"
        return m.group("close")
    before = m.string[m.start() - 1] if m.start() else "\n"
    if before == "\n":  # a line's own ":" / ";" markup
        return m.group()
    after = m.string[m.end()] if m.end() < len(m.string) else "\n"
    return separators[-1] + ("" if after == "\n" else " ")  # "X, {{…}}; Y" -> "X; Y"


# What the husks look like in extracted text (bench/wiki_text.py and the tests count these).
HUSK_PATTERNS = {
    "empty brackets": re.compile(r"\(\s*[,;:]?\s*\)"),
    "bracket opening with a separator": re.compile(r"\(\s*[,;:]"),
    "bracket closing with a separator": re.compile(r"[,;]\s*\)"),
}


def repair_husks(text: str) -> str:
    """Remove empty brackets and doubled separators around :data:`DROPPED` markers, then every marker."""
    if DROPPED not in text:
        return text
    text = _ENTITY_RE.sub(lambda m: m.group().replace(";", _SEMI), text)
    return _HUSK_RE.sub(_repair, text).replace(DROPPED, "").replace(_SEMI, ";")
