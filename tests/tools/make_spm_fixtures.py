#!/usr/bin/env python3
"""Writes tests/fixtures/tokenizer/spm.gguf (a metadata-only GGUF with a SentencePiece vocabulary,
tokenizer.ggml.model = "llama", as llama.cpp's converter writes one) and spm.json (reference ids).

The vocabulary is a SentencePiece BPE model trained here (byte_fallback, identity normalization, whitespace kept).
References per text: the ids of the sentencepiece library itself and of transformers' conversion of the same model to
a Hugging Face fast tokenizer (LlamaTokenizer from SentencePieceExtractor, legacy); the script checks that the two agree.
Usage: make_spm_fixtures.py
"""
import json
import os
import sys
import tempfile

import gguf
import sentencepiece as spm
from tokenizers.models import BPE
from transformers import LlamaTokenizer
from transformers.convert_slow_tokenizer import SentencePieceExtractor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_tokenizer_fixtures as base  # noqa: E402
import make_hf_tokenizer_fixtures as hf  # noqa: E402

UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE, NORMAL = 2, 3, 4, 5, 6, 1


def main():
    tmp = tempfile.mkdtemp()
    corpus = os.path.join(tmp, "corpus.txt")
    with open(corpus, "w", encoding="utf-8") as fh:
        for t in base.training_corpus()[:3000]:
            fh.write(t.replace("\r", "") + "\n")
    prefix = os.path.join(tmp, "spm")
    spm.SentencePieceTrainer.train(
        input=corpus, model_prefix=prefix, vocab_size=1800, model_type="bpe", byte_fallback=True,
        normalization_rule_name="identity", remove_extra_whitespaces=False, split_digits=True,
        allow_whitespace_only_pieces=True, character_coverage=0.9995, user_defined_symbols=["<tool_call>"],
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
    n = sp.get_piece_size()
    tokens, scores, types = [], [], []
    for i in range(n):
        tokens.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        types.append(UNKNOWN if sp.is_unknown(i) else CONTROL if sp.is_control(i) else UNUSED if sp.is_unused(i)
                     else BYTE if sp.is_byte(i) else USER_DEFINED if tokens[-1] == "<tool_call>" else NORMAL)
    path = os.path.join(base.OUT, "spm.gguf")
    w = gguf.GGUFWriter(path, arch="llama")
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_space_prefix(True)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.close()

    kw = SentencePieceExtractor(prefix + ".model").extract(BPE)
    fast = LlamaTokenizer(vocab=kw["vocab"], merges=kw["merges"], legacy=True, add_prefix_space=True,
                          additional_special_tokens=kw["additional_special_tokens"])
    texts = [t for t in base.common_corpus() + hf.extra_corpus() + base.random_texts(80, 9)
             if "<|" not in t and "<s>" not in t and "</s>" not in t and "<unk>" not in t]
    cases, differ = [], 0
    for text in texts:
        ids = sp.encode(text)
        hf_ids = fast(text, add_special_tokens=False)["input_ids"]
        differ += ids != hf_ids
        cases.append({"text": text, "ids": ids, "hf_ids": hf_ids, "decoded": sp.decode(ids)})
    with open(os.path.join(base.OUT, "spm.json"), "w", encoding="utf-8") as fh:
        fh.write('{"vocab": "spm", "cases": [\n')
        fh.write(",\n".join(json.dumps(c, ensure_ascii=True) for c in cases))
        fh.write("\n]}\n")
    print("%s: %d tokens; %d cases, HF conversion differs from sentencepiece on %d" % (path, n, len(cases), differ))


if __name__ == "__main__":
    main()
