"""scripts/bench-serve against imp serve on SmolLM2 (CPU, tiny sizes; no timing is judged): it starts and stops the
server itself, spreads the streams over client processes, warms up, and its JSON counts every request and token;
a request the server refuses (a prompt past the context) is an error and the exit status is 1."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

from server import BINARY, PROFILE, SOURCE, Server

TOOL = os.path.join(SOURCE, "scripts", "bench-serve")


def bench(*args):
    with tempfile.TemporaryDirectory() as t:
        out = os.path.join(t, "r.json")
        p = subprocess.run([sys.executable, TOOL, "--imp", BINARY, "--json", out, *args], capture_output=True,
                           text=True, timeout=900)
        data = json.load(open(out)) if os.path.exists(out) else None
    return p, data


class BenchServeTest(unittest.TestCase):
    def test_levels_count_every_request_and_token(self):
        p, d = bench("--profile", PROFILE, "--set", "runtime.executor=cpu", "--streams", "1,3", "--prompt-tokens",
                     "12", "--output-tokens", "5", "--requests", "2", "--warmup-tokens", "2", "--procs", "2")
        self.assertEqual(p.returncode, 0, p.stderr[-2000:])
        self.assertIn("3 sequences", d["server"])  # runtime.max_seqs follows the largest level
        self.assertEqual([lv["streams"] for lv in d["levels"]], [1, 3])
        self.assertEqual(json.loads(p.stdout.strip().splitlines()[-1]), d)
        for lv in d["levels"]:
            self.assertEqual(lv["errors"], 0, lv["first_error"])
            self.assertEqual(lv["requests"], 2 * lv["streams"])
            tokens = lv["output_tok_per_s"] * lv["wall_s"]
            self.assertAlmostEqual(tokens, 5 * lv["requests"], delta=0.1 * lv["wall_s"] + 0.01 * tokens)
            self.assertGreater(lv["ttft_ms"]["p50"], 0)
            self.assertLessEqual(lv["ttft_ms"]["p50"], lv["ttft_ms"]["p99"])
            self.assertGreater(lv["tpot_ms"]["p50"], 0)
            st = lv["server_steps"]  # every token came from a step; the prompt rows too
            self.assertGreaterEqual(st["decode_steps"] + st["mixed_steps"], 5)
            rows = st["rows_per_step"] * (st["decode_steps"] + st["mixed_steps"])
            self.assertAlmostEqual(rows, lv["requests"] * (12 + 4), delta=0.05 * rows + 1)
            self.assertGreater(st["step_ms"], 0)

    def test_shared_prefix_hits_the_prefix_cache(self):
        # 40 of 48 prompt tokens shared: after the first request, each starts on the two kept 16-token blocks.
        p, d = bench("--profile", PROFILE, "--set", "runtime.executor=cpu", "--streams", "2", "--prompt-tokens", "48",
                     "--shared-prefix", "40", "--output-tokens", "3", "--requests", "2", "--warmup-tokens", "2",
                     "--procs", "1")
        self.assertEqual(p.returncode, 0, p.stderr[-2000:])
        self.assertEqual(d["shared_prefix"], 40)
        lv = d["levels"][0]
        self.assertEqual(lv["errors"], 0, lv["first_error"])
        self.assertEqual(lv["cached_prompt_tokens"], 32 * lv["requests"])  # the warm-up kept the blocks already
        self.assertNotIn("warning", p.stderr)

    def test_refused_requests_are_errors(self):
        s = Server("runtime.max_seqs=2", "runtime.max_seq_len=64")
        try:
            p, d = bench("--url", s.url, "--streams", "2", "--prompt-tokens", "80", "--output-tokens", "4",
                         "--requests", "1", "--warmup-tokens", "0")
        finally:
            s.stop()
        self.assertEqual(p.returncode, 1, p.stderr[-2000:])
        lv = d["levels"][0]
        self.assertEqual((lv["requests"], lv["errors"]), (0, 2))
        self.assertIn("HTTP 400", lv["first_error"])


if __name__ == "__main__":
    unittest.main()
