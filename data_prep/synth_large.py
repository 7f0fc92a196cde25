"""Large synthetic Wikipedia dumps with a realistic link graph, for scale benchmarks of the builds.

`python -m data_prep synth --out DIR --langs en --large N` writes
`DIR/{lang}wiki-large-{N}-pages-articles.xml.bz2`: N namespace-0 articles whose titles are made
from the lexicon words (unique; collisions get a parenthetical qualifier, "Old bridge (river)"),
log-normal lengths, links drawn Zipf-distributed (exponent 1) over the N articles in the forms
`[[T]]`, `[[T|alias]]`, `[[t]]`, `[[t]]s` and through redirect titles, `#REDIRECT` pages,
disambiguation pages and a few category and template pages. Every article's lead defines it by
naming it in bold, as `synth.entity_page` does. Pages are written as they are made: memory holds
the titles (~200 bytes per article), never the dump. Output depends only on (lang, N, seed).
The small dumps of `data_prep.synth` are untouched by this module.
"""

from __future__ import annotations

import bz2
import math
import os
import random
from pathlib import Path

from data_prep.synth import XML_FOOTER, _capitalize, _Generator, _lower_first, _Page, _xml_header, \
    _xml_page
from data_prep.synth_lexicon import LEXICON

LARGE_LANGS = ("en",)  # the title grammar below is English
MEDIAN_WORDS = 320  # log-normal article length: median and sigma of its log, cap
SIGMA_WORDS = 0.9
MAX_WORDS = 20_000
MENTION_SHARE = 0.47  # body sentences that link: about 1 link per 25 words
REDIRECT_SHARE = 0.4  # redirect pages per article
DAB_SHARE = 0.02  # disambiguation pages per article, each listing 2-4 qualified articles
QUALIFIERS = ("river", "village", "film", "novel", "album", "ship", "mountain", "band",
              "company", "painting", "poem", "song", "town", "island", "newspaper", "opera",
              "journal", "festival", "battle", "treaty", "lake", "street", "building", "play")
HEADINGS = ("History", "Geography", "Description", "Legacy", "Reception", "See also")
POOL = 8192  # distinct filler sentences and mention frames drawn from
SLOT = "\x01"  # where a mention frame takes its link


def large_dump_path(out_dir: str | Path, lang: str, n_articles: int) -> Path:
    return Path(out_dir) / f"{lang}wiki-large-{n_articles}-pages-articles.xml.bz2"


class _Titles:
    """Unique article, redirect and disambiguation titles from the lexicon words.

    Patterns (share): "Old bridge" (10 %, common noun: linked lower-case too), "Lewis bridge"
    (10 %), "Old bridge of Lewis" (25 %, alias "the bridge of Lewis"), "Sarah Lewis museum" (15 %),
    "Old bridge of the quiet lake" (40 %, common). A title already taken gets a qualifier.
    """

    def __init__(self, lang: str, rng: random.Random):
        lex = LEXICON[lang]
        self.rng = rng
        self.adjs = lex["adjs"].split()
        self.nouns = lex["nouns"][""].split()
        self.people = [p.split() for p in lex["people"].split("|")]
        self.taken: set[str] = set()

    def core(self) -> tuple[str, str, bool]:
        """(title, alias or "", common) for one fresh draw (may be taken)."""
        rng = self.rng
        adj, noun = rng.choice(self.adjs), rng.choice(self.nouns)
        first, last = rng.choice(self.people)
        r = rng.random()
        if r < 0.10:
            return f"{adj.capitalize()} {noun}", "", True
        if r < 0.20:
            return f"{last} {noun}", "", False
        if r < 0.45:
            return f"{adj.capitalize()} {noun} of {last}", f"the {noun} of {last}", False
        if r < 0.60:
            return f"{first} {last} {noun}", "", False
        return (f"{adj.capitalize()} {noun} of the {rng.choice(self.adjs)} "
                f"{rng.choice(self.nouns)}", "", True)

    def fresh(self, qualify_taken: bool = True) -> tuple[str, str, bool]:
        while True:
            title, alias, common = self.core()
            if title in self.taken and qualify_taken:
                title = f"{title} ({self.rng.choice(QUALIFIERS)})"
            if title not in self.taken:
                self.taken.add(title)
                return title, alias, common


