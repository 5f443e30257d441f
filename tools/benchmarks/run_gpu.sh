#!/bin/bash
# The GPU machine's benchmark session in one go (its device time is short): run from the repository
# root on that machine with `.whl` and `.bench` carried (both git-ignored). Prepare them here with
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --platform manylinux2014_x86_64 -d .whl gguf==0.19.0 ml_collections==1.1.0  # it lacks these
#   PYTHONPATH=. .venv/bin/python tools/benchmarks/llm_scoring.py --save-shape .bench/smollm2-shape
#   mkdir -p .bench/data/trec_session_2012_2013 && \
#     cp ../shared/data/trec_session_2012_2013/sessiontrack2012.xml .bench/data/trec_session_2012_2013/
# The model file itself is too large to travel, so the LLM rows use random weights of its shape.
# Each benchmark writes its table to $OUT as it goes. SMALL=1: a CPU smoke run.
# ONLY=cross_encoder: just the embedding-scatter check and the
# cross-encoder step, the rows that decide the PyTorch comparison first (BERT-base: rankjax's
# default against torch.compile; MiniLM-L6 the same), then BERT-base ablations while the budget
# (BUDGET_S, default 400 s) lasts (the step's GPU memory needs no GPU: train_memory.py --target);
# it needs `.whl` only (ml_collections, for the trainer's own step). Compiled programs go to a cache in /tmp, so a rerun on the still-warm
# machine skips XLA's compiles.
# ONLY=click_models: the streamed click-model EM (PBM, UBM, DBN) at 10^6 and 10^7 simulated
# sessions against numpy's EM and the full batch at 10^6 (issue 18's GPU row: sessions per second
# of an EM pass, beside clax's published 10^9 sessions in about two hours); needs nothing carried.
set -u
case "${ONLY:-}" in
  ""|cross_encoder|click_models) ;;
  *) echo "ONLY=$ONLY: the subsets are cross_encoder and click_models" >&2; exit 2 ;;
esac
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD" RANKJAX_DATA="$PWD/.bench/data"
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # torch shares the card in the same processes
OUT=${OUT:-/tmp/rankjax_bench}; mkdir -p "$OUT"
PY=${PY:-python3}
if [ -d .whl ] && ! $PY -c "import gguf, ml_collections" 2>/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
  export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$OUT/gpu.txt"
$PY -c "import jax, flax, torch, transformers; print('jax', jax.__version__, jax.devices(), 'flax', \
flax.__version__, 'torch', torch.__version__, 'transformers', transformers.__version__)"

if [ "${SMALL:-0}" = 1 ]; then
  llm=(--pairs 16 --batch-size 8 --attention xla --torch eager)
  bert_base=(--small --rows "^rankjax, xla attention$|PyTorch")
  minilm=(--small --sizes tiny --rows "^rankjax, [a-z]* attention$|PyTorch")
  ablations=(--small --sizes tiny --rows "every position|separate|masks|engine")
  trec=(--pairs 16 --batch-size 8 --attention xla --torch none)
elif [ "${ONLY:-}" = cross_encoder ]; then
  export JAX_COMPILATION_CACHE_DIR=/tmp/rankjax_jax_cache JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=1
  bert_base=(--sizes bert-base --warmup 3 --steps 15 --rows "^rankjax, cudnn attention$|compile")
  minilm=(--sizes minilm-l6 --warmup 3 --steps 15 --rows "^rankjax, cudnn attention$|compile")
  ablations=(--sizes bert-base --warmup 3 --steps 15
             --rows "cudnn attention, |engine|xla attention$|eager")
else
  llm=(--pairs 4096 --batch-size 256 --attention cudnn,xla --full-attention cudnn \
       --torch eager,compile)
  bert_base=(--sizes bert-base --warmup 3 --steps 20 --rows "cudnn|xla attention$|PyTorch")
  minilm=(--sizes minilm-l6 --warmup 3 --steps 20 --rows "cudnn attention$|PyTorch")
  trec=(--pairs 4096 --batch-size 256 --attention cudnn --torch eager)
fi
llm_common=(--model .bench/smollm2-shape --random-init --dtype bfloat16)
# Each step has its own time limit; later ones run only while the session's budget (BUDGET_S) lasts.
step() {  # step LIMIT_S NAME CMD...
  local limit=$1 name=$2; shift 2
  if (( SECONDS + 60 > ${BUDGET_S:-480} )); then echo "skipped $name: budget spent" | tee "$OUT/$name.txt"; return; fi
  timeout "$limit" "$@" 2>&1 | grep --line-buffered -v "it/s\]" | tee "$OUT/$name.txt"
}
if [ "${ONLY:-}" = click_models ]; then
  sizes=(1000000 10000000); [ "${SMALL:-0}" = 1 ] && sizes=(20000 40000)
  BUDGET_S=${BUDGET_S:-480}
  step 420 click_fit_stream $PY tools/benchmarks/click_fit_stream.py --sessions "${sizes[@]}" \
    --models ubm dbn --models-up-to "${sizes[1]}" --in-memory-up-to "${sizes[0]}"
  echo "done in ${SECONDS}s"
  exit
fi
if [ "${ONLY:-}" = cross_encoder ]; then
  BUDGET_S=${BUDGET_S:-400}
  step 25 scatter_check $PY tools/benchmarks/scatter_check.py  # jax 0.11.2: the flag is a no-op
  step 170 cross_encoder_bert_base $PY tools/benchmarks/cross_encoder_step.py "${bert_base[@]}"
  step 90 cross_encoder_minilm $PY tools/benchmarks/cross_encoder_step.py "${minilm[@]}"
  step 150 cross_encoder_bert_base_ablations $PY tools/benchmarks/cross_encoder_step.py "${ablations[@]}"
  echo "done in ${SECONDS}s"
  exit
fi
step 40 scatter_check $PY tools/benchmarks/scatter_check.py
step 40 scatter_check_no_fix $PY tools/benchmarks/scatter_check.py --no_fix
step 270 llm_scoring_512 $PY tools/benchmarks/llm_scoring.py "${llm_common[@]}" --prompt-tokens 512 "${llm[@]}"
step 210 cross_encoder_bert_base $PY tools/benchmarks/cross_encoder_step.py "${bert_base[@]}"
step 100 cross_encoder_minilm $PY tools/benchmarks/cross_encoder_step.py "${minilm[@]}"
step 90 llm_scoring_trec $PY tools/benchmarks/llm_scoring.py "${llm_common[@]}" "${trec[@]}"
echo "done in ${SECONDS}s"
