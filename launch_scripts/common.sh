# Shared part of launch_scripts/<recipe>.sh — sourced by them, never run on its own.
#
# The recipe script sets RECIPE (GPU_CLUSTER=1 for NCCL multi-node defaults, RANK_ENV,
# LAUNCHER_ARGS), sources this file and calls
# `launch "$@"`. Two ways in:
#   bash launch_scripts/<recipe>.sh [pretrain.train options]
#       → exports the rank environment, writes $RUN_DIR/.deepspeed_env (the deepspeed launcher
#         passes it to other nodes) and execs `deepspeed … --module pretrain.train …`;
#   deepspeed launch_scripts/<recipe>.sh [options]   (the launcher runs the file with Python)
#       → every rank runs `bash <recipe>.sh --rank-settings`, which prints the same environment
#         and pretrain.train arguments NUL-separated (see rank_entry.py).
#
# Every path can be overridden from the environment:
#   CONFIG      recipe YAML                      (default configs/$RECIPE.yaml)
#   RUN_DIR     checkpoints, logs, metrics       (default runs/$RECIPE)
#   DATA_DIR    MRC data: one folder/root, or comma-separated folders (default: the recipe's)
#   INIT_FROM   Hugging Face model folder or name to start from (default: the recipe's)
#   DS_CONFIG   DeepSpeed JSON template           (default configs/ds/zero<stage>.json)
#   HOSTFILE    deepspeed hostfile                (default /job/hostfile, deepspeed's own;
#                                                  missing default = this node only)
#   RESUME      auto | none | checkpoint path    (default auto)
#   NUM_GPUS    ranks per node (default: all accelerators), NUM_NODES, MASTER_ADDR,
#   MASTER_PORT (default 29500), PEAK_TFLOPS (MFU), DEEPSPEED (launcher command)
# Relative paths are relative to the directory you launch from.

if [ -n "${GPU_CLUSTER:-}" ]; then
    # NCCL for multi-node runs; every NCCL_* / TORCH_NCCL_* variable set here or by you reaches all
    # ranks (exported, written to RUN_DIR/.deepspeed_env for other nodes, applied on each rank).
    export NCCL_SOCKET_IFNAME=${NCCL_SOCKET_IFNAME:-^lo,docker0}  # any interface but loopback/docker
    export NCCL_IB_DISABLE=${NCCL_IB_DISABLE:-0}      # use InfiniBand / RoCE where present
    export NCCL_IB_TIMEOUT=${NCCL_IB_TIMEOUT:-22}     # tolerate slow fabrics before failing
    export NCCL_DEBUG=${NCCL_DEBUG:-WARN}
    # a lost node makes the others raise instead of hanging in a collective:
    export TORCH_NCCL_ASYNC_ERROR_HANDLING=${TORCH_NCCL_ASYNC_ERROR_HANDLING:-1}
    # NCCL_IB_HCA, NCCL_IB_GID_INDEX (RoCE), NCCL_NET_GDR_LEVEL, …: set them for your fabric.
    RANK_ENV+=(OMP_NUM_THREADS HF_HOME HF_HUB_OFFLINE TRANSFORMERS_OFFLINE CUDA_VISIBLE_DEVICES)
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${CONFIG:=$ROOT/configs/$RECIPE.yaml}"
: "${RUN_DIR:=runs/$RECIPE}"
: "${RESUME:=auto}"
: "${MASTER_PORT:=29500}"
: "${TOKENIZERS_PARALLELISM:=false}"
HOSTFILE_GIVEN=${HOSTFILE:+yes}
: "${HOSTFILE:=/job/hostfile}"

train_args=(--config "$CONFIG" --run-dir "$RUN_DIR" --resume "$RESUME")
[ -n "${DATA_DIR:-}" ] && train_args+=(--set "data.paths=[$DATA_DIR]")
[ -n "${INIT_FROM:-}" ] && train_args+=(--set "model.init_from=$INIT_FROM")
[ -n "${DS_CONFIG:-}" ] && train_args+=(--set "train.deepspeed_config=$DS_CONFIG")
[ -n "${PEAK_TFLOPS:-}" ] && train_args+=(--peak-tflops "$PEAK_TFLOPS")

# Variables every rank needs: the recipe's RANK_ENV names plus these.
RANK_ENV+=(TOKENIZERS_PARALLELISM)
rank_env=()
for name in "${RANK_ENV[@]}"; do
    [ -n "${!name:-}" ] && rank_env+=("$name=${!name}")
done
for name in $(compgen -e | grep -E '^(NCCL_|TORCH_NCCL_)' || true); do
    rank_env+=("$name=${!name}")
done

launch() {
    if [ "${1:-}" = "--rank-settings" ]; then
        for kv in "${rank_env[@]}"; do printf 'env:%s\0' "$kv"; done
        for arg in "${train_args[@]}"; do printf 'arg:%s\0' "$arg"; done
        return 0
    fi
    local launcher=${DEEPSPEED:-}
    if [ -z "$launcher" ]; then
        if command -v deepspeed >/dev/null; then launcher=deepspeed
        elif [ -x "$ROOT/.venv/bin/deepspeed" ]; then launcher=$ROOT/.venv/bin/deepspeed
        else echo "error: no 'deepspeed' on PATH (activate the virtualenv first)" >&2
             return 2
        fi
    fi
    if [ -n "$HOSTFILE_GIVEN" ] && [ ! -f "$HOSTFILE" ]; then
        echo "error: HOSTFILE=$HOSTFILE does not exist (see launch_scripts/hostfile.example)" >&2
        return 2
    fi
    local args=(--hostfile "$HOSTFILE" --master_port "$MASTER_PORT")
    [ -n "${MASTER_ADDR:-}" ] && args+=(--master_addr "$MASTER_ADDR")
    [ -n "${NUM_NODES:-}" ] && args+=(--num_nodes "$NUM_NODES")
    [ -n "${NUM_GPUS:-}" ] && args+=(--num_gpus "$NUM_GPUS")
    args+=("${LAUNCHER_ARGS[@]}")

    local kv
    for kv in "${rank_env[@]}"; do export "${kv?}"; done
    export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
    mkdir -p "$RUN_DIR"
    # Other nodes get the environment through this file (deepspeed's multi-node runners read it).
    export DS_ENV_FILE="$(cd "$RUN_DIR" && pwd)/.deepspeed_env"
    printf '%s\n' "${rank_env[@]}" "PYTHONPATH=$PYTHONPATH" > "$DS_ENV_FILE"
    # The launcher runs in its own process group and TERM / INT sent to this script (kill PID,
    # timeout, a container stop) go to all of it: every rank finishes its step, saves, exits
    # 143 / 130. (deepspeed's runner forwards signals to ranks only for multi-node pdsh.)
    setsid "$launcher" "${args[@]}" --module pretrain.train "${train_args[@]}" "$@" &
    local child=$! rc=0
    trap 'kill -TERM -- "-$child" 2>/dev/null' TERM
    trap 'kill -INT -- "-$child" 2>/dev/null' INT
    wait "$child" || rc=$?
    while kill -0 "$child" 2>/dev/null; do  # a trapped signal ends `wait` early
        rc=0
        wait "$child" || rc=$?
    done
    # deepspeed's runner may exit before its ranks have finished saving: wait for all of them
    while kill -0 -- "-$child" 2>/dev/null; do sleep 0.5; done
    return "$rc"
}
