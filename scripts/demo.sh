#!/usr/bin/env bash
# `make demo`: the main job on an embedded default — no downloads, no GPU.
# synthetic multilingual Wikipedia -> tokenizer -> MRC data -> tiny mPMR on 2 CPU ranks (ZeRO-2,
# stop + resume) -> Hugging Face export -> NER fine-tuning with zero-shot scores; then tiny VECO
# on the Tatoeba sample beside the repository (corpus + parallel folders -> CA-MLM + TLM on 2
# ranks, stop + resume -> plug-out export loaded with stock XLMRobertaModel); then tiny mGLM on
# the same documents (GLM tokenizer -> blank infilling on 2 ranks, stop + resume -> export ->
# blanks filled in two languages by pretrain.generate).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${DEMO_OUT:-demo_out}
LANGS=${DEMO_LANGS:-en,de,ru,zh,th,ar,hi}
export DS_ACCELERATOR=${DS_ACCELERATOR:-cpu} TOKENIZERS_PARALLELISM=false

rm -rf "$OUT"
mkdir -p "$OUT"
echo "== 1. synthetic Wikipedia ($LANGS)"
# 75 entities per language (the lexicon's 16 + generated ones), every linked mention followed by
# the entity's description in parentheses — the signal that connects a query (the entity's
# definition) to its answer, so that the model can learn to read on entities it never saw.
$PY -m data_prep synth --out "$OUT/wiki" --langs "$LANGS" --articles-per-lang 300 \
  --generated-entities --described-mentions 1.0 --ner-sentences 300

