"""A small synthetic multilingual Wikipedia (pages-articles XML, export-0.10) for demos and tests.

`python -m data_prep synth --out DIR --langs en,de,ru,zh,th,ar,hi` writes
`DIR/{lang}wiki-synth-pages-articles.xml.bz2` per language. Text is built from hand-written
word lists and sentence templates in each language's own script, and exercises everything the
mPMR pipeline must handle: entity articles whose first paragraph defines the entity, articles
linking to entities with `[[T]]`, `[[T|alias]]`, `[[t]]` (lower-case first letter), link trails
(`[[t]]s`) and redirect titles, `#REDIRECT` pages with `<redirect title=…/>`, one
disambiguation page, parenthetical titles, category pages (ns 14) and short stubs. Every entity
is linked from at least 12 distinct articles (when `articles_per_lang` >= 40). Output depends
only on (langs, articles_per_lang, seed). `--large N` writes large dumps with a Zipf link graph
instead (data_prep.synth_large).
"""

from __future__ import annotations

import argparse
import bz2
import hashlib
import os
import random
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from data_prep.synth_lexicon import LEXICON, Entity

MIN_INBOUND = 12  # distinct linking articles per entity
TIMESTAMP = "2024-01-01T00:00:00Z"


@dataclass
class _Page:
    title: str
    ns: int
    text: str
    redirect: str = ""


def supported_languages() -> list[str]:
    return sorted(LEXICON)


