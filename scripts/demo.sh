#!/usr/bin/env bash
# `make demo`: the main job on an embedded default — no downloads, no GPU.
# synthetic multilingual Wikipedia -> tokenizer -> MRC data -> tiny mPMR on 2 CPU ranks (ZeRO-2,
# stop + resume) -> Hugging Face export -> NER fine-tuning with zero-shot scores.
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
    --max-seq-len 128 --max-query-tokens 32 --query-words 16 --context-words 30  # tiny_mpmr: 128 tokens
done
$PY -m data_prep inspect "$OUT/mrc/en" --n 2

# --- training ---
# Tiny mPMR on 2 CPU ranks with ZeRO-2 through the same launch script users run on GPU nodes:
# a first leg pauses at half-way (checkpoint), a second one resumes from it (--resume auto).
RUN=${DEMO_RUN:-$OUT/run}
STEPS=${DEMO_STEPS:-60}
export RUN_DIR=$RUN DATA_DIR=$OUT/mrc
export MASTER_PORT=${MASTER_PORT:-$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
TRAIN_SETS=(--set train.train_steps="$STEPS" --set train.eval_every=$((STEPS / 3))
            --set train.save_every=$((STEPS / 3)) --set train.log_every=5)

echo "== 4. tiny mPMR, 2 CPU ranks, ZeRO-2: steps 1-$((STEPS / 2)), then stop"
bash launch_scripts/tiny_cpu.sh "${TRAIN_SETS[@]}" --stop-at-step $((STEPS / 2))
echo "   paused; latest checkpoint: $RUN/checkpoints/$(cat "$RUN/checkpoints/latest")"

echo "== 5. resume from it (--resume auto) to step $STEPS"
bash launch_scripts/tiny_cpu.sh "${TRAIN_SETS[@]}"

echo "== 6. summary"
$PY - "$RUN" <<'PYEOF'
import json, sys
from pathlib import Path
run = Path(sys.argv[1])
summary = json.loads((run / "summary.json").read_text())
records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
train = [r for r in records if not r.get("eval")]
evals = [r for r in records if r.get("eval")]
print(f"steps        {summary['step']}/{summary['train_steps']} (finished: {summary['finished']})")
print(f"loss         {train[0]['loss']:.4f} at step {train[0]['step']} -> "
      f"{train[-1]['loss']:.4f} at step {train[-1]['step']}")
for r in evals:
    print(f"eval step {r['step']:>3}  span P {r['precision']:.3f} R {r['recall']:.3f} "
          f"F1 {r['f1']:.3f}  relevance acc {r['relevance_acc']:.3f}  loss {r.get('loss', float('nan')):.4f}")
print(f"checkpoint   {summary['checkpoint']}")
print(f"metrics      {run / 'metrics.jsonl'}   TensorBoard: {run / 'tb'}")
PYEOF

echo "== 7. ZeRO checkpoint -> Hugging Face folder"
$PY -m pretrain.convert_to_hf --checkpoint "$RUN" --out "$OUT/hf" --overwrite
$PY - "$OUT/hf" <<'PYEOF'
import sys
from transformers import XLMRobertaModel
encoder = XLMRobertaModel.from_pretrained(sys.argv[1], add_pooling_layer=False)
print(f"   XLMRobertaModel.from_pretrained: {sum(p.numel() for p in encoder.parameters())} parameters")
PYEOF

echo "== 8. fine-tune on a small NER sample (PAN-X en) and score de / zh zero-shot"
XLU=${XLU_DATA:-../shared/data/xlu}
if [[ -f "$XLU/panx/dev-en.tsv" && -f "$XLU/panx/dev-de.tsv" && -f "$XLU/panx/dev-zh.tsv" ]]; then
  mkdir -p "$OUT/ner"
  # first 200 English / 300 German and Chinese sentences (blank-line separated blocks)
  awk -v RS= -v ORS='\n\n' 'NR <= 200' "$XLU/panx/dev-en.tsv" > "$OUT/ner/train-en.tsv"
  for lang in de zh; do
    awk -v RS= -v ORS='\n\n' 'NR <= 300' "$XLU/panx/dev-$lang.tsv" > "$OUT/ner/dev-$lang.tsv"
  done
  # a 32-wide model pretrained for a minute shows the pipeline, not quality: expect scores near 0
  $PY -m finetune.run --task ner --model "$OUT/hf" --train "$OUT/ner/train-en.tsv" \
    --eval de="$OUT/ner/dev-de.tsv" --eval zh="$OUT/ner/dev-zh.tsv" --out "$OUT/finetune_ner" \
    --epochs 2 --batch-size 32 --lr 1e-4 --max-seq-len 128 --log-every 10
  echo "   official scorer on the German predictions:"
  $PY -m finetune.evaluate --task ner --gold "$OUT/ner/dev-de.tsv" \
    --pred "$OUT/finetune_ner/predictions/de.json"
else
  echo "   skipped: no PAN-X samples under $XLU (set XLU_DATA to the shared xlu folder)"
fi
echo "== done: everything is under $OUT/"
