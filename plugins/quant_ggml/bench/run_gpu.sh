#!/usr/bin/env bash
# Runs the quant_ggml GPU tests and bench from a carried build folder (default out/qcuda, holding bin/ and lib/ of
# a build) on the GPU machine. Logs go to $OUT (or /tmp/qcuda_out).
# Environment: TESTS (Catch2 test spec), BENCH_ARGS (bench arguments, or "skip"), SANITIZE (a test spec to run
# under compute-sanitizer memcheck).
set -uo pipefail
dir=${1:-out/qcuda}
out=${OUT:-/tmp/qcuda_out}
mkdir -p "$out"
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv
export LD_LIBRARY_PATH=$PWD/$dir/lib:${LD_LIBRARY_PATH:-}
"$dir/bin/quant_ggml_gpu_tests" ${TESTS:-} 2>&1 | tee "$out/tests.txt" | tail -40
if [ "${BENCH_ARGS:-}" != skip ]; then
    "$dir/bin/quant_ggml_gpu_bench" --csv "$out/bench.csv" ${BENCH_ARGS:-} 2>&1 | tee "$out/bench.txt"
fi
if [ -n "${SANITIZE:-}" ]; then
    timeout 240 compute-sanitizer --tool memcheck "$dir/bin/quant_ggml_gpu_tests" "$SANITIZE" 2>&1 | tail -15
fi
if [ -n "${SASS:-}" ]; then
    # opcode histogram of the GEMV kernels whose mangled names contain $SASS (e.g. LayoutQ4_0ELi1E)
    cuobjdump -sass "$dir/bin/quant_ggml_gpu_bench" > "$out/bench.sass" 2>/dev/null
    for k in $SASS; do
        awk -v k="$k" '/Function :/ {on = index($0, k) > 0 && index($0, "gemv_tiled") > 0} on' "$out/bench.sass" |
            grep -oE '^\s+/\*[0-9a-f]{4}\*/\s+(@!?U?P[0-9T] )?[A-Z0-9_]+(\.[A-Z0-9_]+)*' |
            awk '{print $NF}' | sort | uniq -c | sort -rn | head -28 | awk -v k="$k" 'BEGIN{printf "%s:", k} {printf " %s=%s", $2, $1} END{print ""}'
    done
fi
