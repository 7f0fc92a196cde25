#!/bin/bash
# The mPMR data build on a Slurm cluster, as job arrays (every node must see the repository,
# DUMPS, TOKENIZER and OUT at the same path, e.g. on a shared file system).
#
#   Each language a task (24 languages = 24 tasks):
#     DUMPS=/data/dumps TOKENIZER=/data/tok OUT=/data/mrc LANGS=ar,bn,de,...,zh \
#       bash launch_scripts/wiki_mrc_slurm.sh langs
#   One language cut into N parts (read, then build; a merge job at the end):
#     DUMP=/data/dumps/enwiki-20240601-pages-articles.xml.bz2 LANG_CODE=en PARTS=16 \
#       TOKENIZER=/data/tok OUT=/data/mrc/en bash launch_scripts/wiki_mrc_slurm.sh parts
#
# `langs` submits one array task per language (`wiki-mrc --lang xx --resume`, so a re-submitted
# array continues), then one job that writes OUT/manifest.json (`--langs`, which finds every
# language built and skips it). `parts` submits the same `--part i/N` array twice — the first
# pass reads (the last part to finish reading also builds its units), the second builds every
# part's units — then `--merge`. Output is byte-identical to a build on one machine.
# Options: WORKERS (cores per task, default SLURM_CPUS_PER_TASK or 16), SBATCH_ARGS (extra
# sbatch options, e.g. "--partition=cpu --time=12:00:00"), PYTHON (default python3),
# DRY_RUN=1 (print the sbatch commands only).
set -euo pipefail
MODE=${1:?usage: wiki_mrc_slurm.sh langs|parts}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
WORKERS=${WORKERS:-16}
: "${TOKENIZER:?set TOKENIZER}" "${OUT:?set OUT}"
read -r -a EXTRA <<< "${SBATCH_ARGS:-}"
BUILD="cd $REPO && $PYTHON -m data_prep wiki-mrc --tokenizer $TOKENIZER --workers $WORKERS --no-progress"

submit() {  # sbatch ARGS... -> job id (DRY_RUN: print, answer a fake id)
  if [[ ${DRY_RUN:-0} == 1 ]]; then
    printf 'sbatch' >&2; printf ' %q' "$@" >&2; echo >&2
    echo "DRY$RANDOM"
  else
    sbatch --parsable "${EXTRA[@]}" --cpus-per-task="$WORKERS" "$@"
  fi
}

case $MODE in
  langs)
    : "${DUMPS:?set DUMPS (folder with one dump per language)}" "${LANGS:?set LANGS=xx,yy,...}"
    n=$(tr ',' '\n' <<< "$LANGS" | grep -c .)
    # task k builds the k-th language of LANGS; it finds its dump in DUMPS by name or header
    # (--wrap scripts run under /bin/sh: no bash arrays)
    array=$(submit --job-name=wiki-mrc-langs --array=0-$((n - 1)) --wrap \
      "$BUILD --input $DUMPS --out $OUT --langs \$(echo $LANGS | cut -d, -f\$((SLURM_ARRAY_TASK_ID + 1)))")
    submit --job-name=wiki-mrc-summary --dependency=afterok:"$array" --wrap \
      "$BUILD --input $DUMPS --langs $LANGS --out $OUT" >/dev/null
    ;;
  parts)
    : "${DUMP:?set DUMP}" "${LANG_CODE:?set LANG_CODE}" "${PARTS:?set PARTS}"
    PART="$BUILD --input $DUMP --lang $LANG_CODE --out $OUT"
    read_pass=$(submit --job-name=wiki-mrc-read --array=0-$((PARTS - 1)) --wrap \
      "$PART --part \$SLURM_ARRAY_TASK_ID/$PARTS")
    build_pass=$(submit --job-name=wiki-mrc-build --dependency=afterok:"$read_pass" \
      --array=0-$((PARTS - 1)) --wrap "$PART --part \$SLURM_ARRAY_TASK_ID/$PARTS")
    submit --job-name=wiki-mrc-merge --dependency=afterok:"$build_pass" --wrap \
      "$PART --merge" >/dev/null
    ;;
  *) echo "usage: wiki_mrc_slurm.sh langs|parts" >&2; exit 2 ;;
esac
