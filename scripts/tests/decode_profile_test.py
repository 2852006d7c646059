#!/usr/bin/env python3
"""Tests of scripts/decode-profile's summary of an Nsight Compute CSV (fixtures/ncu-decode.csv: a units row,
thousands separators, two argmax runs around one step of three kernels), without a GPU.
  python3 scripts/tests/decode_profile_test.py [-v]
"""
import os
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.join(os.path.dirname(HERE), "decode-profile")
CSV = os.path.join(HERE, "fixtures", "ncu-decode.csv")
STALLS = os.path.join(HERE, "fixtures", "ncu-stalls.csv")  # --stalls metrics: 2 GEMVs and a router between argmax runs


def run(*args):
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True)


class DecodeProfileTest(unittest.TestCase):
    def test_one_step_grouped_with_floor_and_gap(self):
        p = run("--csv", CSV, "--step-ms", "0.02", "--copy-gbs", "4000")
        self.assertEqual(p.returncode, 0, p.stderr)
        rows = [l for l in p.stdout.splitlines() if l.startswith("| ") and "---" not in l][1:]
        self.assertEqual([r.split(" | ")[0] for r in rows],
                         ["| get_rows_kernel<LayoutQ4_K>", "| gemv_tiled_kernel<LayoutQ4_K, 1, 2, true>"])
        self.assertIn("| 2 | 8.0 | 72.7 % | 20.00 | 2500 | 5.0 |", rows[1])
        self.assertIn("one decode step: 3 kernels, 11.0 us of kernel time", p.stdout)
        self.assertIn("outside the kernels (launch gaps, ramp-up, minus PDL overlap): 9.0 us (45.0 %)", p.stdout)

    def test_two_steps_without_sampling_between_are_one_step(self):
        # argmax, (get_rows, gemv, gemv) twice, argmax: the report is one step of 3 kernels
        with open(CSV) as f:
            lines = f.read().splitlines()
        head, body = lines[:3], lines[3:]
        text = "\n".join(head + [body[0]] + body[1:4] + body[1:4] + [body[4]]) + "\n"
        path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"decode-profile-2x-{os.getpid()}.csv")
        with open(path, "w") as f:
            f.write(text)
        try:
            p = run("--csv", path, "--step-ms", "0.02", "--copy-gbs", "4000")
        finally:
            os.remove(path)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("one decode step: 3 kernels, 11.0 us of kernel time", p.stdout)

    def test_stalls_grouped_with_means_imbalance_and_top_reasons(self):
        p = run("--csv", STALLS, "--stalls")
        self.assertEqual(p.returncode, 0, p.stderr)
        rows = [l for l in p.stdout.splitlines() if l.startswith("| ") and "---" not in l][1:]
        self.assertEqual(len(rows), 2)  # argmax left out; the two GEMV calls are one group
        # anonymous namespaces gone from the name; means over the 2 calls: 9 us, 65 % issue, 35 % warps, max 3000 over
        # mean 2250 active cycles, 2.1 M instructions; reasons by size
        self.assertTrue(rows[0].startswith("| wo_gemv_kernel<(Codec)1, 1, 0, 3, 8> | (32, 9, 1) | (256, 1, 1) | 2 |"),
                        rows[0])
        self.assertIn("| 9.00 | 1000 | 65.0 % | 35.0 % | 1.33 | 2100000 | long_scoreboard 4.00, not_selected 2.00, "
                      "wait 0.50 |", rows[0])
        self.assertIn("| router_wide_kernel | (65, 1, 1) | (128, 1, 1) | 1 | 10.00 | 200 | 20.0 % | 15.0 % | 1.00 |",
                      rows[1])
        self.assertIn("barrier 6.00, membar 3.00, long_scoreboard 2.00 |", rows[1])

    def test_stalls_needs_the_scheduler_metrics(self):
        p = run("--csv", CSV, "--stalls")  # a CSV of the plain metrics only
        self.assertEqual(p.returncode, 1)
        self.assertIn("the CSV lacks the metrics", p.stderr)
        self.assertIn("smsp__issue_active.avg.pct_of_peak_sustained_active", p.stderr)

    def test_too_few_sampling_runs_is_an_error(self):
        with open(CSV) as f:
            lines = f.read().splitlines()
        path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"decode-profile-test-{os.getpid()}.csv")
        with open(path, "w") as f:
            f.write("\n".join(l for l in lines if '"5"' not in l and '"4"' not in l) + "\n")
        try:
            p = run("--csv", path)
        finally:
            os.remove(path)
        self.assertEqual(p.returncode, 1)
        self.assertIn("found 1 sampling (argmax) runs", p.stderr)

    def test_prefill_is_the_last_of_two_identical_passes(self):
        # load-time kernel, then two passes of get_rows + 2 GEMVs (+ argmax): the last pass is reported
        with open(CSV) as f:
            lines = f.read().splitlines()
        head, body = lines[:3], lines[3:]
        rows = [body[1], body[2], body[3], body[4]]  # get_rows, gemv, gemv, argmax
        text = "\n".join(head + [body[0]] + rows + rows) + "\n"
        path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"decode-profile-pp-{os.getpid()}.csv")
        with open(path, "w") as f:
            f.write(text)
        try:
            p = run("--csv", path, "--prefill", "512", "--step-ms", "0.03", "--copy-gbs", "4000")
            bad = path + ".bad"
            with open(bad, "w") as f:
                f.write("\n".join(head + rows + [body[1]]) + "\n")  # ends get_rows after argmax
            q = run("--csv", bad, "--prefill", "512")
        finally:
            os.remove(path)
            os.remove(bad)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("one prefill of 512 tokens: 4 kernels, 13.0 us of kernel time", p.stdout)
        self.assertIn("real time of the prefill of 512 tokens (imp bench): 30.0 us", p.stdout)
        self.assertEqual(q.returncode, 1)
        self.assertIn("does not end with two identical passes", q.stderr)


if __name__ == "__main__":
    unittest.main()
