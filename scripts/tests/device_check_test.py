#!/usr/bin/env python3
"""Tests of scripts/device-check --sanitize with a fake GPU machine (no GPU, no imp build; python3 standard library).

A temporary tree holds a copy of scripts/device-check and a staged out/device/ with two fake gpu test binaries; a fake
nvidia-smi makes it run its GPU-machine branch and a fake compute-sanitizer answers each (binary, tool) run as the case
says: clean, errors (exit 86), a racecheck hazard warning (exit 0), or a hang past the time limit. Each case checks the
verdict lines and the exit status: the sanitizers are "clean" only when every run that was started says so.
  python3 scripts/tests/device_check_test.py [-v]
"""
import json
import re
import os
import shutil
import stat
import subprocess
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
API_TEST = "cuda: alloc counts cudaMalloc, zero-fills, and reports out of memory with tag and size"
API_SPEC = API_TEST.replace(",", "\\,")

NVIDIA_SMI = """#!/bin/sh
case "$1" in
    -L) i=0; while [ "$i" -lt "${FAKE_GPUS:-1}" ]; do
            echo "GPU $i: Fake GPU (UUID: GPU-$i)"
            [ -n "$FAKE_MIG" ] && echo "  MIG 1g.10gb     Device  0: (UUID: MIG-$i)"
            i=$((i + 1))
        done
        # A list that comes in parts: a reader that stops at the first GPU line makes this write fail (SIGPIPE).
        if [ -n "$FAKE_SMI_SLOW" ]; then sleep 0.3; echo "  (end of list)"; fi ;;
    *) echo "Fake GPU, 1.0, 1000 MiB" ;;
esac
"""
# The gpu test binary: lists the API-error test when asked with its escaped name (as Catch2 matches it).
TEST_BIN = """#!/usr/bin/env python3
import os, sys
if sys.argv[1:2] == ["--list-test-names-only"]:
    if {has_api} and sys.argv[2:] == [{spec!r}]:
        print({name!r})
    if sys.argv[2:3] == ["~[.]"]:  # the cases of a full run (hidden and API-error tests left out)
        n = int(os.environ.get("FAKE_CASES", "0"))
        print("\\n".join(f"case {{i}}" for i in range(n)) if n else "one\\ntwo, with a comma\\nthree [x]")
    sys.exit(0)
sys.exit(3)
"""
# compute-sanitizer: logs its arguments, then does what FAKE_SAN (JSON: "binary.tool" -> action) says.
SANITIZER = """#!/usr/bin/env python3
import json, os, sys, time
args = sys.argv[1:]
tool = args[args.index("--tool") + 1]
binary = next(a for a in args if a.endswith(("_gpu_tests", "sanitizer-canary")))
if binary.endswith("sanitizer-canary"):  # reports its defect unless the case silences this tool
    print("========= COMPUTE-SANITIZER")
    if json.loads(os.environ["FAKE_SAN"]).get("canary." + tool) == "silent":
        sys.exit(0)
    print({"memcheck": "========= Invalid __global__ read of size 4 bytes",
           "racecheck": "========= Error: Race reported between Write access and Read access",
           "initcheck": "========= Uninitialized __global__ memory read of size 4 bytes"}[tool])
    sys.exit(86)
with open(os.environ["FAKE_SAN_LOG"], "a") as f:
    f.write(json.dumps(args) + "\\n")
with open(os.environ["FAKE_SAN_LOG"] + ".devices", "a") as f:
    f.write(os.environ.get("CUDA_VISIBLE_DEVICES", "-") + "\\n")
time.sleep(float(os.environ.get("FAKE_SAN_SLEEP", "0")))  # runs that overlap (the GPU choice counts runs going)
action = json.loads(os.environ["FAKE_SAN"]).get(os.path.basename(binary) + "." + tool, "clean")
print("========= COMPUTE-SANITIZER")
if action == "errors":
    print("========= Invalid __global__ read of size 4 bytes")
    print("========= ERROR SUMMARY: 1 error")
    sys.exit(86)
if action == "internal-error":  # the tool failing on its own, as racecheck did on some cuBLASLt GEMMs
    print("========= Internal Sanitizer Error: The Sanitizer failed to handle a hardware exception.")
    print("========= RACECHECK SUMMARY: 1 hazard displayed (1 error, 0 warnings)")
    sys.exit(86)
if action == "race-warning":
    print("========= Warning: Race reported between Read access at k+0x10")
    print("=========     and Write access at k+0x20 [32 hazards]")
if action == "hang":
    time.sleep(60)
if action == "orphan":  # a target that outlives the sanitizer (its own session: the time limit's signal misses it)
    import subprocess
    p = subprocess.Popen(["/bin/sh", "-c", "sleep 60", binary], start_new_session=True)
    with open(os.environ["FAKE_SAN_LOG"] + ".orphans", "a") as f:
        f.write(str(p.pid) + "\\n")
    time.sleep(60)
print("========= ERROR SUMMARY: 0 errors")
"""
# cuobjdump --dump-resource-usage FILE: the kernels FAKE_KERNELS (JSON: file name -> mangled names) gives that file.
CUOBJDUMP = """#!/usr/bin/env python3
import json, os, sys
names = json.loads(os.environ.get("FAKE_KERNELS", "{}")).get(os.path.basename(sys.argv[-1]), [])
print("Resource usage:")
for n in names:
    print(f" Function {n}:")
    print("  REG:32 STACK:0 SHARED:0 LOCAL:0 CONSTANT[0]:900 TEXTURE:0 SURFACE:0 SAMPLER:0")
"""
RACE_FILTER = ["--kernel-name", "kns=3imp", "--kernel-name", "kns=3cub", "--kernel-name", "kns=5hello"]


