#!/usr/bin/env bash
# `make demo`: the main job on an embedded default — no downloads, no GPU.
# synthetic multilingual Wikipedia -> tokenizer -> MRC data -> tiny mPMR pretraining on 2 CPU ranks.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${DEMO_OUT:-demo_out}
LANGS=${DEMO_LANGS:-en,de,ru,zh,th,ar,hi}
export DS_ACCELERATOR=${DS_ACCELERATOR:-cpu} TOKENIZERS_PARALLELISM=false

rm -rf "$OUT"
mkdir -p "$OUT"
echo "== 1. synthetic Wikipedia ($LANGS)"
$PY -m data_prep synth --out "$OUT/wiki" --langs "$LANGS"

echo "== 2. SentencePiece tokenizer (XLM-R layout)"
$PY -m data_prep train-tokenizer --input "$OUT"/wiki/*.xml.bz2 --vocab-size 4000 --out "$OUT/tokenizer"

echo "== 3. MRC examples per language"
for lang in ${LANGS//,/ }; do
  $PY -m data_prep wiki-mrc --input "$OUT/wiki/${lang}wiki-synth-pages-articles.xml.bz2" \
    --lang "$lang" --tokenizer "$OUT/tokenizer" --out "$OUT/mrc/$lang" --workers 2 --no-progress \
    --max-seq-len 128 --max-query-tokens 32 --query-words 20 --context-words 60
done
$PY -m data_prep inspect "$OUT/mrc/en" --n 2

# --- training ---
