""":"
# mPMR-base (XLM-R base init, paper settings, bf16, ZeRO-2)
# on one or many GPU nodes, resuming from RUN_DIR/checkpoints/latest by default.
#   bash launch_scripts/mpmr_base.sh [pretrain.train options, e.g. --set train.train_steps=200000]
#   deepspeed launch_scripts/mpmr_base.sh [options]     (deepspeed's default hostfile)
# Multi-node: HOSTFILE=my_hosts bash launch_scripts/mpmr_base.sh  (format: hostfile.example);
# every node must see the repository, the data and RUN_DIR at the same path.
# This file is valid bash and valid Python: bash runs the lines up to the closing quotes and
# execs the deepspeed launcher; a launcher that runs the file with Python lands in
# rank_entry.py. Environment overrides: see launch_scripts/common.sh.
set -euo pipefail
RECIPE=mpmr_base
# NCCL for multi-node runs; every NCCL_* / TORCH_NCCL_* variable set here or by you reaches all
# ranks (exported, written to RUN_DIR/.deepspeed_env for other nodes, applied on each rank).
export NCCL_SOCKET_IFNAME=${NCCL_SOCKET_IFNAME:-^lo,docker0}  # any interface but loopback/docker
export NCCL_IB_DISABLE=${NCCL_IB_DISABLE:-0}      # use InfiniBand / RoCE where present
export NCCL_IB_TIMEOUT=${NCCL_IB_TIMEOUT:-22}     # tolerate slow fabrics before failing
export NCCL_DEBUG=${NCCL_DEBUG:-WARN}
# a lost node makes the others raise instead of hanging in a collective:
export TORCH_NCCL_ASYNC_ERROR_HANDLING=${TORCH_NCCL_ASYNC_ERROR_HANDLING:-1}
# NCCL_IB_HCA, NCCL_IB_GID_INDEX (RoCE), NCCL_NET_GDR_LEVEL, …: set them for your fabric.
RANK_ENV=(OMP_NUM_THREADS HF_HOME HF_HUB_OFFLINE TRANSFORMERS_OFFLINE CUDA_VISIBLE_DEVICES)
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
