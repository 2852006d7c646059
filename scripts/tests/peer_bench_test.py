#!/usr/bin/env python3
"""Tests of scripts/peer-bench without a GPU or llama.cpp (python3 standard library): `prepare` on a small fake
sdist (long pax names included, so a renamed member keeps its new name), the pruning rules, and `run` with a fake
llama-bench and a fake imp, checking the table's rows and ratios.
  python3 scripts/tests/peer_bench_test.py [-v]
"""
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PEER = os.path.join(ROOT, "scripts", "peer-bench")
VENDOR = "llama_cpp_python-0.3.36/vendor/llama.cpp/"
LONG = "ggml/src/ggml-cuda/template-instances/" + "x" * 90 + ".cu"  # > 100 characters with the prefix: a pax name
FILES = ["CMakeLists.txt", "src/llama.cpp", "tools/llama-bench/llama-bench.cpp", LONG, "ggml/src/ggml.c",
         "ggml/src/ggml-cpu/ggml-cpu.c", "ggml/src/ggml-vulkan/vk.cpp", "models/ggml-vocab.gguf", "docs/build.md",
         "tools/ui/index.html", "examples/simple/simple.cpp"]
KEPT = ["CMakeLists.txt", "src/llama.cpp", "tools/llama-bench/llama-bench.cpp", LONG, "ggml/src/ggml.c",
        "ggml/src/ggml-cpu/ggml-cpu.c"]
FAKE_LLAMA_BENCH = """#!{python}
import json, sys
a = sys.argv
d = [int(x) for x in a[a.index("-d") + 1].split(",")]
p, n = int(a[a.index("-p") + 1]), int(a[a.index("-n") + 1])
print("loading model")  # llama-bench prints other lines before the JSON
print(json.dumps([{{"build_commit": "0c1e570", "n_prompt": pp, "n_gen": g, "n_depth": dd, "avg_ts": 100.0,
                   "stddev_ts": 1.0}} for dd in d for pp, g in [(p, 0), (0, n)]]))
"""
FAKE_IMP = """#!{python}
import json, sys
a = sys.argv
sets = [a[i + 1] for i, x in enumerate(a) if x == "--set"]
val = lambda k: [s.split("=", 1)[1] for s in sets if s.startswith(k + "=")][-1]
pp, tg = int(val("bench.pp").strip("[]")), int(val("bench.tg").strip("[]"))
d = [int(x) for x in a[a.index("-d") + 1].split(",")]
print(json.dumps([{{"test": "x", "n_prompt": p, "n_gen": g, "n_depth": dd, "avg_ts": 250.0 if g else 300.0,
                   "stddev_ts": 2.0, "quant": "Q4_K_M", "commit": "abc1234", "kv_dtype": "BF16"}}
                  for dd in d for p, g in [(pp, 0), (0, tg)]]))
"""


def write_exe(path, text):
    with open(path, "w") as f:
        f.write(text.format(python=sys.executable))
    os.chmod(path, 0o755)


class PeerBenchTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="peer-bench-test-")
        self.t = self.tmp.name
        self.sdist = os.path.join(self.t, "llama_cpp_python-0.3.36.tar.gz")
        with tarfile.open(self.sdist, "w:gz", format=tarfile.PAX_FORMAT) as tar:
            for rel in FILES:
                data = rel.encode()
                info = tarfile.TarInfo(VENDOR + rel)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))

    def tearDown(self):
        self.tmp.cleanup()

    def peer(self, *args):
        return subprocess.run([sys.executable, PEER, *args], capture_output=True, text=True)

    def test_prepare_prunes_and_renames(self):
        out = os.path.join(self.t, "pruned.tar.gz")
        p = self.peer("prepare", "--sdist", self.sdist, "--out", out)
        self.assertEqual(p.returncode, 0, p.stderr)
        with tarfile.open(out) as tar:
            names = sorted(m.name for m in tar.getmembers())
            self.assertEqual(names, sorted("llama.cpp/" + f for f in KEPT))
            self.assertEqual(tar.extractfile("llama.cpp/" + LONG).read(), LONG.encode())

    def test_prepare_without_sdist_is_one_clear_error(self):
        p = self.peer("prepare", "--cache", os.path.join(self.t, "empty"))
        self.assertEqual(p.returncode, 1)
        self.assertIn("no llama_cpp_python-0.3.36.tar.gz", p.stderr)

    def test_run_prints_one_row_per_test_with_ratios(self):
        lb, imp = os.path.join(self.t, "llama-bench"), os.path.join(self.t, "imp")
        write_exe(lb, FAKE_LLAMA_BENCH)
        write_exe(imp, FAKE_IMP)
        model = os.path.join(self.t, "m.q4_k_m.gguf")
        open(model, "w").close()
        p = self.peer("run", model, "--llama-bench", lb, "--imp", imp, "--depth", "4096", "--json",
                      os.path.join(self.t, "out.json"))
        self.assertEqual(p.returncode, 0, p.stderr)
        rows = [l for l in p.stdout.splitlines() if l.startswith("| m.q4_k_m.gguf")]
        self.assertEqual([r.split(" | ")[2] for r in rows], ["pp512", "tg128", "pp512 @ d4096", "tg128 @ d4096"])
        self.assertTrue(all(r.endswith(" | 3.00x |") or r.endswith(" | 2.50x |") for r in rows), rows)
        self.assertIn("imp abc1234 (KV BF16), llama.cpp 0c1e570", p.stdout)
        with open(os.path.join(self.t, "out.json")) as f:
            self.assertEqual(len(json.load(f)["rows"]), 4)


if __name__ == "__main__":
    unittest.main()