def write_exe(path, text):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


class SanitizeTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="device-check-test-")
        t = self.tmp.name
        os.makedirs(os.path.join(t, "scripts"))
        shutil.copy(os.path.join(ROOT, "scripts", "device-check"), os.path.join(t, "scripts", "device-check"))
        self.stage = os.path.join(t, "out", "device")
        os.makedirs(os.path.join(self.stage, "bin"))
        write_exe(os.path.join(self.stage, "bin", "imp"), "#!/bin/sh\nexit 0\n")
        write_exe(os.path.join(self.stage, "bin", "sanitizer-canary"), "#!/bin/sh\nexit 0\n")
        for name, has_api in (("a_gpu_tests", True), ("b_gpu_tests", False)):
            write_exe(os.path.join(self.stage, "bin", name),
                      TEST_BIN.format(has_api=has_api, spec=API_SPEC, name=API_TEST))
        with open(os.path.join(self.stage, "PATHS"), "w") as f:
            f.write(f"src={t}\nbuild={t}/build-device\n")
        with open(os.path.join(self.stage, "COMMIT"), "w") as f:
            f.write("abc1234\n")
        self.fakebin = os.path.join(t, "fakebin")
        os.makedirs(self.fakebin)
        write_exe(os.path.join(self.fakebin, "nvidia-smi"), NVIDIA_SMI)
        write_exe(os.path.join(self.fakebin, "compute-sanitizer"), SANITIZER)
        write_exe(os.path.join(self.fakebin, "cuobjdump"), CUOBJDUMP)
        self.out = os.path.join(t, "result")
        self.san_log = os.path.join(t, "sanitizer-calls.jsonl")

    def tearDown(self):
        self.tmp.cleanup()

    def run_check(self, actions, timeout_s=30, only=None, shards=None, gpus=1, visible=None, sleep=0.0, mig=False,
                  deadline=None, cases=0, jobs=3, kernels=None, race_filter=False, smi_slow=False):
        env = dict(os.environ, PATH=self.fakebin + os.pathsep + os.environ["PATH"], OUT=self.out,
                   FAKE_KERNELS=json.dumps(kernels or {"a_gpu_tests": ["_ZN3imp4cuda8k_kernelEPf"],
                                                       "b_gpu_tests": ["_ZN3cub6detail11EmptyKernelIvEEvv"]}),
                   FAKE_SAN=json.dumps(actions), FAKE_SAN_LOG=self.san_log, IMP_SANITIZE_JOBS=str(jobs),
                   IMP_SANITIZE_TIMEOUT=str(timeout_s), FAKE_GPUS=str(gpus), FAKE_SAN_SLEEP=str(sleep),
                   FAKE_MIG="1" if mig else "", FAKE_CASES=str(cases), FAKE_SMI_SLOW="1" if smi_slow else "")
        env.pop("IMP_SANITIZE_ONLY", None)
        env.pop("IMP_SANITIZE_SHARDS", None)
        env.pop("CUDA_VISIBLE_DEVICES", None)
        env.pop("IMP_SANITIZE_DEADLINE", None)
        env.pop("IMP_SANITIZE_RACE_FILTER", None)
        if race_filter:
            env["IMP_SANITIZE_RACE_FILTER"] = "1"
        if deadline is not None:
            env["IMP_SANITIZE_DEADLINE"] = str(deadline)
        if visible is not None:
            env["CUDA_VISIBLE_DEVICES"] = visible
        if only is not None:
            env["IMP_SANITIZE_ONLY"] = only
        if shards is not None:
            env["IMP_SANITIZE_SHARDS"] = shards
        p = subprocess.run([os.path.join(self.tmp.name, "scripts", "device-check"), "--no-tests", "--no-bench",
                            "--sanitize"], env=env, capture_output=True, text=True, timeout=120)
        return p.returncode, p.stdout + p.stderr

    def calls(self):
        with open(self.san_log) as f:
            return [json.loads(line) for line in f]

    def test_all_clean(self):
        rc, out = self.run_check({})
        self.assertEqual(rc, 0, out)
        self.assertEqual(len([l for l in out.splitlines() if l.startswith("[device-check] sanitize ") and re.search(r": clean \(\d+ s\)$", l)]), 7, out)  # 2 binaries x 3 tools + the API-error test of a
        self.assertIn("sanitizers: clean", out)
        # The API-error test runs alone (its name escaped for Catch2) and is left out of the other runs.
        api_runs = [c for c in self.calls() if "--report-api-errors" in c]
        self.assertEqual(len(api_runs), 1, out)
        self.assertEqual(api_runs[0][-1], API_SPEC)
        full_runs = [c for c in self.calls() if "--report-api-errors" not in c]
        self.assertEqual(len(full_runs), 6)
        for c in full_runs:
            self.assertEqual(c[-2:], ["~[.]", "~" + API_SPEC])

    def test_shards_split_the_cases(self):
        # IMP_SANITIZE_SHARDS=2: each binary's listed cases dealt into 2 runs per tool, each with its cases as one
        # escaped Catch2 spec; every shard gets a verdict.
        rc, out = self.run_check({"b_gpu_tests.racecheck": "race-warning"}, shards="2")
        self.assertNotEqual(rc, 0, out)
        verdicts = [l for l in out.splitlines() if l.startswith("[device-check] sanitize ") and "_gpu_tests" in l]
        self.assertEqual(len(verdicts), 13, out)  # 2 binaries x 3 tools x 2 shards + the API-error test of a
        self.assertIn("sanitize a_gpu_tests.racecheck.s1: clean", out)
        self.assertIn("sanitize b_gpu_tests.racecheck.s0: FAILED, hazards reported", out)
        specs = sorted({c[-1] for c in self.calls() if "--report-api-errors" not in c})
        self.assertEqual(specs, ["one,three \\[x]", "two\\, with a comma"])
        bad = self.run_check({}, shards="x")
        self.assertEqual(bad[0], 2, bad[1])
        self.assertIn("IMP_SANITIZE_SHARDS 'x' is not a positive integer", bad[1])

    def test_canaries_are_checked(self):
        rc, out = self.run_check({})
        self.assertEqual(rc, 0, out)
        for tool in ("memcheck", "racecheck", "initcheck"):
            self.assertIn(f"sanitize canary {tool}: its defect is reported", out)

    def test_a_silent_canary_fails(self):
        # A tool (or a kernel filter in IMP_SANITIZE_ARGS) that reports nothing makes every run look clean.
        rc, out = self.run_check({"canary.racecheck": "silent"})
        self.assertNotEqual(rc, 0, out)
        self.assertIn("sanitize canary racecheck: FAILED, its deliberate defect was not reported (exit 0)", out)
        self.assertIn("sanitize a_gpu_tests.racecheck: clean", out)

    def test_missing_canary_fails(self):
        os.remove(os.path.join(self.stage, "bin", "sanitizer-canary"))
        rc, out = self.run_check({})
        self.assertNotEqual(rc, 0, out)
        self.assertIn("sanitizer-canary is not staged", out)

    def test_errors_fail(self):
        rc, out = self.run_check({"b_gpu_tests.memcheck": "errors"})
        self.assertNotEqual(rc, 0, out)
        self.assertIn("sanitize b_gpu_tests.memcheck: FAILED, exit 86", out)
        self.assertIn("Invalid __global__ read", out)
        self.assertIn("sanitizers: FAILED", out)

    def test_a_sanitizer_internal_error_is_named_and_fails(self):
        rc, out = self.run_check({"b_gpu_tests.racecheck": "internal-error"})
        self.assertNotEqual(rc, 0, out)
        self.assertRegex(out, r"sanitize b_gpu_tests.racecheck: FAILED, compute-sanitizer internal error, exit 86 "
                              r"after \d+ s")
        self.assertIn("Internal Sanitizer Error: The Sanitizer failed to handle a hardware exception", out)
        self.assertIn("sanitize a_gpu_tests.racecheck: clean", out)

    def test_race_warning_fails(self):
        rc, out = self.run_check({"a_gpu_tests.racecheck": "race-warning"})
        self.assertNotEqual(rc, 0, out)
        self.assertIn("sanitize a_gpu_tests.racecheck: FAILED, hazards reported", out)

    def test_hang_fails(self):
        rc, out = self.run_check({"a_gpu_tests.initcheck": "hang"}, timeout_s=2)
        self.assertNotEqual(rc, 0, out)
        self.assertIn("sanitize a_gpu_tests.initcheck: FAILED, timed out after 2 s", out)
        self.assertIn("sanitize b_gpu_tests.initcheck: clean", out)

    def test_a_test_binary_started_by_something_else_is_left_alone(self):
        other = subprocess.Popen(["/bin/sh", "-c", "sleep 60", os.path.join(self.tmp.name, "build-device", "bin",
                                                                            "b_gpu_tests")])
        try:
            rc, out = self.run_check({"a_gpu_tests.memcheck": "orphan"}, timeout_s=2)
            self.assertIn("test process(es) outlived their runs", out)
            self.assertIsNone(other.poll(), "a test process outside the sanitizer runs was killed")
        finally:
            other.kill()
            other.wait()

    def test_orphaned_test_process_is_killed(self):
        rc, out = self.run_check({"a_gpu_tests.memcheck": "orphan"}, timeout_s=2)
        self.assertNotEqual(rc, 0, out)
        self.assertIn("sanitize a_gpu_tests.memcheck: FAILED, timed out after 2 s", out)
        self.assertIn("test process(es) outlived their runs", out)
        with open(self.san_log + ".orphans") as f:
            pids = [int(x) for x in f.read().split()]
        self.assertTrue(pids)
        for pid in pids:
            time.sleep(0.2)
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            try:
                with open(f"/proc/{pid}/stat") as f:
                    alive = f.read().split()[2] != "Z"  # a killed orphan may stay a zombie until reaped
            except FileNotFoundError:
                alive = False
            self.assertFalse(alive, f"orphan {pid} still running")

    def test_only_picks_runs(self):
        # b's memcheck would fail, but only the racecheck runs and a's API-error run are picked.
        rc, out = self.run_check({"b_gpu_tests.memcheck": "errors"}, only="racecheck,a_gpu_tests.memcheck-api")
        self.assertEqual(rc, 0, out)
        verdicts = sorted(l.split()[2] for l in out.splitlines() if l.startswith("[device-check] sanitize ") and
                          re.search(r": clean \(\d+ s\)$", l))
        self.assertEqual(verdicts, ["a_gpu_tests.memcheck-api-errors-off:", "a_gpu_tests.racecheck:",
                                    "b_gpu_tests.racecheck:"], out)
        self.assertEqual(len(self.calls()), 3)

    def test_only_with_dollar_matches_the_end_of_the_name(self):
        # 'b_gpu_tests.racecheck.s1$' picks shard 1, not shards 10-11; a text without '$' still matches anywhere.
        os.remove(os.path.join(self.stage, "bin", "a_gpu_tests"))
        rc, out = self.run_check({}, shards="12", cases=12, only="b_gpu_tests.racecheck.s1$,initcheck.s0$")
        verdicts = sorted(l.split()[2] for l in out.splitlines() if l.startswith("[device-check] sanitize ") and
                          re.search(r": clean \(\d+ s\)$", l))
        self.assertEqual(rc, 0, out)
        self.assertEqual(verdicts, ["b_gpu_tests.initcheck.s0:", "b_gpu_tests.racecheck.s1:"], out)

    def test_only_starts_the_runs_in_its_order(self):
        # One run at a time: the sanitizer sees the runs in the order of the texts, each once (the second text
        # matches a run the first already took).
        os.remove(os.path.join(self.stage, "bin", "a_gpu_tests"))
        rc, out = self.run_check({}, shards="12", cases=12, jobs=1,
                                 only="b_gpu_tests.racecheck.s11$,b_gpu_tests.memcheck.s2$,racecheck.s11$,initcheck.s0$")
        self.assertEqual(rc, 0, out)
        started = [(c[c.index("--tool") + 1], c[-1]) for c in self.calls()]
        self.assertEqual(started, [("racecheck", "case 11"), ("memcheck", "case 2"), ("initcheck", "case 0")], out)

    def test_racecheck_instruments_every_kernel_by_default(self):
        # A kernel outside imp's namespaces (a library's) is no reason to stop: racecheck instruments it too.
        rc, out = self.run_check({}, kernels={"b_gpu_tests": ["_Z10foo_kernelPf"]})
        self.assertEqual(rc, 0, out)
        self.assertIn("racecheck instruments every kernel, cuBLAS/cuBLASLt's included", out)
        calls = self.calls()
        self.assertEqual(sum(c[c.index("--tool") + 1] == "racecheck" for c in calls), 2)
        for c in calls:
            self.assertNotIn("--kernel-name", c)

    def test_race_filter_instruments_imps_kernels_only(self):
        rc, out = self.run_check({}, race_filter=True)
        self.assertEqual(rc, 0, out)
        self.assertIn("every kernel of the staged binaries is in namespace imp, cub or hello", out)
        for c in self.calls():
            tool = c[c.index("--tool") + 1]
            has = any(c[i:i + len(RACE_FILTER)] == RACE_FILTER for i in range(len(c)))
            self.assertEqual(has, tool == "racecheck", c)
        self.assertEqual(sum(c[c.index("--tool") + 1] == "racecheck" for c in self.calls()), 2)

    def test_a_kernel_outside_the_filter_fails_before_any_run(self):
        rc, out = self.run_check({}, kernels={"b_gpu_tests": ["_ZN3imp1kEv", "_Z10foo_kernelPf"]}, race_filter=True)
        self.assertNotEqual(rc, 0, out)
        self.assertIn("misses 1 kernel(s) of the staged binaries, e.g. _Z10foo_kernelPf (b_gpu_tests)", out)
        self.assertFalse(os.path.exists(self.san_log), out)

    def test_the_example_plugins_kernels_are_in_the_filter(self):
        # examples/third_party_plugin's kernels (namespace hello) are staged as a test plugin: covered, not missed.
        rc, out = self.run_check({}, kernels={"b_gpu_tests": ["_ZN3imp1kEv", "_ZN5hello12_GLOBAL__N_116scale_add_kernelEPKfPflff"]},
                                 race_filter=True)
        self.assertEqual(rc, 0, out)
        self.assertIn("every kernel of the staged binaries is in namespace imp, cub or hello", out)

    def test_extra_args_reach_every_run(self):
        os.environ["IMP_SANITIZE_ARGS"] = "--kernel-name-exclude kns=nvjet --padding 32"
        try:
            rc, out = self.run_check({})
        finally:
            del os.environ["IMP_SANITIZE_ARGS"]
        self.assertEqual(rc, 0, out)
        calls = self.calls()
        self.assertEqual(len(calls), 7)
        for c in calls:
            i = c.index("--kernel-name-exclude")
            self.assertEqual(c[i:i + 4], ["--kernel-name-exclude", "kns=nvjet", "--padding", "32"])

    def devices(self):
        with open(self.san_log + ".devices") as f:
            return [line.strip() for line in f]

    def test_runs_are_dealt_over_the_gpus(self):
        # 7 runs (2 binaries x 3 tools + the API-error test), 3 at a time, each 0.5 s: a new run goes to the GPU with
        # the fewest runs going, so both GPUs take runs and neither holds all 3 at once.
        rc, out = self.run_check({}, gpus=2, sleep=0.5)
        self.assertEqual(rc, 0, out)
        self.assertIn("on 2 GPU(s)", out)
        d = self.devices()
        self.assertEqual(len(d), 7, out)
        self.assertEqual(sorted(set(d)), ["0", "1"], d)
        self.assertGreaterEqual(min(d.count("0"), d.count("1")), 2, d)

    def test_one_gpu_or_a_chosen_device_is_left_as_it_is(self):
        rc, out = self.run_check({})
        self.assertEqual(rc, 0, out)
        self.assertIn("on 1 GPU(s)", out)
        self.assertEqual(set(self.devices()), {"-"})
        os.remove(self.san_log + ".devices")
        rc, out = self.run_check({}, gpus=4, visible="2")
        self.assertEqual(rc, 0, out)
        self.assertIn("on 1 GPU(s)", out)
        self.assertEqual(set(self.devices()), {"2"})
        os.remove(self.san_log + ".devices")
        rc, out = self.run_check({}, gpus=2, mig=True)  # MIG instances: one device as the environment gives it
        self.assertEqual(rc, 0, out)
        self.assertIn("on 1 GPU(s)", out)
        self.assertEqual(set(self.devices()), {"-"})

    def test_a_gpu_list_written_in_parts_is_read_whole(self):
        # Under pipefail, `nvidia-smi -L | grep -q` fails when grep quits before nvidia-smi has written its last line:
        # the GPU machine was taken for this one (it tried to build) or MIG went unseen.
        for gpus, mig in ((2, False), (2, True)):
            rc, out = self.run_check({}, gpus=gpus, mig=mig, smi_slow=True)
            self.assertEqual(rc, 0, out)
            self.assertIn("on 1 GPU(s)" if mig else "on 2 GPU(s)", out)
            self.assertIn("sanitizers: clean", out)

    def test_deadline_cuts_limits_and_starts_nothing_late(self):
        # 3 runs at a time, the first three hang: the deadline (3 s) cuts their 30 s limit, the 4 runs after are not
        # started, and every verdict prints well before the limit would have ended.
        t0 = time.monotonic()
        hang = {f"{b}.{t}": "hang" for b in ("a_gpu_tests",) for t in ("memcheck", "racecheck", "initcheck")}
        rc, out = self.run_check(hang, timeout_s=30, deadline=3)
        self.assertNotEqual(rc, 0, out)
        self.assertLess(time.monotonic() - t0, 25, out)
        self.assertIn("none started after 3 s", out)
        for t in ("memcheck", "racecheck", "initcheck"):
            self.assertRegex(out, rf"sanitize a_gpu_tests\.{t}: FAILED, timed out after [0-3] s")
            self.assertIn(f"sanitize b_gpu_tests.{t}: FAILED, not started within IMP_SANITIZE_DEADLINE (3 s)", out)
        self.assertIn("sanitizers: FAILED", out)
        bad = self.run_check({}, deadline="soon")
        self.assertEqual(bad[0], 2, bad[1])
        self.assertIn("IMP_SANITIZE_DEADLINE 'soon'", bad[1])

    def test_deadline_starts_no_run_it_would_cut_short(self):
        # Deadline 8 s (a quarter: 2 s), 3 runs at a time, each run 1.5 s: the runs that would start with 2 s or less
        # left are not started rather than started with a limit too short to finish.
        rc, out = self.run_check({}, timeout_s=30, deadline=8, sleep=1.5, cases=12, shards="12")
        self.assertNotEqual(rc, 0, out)
        started = len(re.findall(r": clean \(\d+ s\)$", out, re.M))
        skipped = len(re.findall(r"not started within IMP_SANITIZE_DEADLINE", out))
        self.assertGreater(started, 0, out)
        self.assertGreater(skipped, 0, out)
        self.assertNotRegex(out, r"timed out after [0-2] s", out)

    def test_only_matching_nothing_fails(self):
        rc, out = self.run_check({}, only="no_such_binary")
        self.assertNotEqual(rc, 0, out)
        self.assertIn("none matches IMP_SANITIZE_ONLY", out)

    def test_no_binaries_fails(self):
        for name in ("a_gpu_tests", "b_gpu_tests"):
            os.remove(os.path.join(self.stage, "bin", name))
        rc, out = self.run_check({})
        self.assertNotEqual(rc, 0, out)
        self.assertIn("no gpu test binary", out)