class _LargeWiki:
    """Titles and link graph of one large dump; `pages()` yields the pages in dump order."""

    def __init__(self, lang: str, n_articles: int, seed: int):
        self.rng = rng = random.Random(f"synth-large-{seed}-{lang}-{n_articles}")
        self.gen = _Generator(lang, rng)
        self.lex = self.gen.lex
        self.n = n_articles
        titles = _Titles(lang, rng)
        self.titles: list[str] = []
        self.aliases: list[str] = []
        self.common = bytearray(n_articles)
        self.dabs: dict[int, tuple[str, list[int]]] = {}  # last member -> (title, members)
        while len(self.titles) < n_articles:
            size = rng.randint(2, 4)
            if rng.random() < DAB_SHARE and len(self.titles) + size <= n_articles:
                base, alias, common = titles.fresh(qualify_taken=False)
                members = []
                for q in rng.sample(QUALIFIERS, size):
                    titles.taken.add(f"{base} ({q})")
                    members.append(self._add(f"{base} ({q})", "", common))
                self.dabs[members[-1]] = (base, members)
            else:
                self._add(*titles.fresh())
        self.redirects = [titles.fresh()[0] if rng.random() < REDIRECT_SHARE else ""
                          for _ in range(n_articles)]
        self.by_rank = list(range(n_articles))  # popularity rank -> article
        rng.shuffle(self.by_rank)
        self.log_n = math.log(n_articles + 1)
        self.fillers = [(s, s.count(" ") + 1) for s in (self.gen.filler() for _ in range(POOL))]
        self.frames = [self._frame() for _ in range(POOL)]
        self.stats = {"articles": n_articles, "redirects": 0, "disambiguation": len(self.dabs),
                      "other_namespaces": 0, "links": 0, "words": 0, "text_chars": 0}

    def _add(self, title: str, alias: str, common: bool) -> int:
        self.titles.append(title)
        self.aliases.append(alias)
        self.common[len(self.titles) - 1] = common
        return len(self.titles) - 1

    def _frame(self) -> tuple[str, int]:
        """A mention sentence with SLOT where the link goes, and its other words' count."""
        gen, rng, lex = self.gen, self.rng, self.lex
        values = {"np": gen.noun_phrase()[0], "np2": gen.noun_phrase()[0],
                  "person": rng.choice(lex["people"].split("|")),
                  "year": str(rng.randrange(1500, 2020)),
                  "vp": rng.choice(lex["vps"].split("|")).format(year=rng.randrange(1500, 2020))}
        frame = rng.choice(lex["mentions"]).format(E=SLOT, **values)
        if not frame.startswith(SLOT):
            frame = _capitalize(frame)
        return frame, frame.count(" ")

    def target(self, source: int) -> int:
        """An article drawn by popularity, P(rank k) ~ 1 / (k + 1.5) (Zipf, exponent 1)."""
        for _ in range(4):
            rank = int(math.exp(self.rng.random() * self.log_n)) - 1
            article = self.by_rank[min(rank, self.n - 1)]
            if article != source:
                return article
        return (source + 1) % self.n

    def link(self, article: int) -> tuple[str, str]:
        """(wikitext, display text) of one link to `article`, in a randomly chosen form."""
        rng, title = self.rng, self.titles[article]
        common, r = self.common[article], rng.random()
        if self.redirects[article] and r < 0.2:
            shown = self.redirects[article]
            shown = _lower_first(shown) if common and rng.random() < 0.5 else shown
            return f"[[{shown}]]", shown
        if title.endswith(")"):
            shown = title[:title.rindex(" (")]
            shown = _lower_first(shown) if common else shown
            return f"[[{title}|{shown}]]", shown
        if self.aliases[article] and r < 0.5:
            return f"[[{title}|{self.aliases[article]}]]", self.aliases[article]
        if common and r < 0.75:
            shown = _lower_first(title)
            if r < 0.35 and shown[-1].isalpha() and shown[-1] != "s":
                return f"[[{shown}]]s", shown + "s"  # link trail
            return f"[[{shown}]]", shown
        return f"[[{title}]]", title

    def article_text(self, article: int) -> str:
        rng, gen, lex, stats = self.rng, self.gen, self.lex, self.stats
        title = self.titles[article]
        name = title[:title.rindex(" (")] if title.endswith(")") else title
        words = min(MAX_WORDS, max(8, int(rng.lognormvariate(math.log(MEDIAN_WORDS),
                                                             SIGMA_WORDS))))
        extra = lex["definitions"][1:]
        lead = [gen.fill(lex["definitions"][0], B=f"'''{name}'''", kind=gen._generated_kind()),
                gen.fill(rng.choice(extra), name=name, plain=name)]
        count = sum(s.count(" ") + 1 for s in lead)
        chars = sum(len(s) for s in lead) - 6  # the bold quotes
        body, links = [], 0
        while count < words:
            if rng.random() < MENTION_SHARE:
                frame, n_words = self.frames[rng.randrange(POOL)]
                markup, shown = self.link(self.target(article))
                sentence = frame.replace(SLOT, _capitalize(markup) if frame[0] == SLOT else markup)
                body.append(sentence)
                count += n_words + shown.count(" ") + 1
                chars += len(frame) - 1 + len(shown)
                links += 1
            else:
                sentence, n_words = self.fillers[rng.randrange(POOL)]
                body.append(sentence)
                count += n_words
                chars += len(sentence)
        paragraphs, i = [" ".join(lead)], 0
        while i < len(body):
            size = rng.randint(3, 6)
            if len(paragraphs) % 4 == 0:
                paragraphs.append(f"== {rng.choice(HEADINGS)} ==")
            paragraphs.append(" ".join(body[i:i + size]))
            i += size
        if count < 80:
            paragraphs.append("{{stub}}")
        paragraphs.append(gen.category_link())
        stats["links"] += links
        stats["words"] += count
        stats["text_chars"] += chars
        return "\n\n".join(paragraphs)

    def pages(self):
        lex = self.lex
        cat_ns, tpl_ns = lex["category_ns"], lex["template_ns"]
        other = [_Page(f"{cat_ns}:{c}", 14, lex["category_text"].format(c=c))
                 for c in lex["categories"]]
        other += [_Page(f"{tpl_ns}:Stub", 10, "''This article is a [[stub]].''"),
                  _Page(f"{tpl_ns}:Disambiguation", 10, "''This page lists articles with "
                        "similar titles.''")]
        self.stats["other_namespaces"] = len(other)
        yield from other
        word, refer = lex["redirect_word"], lex["dab"][1]
        for article, title in enumerate(self.titles):
            yield _Page(title, 0, self.article_text(article))
            if self.redirects[article]:
                self.stats["redirects"] += 1
                yield _Page(self.redirects[article], 0, f"{word} [[{title}]]", redirect=title)
            if article in self.dabs:
                base, members = self.dabs[article]
                items = "\n".join(f"* [[{self.titles[m]}]]" for m in members)
                yield _Page(base, 0, f"'''{base}''' {refer}\n{items}\n\n{{{{disambiguation}}}}")


