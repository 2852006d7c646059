#!/usr/bin/env python3
"""Writes the tokenizer.json test fixtures in tests/fixtures/tokenizer/hf/ and their reference ids.

Folders (each a tokenizer.json, most with a tokenizer_config.json), built with the Hugging Face `tokenizers` package:
  smollm2    the SmolLM2 vocab + merges (from tests/fixtures/tokenizer/smollm2.gguf) with SmolLM2's pre-tokenizer
             Sequence[Digits(individual), ByteLevel] and its special tokens.
  llama3     the Llama-3-style trained BPE of make_tokenizer_fixtures.py: Split(Llama-3 regex) + ByteLevel,
             ignore_merges, TemplateProcessing adding <|begin_of_text|>.
  qwen2      the Qwen2-style trained BPE: NFC normalizer, Split(Qwen2 regex) + ByteLevel, non-special added tokens.
  metaspace  a BPE trained here on characters, Llama-2 style: Prepend("▁") + Replace(" ", "▁") normalizer, byte
             fallback, <s> prefix, decoder Replace/ByteFallback/Fuse/Strip.
  metaspace_pre  the same vocab with a Metaspace pre-tokenizer (prepend_scheme "first", split) instead.
  bytes256   the 256 byte-level tokens alone (ids 0..255) and a plain-text chat template: a tokenizer for the tiny
             test models of tests/fixtures/models (vocab_size 256), used by the end-to-end HF folder test.
hf_<name>.json holds, per text: ids without and with the post-processor's special tokens, and HF's decode.
Usage: make_hf_tokenizer_fixtures.py [NAME...] (after make_tokenizer_fixtures.py; default: all)
"""
import json
import os
import sys

import gguf
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers import trainers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_tokenizer_fixtures as base  # noqa: E402

OUT = os.path.join(base.OUT, "hf")


def extra_corpus():
    return [
        "  leading spaces and trailing   ", "tabs\tand\nnewlines\r\n\n\n", "ｆｕｌｌ　ｗｉｄｔｈ and e\u0301 decomposed",
        "Ａ\u030a, Hangul \u1100\u1161\u11a8 jamo, 한국어 텍스트", "עברית ועוד", "العربية نص", "हिन्दी पाठ",
        "ελληνικά, русский текст", "x = [i**2 for i in range(10)]  # squares\n", "3.14159 1,000,000 2024-12-03",
        "emoji 👨‍👩‍👧‍👦 🇺🇸 👍🏽", "<s> </s> <unk> in text", "\u00a0\u2003\u3000 spaces",
    ]


def cases(tok, texts):
    out = []
    for text in texts:
        ids = tok.encode(text, add_special_tokens=False).ids
        ids_special = tok.encode(text, add_special_tokens=True).ids
        out.append({"text": text, "ids": ids, "ids_special": ids_special,
                    "decoded": tok.decode(ids, skip_special_tokens=False)})
    return out


def save(name, tok, config, texts):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as fh:  # compact: one line
        fh.write(tok.to_str())
    if config is not None:
        with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as fh:
            json.dump(config, fh, indent=2, ensure_ascii=False)
    path = os.path.join(base.OUT, "hf_%s.json" % name)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write('{"vocab": %s, "cases": [\n' % json.dumps(name))
        fh.write(",\n".join(json.dumps(c, ensure_ascii=True) for c in cases(tok, texts)))
        fh.write("\n]}\n")
    print("%s: %d bytes; %s" % (d, os.path.getsize(os.path.join(d, "tokenizer.json")), path))


def corpus(specials):
    return base.common_corpus() + base.special_corpus(specials) + extra_corpus() + base.random_texts(60, 77)


def make_smollm2():
    r = gguf.GGUFReader(os.path.join(base.OUT, "smollm2.gguf"))
    tokens = base.field_strings(r, "tokenizer.ggml.tokens")
    merges = base.field_strings(r, "tokenizer.ggml.merges")
    tt = r.fields["tokenizer.ggml.token_type"]
    types = [int(tt.parts[i][0]) for i in tt.data]
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)},
                               merges=[tuple(m.split(" ", 1)) for m in merges]))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, ty in zip(tokens, types) if ty == base.TOKEN_CONTROL])
    config = {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "add_prefix_space": False,
              "chat_template": base.field_value(r, "tokenizer.chat_template")}
    save("smollm2", tok, config, corpus(["<|im_start|>", "<|im_end|>"]))


def make_llama3():
    trained = base.train(base.LLAMA3_PATTERN, 3000)
    tok, _ = base.rebuild(trained, base.LLAMA3_PATTERN, True, ["Ġzqxjv", "Ġquokka"])
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
                                      special_tokens=[("<|begin_of_text|>", bos)])])
    config = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "chat_template": base.LLAMA3_TEMPLATE}
    save("llama3", tok, config, corpus(["<|eot_id|>", "<|start_header_id|>"]))


def make_qwen2():
    trained = base.train(base.QWEN2_PATTERN, 2500)
    tok, _ = base.rebuild(trained, base.QWEN2_PATTERN, False, [])
    tok.normalizer = normalizers.NFC()
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False)
                            for s in ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]])
    tok.add_tokens([AddedToken(s, special=False, normalized=False) for s in ["<tool_call>", "</tool_call>"]])
    config = {"bos_token": None, "eos_token": "<|im_end|>", "chat_template": base.QWEN2_TEMPLATE}
    save("qwen2", tok, config, corpus(["<|im_start|>", "<|im_end|>"]))


def metaspace_texts():
    return [t.replace("\r", "") for t in base.training_corpus()[:3000]]


def make_metaspace():
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    specials = ["<unk>", "<s>", "</s>"]
    byte_tokens = ["<0x%02X>" % b for b in range(256)]
    trainer = trainers.BpeTrainer(vocab_size=1500, min_frequency=2, show_progress=False,
                                  special_tokens=specials + byte_tokens, limit_alphabet=200)
    tok.train_from_iterator(metaspace_texts(), trainer=trainer)
    data = json.loads(tok.to_str())
    # Byte tokens are plain vocab entries in Llama-2's tokenizer.json (only <unk>, <s>, </s> are added tokens).
    data["added_tokens"] = [a for a in data["added_tokens"] if a["content"] in specials]
    tok = Tokenizer.from_str(json.dumps(data))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", tok.token_to_id("<s>"))])
    config = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": True}
    save("metaspace", tok, config, corpus(["<s>", "</s>"]))
    # The same vocab with a Metaspace pre-tokenizer (splitting at each ▁) and Metaspace decoder.
    pre = Tokenizer.from_str(tok.to_str())
    pre.normalizer = None
    pre.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    pre.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Metaspace(replacement="▁",
                                                                                 prepend_scheme="first")])
    save("metaspace_pre", pre, None, corpus(["<s>", "</s>"]))


def make_bytes256():
    vocab = {c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    assert len(vocab) == 256
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    config = {"chat_template": "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
                               "{% if add_generation_prompt %}assistant:{% endif %}"}
    save("bytes256", tok, config, base.common_corpus() + extra_corpus() + base.random_texts(60, 77))


def main():
    os.makedirs(OUT, exist_ok=True)
    makers = {"smollm2": make_smollm2, "llama3": make_llama3, "qwen2": make_qwen2, "metaspace": make_metaspace,
              "bytes256": make_bytes256}
    for name in sys.argv[1:] or list(makers):
        makers[name]()


if __name__ == "__main__":
    main()
