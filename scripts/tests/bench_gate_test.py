#!/usr/bin/env python3
"""Tests of scripts/bench-gate's GPU mode on fixture JSON files (no GPU, no imp build; python3 standard library).

A fake `imp` (a script in a temporary build folder) prints the records of fixtures/bench-records.json ("on", or
"off" under --no-cuda-graphs), edited per case; the gate runs one real profile (bench/arch_llama/smollm2-135m.q8_0,
marked graphs-ratio) against fixtures/baseline-h200.json or a variant. Each case checks the exit status and the line
that names the reason: a gate must fail when it compares nothing, not only when a number drops.
  python3 scripts/tests/bench_gate_test.py [-v]
"""
import copy
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GATE = os.path.join(ROOT, "scripts", "bench-gate")
PROFILE = "bench/arch_llama/smollm2-135m.q8_0.toml"
FAKE_IMP = """#!{python}
import json, os, sys
if os.environ.get("FAKE_FAIL") and os.environ["FAKE_FAIL"] in " ".join(sys.argv):
    sys.exit("fake imp: failing on purpose")
with open(os.environ["FAKE_BENCH_RECORDS"]) as f:
    recs = json.load(f)
print(json.dumps(recs["off" if "--no-cuda-graphs" in sys.argv else "on"]))
"""


def load(name):
    with open(os.path.join(HERE, "fixtures", name)) as f:
        return json.load(f)


class GateTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="bench-gate-test-")
        t = self.tmp.name
        os.makedirs(os.path.join(t, "build", "bin"))
        imp = os.path.join(t, "build", "bin", "imp")
        with open(imp, "w") as f:
            f.write(FAKE_IMP.format(python=sys.executable))
        os.chmod(imp, 0o755)
        os.makedirs(os.path.join(t, "models"))
        open(os.path.join(t, "models", "smollm2-135m.q8_0.gguf"), "w").close()  # the gate only checks it exists
        self.records = load("bench-records.json")
        self.baseline = load("baseline-h200.json")

    def tearDown(self):
        self.tmp.cleanup()

    def run_gate(self, *extra, baseline="default", only="arch_llama/smollm2-135m", env_extra=None):
        t = self.tmp.name
        with open(os.path.join(t, "records.json"), "w") as f:
            json.dump(self.records, f)
        base = os.path.join(t, "baseline.json")
        if baseline == "default":
            with open(base, "w") as f:
                json.dump(self.baseline, f)
        elif baseline is None:
            base = os.path.join(t, "no-such-baseline.json")
        args = [sys.executable, GATE, "--build", os.path.join(t, "build"), "--models", os.path.join(t, "models"),
                "--only", only, "--runs", "2", "--baseline", base, *extra]
        env = dict(os.environ, FAKE_BENCH_RECORDS=os.path.join(t, "records.json"), **(env_extra or {}))
        p = subprocess.run(args, capture_output=True, text=True, env=env)
        return p.returncode, p.stdout + p.stderr, base

    def assert_fails(self, text, *extra, baseline="default"):
        rc, out, _ = self.run_gate(*extra, baseline=baseline)
        self.assertEqual(rc, 1, out)
        self.assertIn(text, out)
        return out

    def test_good_run_passes(self):
        rc, out, _ = self.run_gate()
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"pp512\s+172000\.00\s+170000\.00\s+\+1\.2%")
        self.assertRegex(out, r"tg128 graphs on/off\s+1\.83x\s+>= 1\.3x\s+ok")

    def test_weight_upload_per_kind_is_shown(self):
        rc, out, _ = self.run_gate()
        self.assertEqual(rc, 0, out)
        self.assertIn(f"weight upload {PROFILE}: quant_ggml matrices 0.41 s (0.34 GB/s), vectors 0.02 s (0.20 GB/s)",
                      out)

    def test_regression_fails(self):
        self.baseline["configs"][PROFILE]["tests"]["tg128"] = 1200.0
        self.assert_fails("tg128: 1100.00 t/s is -8.3% vs baseline 1200.00")

    def test_no_baseline_for_this_gpu_fails(self):
        self.assert_fails("no baseline for NVIDIA H200", baseline=None)
        rc, out, _ = self.run_gate("--no-fail", baseline=None)  # reported, not failed, in an informal run
        self.assertEqual(rc, 0, out)
        self.assertIn("NOTE no baseline for NVIDIA H200", out)

    def test_update_writes_the_baseline(self):
        rc, out, base = self.run_gate("--update", baseline=None)
        self.assertEqual(rc, 0, out)
        with open(base) as f:
            written = json.load(f)
        self.assertEqual(written["device"], "NVIDIA H200")
        self.assertEqual(written["configs"][PROFILE]["tests"], {"pp512": 172000.0, "tg128": 1100.0})
        self.assertEqual(written["configs"][PROFILE]["runs"], 2)

    def test_update_keeps_each_profile_as_it_finishes(self):
        # Two profiles, the second failing: the first's entry is in the baseline file (and its copy in --out) though
        # the run as a whole failed; the failing one is named.
        other = "bench/arch_llama/llama3.2-3b.q4_k_m.toml"
        open(os.path.join(self.tmp.name, "models", "llama3.2-3b.q4_k_m.gguf"), "w").close()
        out_dir = os.path.join(self.tmp.name, "out")
        rc, out, base = self.run_gate("--update", "--out", out_dir, baseline=None,
                                      only="arch_llama/smollm2-135m,arch_llama/llama3.2-3b",
                                      env_extra={"FAKE_FAIL": "llama3.2-3b"})
        self.assertEqual(rc, 1, out)
        self.assertIn(f"baseline NOT written for the profiles that had errors: {other}", out)
        for path in (base, os.path.join(out_dir, os.path.basename(base))):
            with open(path) as f:
                written = json.load(f)
            self.assertEqual(sorted(written["configs"]), [PROFILE])
            self.assertEqual(written["configs"][PROFILE]["tests"], {"pp512": 172000.0, "tg128": 1100.0})
        # The file's other profiles stay as they were; the one run replaces its entry.
        self.baseline["configs"]["bench/quant_ggml/llama3.1-8b.q8_0.toml"] = {"tests": {"tg128": 1.0}}
        rc, out, base = self.run_gate("--update")
        self.assertEqual(rc, 0, out)
        with open(base) as f:
            written = json.load(f)
        self.assertEqual(written["configs"]["bench/quant_ggml/llama3.1-8b.q8_0.toml"], {"tests": {"tg128": 1.0}})
        self.assertEqual(written["configs"][PROFILE]["runs"], 2)
        self.assertRegex(out, r"pp512\s+172000\.00\s+170000\.00\s+\+1\.2%")  # compared with the file as it was

    def test_baseline_test_missing_from_the_run_fails(self):
        for key in ("on", "off"):
            self.records[key] = [r for r in self.records[key] if r["test"] != "pp512"]
        self.assert_fails("pp512: in the baseline but not in the run")

    def test_baseline_of_other_profiles_only_fails(self):
        cfg = self.baseline["configs"].pop(PROFILE)
        self.baseline["configs"]["bench/arch_llama/llama3.1-8b.q4_k_m.toml"] = cfg
        self.assert_fails("nothing was compared")

    def test_profile_without_a_baseline_entry_fails(self):
        # The baseline file has this GPU, but not this profile: its tests would all be "new", compared with nothing.
        other = "bench/arch_llama/llama3.2-3b.q4_k_m.toml"
        self.baseline["configs"][other] = self.baseline["configs"].pop(PROFILE)
        self.assert_fails(f"{PROFILE}: no baseline for this profile on NVIDIA H200")
        rc, out, _ = self.run_gate("--no-fail")
        self.assertEqual(rc, 0, out)
        self.assertIn(f"NOTE {PROFILE}: no baseline for this profile", out)

    def test_test_without_a_baseline_entry_fails(self):
        del self.baseline["configs"][PROFILE]["tests"]["pp512"]
        out = self.assert_fails(f"{PROFILE} pp512: not in the baseline")
        self.assertRegex(out, r"pp512\s+172000\.00\s+-\s+.*new")

    def test_update_does_not_record_a_profile_whose_graphs_ratio_is_broken(self):
        for r in self.records["on"]:
            r["graphs"] = False
        rc, out, base = self.run_gate("--update", baseline=None)
        self.assertEqual(rc, 1, out)
        self.assertIn("decode ran without CUDA graphs", out)
        self.assertIn(f"baseline NOT written for the profiles that had errors: {PROFILE}", out)
        self.assertFalse(os.path.exists(base), out)

    def test_cpu_executor_fails_even_with_no_fail(self):
        for key in ("on", "off"):
            for r in self.records[key]:
                r.update(executor="cpu (16 threads)", gemm_bf16_tflops=None, gemm_shape="", prefill_vs_gemm=None,
                         l2_cache_bytes=0, graphs=False)
        self.assert_fails("ran on the cpu (16 threads) executor, not CUDA")
        self.assert_fails("not CUDA", "--no-fail")

    def test_graphs_off_where_the_ratio_is_gated_fails(self):
        for r in self.records["on"]:
            r["graphs"] = False
        self.assert_fails("decode ran without CUDA graphs")
        self.assert_fails("decode ran without CUDA graphs", "--no-fail")

    def test_graphs_on_in_the_graphs_off_run_fails(self):
        self.records["off"] = copy.deepcopy(self.records["on"])
        self.assert_fails("--no-cuda-graphs still reports graphs on")

    def test_empty_run_fails(self):
        self.records = {"on": [], "off": []}
        out = self.assert_fails("no profile ran", "--no-fail")
        self.assertIn("expected a non-empty JSON array", out)

    def test_prefill_flops_count_the_lm_head_once(self):
        r = next(x for x in self.records["on"] if x["test"] == "pp512")
        # The old count: every matrix (LM head included) for every token.
        r["prefill_tflops"] = 2 * r["matmul_params"] * r["avg_ts"] / 1e12
        r["prefill_vs_gemm"] = r["prefill_tflops"] / r["gemm_bf16_tflops"]
        self.assert_fails("prefill_tflops")

    def test_small_copy_buffer_fails(self):
        for key in ("on", "off"):
            for r in self.records[key]:
                r["copy_buffer_bytes"] = 32 << 20
        self.assert_fails("copy_buffer_bytes 33554432 < 4 x l2_cache_bytes")

    def test_load_phases_beyond_the_load_time_fail(self):
        for key in ("on", "off"):
            for r in self.records[key]:
                r["load_phases"][0]["s"] = 5.0
        self.assert_fails("load_phases add up to 5.020 s, more than load_to_first_token_s 0.8")

    def test_missing_load_phases_fail(self):
        for key in ("on", "off"):
            for r in self.records[key]:
                r["load_phases"] = []
        self.assert_fails("load_phases [] is not a list")

    def test_nan_logits_fail(self):
        self.records["on"][1]["logits_finite"] = False
        self.assert_fails("logits contain NaN/Inf")

    def test_drop_models_deletes_each_model_after_its_last_profile(self):
        model = os.path.join(self.tmp.name, "models", "smollm2-135m.q8_0.gguf")
        rc, out, _ = self.run_gate()
        self.assertEqual(rc, 0, out)
        self.assertTrue(os.path.exists(model), "kept without --drop-models")
        rc, out, _ = self.run_gate("--drop-models")
        self.assertEqual(rc, 0, out)
        self.assertFalse(os.path.exists(model), out)
        self.assertIn("[gate] dropped", out)

    def test_only_takes_comma_separated_texts(self):
        rc, out, _ = self.run_gate("--only", "no-such-profile,arch_llama/smollm2-135m")
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"pp512\s+172000\.00")
        self.assert_fails("no bench profiles", "--only", "no-such-profile,other")


if __name__ == "__main__":
    unittest.main()
