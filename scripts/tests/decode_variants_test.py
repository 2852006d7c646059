#!/usr/bin/env python3
"""Tests of scripts/decode-variants with a fake imp (no GPU): the --set overrides of each variant reach imp, the
ratios are against the first variant of the same test, and a failing run is a row with its error and exit status 1.
  python3 scripts/tests/decode_variants_test.py [-v]
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.join(os.path.dirname(HERE), "decode-variants")
FAKE_IMP = """#!{python}
import json, sys
sets = [sys.argv[i + 1] for i, a in enumerate(sys.argv) if a == "--set"]
if "plugin.quant_ggml.fuse_swiglu=true" in sets and "plugin.quant_ggml.fuse_norm=false" in sets:
    print("imp: error: boom", file=sys.stderr)
    sys.exit(1)
gemv = ["plugin.quant_ggml.gemv_prefetch=true", "plugin.quant_ggml.gemv_q8_dp4a=true",
        "plugin.quant_ggml.gemv_plain_pdl=true", "plugin.quant_ggml.gemv_l2_prefetch=32768"]
ts = 100.0 * (1.5 if "plugin.quant_ggml.fuse_norm=true" in sets else 1.0) * (
    1.2 if 'plugin.core.decode_attention="one"' in sets else 1.0) * (2.0 if all(g in sets for g in gemv) else 1.0)
print(json.dumps([{{"test": "tg128", "avg_ts": ts, "stddev_ts": 1.0, "decode_efficiency": ts / 1000,
                   "device": "GPU", "copy_bw_gbs": 4000.0, "commit": "abc"}}]))
"""


def run_tool(variants, extra=()):
    """decode-variants on p.toml with the fake imp; returns the finished process."""
    with tempfile.TemporaryDirectory() as t:
        imp = os.path.join(t, "imp")
        with open(imp, "w") as f:
            f.write(FAKE_IMP.format(python=sys.executable))
        os.chmod(imp, 0o755)
        sel = ["--variants", variants] if variants else []
        return subprocess.run([sys.executable, TOOL, "--imp", imp, *sel, *extra, "p.toml"],
                              capture_output=True, text=True)


class DecodeVariantsTest(unittest.TestCase):
    def test_rows_ratios_and_failures(self):
        p = run_tool("split,one,norm,swiglu")
        self.assertEqual(p.returncode, 1, p.stderr)
        rows = [l for l in p.stdout.splitlines() if l.startswith("| p.toml")]
        self.assertEqual(len(rows), 4, p.stdout)
        self.assertTrue(rows[0].endswith("| 100.00 ± 1.00 | 10.0 % | 1.000x |"), rows[0])
        self.assertTrue(rows[1].endswith("| 120.00 ± 1.00 | 12.0 % | 1.200x |"), rows[1])
        self.assertTrue(rows[2].endswith("| 180.00 ± 1.00 | 18.0 % | 1.800x |"), rows[2])
        self.assertIn("| swiglu | error: imp: error: boom |", rows[3])
        self.assertTrue(p.stdout.startswith("GPU, copy bandwidth 4000 GB/s, commit abc"))
        # each run on stderr as it finishes
        self.assertIn("[decode-variants] p.toml one: tg128 120.00", p.stderr)
        self.assertIn("[decode-variants] p.toml swiglu: error: imp: error: boom", p.stderr)

    def test_json_has_every_run(self):
        with tempfile.TemporaryDirectory() as t:
            out = os.path.join(t, "dv.json")
            p = run_tool("split,one", ["--json", out])
            self.assertEqual(p.returncode, 0, p.stderr)
            with open(out) as f:
                raw = json.load(f)
            self.assertEqual(sorted(raw), ["p.toml one", "p.toml split"])
            self.assertEqual(raw["p.toml one"][0]["avg_ts"], 120.0)

    def test_gemv_variants_pass_every_gemv_setting(self):
        p = run_tool("one,pf,gemv,gnorm")
        self.assertEqual(p.returncode, 0, p.stderr)
        rows = [l for l in p.stdout.splitlines() if l.startswith("| p.toml")]
        self.assertEqual(len(rows), 4, p.stdout)
        self.assertTrue(rows[1].endswith("| 120.00 ± 1.00 | 12.0 % | 1.000x |"), rows[1])  # one setting only
        self.assertTrue(rows[2].endswith("| 240.00 ± 1.00 | 24.0 % | 2.000x |"), rows[2])
        self.assertTrue(rows[3].endswith("| 360.00 ± 1.00 | 36.0 % | 3.000x |"), rows[3])

    def test_defined_variants(self):
        # --variant NAME=SET;SET: its sets reach imp (fuse_norm doubles 1.5x; with decode_attention one more 1.2x);
        # without --variants the defined ones run in order; an empty set list is the profile as it is.
        p = run_tool(None, ["--variant", "base=", "--variant",
                            'fast=plugin.quant_ggml.fuse_norm=true;plugin.core.decode_attention="one"'])
        self.assertEqual(p.returncode, 0, p.stderr)
        rows = [l for l in p.stdout.splitlines() if l.startswith("| p.toml")]
        self.assertEqual(len(rows), 2, p.stdout)
        self.assertIn("| base |", rows[0])
        self.assertTrue(rows[1].endswith("| 180.00 ± 1.00 | 18.0 % | 1.800x |"), rows[1])
        bad = run_tool(None, ["--variant", "nameonly"])
        self.assertEqual(bad.returncode, 1)
        self.assertIn("is not NAME=SET", bad.stderr)


if __name__ == "__main__":
    unittest.main()
