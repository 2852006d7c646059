#!/usr/bin/env python3
"""Records reference greedy generations of SmolLM2-135M-Instruct (Q4_1 GGUF) from an independent implementation,
llama.cpp through llama-cpp-python (PyPI, CPU build), for tests/e2e.

Usage: python3 tests/tools/record_llamacpp_reference.py models/SmolLM2-135M-Instruct.Q4_1.gguf \
           tests/fixtures/e2e/smollm2_llamacpp.json
For each prompt it stores llama.cpp's prompt token ids, the 32 greedily generated ids (argmax of the full logits,
no sampler state) and, per generated step, the margin between the best and second-best logit: a step whose margin is
tiny is a near-tie where two correct engines may legitimately differ (llama.cpp quantizes activations to 8 bits for
its quantized matmuls, imp does not).
"""
import json
import sys

import numpy as np
from llama_cpp import Llama

PROMPTS = ["The capital of France is", "Once upon a time, there was a", "def fibonacci(n):\n    "]
N = 32


def main(model_path, out_path):
    llm = Llama(model_path=model_path, n_ctx=256, n_threads=2, logits_all=True, verbose=False, seed=0)
    import llama_cpp
    records = []
    for p in PROMPTS:
        ids = llm.tokenize(p.encode(), add_bos=False, special=False)
        llm.reset()
        llm.eval(ids)
        gen, margins = [], []
        for _ in range(N):
            logits = np.array(llm.scores[llm.n_tokens - 1, :], dtype=np.float32)
            top2 = np.sort(logits)[-2:]
            t = int(np.argmax(logits))
            gen.append(t)
            margins.append(float(top2[1] - top2[0]))
            llm.eval([t])
        text = llm.detokenize(gen).decode("utf-8", errors="replace")
        records.append({"prompt": p, "prompt_ids": ids, "generated_ids": gen, "margins": margins, "text": text})
        print(repr(p), "->", repr(text))
    meta = {"implementation": "llama-cpp-python " + llama_cpp.__version__, "model": model_path.split("/")[-1],
            "method": "greedy argmax over full logits, n_ctx 256, CPU"}
    with open(out_path, "w") as f:
        json.dump({"meta": meta, "records": records}, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
