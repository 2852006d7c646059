#!/usr/bin/env python3
"""scripts/sanitize-ledger on fake gpu test binaries and device-check outputs (no GPU)."""
import os
import stat
import subprocess
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "sanitize-ledger")
API = "cuda: alloc counts cudaMalloc, zero-fills, and reports out of memory with tag and size"
API_SPEC = API.replace(",", "\\,")

# A gpu test binary: two cases (one with Catch2's special characters) and, for 'a', the API-error test.
TEST_BIN = """#!/usr/bin/env python3
import sys
args = sys.argv[1:]
if args[:1] == ["--list-test-names-only"]:
    if {has_api} and args[1:] == [{spec!r}]:
        print({api!r})
    elif args[1:2] == ["~[.]"]:
        print("first case\\nsecond, with a comma [x]")
    sys.exit(0)
sys.exit(3)
"""


def result(commit, lines, canaries=True):
    out = [f"[device-check] NVIDIA H100 80GB HBM3, 580.159.04, 81559 MiB | staged from commit {commit} | /x"]
    if canaries:
        out += [f"[device-check] sanitize canary {t}: its defect is reported"
                for t in ("memcheck", "racecheck", "initcheck")]
    return "\n".join(out + [f"[device-check] sanitize {l}" for l in lines]) + "\n"


class LedgerTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.build = os.path.join(self.tmp.name, "build")
        os.makedirs(os.path.join(self.build, "bin"))
        for name, api in (("a_gpu_tests", True), ("b_gpu_tests", False)):
            path = os.path.join(self.build, "bin", name)
            with open(path, "w") as f:
                f.write(TEST_BIN.format(has_api=api, spec=API_SPEC, api=API))
            os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
        self.ledger = os.path.join(self.tmp.name, "ledger.tsv")
        self.head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                   text=True, check=True).stdout.strip()

    def tearDown(self):
        self.tmp.cleanup()

    def run_ledger(self, *args):
        p = subprocess.run([SCRIPT, "--ledger", self.ledger] + list(args), capture_output=True, text=True,
                           timeout=60)
        return p.returncode, p.stdout, p.stderr

    def add(self, text):
        path = os.path.join(self.tmp.name, "result.txt")
        with open(path, "w") as f:
            f.write(text)
        return self.run_ledger("add", path, "--build", self.build)

    def todo(self, *extra):
        rc, out, err = self.run_ledger("todo", "--build", self.build, *extra)
        self.assertEqual(rc, 0, err)
        return [n for n in out.strip().split(",") if n], err

    def test_every_run_is_needed_at_first(self):
        names, err = self.todo()
        self.assertEqual(len(names), 2 * 2 * 3 + 1, names)  # 2 binaries x 2 cases x 3 tools + a's API-error run
        self.assertIn("a_gpu_tests.memcheck-api-errors-off$", names)
        self.assertIn("b_gpu_tests.racecheck.s1$", names)
        self.assertIn("IMP_SANITIZE_SHARDS=2", err)
        rc, out, _ = self.run_ledger("status", "--build", self.build)
        self.assertEqual(rc, 1, out)  # not all clean

    def test_clean_runs_at_this_tree_are_done_and_failures_are_not(self):
        rc, out, err = self.add(result(self.head, [
            "a_gpu_tests.memcheck.s0: clean (31 s)",
            "a_gpu_tests.racecheck.s1: FAILED, timed out after 428 s (/tmp/san/x.log)",
            "a_gpu_tests.initcheck.s1: FAILED, exit 86 after 12 s (/tmp/san/y.log)",
            "b_gpu_tests.memcheck.s0: FAILED, not started within IMP_SANITIZE_DEADLINE (400 s) (/tmp/z.log)"]))
        self.assertEqual(rc, 0, err)
        self.assertIn("3 verdicts", out)
        with open(self.ledger) as f:
            text = f.read()
        self.assertIn("a_gpu_tests\tmemcheck\tfirst case\t" + self.head + "\tNVIDIA H100 80GB HBM3\tclean\t31", text)
        self.assertIn("a_gpu_tests\tracecheck\tsecond, with a comma [x]\t" + self.head, text)
        self.assertIn("timed out after 428 s\t428", text)
        names, _ = self.todo()
        self.assertNotIn("a_gpu_tests.memcheck.s0$", names)
        self.assertIn("a_gpu_tests.racecheck.s1$", names)
        self.assertIn("a_gpu_tests.initcheck.s1$", names)
        self.assertIn("b_gpu_tests.memcheck.s0$", names)
        self.assertEqual(len(names), 12)

    def test_a_clean_run_of_other_sources_is_stale(self):
        # An unknown commit and a dirty build stand for sources that may differ from this tree's.
        self.add(result("0000000", ["a_gpu_tests.memcheck.s0: clean (5 s)"]))
        self.add(result(self.head + "-dirty", ["a_gpu_tests.memcheck.s1: clean (5 s)"]))
        names, _ = self.todo()
        self.assertIn("a_gpu_tests.memcheck.s0$", names)
        self.assertIn("a_gpu_tests.memcheck.s1$", names)
        rc, out, _ = self.run_ledger("status", "--build", self.build)
        self.assertRegex(out, r"a_gpu_tests\s+memcheck\s+clean\s+0\s+failed\s+0\s+stale\s+2")

    def test_all_clean_status_passes(self):
        lines = [f"{b}.{t}.s{k}: clean (1 s)" for b in ("a_gpu_tests", "b_gpu_tests")
                 for t in ("memcheck", "racecheck", "initcheck") for k in (0, 1)]
        rc, _, err = self.add(result(self.head, lines + ["a_gpu_tests.memcheck-api-errors-off: clean (2 s)"]))
        self.assertEqual(rc, 0, err)
        names, _ = self.todo()
        self.assertEqual(names, [])
        rc, out, _ = self.run_ledger("status", "--build", self.build)
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"all\s+clean\s+13\s+failed\s+0")

    def test_todo_lists_the_longest_first(self):
        # From the ledger (at another commit: every run is needed again): a's case 0 under memcheck took 100 s
        # (racecheck of that case then about 200, initcheck 100), initcheck of a's case 1 was stopped after 300 s
        # (at least that: 450); a's memcheck of case 1 gets its binary and tool's median (100); the other runs have
        # no times (DEFAULT_SECONDS, 120).
        self.add(result("0000000", ["a_gpu_tests.memcheck.s0: clean (100 s)",
                                    "a_gpu_tests.initcheck.s1: FAILED, timed out after 300 s (/x.log)"]))
        names, _ = self.todo()
        self.assertEqual(len(names), 13)
        self.assertEqual(names[:2], ["a_gpu_tests.initcheck.s1$", "a_gpu_tests.racecheck.s0$"], names)
        self.assertEqual(sorted(names[-3:]), ["a_gpu_tests.initcheck.s0$", "a_gpu_tests.memcheck.s0$",
                                              "a_gpu_tests.memcheck.s1$"], names)

    def test_todo_plans_a_call(self):
        # 2 slots of 500 s: the 450 s run (stopped at 300 s before) first, then the 200 s racecheck and the 120 s
        # runs fill the slots (450 and 200 + 120 + 120: 4 runs), longest first, in the order they would start.
        self.add(result("0000000", ["a_gpu_tests.memcheck.s0: clean (100 s)",
                                    "a_gpu_tests.initcheck.s1: FAILED, timed out after 300 s (/x.log)"]))
        names, err = self.todo("--jobs", "2", "--seconds", "500")
        self.assertEqual(len(names), 4, names)
        self.assertEqual(names[:2], ["a_gpu_tests.initcheck.s1$", "a_gpu_tests.racecheck.s0$"])
        self.assertIn("4 of the 13 runs needed", err)
        # 2 slots of 400 s: the run stopped at 300 s gets a whole slot (it may end within the longer limit); the other
        # slot takes the 200 s racecheck and a 120 s run.
        names, err = self.todo("--jobs", "2", "--seconds", "400")
        self.assertEqual(len(names), 3, names)
        self.assertEqual(names[:2], ["a_gpu_tests.initcheck.s1$", "a_gpu_tests.racecheck.s0$"])
        self.assertNotIn("more than 400", err)
        self.assertIn("3 of the 13 runs needed", err)
        # a run stopped after the call's length or more cannot end in it
        names, err = self.todo("--jobs", "2", "--seconds", "300")
        self.assertIn("a_gpu_tests.initcheck.s1 stopped after 300 s before: split its case", err)
        rc, _, err = self.run_ledger("todo", "--build", self.build, "--jobs", "2")
        self.assertNotEqual(rc, 0)
        self.assertIn("--jobs and --seconds together", err)

    def test_racecheck_is_estimated_from_its_binarys_ratio(self):
        # a's case 0: memcheck 10 s, racecheck 60 s (6x), so racecheck of its case 1 (memcheck 20 s) is expected to
        # take 120 s, not twice 20; b has no ratio of its own and takes the median of all (6x) for its case 0.
        self.add(result("0000000", ["a_gpu_tests.memcheck.s0: clean (10 s)", "a_gpu_tests.racecheck.s0: clean (60 s)",
                                    "a_gpu_tests.memcheck.s1: clean (20 s)", "b_gpu_tests.initcheck.s0: clean (15 s)"]))
        _, err = self.todo("--jobs", "2", "--seconds", "100")
        self.assertIn("a_gpu_tests.racecheck.s1 is expected to take 120 s, more than 100", err)
        _, err = self.todo("--jobs", "2", "--seconds", "80")
        self.assertIn("b_gpu_tests.racecheck.s0 is expected to take 90 s, more than 80", err)
        self.assertNotIn("a_gpu_tests.racecheck.s0 is expected", err)  # its own 60 s

    def test_a_shorter_stop_keeps_the_longer_one(self):
        self.add(result(self.head, ["a_gpu_tests.racecheck.s1: FAILED, timed out after 428 s (/x.log)"]))
        self.add(result(self.head, ["a_gpu_tests.racecheck.s1: FAILED, timed out after 90 s (/x.log)"]))
        with open(self.ledger) as f:
            self.assertIn("timed out after 428 s\t428", f.read())
        self.add(result(self.head, ["a_gpu_tests.racecheck.s1: clean (500 s)"]))
        with open(self.ledger) as f:
            self.assertIn("\tclean\t500", f.read())

    def test_a_silent_canary_records_nothing(self):
        rc, _, err = self.add(result(self.head, ["a_gpu_tests.memcheck.s0: clean (1 s)"], canaries=False))
        self.assertNotEqual(rc, 0)
        self.assertIn("not every canary's defect was reported", err)
        self.assertFalse(os.path.exists(self.ledger))

    def test_a_run_the_build_does_not_have_is_an_error(self):
        rc, _, err = self.add(result(self.head, ["a_gpu_tests.memcheck.s7: clean (1 s)"]))
        self.assertNotEqual(rc, 0)
        self.assertIn("'a_gpu_tests.memcheck.s7' is not a run of the binaries", err)

    def test_a_result_without_the_header_line_is_an_error(self):
        path = os.path.join(self.tmp.name, "r.txt")
        with open(path, "w") as f:
            f.write("".join(f"[device-check] sanitize canary {t}: its defect is reported\n"
                            for t in ("memcheck", "racecheck", "initcheck")))
        rc, _, err = self.run_ledger("add", path, "--build", self.build)
        self.assertNotEqual(rc, 0)
        self.assertIn("staged from commit", err)