def write_synthetic_wiki(out_dir: str | Path, langs: list[str], *, articles_per_lang: int = 60,
                         seed: int = 0, described_mentions: float = 0.0,
                         generated_entities: bool = False) -> list[Path]:
    """Write one `{lang}wiki-synth-pages-articles.xml.bz2` per language; returns the paths.

    `articles_per_lang` counts namespace-0 content pages (entities, linking articles, stubs and
    the disambiguation page); redirect and category pages come on top.
    """
    unknown = [lang for lang in langs if lang not in LEXICON]
    if unknown:
        raise ValueError(f"no synthetic lexicon for {', '.join(unknown)}; "
                         f"supported: {', '.join(supported_languages())}")
    if not langs:
        raise ValueError("no languages given")
    if articles_per_lang < 12:
        raise ValueError(f"--articles-per-lang must be at least 12, got {articles_per_lang}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for lang in langs:
        generator = _Generator(lang, random.Random(f"synth-{seed}-{lang}"), described_mentions,
                               generated_entities)
        pages = generator.pages(articles_per_lang)
        path = out_dir / f"{lang}wiki-synth-pages-articles.xml.bz2"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(bz2.compress(_dump_xml(lang, pages).encode("utf-8"), 9))
        os.replace(tmp, path)
        paths.append(path)
    return paths


class _Generator:
    """Pages of one language; all randomness comes from `rng`."""

    def __init__(self, lang: str, rng: random.Random, described_mentions: float = 0.0,
                 generated_entities: bool = False):
        self.lang = lang
        self.described_mentions = described_mentions
        self.generated_entities = generated_entities
        self.lex = LEXICON[lang]
        self.rng = rng
        self.entities: list[Entity] = self.lex["entities"]
        self.joiner = self.lex["joiner"]
        self.cased = lang in ("en", "de", "ru")

    # ---- words and sentences

    def noun_phrase(self) -> tuple[str, str]:
        """(noun phrase as used in a sentence, the same as an article title)."""
        lex, rng = self.lex, self.rng
        gender = rng.choice(sorted(lex["nouns"]))
        noun = rng.choice(lex["nouns"][gender].split())
        adj = rng.choice(lex["adjs"].split())
        if self.lang == "en":
            return f"the {adj} {noun}", f"{adj.capitalize()} {noun}"
        if self.lang == "de":  # weak ending after the article, strong ending in titles
            article = {"m": "der", "f": "die", "n": "das"}[gender]
            strong = {"m": "er", "f": "e", "n": "es"}[gender]
            return f"{article} {adj}e {noun}", f"{adj.capitalize()}{strong} {noun}"
        if self.lang == "ru":
            if gender != "m":
                adj = adj[:-2] + ("ая" if gender == "f" else "ое")
            phrase = f"{adj} {noun}"
            return phrase, phrase[0].upper() + phrase[1:]
        if self.lang == "zh":
            return f"{adj}的{noun}", f"{adj}的{noun}"
        if self.lang == "th":
            return noun + adj, noun + adj
        if self.lang == "ar":
            phrase = f"{noun} {adj}ة" if gender == "f" else f"{noun} {adj}"
            return phrase, phrase
        if gender == "f" and adj.endswith("ा"):  # hi: बड़ा -> बड़ी
            adj = adj[:-1] + "ी"
        return f"{adj} {noun}", f"{adj} {noun}"

    def _generated_kind(self) -> str:
        """A description for a generated entity: two noun phrases ("the old bridge, the quiet
        lake"), distinctive enough that a mention's description identifies its entity."""
        sep = {"zh": "，", "th": " ", "ar": "، "}.get(self.lang, ", ")
        return self.noun_phrase()[0] + sep + self.noun_phrase()[0]

    def fill(self, template: str, **slots: str) -> str:
        rng = self.rng
        values = {
            "np": self.noun_phrase()[0], "np2": self.noun_phrase()[0],
            "person": rng.choice(self.lex["people"].split("|")),
            "year": str(rng.randrange(1500, 2020)),
        }
        values["vp"] = rng.choice(self.lex["vps"].split("|")).format(
            year=rng.randrange(1500, 2020))
        values.update(slots)
        sentence = template.format(**values)
        return _capitalize(sentence) if self.cased else sentence

    def filler(self) -> str:
        return self.fill(self.rng.choice(self.lex["fillers"]))

    def link(self, entity: Entity) -> tuple[str, str]:
        """(wikitext of one mention, its display text) in a randomly chosen link form."""
        forms = ["title"] * 3
        forms += ["alias"] * 2 if entity.aliases else []
        forms += ["redirect"] * 2 if entity.redirect else []
        form = self.rng.choice(forms)
        lower = _lower_first if entity.common and self.cased else str  # [[telescope]]
        if form == "alias":
            shown = self.rng.choice(entity.aliases)
            return f"{entity.art}[[{entity.title}|{shown}]]", entity.art + shown
        if form == "redirect":
            return f"{entity.art}[[{lower(entity.redirect)}]]", entity.art + lower(entity.redirect)
        if entity.common and self.cased:
            return f"{entity.art}[[{lower(entity.title)}]]", entity.art + lower(entity.title)
        if entity.name != entity.title:
            return f"{entity.art}[[{entity.title}|{entity.name}]]", entity.art + entity.name
        return f"{entity.art}[[{entity.title}]]", entity.art + entity.title

    def mention(self, entity: Entity) -> list[str]:
        """One sentence linking to `entity`, sometimes followed by an unlinked repeat."""
        rng = self.rng
        if entity.trail and rng.random() < 0.35:
            text, trail, sentence = entity.trail
            return [self.fill(sentence, e=f"[[{text}]]{trail}")]
        markup, shown = self.link(entity)
        if self.described_mentions and rng.random() < self.described_mentions:
            space = "" if self.lang in ("zh", "th") else " "
            markup = f"{markup}{space}({entity.kind})"  # "[[Danube]] (the second-longest river…)"
        sentences = [self.fill(rng.choice(self.lex["mentions"]), E=markup)]
        if rng.random() < 0.3:
            sentences.append(self.fill(rng.choice(self.lex["mentions"]), E=shown))
        return sentences

    def paragraphs(self, sentences: list[str]) -> str:
        out, i = [], 0
        while i < len(sentences):
            size = self.rng.randint(3, 5)
            out.append(self.joiner.join(sentences[i:i + size]))
            i += size
        return "\n\n".join(out)

    def category_link(self) -> str:
        return f"[[{self.lex['category_ns']}:{self.rng.choice(self.lex['categories'])}]]"

    # ---- pages

    def entity_page(self, entity: Entity, others: list[Entity]) -> _Page:
        rng, lex = self.rng, self.lex
        plain = _lower_first(entity.name) if entity.common and self.cased else entity.name
        extra = lex["definitions"][1:]
        rng.shuffle(extra)
        lead = [self.fill(lex["definitions"][0], B=f"{entity.art}'''{plain}'''",
                          kind=entity.kind)]
        names = {"name": entity.art + plain, "plain": plain}
        lead += [self.fill(t, **names) for t in extra[:2]] + [self.filler()]
        body = [self.filler() for _ in range(5)]
        for other in rng.sample(others, min(2, len(others))):
            body += self.mention(other)
        body.append(self.fill(extra[2], **names))
        rng.shuffle(body)
        text = self.joiner.join(lead) + "\n\n" + self.paragraphs(body) + "\n\n" + \
            self.category_link()
        return _Page(entity.title, 0, text)

    def linking_page(self, title: str, linked: list[Entity]) -> _Page:
        intro = self.fill(self.lex["intro"], B=f"'''{title}'''")
        body = [self.filler() for _ in range(self.lex.get("fillers_per_article", 6))]
        for entity in linked:
            body += self.mention(entity)
        self.rng.shuffle(body)
        return _Page(title, 0, intro + self.joiner + self.paragraphs(body) + "\n\n" +
                     self.category_link())

    def stub_page(self, title: str) -> _Page:
        intro = self.fill(self.lex["intro"], B=f"'''{title}'''")
        return _Page(title, 0, intro + "\n\n{{stub}}")

    def disambiguation_page(self) -> _Page:
        title, refer, items = self.lex["dab"]
        lines = [f"'''{title}''' {refer}"] + [f"* [[{t}]]{sep}{d}" for t, sep, d in items]
        templates = "{{disambiguation}}" if self.lang == "en" else \
            f"{{{{{self.lex['dab_template']}}}}}\n{{{{disambiguation}}}}"
        return _Page(title, 0, "\n".join(lines) + "\n\n" + templates)

    def pages(self, n_articles: int) -> list[_Page]:
        rng = self.rng
        n_entities = max(2, n_articles // 4)
        if not self.generated_entities:
            n_entities = min(len(self.entities), n_entities)
        n_stubs = max(1, n_articles // 20)
        n_linking = n_articles - n_entities - n_stubs - 1
        entities = self.entities[:n_entities]
        taken = {e.title for e in self.entities} | {e.redirect for e in self.entities}
        taken.add(self.lex["dab"][0])
        while len(entities) < n_entities:  # beyond the lexicon: noun-phrase entities
            title = self.noun_phrase()[1]
            if title not in taken:
                taken.add(title)
                entities.append(Entity(title, self._generated_kind()))
        titles = []
        while len(titles) < n_linking + n_stubs:
            title = self.noun_phrase()[1]
            if title in taken:
                title = f"{title} ({rng.randrange(2, 99)})"
            if title not in taken:
                taken.add(title)
                titles.append(title)
        per_entity = min(n_linking, max(MIN_INBOUND, 5 * n_linking // n_entities))
        linked: list[list[Entity]] = [[] for _ in range(n_linking)]
        for entity in entities:
            for article in rng.sample(range(n_linking), min(n_linking, per_entity +
                                                            rng.randrange(4))):
                linked[article].append(entity)
        pages = [self.entity_page(e, [o for o in entities if o is not e]) for e in entities]
        pages += [self.linking_page(t, sorted(lk, key=entities.index))
                  for t, lk in zip(titles, linked)]
        pages += [self.stub_page(t) for t in titles[n_linking:]]
        pages.append(self.disambiguation_page())
        word = self.lex["redirect_word"]
        pages += [_Page(e.redirect, 0, f"{word} [[{e.title}]]", redirect=e.title)
                  for e in entities if e.redirect]
        cat_ns = self.lex["category_ns"]
        pages += [_Page(f"{cat_ns}:{c}", 14, self.lex["category_text"].format(c=c))
                  for c in self.lex["categories"]]
        rng.shuffle(pages)
        return pages


def write_synthetic_ner(out_dir: str | Path, langs: list[str], *, sentences: int = 300,
                        seed: int = 0) -> list[Path]:
    """Person-name NER sentences in the synthetic languages, XTREME / PAN-X format
    (`token<TAB>IOB2 tag`, blank line between sentences): `DIR/{train,dev}-{lang}.tsv` with
    `sentences` each. Sentences are the dumps' templates that name a person ("According to
    Sarah Lewis, the old bridge was built in 1802."); the person is the only entity (B-/I-PER).
    Words come from `data_prep.wordtok.word_spans`, characters for zh/th (as PAN-X zh). Output
    depends only on (langs, sentences, seed); the dev split uses other draws than train."""
    from data_prep.wordtok import word_spans

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for lang in langs:
        for split in ("train", "dev"):
            generator = _Generator(lang, random.Random(f"synth-ner-{seed}-{split}-{lang}"))
            lex, rng = generator.lex, generator.rng
            templates = [t for t in lex["fillers"] + lex["mentions"] if "{person}" in t]
            blocks = []
            for _ in range(sentences):
                person = rng.choice(lex["people"].split("|"))
                entity = rng.choice(generator.entities)
                text = generator.fill(rng.choice(templates), person=person,
                                      E=entity.art + entity.name)
                start = text.find(person)
                assert start >= 0, (lang, text)  # names are never inflected by the templates
                end = start + len(person)
                if lang in ("zh", "th"):
                    spans = [(i, i + 1) for i, c in enumerate(text) if not c.isspace()]
                else:
                    spans = word_spans(text, lang)
                lines, previous = [], "O"
                for a, b in spans:
                    inside = start <= a and b <= end
                    tag = ("I-PER" if previous != "O" else "B-PER") if inside else "O"
                    lines.append(f"{text[a:b]}\t{tag}\n")
                    previous = tag
                blocks.append("".join(lines))
            path = out_dir / f"{split}-{lang}.tsv"
            path.write_text("\n".join(blocks) + "\n", encoding="utf-8")
            paths.append(path)
    return paths


def _capitalize(sentence: str) -> str:
    """Upper-case the first visible letter (inside bold or the display part of a link)."""
    i = 0
    if sentence.startswith("[["):
        close = sentence.find("]]")
        bar = sentence.find("|", 0, close)
        i = bar + 1 if bar != -1 else 2
    while i < len(sentence) and not sentence[i].isalpha():
        i += 1
    return sentence[:i] + sentence[i:i + 1].upper() + sentence[i + 1:]


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _sha1_base36(text: str) -> str:
    value = int(hashlib.sha1(text.encode("utf-8")).hexdigest(), 16)
    digits = ""
    while value:
        value, rem = divmod(value, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[rem] + digits
    return digits.rjust(31, "0")


def _xml_header(lang: str) -> list[str]:
    """Lines of the dump before the first page (siteinfo)."""
    lex = LEXICON[lang]
    return [
        '<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:schemaLocation="http://www.mediawiki.org/xml/export-0.10/ '
        f'http://www.mediawiki.org/xml/export-0.10.xsd" version="0.10" xml:lang="{lang}">',
        "  <siteinfo>", "    <sitename>Wikipedia</sitename>", f"    <dbname>{lang}wiki</dbname>",
        f"    <base>https://{lang}.wikipedia.org/wiki/Synthetic</base>",
        "    <generator>xpretrain data_prep.synth</generator>", "    <case>first-letter</case>",
        "    <namespaces>", '      <namespace key="0" case="first-letter" />',
        f'      <namespace key="10" case="first-letter">{lex["template_ns"]}</namespace>',
        f'      <namespace key="14" case="first-letter">{lex["category_ns"]}</namespace>',
        "    </namespaces>", "  </siteinfo>",
    ]


XML_FOOTER = "</mediawiki>\n"


def _xml_page(page_id: int, page: _Page) -> list[str]:
    """Lines of one <page> element (revision id 1000 + page_id)."""
    out = ["  <page>", f"    <title>{escape(page.title)}</title>", f"    <ns>{page.ns}</ns>",
           f"    <id>{page_id}</id>"]
    if page.redirect:
        out.append(f"    <redirect title={quoteattr(page.redirect)} />")
    n_bytes = len(page.text.encode("utf-8"))
    out += ["    <revision>", f"      <id>{1000 + page_id}</id>",
            f"      <timestamp>{TIMESTAMP}</timestamp>",
            "      <contributor>", "        <username>Synth</username>",
            "        <id>1</id>", "      </contributor>",
            "      <model>wikitext</model>", "      <format>text/x-wiki</format>",
            f'      <text bytes="{n_bytes}" xml:space="preserve">{escape(page.text)}</text>',
            f"      <sha1>{_sha1_base36(page.text)}</sha1>", "    </revision>", "  </page>"]
    return out


def _dump_xml(lang: str, pages: list[_Page]) -> str:
    out = _xml_header(lang)
    for page_id, page in enumerate(pages, 1):
        out += _xml_page(page_id, page)
    out.append(XML_FOOTER)
    return "\n".join(out)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "synth", help="write a small synthetic multilingual Wikipedia dump",
        description="Write DIR/{lang}wiki-synth-pages-articles.xml.bz2 per language.")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--langs", default=",".join(supported_languages()),
                        help=f"comma-separated, from {','.join(supported_languages())}")
    parser.add_argument("--articles-per-lang", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--described-mentions", type=float, default=0.0, metavar="P",
                        help="share of linked mentions followed by the entity's description in "
                        "parentheses, e.g. 'the [[Danube]] (the second-longest river in Europe)' "
                        "(default 0)")
    parser.add_argument("--ner-sentences", type=int, default=0, metavar="N",
                        help="also write DIR/ner/{train,dev}-{lang}.tsv: N person-name NER "
                        "sentences per split in XTREME format (default 0: none)")
    parser.add_argument("--generated-entities", action="store_true",
                        help="one entity per 4 articles even beyond the hand-written lexicon "
                        "(16 per language): the extra ones are noun phrases with generated "
                        "descriptions")
    parser.add_argument("--large", type=int, default=0, metavar="N",
                        help="instead, one large dump per language (en only) of N articles with "
                        "a Zipf link graph, redirects and disambiguation pages, for scale "
                        "benchmarks: DIR/{lang}wiki-large-N-pages-articles.xml.bz2")
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    langs = [lang.strip() for lang in args.langs.split(",") if lang.strip()]
    if not 0.0 <= args.described_mentions <= 1.0:
        raise ValueError(f"--described-mentions must be in [0, 1], got {args.described_mentions}")
    if args.ner_sentences < 0:
        raise ValueError(f"--ner-sentences must be >= 0, got {args.ner_sentences}")
    if args.large:
        from data_prep.synth_large import write_large_wiki

        for lang in langs:
            path, counts = write_large_wiki(args.out, lang, args.large, seed=args.seed)
            print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB): " +
                  ", ".join(f"{k} {v}" for k, v in counts.items()))
        return 0
    paths = write_synthetic_wiki(args.out, langs, articles_per_lang=args.articles_per_lang,
                                 seed=args.seed, described_mentions=args.described_mentions,
                                 generated_entities=args.generated_entities)
    if args.ner_sentences:
        paths += write_synthetic_ner(Path(args.out) / "ner", langs,
                                     sentences=args.ner_sentences, seed=args.seed)
    for path in paths:
        print(f"wrote {path} ({max(1, path.stat().st_size // 1024)} KiB)")
    return 0
