#!/usr/bin/env bash
# Runs the quant_nvfp4 / quant_fp8 GPU tests and the weight-only GPU bench from a build folder (default build,
# holding bin/ and lib/) on a machine with a CUDA GPU. Logs go to $OUT (or /tmp/nvfp4_gpu_out).
# Environment: TESTS (a Catch2 test spec for both test binaries), BENCH_ARGS (bench arguments, or "skip").
set -uo pipefail
dir=${1:-build}
out=${OUT:-/tmp/nvfp4_gpu_out}
mkdir -p "$out"
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv
export LD_LIBRARY_PATH=$PWD/$dir/lib:${LD_LIBRARY_PATH:-}
rc=0
for t in quant_nvfp4_gpu_tests quant_fp8_gpu_tests; do
    "$dir/bin/$t" ${TESTS:-} 2>&1 | tee "$out/$t.txt" | tail -25
    [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
done
if [ "${BENCH_ARGS:-}" != skip ]; then
    "$dir/bin/quant_nvfp4_gpu_bench" ${BENCH_ARGS:-} 2>&1 | tee "$out/bench.txt"
fi
exit $rc
