# Shared part of launch_scripts/<recipe>.sh — sourced by them, never run on its own.
#
# The recipe script sets RECIPE (GPU_CLUSTER=1 for NCCL multi-node defaults, RANK_ENV,
# LAUNCHER_ARGS), sources this file and calls
# `launch "$@"`. Two ways in:
#   bash launch_scripts/<recipe>.sh [pretrain.train options]
#       → exports the rank environment, writes $RUN_DIR/.deepspeed_env (the deepspeed launcher
#         passes it to other nodes) and runs `python -m pretrain.launcher <deepspeed runner
#         options> --module pretrain.train …`: DeepSpeed's runner with our node launcher
#         (pretrain/launcher.py, pretrain/node_launch.py), which validates the config once
#         first (a bad one: one `error:` line, exit 2) and stops the job cleanly on any signal;
#   deepspeed launch_scripts/<recipe>.sh [options]   (the launcher runs the file with Python)
#       → every rank runs `bash <recipe>.sh --rank-settings`, which prints the same environment
#         and pretrain.train arguments NUL-separated (see rank_entry.py). DeepSpeed's own
#         launchers then: weaker stop guarantees (30 s to save, exit 1; see rank_entry.py).
#
# Signals (bash form): TERM / INT / HUP to this script, to the launcher, the node launcher or a
# rank stop every rank after its current step with a checkpoint; the script exits 143 (TERM,
# HUP) or 130 (INT). The ranks get up to STOP_GRACE seconds (default 600) to save, then are
# SIGKILLed (exit 137). If this script is SIGKILLed (even with its whole process group) the
# launcher, which runs in its own session, gets SIGTERM from the kernel and stops the job the
# same way. Exit codes: 0 finished; 143 / 130 stopped by a signal, checkpoint saved; 2 bad
# config (nothing started); 3 stopped on non-finite losses; anything else: a rank failed, hung
# or was killed (named on stderr; 128 + N = killed by signal N).
#
# Every path can be overridden from the environment:
#   CONFIG      recipe YAML                      (default configs/$RECIPE.yaml)
#   RUN_DIR     checkpoints, logs, metrics       (default runs/$RECIPE)
#   DATA_DIR    data.paths: MRC (mPMR) / corpus (VECO, mGLM) folders: one folder/root, or
#               comma-separated folders (default: the recipe's)
#   PARALLEL_DIR  data.parallel_paths (VECO): parallel folders, the same forms
#   INIT_FROM   Hugging Face model folder or name to start from (default: the recipe's)
#   DS_CONFIG   DeepSpeed JSON template           (default configs/ds/zero<stage>.json)
#   HOSTFILE    deepspeed hostfile                (default /job/hostfile, deepspeed's own;
#                                                  missing default = this node only)
#   RESUME      auto | none | checkpoint path    (default auto)
#   NUM_GPUS    ranks per node (default: all accelerators), NUM_NODES, MASTER_ADDR,
#   MASTER_PORT (default 29500), PEAK_TFLOPS (MFU)
#   STOP_GRACE  seconds the ranks get to save after a stop signal (default 600); FAIL_GRACE
#               seconds the others get after a rank failed (default 10)
#   PYTHON      interpreter with deepspeed (default: the one of DEEPSPEED, of `deepspeed` on
#               PATH, or .venv/bin/python); DEEPSPEED: the deepspeed command to take it from
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
[ -n "${PARALLEL_DIR:-}" ] && train_args+=(--set "data.parallel_paths=[$PARALLEL_DIR]")
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
    local python=()
    if [ -n "${PYTHON:-}" ]; then
        python=("$PYTHON")
    else
        local ds=${DEEPSPEED:-}
        if [ -z "$ds" ]; then
            if command -v deepspeed >/dev/null; then ds=$(command -v deepspeed)
            elif [ -x "$ROOT/.venv/bin/deepspeed" ]; then ds=$ROOT/.venv/bin/deepspeed
            else echo "error: no 'deepspeed' on PATH (activate the virtualenv first)" >&2
                 return 2
            fi
        fi
        ds=$(command -v "$ds" || true)
        local shebang=""
        [ -f "$ds" ] && IFS= read -r shebang < "$ds"
        [ "${shebang:0:2}" = "#!" ] && read -r -a python <<< "${shebang:2}"
        case "${python[*]:-}" in  # the interpreter deepspeed runs under
            *python*) ;;
            *) if [ -x "$(dirname "$ds")/python" ]; then python=("$(dirname "$ds")/python")
               else python=(python3); fi ;;
        esac
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
    # The launcher runs in a session of its own (XPRETRAIN_NEW_SESSION) and gets SIGTERM when this
    # script dies (XPRETRAIN_PARENT_PID: PR_SET_PDEATHSIG); TERM / HUP / INT sent to this script
    # (kill PID, timeout, a container stop, a closed terminal, Ctrl-C) are passed to it, and it
    # passes them to every rank: each finishes its step, saves, exits 143 / 130.
    XPRETRAIN_NEW_SESSION=1 XPRETRAIN_PARENT_PID=$$ \
        "${python[@]}" -m pretrain.launcher "${args[@]}" --module pretrain.train \
        "${train_args[@]}" "$@" &
    local child=$! rc=0
    trap 'kill -TERM "$child" 2>/dev/null' TERM HUP
    trap 'kill -INT "$child" 2>/dev/null' INT
    wait "$child" || rc=$?
    while kill -0 "$child" 2>/dev/null; do  # a trapped signal ends `wait` early
        rc=0
        wait "$child" || rc=$?
    done
    # the launcher waits for its ranks; belt and braces for anything left in its session
    while kill -0 -- "-$child" 2>/dev/null; do sleep 0.5; done
    return "$rc"
}
