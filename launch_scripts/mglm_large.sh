""":"
# mGLM-Large (24 x 1536 x 16 heads, seq 512, lr 1e-4 warmup 8k, linear decay to 10 % at 400k of 500k steps, batch 2560, fp16)
# on one or many GPU nodes, resuming from RUN_DIR/checkpoints/latest by default.
#   bash launch_scripts/mglm_large.sh [pretrain.train options, e.g. --set train.train_steps=200000]
#   deepspeed launch_scripts/mglm_large.sh [options]     (deepspeed's default hostfile)
# Multi-node: HOSTFILE=my_hosts bash launch_scripts/mglm_large.sh  (format: hostfile.example);
# every node must see the repository, the data and RUN_DIR at the same path.
# This file is valid bash and valid Python: bash runs the lines up to the closing quotes and
# execs the deepspeed launcher; a launcher that runs the file with Python lands in
# rank_entry.py. Environment overrides: see launch_scripts/common.sh.
set -euo pipefail
RECIPE=mglm_large
GPU_CLUSTER=1  # NCCL settings for multi-node runs: see common.sh
LAUNCHER_ARGS=()
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
launch "$@"
exit $?
":"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rank_entry import main  # noqa: E402

main(__file__)