echo "== 2. SentencePiece tokenizer (XLM-R layout)"
$PY -m data_prep train-tokenizer --input "$OUT"/wiki/*.xml.bz2 --vocab-size 4000 --out "$OUT/tokenizer"

echo "== 3. MRC examples per language"
for lang in ${LANGS//,/ }; do
  $PY -m data_prep wiki-mrc --input "$OUT/wiki/${lang}wiki-synth-pages-articles.xml.bz2" \
    --lang "$lang" --tokenizer "$OUT/tokenizer" --out "$OUT/mrc/$lang" --workers 2 --no-progress \
    --max-seq-len 128 --max-query-tokens 32 --query-words 16 --context-words 30  # demo_mpmr: 128 tokens
done
$PY -m data_prep inspect "$OUT/mrc/en" --n 2

# --- training ---
# configs/demo_mpmr.yaml (a 64-wide mPMR) on 2 CPU ranks with ZeRO-2 through the same launch
# script users run on GPU nodes: a first leg pauses at half-way (checkpoint), a second one
# resumes from it (--resume auto). 5 entities per language are held out with all their examples.
RUN=${DEMO_RUN:-$OUT/run}
STEPS=${DEMO_STEPS:-1200}
export RUN_DIR=$RUN DATA_DIR=$OUT/mrc CONFIG=configs/demo_mpmr.yaml
export MASTER_PORT=${MASTER_PORT:-$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
TRAIN_SETS=(--set train.train_steps="$STEPS" --set train.eval_every=$((STEPS / 3))
            --set train.save_every=$((STEPS / 3)) --set train.log_every=$((STEPS / 12)))

echo "== 4. demo mPMR, 2 CPU ranks, ZeRO-2: steps 1-$((STEPS / 2)), then stop"
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
for name, key in (("loss", "loss"), ("  relevance", "cls_loss"), ("  span cells", "span_loss")):
    print(f"{name:<13}{train[0][key]:.4f} at step {train[0]['step']} -> "
          f"{train[-1][key]:.4f} at step {train[-1]['step']}")
print("held-out entities (never trained on):")
print(f"{'eval step':>10} {'best-span EM':>13} {'random span':>12} {'relevance acc':>14} "
      f"{'majority':>9} {'cls loss':>9}")
for r in evals:
    print(f"{r['step']:>10} {r['best_span_em']:>13.3f} {r['random_span_em']:>12.4f} "
          f"{r['relevance_acc']:>14.3f} {r['relevance_majority']:>9.3f} "
          f"{r.get('cls_loss', float('nan')):>9.4f}")
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

echo "== 8. fine-tune NER in MRC form on synthetic English, score English and the others zero-shot"
# Person names in the demo's languages (data_prep synth --ner-sentences, PAN-X format); the
# query is the paper's PER description, in English for every language (--query-lang en): the
# reference's translated queries are words this 64-wide model never saw. Trivial baseline:
# predicting no entity scores F1 0.
S=$OUT/wiki/ner
EVALS=()
for lang in ${LANGS//,/ }; do EVALS+=(--eval "$lang=$S/dev-$lang.tsv"); done
$PY -m finetune.run --task ner --model "$OUT/hf" --train "$S/train-en.tsv" "${EVALS[@]}" \
  --out "$OUT/finetune_ner" --epochs 3 --batch-size 32 --lr 2e-3 --max-seq-len 128 --log-every 20 \
  --query-lang en
echo "   (trivial baseline: no entity predicted -> F1 0.00 in every language; the synthetic"
echo "    languages share almost no words, so real zero-shot transfer needs XLM-R's start)"
echo "   official scorer on the English predictions:"
$PY -m finetune.evaluate --task ner --gold "$S/dev-en.tsv" --pred "$OUT/finetune_ner/predictions/en.json"

# --- VECO ---
# Tatoeba sentences (../shared/data/parallel, CC-BY 2.0 FR, see its SOURCES.md): documents of 6
# consecutive sentences per language as the monolingual corpora (adjacent segments = (x, y)),
# the aligned pairs as the parallel data. A 64-wide VECO, steps alternating CA-MLM on
# monolingual pairs and CA-MLM + TLM on translation pairs.
PAR=${VECO_PARALLEL:-../shared/data/parallel}
V=$OUT/veco
if [ ! -f "$PAR/tatoeba.deu-eng.deu" ]; then
  echo "== 9. VECO skipped: no Tatoeba sample at $PAR (set VECO_PARALLEL to its folder)"
else
  echo "== 9. VECO data: tokenizer, corpus folders (de, fr, en) and parallel folders (de-en, fr-en)"
  mkdir -p "$V/text"
  $PY - "$PAR" "$V/text" <<'PYEOF'
import sys
from pathlib import Path
par, out = Path(sys.argv[1]), Path(sys.argv[2])
for lang, name in (("de", "tatoeba.deu-eng.deu"), ("fr", "tatoeba.fra-eng.fra"),
                   ("en", "tatoeba.deu-eng.eng")):
    lines = (par / name).read_text(encoding="utf-8").splitlines()
    docs = ["\n".join(lines[i:i + 6]) for i in range(0, len(lines), 6)]
    (out / f"{lang}.txt").write_text("\n\n".join(docs) + "\n", encoding="utf-8")
PYEOF
  $PY -m data_prep train-tokenizer --input "$PAR"/tatoeba.{deu,fra}-eng.* --vocab-size 2000 \
    --out "$V/tokenizer"
  for lang in de fr en; do
    $PY -m data_prep corpus --input "$V/text/$lang.txt" --lang "$lang" --tokenizer "$V/tokenizer" \
      --out "$V/corpus/$lang" --max-seq-len 64 --sentences
  done
  for pair in deu:de fra:fr; do
    src=${pair%%:*} lang=${pair##*:}
    $PY -m data_prep parallel --src "$PAR/tatoeba.$src-eng.$src" --tgt "$PAR/tatoeba.$src-eng.eng" \
      --src-lang "$lang" --tgt-lang en --tokenizer "$V/tokenizer" --out "$V/parallel/$lang-en" \
      --max-len 62
  done
  VSTEPS=${DEMO_VECO_STEPS:-300}
  export RUN_DIR=$V/run DATA_DIR=$V/corpus PARALLEL_DIR=$V/parallel CONFIG=configs/tiny_veco.yaml
  VECO_SETS=(--set train.train_steps="$VSTEPS" --set train.eval_every=$((VSTEPS / 2))
             --set train.save_every=$((VSTEPS / 2)) --set train.log_every=$((VSTEPS / 8))
             --set model.hidden_size=64 --set model.intermediate_size=128
             --set train.global_batch_size=16 --set train.micro_batch_size=8
             --set optim.lr=5e-3 --set optim.warmup_steps=20 --set veco.freeze_steps=0
             --set veco.eval_documents=10 --set veco.eval_pairs=64 --set train.eval_batches=0)
  echo "== 10. tiny VECO, 2 CPU ranks, ZeRO-2: steps 1-$((VSTEPS / 2)), then stop; resume to $VSTEPS"
  bash launch_scripts/tiny_cpu.sh "${VECO_SETS[@]}" --stop-at-step $((VSTEPS / 2))
  bash launch_scripts/tiny_cpu.sh "${VECO_SETS[@]}"
  $PY - "$RUN_DIR" <<'PYEOF'
import json, sys
from pathlib import Path
run = Path(sys.argv[1])
records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
train = [r for r in records if not r.get("eval") and r.get("loss") is not None]
print(f"loss {train[0]['loss']:.3f} at step {train[0]['step']} -> {train[-1]['loss']:.3f} at "
      f"step {train[-1]['step']}")
print("held-out masked-token accuracy (documents and pairs never trained on):")
print(f"{'eval step':>10} {'MLM (H)':>8} {'CA-MLM (S)':>11} {'TLM':>6} {'most frequent token':>20}")
for r in (r for r in records if r.get("eval")):
    mlm = (r["mlm_x_acc"] + r["mlm_y_acc"]) / 2
    ca = (r["ca_mlm_x_acc"] + r["ca_mlm_y_acc"]) / 2
    print(f"{r['step']:>10} {mlm:>8.3f} {ca:>11.3f} {r.get('tlm_acc', float('nan')):>6.3f} "
          f"{r['majority_acc']:>20.3f}")
PYEOF
  echo "== 11. VECO checkpoint -> plug-out Hugging Face folder, loaded with stock XLMRobertaModel"
  $PY -m pretrain.convert_to_hf --checkpoint "$RUN_DIR" --out "$V/hf_plug_out" --form plug-out --overwrite
  $PY - "$V/hf_plug_out" <<'PYEOF'
import sys
from transformers import AutoTokenizer, XLMRobertaModel
model = XLMRobertaModel.from_pretrained(sys.argv[1], add_pooling_layer=False)
tok = AutoTokenizer.from_pretrained(sys.argv[1])
hidden = model(**tok(["Wo ist Tom?", "Where is Tom?"], return_tensors="pt", padding=True)).last_hidden_state
print(f"   XLMRobertaModel.from_pretrained: {sum(p.numel() for p in model.parameters())} "
      f"parameters, hidden states {tuple(hidden.shape)}")
PYEOF
fi
# --- mGLM ---
# The same Tatoeba documents (de, fr, en) as GLM corpora: a GLM-layout tokenizer (command tokens
# after the pieces), windows packed across documents, blank infilling in all three modes
# ([MASK] spans / [sMASK] sentences / [gMASK] suffixes, 0.5 / 0.3 / 0.2 of the batches).
G=$OUT/mglm
if [ ! -d "$V/text" ]; then
  echo "== 12. mGLM skipped: no Tatoeba sample at $PAR (set VECO_PARALLEL to its folder)"
else
  echo "== 12. mGLM data: GLM-layout tokenizer, corpus folders (de, fr, en)"
  $PY -m data_prep train-tokenizer --layout glm --input "$PAR"/tatoeba.{deu,fra}-eng.* \
    --vocab-size 2000 --out "$G/tokenizer"
  for lang in de fr en; do
    $PY -m data_prep corpus --input "$V/text/$lang.txt" --lang "$lang" --tokenizer "$G/tokenizer" \
      --out "$G/corpus/$lang" --max-seq-len 64
  done
  GSTEPS=${DEMO_MGLM_STEPS:-300}
  export RUN_DIR=$G/run DATA_DIR=$G/corpus/de,$G/corpus/en,$G/corpus/fr CONFIG=configs/tiny_mglm.yaml
  unset PARALLEL_DIR
  MGLM_SETS=(--set train.train_steps="$GSTEPS" --set train.eval_every=$((GSTEPS / 2))
             --set train.save_every=$((GSTEPS / 2)) --set train.log_every=$((GSTEPS / 8))
             --set model.hidden_size=64 --set model.intermediate_size=256
             --set train.global_batch_size=16 --set train.micro_batch_size=8
             --set optim.lr=5e-3 --set optim.min_lr=5e-4 --set optim.warmup_steps=20
             --set mglm.eval_documents=10 --set train.eval_batches=0)
  echo "== 13. tiny mGLM, 2 CPU ranks, ZeRO-2: steps 1-$((GSTEPS / 2)), then stop; resume to $GSTEPS"
  bash launch_scripts/tiny_cpu.sh "${MGLM_SETS[@]}" --stop-at-step $((GSTEPS / 2))
  bash launch_scripts/tiny_cpu.sh "${MGLM_SETS[@]}"
  $PY - "$RUN_DIR" <<'PYEOF'
import json, sys
from pathlib import Path
run = Path(sys.argv[1])
records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
train = [r for r in records if not r.get("eval") and r.get("loss") is not None]
print(f"loss {train[0]['loss']:.3f} at step {train[0]['step']} -> {train[-1]['loss']:.3f} at "
      f"step {train[-1]['step']}")
print("held-out blank-infilling token accuracy (documents never trained on):")
print(f"{'eval step':>10} {'accuracy':>9} {'loss':>7} {'most frequent token':>20}")
for r in (r for r in records if r.get("eval")):
    print(f"{r['step']:>10} {r['blank_acc']:>9.3f} {r['blank_loss']:>7.3f} "
          f"{r['majority_acc']:>20.3f}")
PYEOF
  echo "== 14. mGLM checkpoint -> Hugging Face folder; fill blanks in German and English"
  $PY -m pretrain.convert_to_hf --checkpoint "$RUN_DIR" --out "$G/hf" --overwrite
  printf '%s\n' "Tom ist [MASK]." "Ich habe [MASK] gesehen." "Tom is [MASK]." \
    "I want to [MASK] you." > "$G/blanks.txt"
  $PY -m pretrain.generate --model "$G/hf" --input "$G/blanks.txt" --num-beams 4 \
    --max-new-tokens 8 --output "$G/filled.jsonl"
  $PY - "$G/filled.jsonl" <<'PYEOF'
import json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    r = json.loads(line)
    print(f"   {r['input']!r:32} -> {r['output']!r}")
print("   (a 64-wide model after a minute of training: the fills show the path runs end to end;"
      "\n    the held-out accuracy against its baseline above is what shows it learns)")
PYEOF
fi
echo "== done: everything is under $OUT/"
