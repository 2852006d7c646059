#!/usr/bin/env python3
"""Compares `imp tokenize` on a GGUF file with the Hugging Face tokenizer that transformers converts from the same
GGUF (AutoTokenizer.from_pretrained(..., gguf_file=...)), on the mixed corpus of make_tokenizer_fixtures.py.
Prints each mismatch and a summary; exits 1 on any mismatch.
Usage: compare_gguf_tokenizer.py MODEL.gguf [--imp build/bin/imp]
"""
import argparse
import json
import os
import subprocess
import sys

from transformers import AutoTokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_tokenizer_fixtures as base  # noqa: E402
import make_hf_tokenizer_fixtures as hf  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf")
    ap.add_argument("--imp", default=os.path.join(base.ROOT, "build", "bin", "imp"))
    args = ap.parse_args()
    tok = AutoTokenizer.from_pretrained(os.path.dirname(os.path.abspath(args.gguf)),
                                        gguf_file=os.path.basename(args.gguf))
    texts = base.common_corpus() + hf.extra_corpus() + base.random_texts(80, 5)
    bad = 0
    for text in texts:
        want = tok(text, add_special_tokens=False)["input_ids"]
        out = subprocess.run([args.imp, "tokenize", args.gguf, "--prompt", text, "--ids", "--no-bos"],
                             capture_output=True, text=True, check=True).stdout
        got = json.loads(out)
        if got != want:
            bad += 1
            print("MISMATCH %r\n  hf:  %s\n  imp: %s" % (text, want, got))
    print("%d texts, %d mismatches" % (len(texts), bad))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
