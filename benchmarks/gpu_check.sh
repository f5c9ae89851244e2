#!/usr/bin/env bash
# The checks that need a CUDA GPU, one line each, then a summary; a failing check does not stop the others, and the
# script exits 1 if any failed:
#   gpu tests   pytest -m gpu (the sglang end-to-end test; it skips where sglang is not installed)
#   hf speed    benchmarks/bench_generate.py --engines hf: the hf backend's time per token against transformers
#               `model.generate`, random Qwen3-0.6B shape, 64 samples x 1024 tokens
#   probe       benchmarks/bench_probe.py --device cuda: token_stats against a full-logits pass at 16k-32k tokens,
#               held to the benchmark's own targets (ratio >= 1, mem_ratio >= 10)
#   hf sweep    `e3eval sweep --backend hf` on the tiny model with default engine settings; run.json must say cuda
# Run from the repository root: bash benchmarks/gpu_check.sh   (PYTHON=.venv/bin/python picks the interpreter)
# Needs a CUDA GPU, torch and e3eval installed with math-verify (`pip install -e '.[model]'` with a CUDA torch).
# About 5-10 minutes on one H100 (estimated; sglang's first start compiles kernels). The probe's naive pass holds
# float32 logits, tens of GB at 32k tokens: on a GPU under 80 GB set PROBE_LENGTHS=4096,8192. Each check is stopped
# after CHECK_TIMEOUT seconds (default 1800). Every check's full output is a log in the temporary folder named on the
# first line.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."  # the tests and benchmarks are named from the repository root

PY=${PYTHON:-python3}
LIMIT=${CHECK_TIMEOUT:-1800}
# The e3eval CLI under this interpreter (the `e3eval` on PATH may belong to another environment).
CLI='import sys; from e3eval.cli import main; sys.argv[0] = "e3eval"; sys.exit(main())'

if ! "$PY" -c 'import torch; assert torch.cuda.is_available()' >/dev/null 2>&1; then
    echo "gpu_check: $PY sees no CUDA GPU (torch missing, a CPU build, or no device): nothing to check" >&2
    exit 2
fi
if ! "$PY" -c 'import e3eval, math_verify' >/dev/null 2>&1; then
    echo "gpu_check: $PY cannot import e3eval and math_verify: pip install -e . first (or set PYTHON)" >&2
    exit 2
fi

TMP=$(mktemp -d -t e3eval-gpu-check.XXXXXX)
export TMPDIR=$TMP  # the benchmarks' and pytest's own temporary folders too
GPU=$("$PY" -c 'import torch; print(f"{torch.cuda.get_device_name(0)} x {torch.cuda.device_count()}, torch {torch.__version__}")')
echo "gpu_check: $GPU; logs in $TMP"

failed=0
passed=0

# The line that best says why a check failed: its last error, else its last line.
last_error() {
    grep -E 'Error|error:|FAILED|Traceback' "$1" | tail -n 1 || tail -n 1 "$1"
}

# check NAME SUMMARY CMD...: run CMD with its output in a log; SUMMARY LOG prints the verdict's details and fails
# when the output misses its target.
check() {
    local name=$1 summary=$2 log="$TMP/${1// /-}.log" status=0 line
    shift 2
    local started=$SECONDS
    timeout "$LIMIT" "$@" >"$log" 2>&1 || status=$?
    if ((status == 124)); then
        line="stopped after ${LIMIT}s (CHECK_TIMEOUT)"
    elif ((status != 0)); then
        line="exit $status: $(last_error "$log")"
    elif line=$("$summary" "$log"); then
        echo "PASS $name ($((SECONDS - started))s): $line"
        passed=$((passed + 1))
        return
    fi
    echo "FAIL $name: $line (log: $log)"
    failed=$((failed + 1))
}

pytest_summary() {
    local skipped
    skipped=$(grep -m 1 '^SKIPPED' "$1" | sed 's/^SKIPPED \[[0-9]*\] [^ ]*: //' || true)
    echo "$(tail -n 1 "$1")${skipped:+ (skipped: $skipped)}"
}

hf_speed_summary() {
    grep -m 1 '^hf (' "$1" || { echo "no 'hf (...)' line in the output"; return 1; }
}

probe_summary() {
    local line
    line=$(grep '^bench_probe: ours=' "$1" | tail -n 1) || { echo "no result line in the output"; return 1; }
    if awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } }
            END { exit !(v["ratio"] >= 1 && v["mem_ratio"] >= 10) }' <<<"$line"; then
        echo "$line"
    else
        echo "$line: below the targets ratio >= 1, mem_ratio >= 10"
        return 1
    fi
}

hf_sweep() {
    "$PY" -c "$CLI" dev tiny-model "$TMP/tiny"
    "$PY" -c "$CLI" sweep --model "$TMP/tiny" --dataset demo --budgets 64..256 --n 4 --backend hf \
        --out "$TMP/sweep" --workers 2
}

sweep_summary() {
    local device generated
    device=$("$PY" -c 'import json, sys; e = json.load(open(sys.argv[1]))["generation"]["engine"]; gpu = e["gpu"]
print(e["device"] + (f" ({gpu})" if gpu else ""))' "$TMP/sweep/run.json")
    generated=$(sed -n 's/^generated \(.*\); .*/\1/p' "$1")
    if [[ $device == cuda* ]]; then
        echo "$generated on $device"
    else
        echo "$generated on $device, not cuda"
        return 1
    fi
}

check "gpu tests" pytest_summary "$PY" -m pytest -q -p no:cacheprovider -m gpu tests
check "hf speed" hf_speed_summary "$PY" benchmarks/bench_generate.py --engines hf --shape qwen3-0.6b --n 4 \
    --max-tokens 1024 --hf-batch 64 --repeats 2
check "probe" probe_summary "$PY" benchmarks/bench_probe.py --device cuda ${PROBE_LENGTHS:+--lengths "$PROBE_LENGTHS"}
export PY TMP CLI
export -f hf_sweep
check "hf sweep" sweep_summary bash -c 'set -euo pipefail; hf_sweep'

echo "gpu_check: $passed passed, $failed failed; logs in $TMP"
((failed == 0))