def write_large_wiki(out_dir: str | Path, lang: str, n_articles: int, *, seed: int = 0,
                     compresslevel: int = 1) -> tuple[Path, dict]:
    """Write `large_dump_path(out_dir, lang, n_articles)`; returns it and its counts.

    Counts: articles, redirects, disambiguation, other_namespaces (pages), links, words and
    text_chars of the articles' text without markup (what a parser keeps, roughly).
    `compresslevel` is bz2's block size (1: 100 kB blocks, fastest to write; any level reads).
    """
    if lang not in LARGE_LANGS:
        raise ValueError(f"--large: no title grammar for {lang}; supported: "
                         f"{', '.join(LARGE_LANGS)}")
    if n_articles < 100:
        raise ValueError(f"--large must be at least 100 articles, got {n_articles}")
    wiki = _LargeWiki(lang, n_articles, seed)
    path = large_dump_path(out_dir, lang, n_articles)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with bz2.open(tmp, "wb", compresslevel=compresslevel) as f:
        f.write(("\n".join(_xml_header(lang)) + "\n").encode("utf-8"))
        chunk, size = [], 0
        for page_id, page in enumerate(wiki.pages(), 1):
            chunk.append("\n".join(_xml_page(page_id, page)) + "\n")
            size += len(page.text)
            if size > 1 << 20:
                f.write("".join(chunk).encode("utf-8"))
                chunk, size = [], 0
        f.write(("".join(chunk) + XML_FOOTER).encode("utf-8"))
    os.replace(tmp, path)
    return path, dict(wiki.stats)