class StalenessTest(unittest.TestCase):
    """Which changes since a verdict's commit leave it standing: only other binaries' GPU test files."""

    @classmethod
    def setUpClass(cls):
        import importlib.machinery
        import importlib.util
        loader = importlib.machinery.SourceFileLoader("sanitize_ledger", SCRIPT)
        spec = importlib.util.spec_from_loader("sanitize_ledger", loader)
        cls.m = importlib.util.module_from_spec(spec)
        loader.exec_module(cls.m)

    def same(self, binary, changed):
        return self.m.same_sources("c0ffee0", binary, {"c0ffee0": changed})

    def test_rules(self):
        self.assertTrue(self.same("quant_ggml_gpu_tests", []))
        self.assertTrue(self.same("quant_ggml_gpu_tests", ["plugins/arch_gdn/tests_gpu/gdn_gpu_test.cpp"]))
        self.assertFalse(self.same("arch_gdn_gpu_tests", ["plugins/arch_gdn/tests_gpu/gdn_gpu_test.cpp"]))
        self.assertFalse(self.same("quant_ggml_gpu_tests", ["plugins/quant_ggml/cuda/gemv.cu"]))
        self.assertFalse(self.same("quant_ggml_gpu_tests", ["plugins/arch_qwen_moe/tests/router_probe.h"]))
        # quant_nvfp4's tests compile quant_fp8's test headers: a change there counts for both
        self.assertFalse(self.same("quant_nvfp4_gpu_tests", ["plugins/quant_fp8/tests_gpu/wo_test_cases.h"]))
        self.assertTrue(self.same("quant_ggml_gpu_tests", ["plugins/quant_fp8/tests_gpu/wo_test_cases.h"]))
        self.assertTrue(self.same("arch_gdn_gpu_tests", ["core/src/exec/cuda/attention_test.cpp"]))
        self.assertFalse(self.same("core_exec_cuda_gpu_tests", ["core/src/exec/cuda/attention_test.cpp"]))
        self.assertFalse(self.same("arch_gdn_gpu_tests", ["core/src/exec/cuda/cuda_test_util.h"]))
        self.assertFalse(self.same("new_gpu_tests", ["plugins/quant_ggml/tests_gpu/x_test.cpp"]))  # not listed
        self.assertFalse(self.same("quant_ggml_gpu_tests", None))  # history unknown

    def test_rules_from_the_build_inputs(self):
        # With the binary's build inputs known: a changed source or header counts only when the binary is built
        # from it; a changed file that is not code counts under core/, plugins/, tests/ and tools/ (CMake files
        # where the binary has inputs, fixtures), not elsewhere (scripts, bench profiles).
        inputs = frozenset({"core/src/exec/cuda/attention.cu", "core/include/imp/cuda/launch.cuh",
                            "plugins/quant_ggml/cuda/gemv.cu", "tools/synth_gguf/main.cpp"})

        def same(changed):
            return self.m.same_sources("c0ffee0", "x_gpu_tests", {"c0ffee0": changed}, inputs)

        self.assertTrue(same([]))
        self.assertTrue(same(["plugins/quant_fp8/cuda/wo_gemv.cu", "plugins/quant_fp8/cuda/wo_gemv_chunk.cuh"]))
        self.assertTrue(same(["scripts/device-check", "bench/arch_gdn/x.toml", "configs/x.toml"]))
        self.assertFalse(same(["core/include/imp/cuda/launch.cuh"]))
        self.assertFalse(same(["tools/synth_gguf/main.cpp"]))
        self.assertFalse(same(["plugins/quant_ggml/CMakeLists.txt"]))  # above an input
        self.assertTrue(same(["plugins/quant_fp8/CMakeLists.txt"]))  # no input of the binary there
        self.assertFalse(same(["tests/fixtures/tiny.gguf"]))
        self.assertFalse(same(["plugins/quant_fp8/tests/fixtures/w.json"]))  # any test may read fixtures
        self.assertFalse(self.m.same_sources("c0ffee0", "x_gpu_tests", {"c0ffee0": None}, inputs))

    def test_build_files_count_for_the_targets_of_their_folder(self):
        # A CMakeLists.txt or a script counts only when the binary has an input in its folder or below it; the root
        # build files, CMake modules and configured files always.
        inputs = frozenset({"core/src/exec/cuda/attention.cu", "plugins/quant_ggml/cuda/gemv.cu",
                            "tests/catch_main.cpp", "tests/e2e_gpu/run_test.cpp"})

        def same(changed):
            return self.m.same_sources("c0ffee0", "x_gpu_tests", {"c0ffee0": changed}, inputs)

        self.assertTrue(same(["tests/serve/CMakeLists.txt", "tests/serve/banner.sh", "tests/e2e/CMakeLists.txt"]))
        self.assertTrue(same(["core/src/serve/CMakeLists.txt", "core/src/serve/web/index.html"]))
        self.assertTrue(same(["plugins/arch_gdn/CMakeLists.txt", "fuzz/CMakeLists.txt"]))
        self.assertFalse(same(["tests/e2e_gpu/CMakeLists.txt"]))
        self.assertFalse(same(["tests/CMakeLists.txt"]))  # above tests/catch_main.cpp
        self.assertFalse(same(["core/CMakeLists.txt"]))
        self.assertFalse(same(["plugins/quant_ggml/cuda/CMakeLists.txt"]))
        self.assertFalse(same(["CMakeLists.txt"]))
        self.assertFalse(same(["cmake/ImpPlugin.cmake"]))
        self.assertFalse(same(["tests/cli_test.cmake"]))
        self.assertFalse(same(["core/include/imp/config.h.in"]))
        self.assertTrue(same(["scripts/sanitize-ledger", "bench/CMakeLists.txt"]))

    def test_build_inputs_from_ninja(self):
        # The tree's own build, where there is one: a test binary's inputs hold its sources and the headers they
        # include, not another binary's test files; a folder without build.ninja tells nothing.
        build = os.path.join(ROOT, "build")
        if not os.path.exists(os.path.join(build, "build.ninja")) or \
                not os.path.exists(os.path.join(build, "bin", "quant_ggml_gpu_tests")):
            self.skipTest("no ninja build with the gpu test binaries in build/")
        got = self.m.binary_inputs(build, "quant_ggml_gpu_tests")
        if got is None:
            self.skipTest("the build's dependency log is not complete")
        self.assertIn("core/include/imp/cuda/launch.cuh", got)
        self.assertTrue(any(f.startswith("plugins/quant_ggml/tests_gpu/") for f in got))
        self.assertFalse(any(f.startswith("plugins/quant_fp8/tests_gpu/") for f in got))
        with tempfile.TemporaryDirectory() as t:
            self.assertIsNone(self.m.binary_inputs(t, "quant_ggml_gpu_tests"))

        # Of libimp_core, only what the binary can reach counts: a kernel test does not run the profile parser or
        # the tokenizer; a whole-model test that loads a profile does.
        self.assertIn("core/src/exec/cuda/attention.cu", got)
        self.assertIn("core/include/imp/error.h", got)  # included by unreachable objects and reachable ones
        self.assertNotIn("core/src/profile/profile.cpp", got)
        self.assertNotIn("core/src/profile/profile.h", got)
        self.assertNotIn("core/src/tokenizer/bpe.cpp", got)
        if os.path.exists(os.path.join(build, "bin", "e2e_gpu_tests")):
            e2e = self.m.binary_inputs(build, "e2e_gpu_tests")
            if e2e is not None:
                self.assertIn("core/src/profile/profile.cpp", e2e)

    def test_unreachable_core_objects(self):
        # Objects compiled here: the binary's own object calls f (core a.o), which calls g (core b.o); core c.o is
        # called by nobody and holds a weak copy of an inline function the binary uses (no tie); core d.o runs a
        # static constructor that calls h (core e.o); the binary's test2.o needs imp::twice<int>, explicitly
        # instantiated (a weak definition) in core f.o only. Unreachable: c.o only. Without nm's answer: nothing.
        srcs = {
            "test.o": "int f(); inline int w() { return 7; } int use() { return f() + w(); }",
            "core/CMakeFiles/imp_core.dir/a.o": "int g(); int f() { return g() + 1; }",
            "core/CMakeFiles/imp_core.dir/b.o": "int g() { return 2; }",
            "core/CMakeFiles/imp_core.dir/c.o": "inline int w() { return 7; } int unused() { return w(); }",
            "core/CMakeFiles/imp_core.dir/d.o": "int h(); static int x = h();",
            "core/CMakeFiles/imp_core.dir/e.o": "int h() { return 3; }",
            # imp's explicit template instantiation: a weak definition only f.o has, which the binary needs
            "test2.o": "namespace imp { template <class T> T twice(T); extern template int twice<int>(int); } "
                       "int use2() { return imp::twice(3); }",
            "core/CMakeFiles/imp_core.dir/f.o": "namespace imp { template <class T> T twice(T x) { return 2 * x; } "
                                                "template int twice<int>(int); }",
        }
        with tempfile.TemporaryDirectory() as t:
            for obj, code in srcs.items():
                os.makedirs(os.path.dirname(os.path.join(t, obj)), exist_ok=True)
                src = os.path.join(t, obj[:-2] + ".cpp")
                with open(src, "w") as f:
                    f.write(code + "\n")
                r = subprocess.run(["c++", "-c", "-O0", src, "-o", os.path.join(t, obj)], capture_output=True)
                if r.returncode != 0:
                    self.skipTest("no C++ compiler")
            self.m.object_symbols.cache_clear()
            self.m.runs_at_load.cache_clear()
            got = self.m.unreachable_core_objects(t, list(srcs))
            self.assertEqual(got, frozenset({"core/CMakeFiles/imp_core.dir/c.o"}))
            self.assertEqual(self.m.unreachable_core_objects(t, list(srcs) + ["missing.o"]), frozenset())


if __name__ == "__main__":
    unittest.main()