# scripts/bench-gate in the temporary tree: writes the arguments device-check gave it, then exits 0.
FAKE_GATE = """#!/usr/bin/env python3
import json, os, sys
with open(os.environ["FAKE_GATE_LOG"], "w") as f:
    json.dump(sys.argv[1:], f)
"""


class GateArgsTest(unittest.TestCase):
    """What device-check's --gate, --update and --runs hand to bench-gate, in either order (SanitizeTest's tree)."""
    setUp = SanitizeTest.setUp
    tearDown = SanitizeTest.tearDown

    def gate_args(self, *opts):
        write_exe(os.path.join(self.tmp.name, "scripts", "bench-gate"), FAKE_GATE)
        log = os.path.join(self.tmp.name, "gate-args.json")
        env = dict(os.environ, PATH=self.fakebin + os.pathsep + os.environ["PATH"], OUT=self.out, FAKE_GATE_LOG=log)
        p = subprocess.run([os.path.join(self.tmp.name, "scripts", "device-check"), "--no-tests", *opts], env=env,
                           capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            return p.returncode, p.stdout + p.stderr
        with open(log) as f:
            args = json.load(f)
        runs = args[args.index("--runs") + 1]
        return runs, sorted(a for a in args if a in ("--update", "--no-fail"))

    def test_runs_keeps_the_mode(self):
        self.assertEqual(self.gate_args(), ("1", ["--no-fail"]))
        self.assertEqual(self.gate_args("--gate"), ("3", []))
        self.assertEqual(self.gate_args("--gate", "--runs", "5"), ("5", []))
        self.assertEqual(self.gate_args("--runs", "5", "--gate"), ("5", []))
        self.assertEqual(self.gate_args("--update", "--runs", "1"), ("1", ["--update"]))
        self.assertEqual(self.gate_args("--runs", "2"), ("2", ["--no-fail"]))

    def test_conflicting_or_bad_options_are_refused(self):
        rc, out = self.gate_args("--gate", "--update")
        self.assertEqual(rc, 2, out)
        self.assertIn("--gate and --update go one at a time", out)
        rc, out = self.gate_args("--runs", "x")
        self.assertEqual(rc, 2, out)
        self.assertIn("--runs needs a positive count, not 'x'", out)


if __name__ == "__main__":
    unittest.main()
