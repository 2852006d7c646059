#!/bin/sh
# gpu_no_device.sh <gpu test binary>: runs every test case of a gpu-labelled Catch2 binary with no visible CUDA
# device (CUDA_VISIBLE_DEVICES set empty) and passes only when every one of them fails. A gpu test that passes
# without a GPU checks nothing on the GPU: a refusal asserted as "any imp::Error" is met by "no CUDA device" too.
# Registered (label gpu) for every *_gpu_tests binary by tests/CMakeLists.txt; on a machine without a GPU every gpu
# test fails anyway, so this check belongs in the GPU run.
set -u
exe=${1:?usage: gpu_no_device.sh <gpu test binary>}
total=$("$exe" --list-test-names-only | grep -c .)
if [ "$total" -eq 0 ]; then
    echo "gpu_no_device: $exe lists no test case"
    exit 1
fi
xml=$(CUDA_VISIBLE_DEVICES= "$exe" -r xml 2>/dev/null)
failed=$(printf '%s\n' "$xml" | grep -c '<OverallResult success="false"')
passed=$(printf '%s\n' "$xml" | grep -c '<OverallResult success="true"')
echo "gpu_no_device: $exe without a device: $failed of $total test cases failed, $passed passed"
if [ "$passed" -ne 0 ]; then
    echo "test cases that pass without a GPU (they must fail: assert the specific error, or touch the device):"
    printf '%s\n' "$xml" | awk '
        /<TestCase name="/ { n = $0; sub(/.*<TestCase name="/, "", n); sub(/".*/, "", n) }
        /<OverallResult success="true"/ { print "  " n }'
    exit 1
fi
if [ "$failed" -ne "$total" ]; then
    echo "gpu_no_device: $failed failures for $total test cases" \
        "(did the binary crash? run it with CUDA_VISIBLE_DEVICES= set empty)"
    exit 1
fi
