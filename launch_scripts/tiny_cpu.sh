""":"
# Tiny mPMR on 2 CPU ranks (gloo), configs/tiny_mpmr.yaml — seconds per step.
#   bash launch_scripts/tiny_cpu.sh [pretrain.train options, e.g. --set train.train_steps=40]
#   deepspeed [--num_accelerators 2] launch_scripts/tiny_cpu.sh [options]
# This file is valid bash and valid Python: bash runs the lines up to the closing quotes and
# execs the deepspeed launcher; a launcher that runs the file with Python lands in
# rank_entry.py. Environment overrides: see launch_scripts/common.sh (plus NUM_RANKS, default 2).
set -euo pipefail
RECIPE=tiny_mpmr
export DS_ACCELERATOR=cpu
: "${OMP_NUM_THREADS:=1}"
RANK_ENV=(DS_ACCELERATOR OMP_NUM_THREADS)
LAUNCHER_ARGS=(--num_accelerators "${NUM_RANKS:-2}")
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
launch "$@"
exit $?
":"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rank_entry import main  # noqa: E402

main(__file__)
