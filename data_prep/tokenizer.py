"""Train, load and identify XLM-R-compatible SentencePiece tokenizers.

`python -m data_prep train-tokenizer` trains a SentencePiece **unigram** model (a BPE model would
be silently converted to unigram by `transformers` and segment differently) on plain text,
WikiExtractor JSON or Wikipedia dumps, and writes a Hugging Face folder that loads with
`XLMRobertaTokenizer.from_pretrained(folder)` / `AutoTokenizer.from_pretrained(folder)` with the
exact XLM-R id layout: `<s>`=0, `<pad>`=1, `</s>`=2, `<unk>`=3, SentencePiece piece i at i + 1
(fairseq offset), `<mask>` last. Output is deterministic for the same inputs and options.

This module never downloads anything: `load_tokenizer` reads a folder or the local HF cache only.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import io
import json
import random
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

SPM_FILE = "sentencepiece.bpe.model"  # the file name XLMRobertaTokenizer looks for
MODEL_MAX_LENGTH = 512  # XLM-R's positions
DUMP_SUFFIXES = (".xml", ".xml.bz2", ".xml.gz")
DEFAULT_THREADS = 8  # fixed, not os.cpu_count(): SentencePiece's result depends on it


def train_tokenizer(inputs: list[str | Path], vocab_size: int, out_dir: str | Path, *,
                    lang: str = "en", character_coverage: float = 0.9995, seed: int = 0,
                    input_sentence_size: int = 2_000_000,
                    num_threads: int = DEFAULT_THREADS, layout: str = "xlmr") -> Path:
    """Train a unigram SentencePiece model on `inputs` and write an XLM-R tokenizer folder.

    `vocab_size` counts SentencePiece pieces (XLM-R: 250,000); the HF vocabulary has two more
    (`<pad>`, `<mask>`). Small corpora may yield fewer pieces (`hard_vocab_limit=False`).
    At most `input_sentence_size` lines are used, sampled uniformly with `seed`.
    Returns `out_dir`, holding `sentencepiece.bpe.model`, `tokenizer.json` and
    `tokenizer_config.json`.
    """
    import sentencepiece as spm

    if layout not in LAYOUTS:
        raise ValueError(f"--layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    paths = _check_inputs(inputs)
    if vocab_size < 8:
        raise ValueError(f"--vocab-size {vocab_size} is too small (need at least 8)")
    if not 0 < character_coverage <= 1:
        raise ValueError(f"--character-coverage must be in (0, 1], got {character_coverage}")
    if input_sentence_size <= 0:
        raise ValueError(f"--input-sentence-size must be positive, got {input_sentence_size}")
    sentences = _sample_lines(training_lines(paths, lang), input_sentence_size, seed)
    if not sentences:
        raise ValueError(f"no text found in {', '.join(map(str, paths))}")
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences), model_writer=model, model_type="unigram",
            vocab_size=vocab_size, hard_vocab_limit=False, character_coverage=character_coverage,
            input_sentence_size=0, shuffle_input_sentence=False, max_sentence_length=1 << 14,
            num_threads=num_threads, unk_id=0, bos_id=1 if layout == "xlmr" else -1,
            eos_id=2 if layout == "xlmr" else -1, pad_id=-1, minloglevel=2)
    except RuntimeError as err:
        raise ValueError(_explain_spm_error(err, vocab_size, character_coverage)) from None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if layout == "glm":
        return _write_glm_folder(model.getvalue(), out_dir)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".train-") as tmp:
        (Path(tmp) / SPM_FILE).write_bytes(model.getvalue())
        tok = _xlmr_from_folder(tmp)
        tok.save_pretrained(tmp)
        for name in (SPM_FILE, "tokenizer.json", "tokenizer_config.json"):
            shutil.copyfile(Path(tmp) / name, out_dir / name)
    return out_dir


def load_tokenizer(path_or_name: str | Path):
    """Load an XLM-R fast tokenizer from our folder, an official `xlm-roberta-*` folder (with
    `sentencepiece.bpe.model` and/or `tokenizer.json`) or the local HF cache; never the hub."""
    path = Path(path_or_name)
    if path.is_dir() and is_glm_folder(path):
        from transformers import PreTrainedTokenizerFast

        return PreTrainedTokenizerFast.from_pretrained(str(path))
    if path.is_dir():
        if not ((path / SPM_FILE).is_file() or (path / "tokenizer.json").is_file()):
            raise FileNotFoundError(
                f"{path} holds no {SPM_FILE} or tokenizer.json — train one with "
                f"`python -m data_prep train-tokenizer` or pass an xlm-roberta folder")
        return _xlmr_from_folder(path)
    if path.exists():
        raise NotADirectoryError(f"tokenizer must be a folder, got the file {path}")
    try:
        return _xlmr_from_folder(str(path_or_name), local_files_only=True)
    except (OSError, ValueError):
        raise FileNotFoundError(
            f"tokenizer {str(path_or_name)!r} not found: no such folder and not in the local "
            f"Hugging Face cache (downloads are off)") from None


def tokenizer_info(tok) -> dict:
    """Identity and special ids of a loaded tokenizer, as stored in data manifests.

    `fingerprint` hashes the backend tokenizer's canonical JSON (without the mutable
    truncation/padding state), so it is stable across loads and changes with the model.
    """
    state = json.loads(tok.backend_tokenizer.to_str())
    state.pop("truncation", None)
    state.pop("padding", None)
    canonical = json.dumps(state, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    name = str(tok.name_or_path)
    if Path(name).exists():  # readers of a manifest find it from any working directory
        name = str(Path(name).resolve())
    fingerprint = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    if GLM_TOKENS[-1] in tok.get_vocab():
        first = tok.convert_tokens_to_ids(GLM_TOKENS[0])
        ids = {key: first + k for k, key in enumerate(GLM_KEYS) if key}
        ends = sorted(i for piece, i in tok.get_vocab().items()
                      if i < first and any(c in piece for c in SENTENCE_END_CHARS))
        return {"name_or_path": name, "fingerprint": fingerprint, "layout": "glm",
                "vocab_size": len(tok), "padded_vocab_size": -(-len(tok) // 128) * 128,
                "pad_id": first, **ids, "unk_id": 0, "sentence_end_ids": ends}
    return {
        "name_or_path": name,
        "fingerprint": fingerprint,
        "vocab_size": len(tok),
        "pad_id": tok.pad_token_id,
        "cls_id": tok.cls_token_id,
        "sep_id": tok.sep_token_id,
        "unk_id": tok.unk_token_id,
        "mask_id": tok.mask_token_id,
    }


LAYOUTS = ("xlmr", "glm")
# GLM's command tokens after the N pieces, in id order N, N+1, … (spec mGLM.md A2.2;
# M:SwissArmyTransformer/tokenization/glm/tokenization.py:424-470). N+5 is unused there: ours
# holds a placeholder so that the ids stay contiguous.
GLM_TOKENS = ("<|endoftext|>", "[SEP]", "[CLS]", "[MASK]", "[UNK]", "<|unused|>",
              "<|startofpiece|>", "<|endofpiece|>", "[sMASK]", "[gMASK]", "[dBLOCK]")
GLM_KEYS = ("eos_id", "sep_id", "cls_id", "mask_id", "glm_unk_id", None, "sop_id", "eop_id",
            "smask_id", "gmask_id", "dblock_id")
GLM_SPM_FILE = "glm.spm.model"
# A piece holding one of these ends a sentence for blank infilling: the packer's set plus the
# collator's (M:data_utils/datasets.py:531-546, M:blocklm_utils.py:76-100; mGLM.md A1.0, A1.3).
SENTENCE_END_CHARS = ".?!;:\n。？！；…"


def is_glm_folder(path: Path) -> bool:
    return (path / GLM_SPM_FILE).is_file() and (path / "tokenizer.json").is_file()


def _write_glm_folder(spm_model: bytes, out_dir: Path) -> Path:
    """SentencePiece pieces at ids 0..N-1 (piece 0 = <unk>) as a `tokenizers` Unigram model,
    NFKC + Metaspace like SentencePiece's defaults, then GLM_TOKENS as special added tokens
    (the three masks strip the space before them); a stock PreTrainedTokenizerFast folder."""
    import sentencepiece as spm
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    sp = spm.SentencePieceProcessor(model_proto=spm_model)
    vocab = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    backend = Tokenizer(models.Unigram(vocab, unk_id=0, byte_fallback=False))
    backend.normalizer = normalizers.NFKC()
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    backend.add_special_tokens([AddedToken(t, lstrip=t.endswith("MASK]"), special=True,
                                           normalized=False) for t in GLM_TOKENS])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token=GLM_TOKENS[0], pad_token=GLM_TOKENS[0],
        sep_token="[SEP]", cls_token="[CLS]", mask_token="[MASK]", unk_token=vocab[0][0],
        additional_special_tokens=list(GLM_TOKENS[4:]), model_max_length=MODEL_MAX_LENGTH)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".train-") as tmp:
        tok.save_pretrained(tmp)
        (Path(tmp) / GLM_SPM_FILE).write_bytes(spm_model)
        for name in ("tokenizer.json", "tokenizer_config.json", GLM_SPM_FILE):
            shutil.copyfile(Path(tmp) / name, out_dir / name)
    return out_dir


def _xlmr_from_folder(folder: str | Path, **kwargs):
    # XLMRobertaTokenizer(vocab_file=...) silently builds a 5-token tokenizer (PLATFORM.md);
    # from_pretrained(folder) applies the fairseq offset and puts <mask> last.
    from transformers import XLMRobertaTokenizer

    return XLMRobertaTokenizer.from_pretrained(str(folder), model_max_length=MODEL_MAX_LENGTH,
                                               **kwargs)


def _check_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    paths = [Path(p) for p in inputs]
    if not paths:
        raise ValueError("no --input given")
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"input not found: {path}")
    return paths


def _explain_spm_error(err: RuntimeError, vocab_size: int, coverage: float) -> str:
    found = re.search(r"smaller than required_chars\. (\d+) vs (\d+)", str(err))
    if found:
        return (f"--vocab-size {vocab_size} is smaller than the {found.group(2)} characters that "
                f"--character-coverage {coverage} keeps; raise --vocab-size or lower the coverage")
    return f"SentencePiece training failed: {str(err).strip().splitlines()[-1]}"


def _sample_lines(lines: Iterable[str], k: int, seed: int) -> list[str]:
    """Uniform sample of at most k lines (reservoir sampling; all lines if there are fewer)."""
    rng = random.Random(seed)
    sample: list[str] = []
    n = 0
    for n, line in enumerate(lines, 1):
        if n <= k:
            sample.append(line)
        else:
            j = rng.randrange(n)
            if j < k:
                sample[j] = line
    return sample


def is_wiki_dump(path: Path) -> bool:
    """A MediaWiki XML dump, by suffix or by its first bytes."""
    if path.name.endswith(DUMP_SUFFIXES):
        return True
    from data_prep.corpus import open_binary

    with open_binary(path) as f:
        head = f.read(512)
    return b"<mediawiki" in head


def training_lines(paths: Iterable[Path], lang: str) -> Iterator[str]:
    """Non-empty text lines of every input, dumps reduced to article text."""
    from tqdm import tqdm

    from data_prep.corpus import iter_documents

    def lines() -> Iterator[str]:
        for path in paths:
            texts = dump_texts(path, lang) if is_wiki_dump(path) else \
                ("\n".join(doc) for doc in iter_documents(path))
            for text in texts:
                for line in text.split("\n"):
                    line = line.strip()
                    if line:
                        yield line

    yield from tqdm(lines(), desc="reading text", unit=" lines", disable=None, mininterval=2)


def dump_texts(path: Path, lang: str) -> Iterator[str]:
    """Article texts of a pages-articles dump: `data_prep.wiki.read_wiki` when available
    (WikiExtractor's clean text), else the light markup strip of `_strip_wikitext`."""
    try:
        from data_prep.wiki import read_wiki
    except ImportError:
        read_wiki = None
    if read_wiki is not None:
        for article in read_wiki(path, lang, progress=False).articles:
            yield article.text
        return
    for text in _raw_article_texts(path):
        yield _strip_wikitext(text)


def _raw_article_texts(path: Path) -> Iterator[str]:
    """Wikitext of namespace-0, non-redirect pages, streamed."""
    import xml.etree.ElementTree as ET

    from data_prep.corpus import open_binary

    with open_binary(path) as f:
        for _, elem in ET.iterparse(f, events=("end",)):
            if elem.tag.rsplit("}", 1)[-1] != "page":
                continue
            fields = {child.tag.rsplit("}", 1)[-1]: child for child in elem}
            text = elem.find(".//{*}text")
            ns = fields.get("ns")
            if "redirect" not in fields and (ns is None or ns.text == "0") and \
                    text is not None and text.text:
                yield text.text
            elem.clear()


_NESTED = [re.compile(r"\{\{[^{}]*\}\}"), re.compile(r"\{\|(?:(?!\{\|).)*?\|\}", re.S)]
_SUBS = [
    (re.compile(r"<!--.*?-->", re.S), ""),
    (re.compile(r"<ref[^>/]*/>|<ref[^>]*>.*?</ref>", re.S | re.I), ""),
    (re.compile(r"<[^>\n]+>"), ""),
    (re.compile(r"\[\[([^\[\]|:]+)\|([^\[\]]*)\]\](\w*)"), r"\2\3"),  # [[T|alias]]trail
    (re.compile(r"\[\[([^\[\]|:]+)\]\](\w*)"), r"\1\2"),  # [[T]]trail
    (re.compile(r"\[\[[^\[\]]*\]\]"), ""),  # File:, Category:, interwiki
    (re.compile(r"\[https?://[^\s\]]+ ([^\]]*)\]"), r"\1"),
    (re.compile(r"\[https?://[^\s\]]+\]"), ""),
    (re.compile(r"'{2,}"), ""),
    (re.compile(r"^=+\s*(.*?)\s*=+\s*$", re.M), r"\1"),
    (re.compile(r"^[*#:;]+\s*", re.M), ""),
    (re.compile(r"^[|!].*$", re.M), ""),
]


def _strip_wikitext(text: str) -> str:
    """Light wikitext → plain text: good enough to train a tokenizer, not for MRC anchors."""
    for pattern in _NESTED:
        previous = None
        while previous != text:
            previous, text = text, pattern.sub("", text)
    for pattern, repl in _SUBS:
        text = pattern.sub(repl, text)
    return html.unescape(text)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train-tokenizer", help="train an XLM-R-compatible SentencePiece tokenizer",
        description="Train a unigram SentencePiece model on text files, WikiExtractor JSON or "
                    "Wikipedia dumps and write an XLM-R Hugging Face tokenizer folder.")
    parser.add_argument("--input", nargs="+", required=True, metavar="FILE",
                        help="plain text (one text per line, .gz/.bz2 ok), WikiExtractor JSON "
                             "lines, or a pages-articles dump (.xml/.xml.bz2; read whole into "
                             "memory by data_prep.wiki: for full dumps pass WikiExtractor JSON)")
    parser.add_argument("--vocab-size", type=int, default=8000,
                        help="SentencePiece pieces (HF vocab = this + 2)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--character-coverage", type=float, default=0.9995)
    parser.add_argument("--input-sentence-size", type=int, default=2_000_000,
                        help="sample at most this many lines")
    parser.add_argument("--seed", type=int, default=0, help="seed of the line sample")
    parser.add_argument("--lang", default="en", help="language of dump inputs")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                        help="SentencePiece threads (the model depends on this number)")
    parser.add_argument("--layout", choices=LAYOUTS, default="xlmr",
                        help="xlmr: XLM-R ids (<s> <pad> </s> <unk>, pieces + 1, <mask> last); "
                             "glm: pieces at 0..N-1, then GLM's command tokens ([MASK] [sMASK] "
                             "[gMASK] sop eop …), embeddings padded to a multiple of 128")
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    out = train_tokenizer(args.input, args.vocab_size, args.out, lang=args.lang,
                          character_coverage=args.character_coverage, seed=args.seed,
                          input_sentence_size=args.input_sentence_size, num_threads=args.threads,
                          layout=args.layout)
    info = tokenizer_info(load_tokenizer(out))
    print(f"wrote {out}: vocab {info['vocab_size']}, mask id {info['mask_id']}, "
          f"fingerprint {info['fingerprint'][:16]}")
    return 0
