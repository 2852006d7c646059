#!/usr/bin/env python3
"""Writes the tokenizer test fixtures in tests/fixtures/tokenizer/.

For each of three byte-level BPE vocabularies it writes a metadata-only GGUF (tokenizer.ggml.* keys, no tensors) and
a JSON file of reference token ids computed with the Hugging Face `tokenizers` package:

  smollm2   the real SmolLM2-135M-Instruct vocab + merges, read from models/SmolLM2-135M-Instruct.Q4_1.gguf, with the
            pre-tokenizer of SmolLM2's tokenizer.json: Sequence[Digits(individual), ByteLevel(use_regex=True)].
  llama3    a small BPE trained here with the Llama-3 split regex (ignore_merges=True, as Llama 3's tokenizer.json),
            plus Llama-3 special tokens; tokenizer.ggml.pre = "llama-bpe".
  qwen2     a small BPE trained here with the Qwen2 split regex, plus Qwen2 special tokens and the non-special added
            tokens <tool_call>/</tool_call> (user-defined in GGUF); tokenizer.ggml.pre = "qwen2".

Each JSON case holds the text, the ids with special tokens parsed (HF default), and the ids with special tokens
encoded as plain text (HF encode_special_tokens=True). Usage: make_tokenizer_fixtures.py [--model PATH]
"""
import argparse
import glob
import json
import os
import random

import gguf
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizer")

LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")

QWEN35_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")
GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"

TOKEN_NORMAL, TOKEN_CONTROL, TOKEN_USER_DEFINED = 1, 3, 4

LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
QWEN2_TEMPLATE = (
    "{%- for message in messages %}{%- if loop.first and messages[0]['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}")


def common_corpus():
    """Mixed test texts: English, code, digits, whitespace, CJK, emoji, accents/combining marks, contractions."""
    return [
        "Hello world",
        "Hello, world! How are you doing today?",
        "The quick brown fox jumps over the lazy dog.",
        "I'm sure you'll like it; they've said it's what we'd want. He'll go, she'd stay.",
        "DON'T SHOUT. We'RE here, You'LL see, It'S fine, I'M ok, they'VE gone, she'D know, THEY'LL wait.",
        "rock 'n' roll, 'quoted', ''' triple, it's, the dog's bone, '' '",
        "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
        "#include <vector>\nint main() {\n\tstd::vector<int> v{1, 2, 3};\n\treturn v.size() > 2 ? 0 : 1;\n}\n",
        "for (int i = 0; i < 10; ++i) { sum += a[i] * b[i]; }  // dot product",
        "x=1;y=22;z=333;w=4444;v=55555",
        "1234567890",
        "3.14159265358979323846264338327950288419716939937510",
        "Call 555-1234 on 2024-01-01 at 12:30, pay $1,299.99 or 15%.",
        "123456789012345678901234567890123456789012345678901234567890",
        "  leading spaces",
        "trailing spaces   ",
        "a\n\nb",
        "\n\n\n",
        "a \n b",
        "\t\tindented with tabs\n\t\t\tmore",
        "mixed \t \n  whitespace \r\n runs   \n\n  end  ",
        " ",
        "   \n  ",
        "word\r\nline\rcarriage",
        "你好，世界！今天天气很好。",
        "日本語のテキストとカタカナ、ひらがな。",
        "한국어 텍스트입니다.",
        "😀 👍🏽 🇺🇸 family: 👨‍👩‍👧‍👦 done 🎉🎉",
        "café naïve résumé Ångström Zürich façade",
        "decomposed: e\u0301 a\u0300 n\u0303 o\u0308 and stacked x\u0301\u0302\u0303",
        "Ελληνικά κείμενα και Русский текст здесь.",
        "العربية نص قصير",
        "हिन्दी में पाठ",
        "math ∑∫√ ≤ ≥ ≠ ∞ and currency €100 £5 ¥300 ₹50",
        "non\u00a0breaking\u00a0space and ideographic\u3000space and line\u2028sep",
        "control \x01 chars \x7f here",
        "URL: https://example.com/path?q=1&r=two#frag (see [1]) {json: \"value\"}",
        "CamelCaseIdentifier snake_case_identifier kebab-case-identifier SCREAMING_CASE",
        "!!!??? ... --- *** ### @@@ ~~~ ``` ''' \"\"\"",
        "Numbers like 1st, 2nd, 3rd, 4th and 10x, 0x1F, 1e-5, 6.02e23.",
        "Mixed 中文 and English 混合 text 123 with 数字456.",
        "A long paragraph of plain English text, written to exercise the common merges of the vocabulary: "
        "transformers are neural networks that process sequences of tokens, and a tokenizer turns text into those "
        "tokens by splitting it into pieces and merging byte pairs according to a learned ranking.",
        "",
    ]


def special_corpus(specials):
    s = specials
    return [
        s[0] + "text after special",
        "before" + s[1] + "after",
        s[0] + s[1] + s[0],
        "partial " + s[0][:-1] + " not a token",
        "nested " + s[0][:3] + s[1] + s[0][3:] + " mix",
        "line\n" + s[1] + "\n\nnext",
    ]


def training_corpus():
    rng = random.Random(1234)
    parts = common_corpus() * 20
    files = sorted(glob.glob(os.path.join(os.path.dirname(os.__file__), "*.py")))[:40]
    for f in files:
        with open(f, encoding="utf-8", errors="replace") as fh:
            parts.append(fh.read())
    hanzi = [chr(0x4E00 + i) for i in range(0, 2000, 7)]
    greek = [chr(c) for c in range(0x3B1, 0x3CA)]
    cyr = [chr(c) for c in range(0x430, 0x450)]
    accented = list("àáâäãåæçèéêëìíîïñòóôöõøùúûüýÿß")
    latin = list("abcdefghijklmnopqrstuvwxyz")
    for _ in range(3000):
        kind = rng.randrange(5)
        if kind == 0:
            parts.append("".join(rng.choice(hanzi) for _ in range(rng.randint(2, 12))) + "。")
        elif kind == 1:
            parts.append(" ".join("".join(rng.choice(greek) for _ in range(rng.randint(2, 8))) for _ in range(5)))
        elif kind == 2:
            parts.append(" ".join("".join(rng.choice(cyr) for _ in range(rng.randint(2, 8))) for _ in range(5)))
        elif kind == 3:
            parts.append(" ".join("".join(rng.choice(latin + accented) for _ in range(rng.randint(2, 9)))
                                  for _ in range(6)))
        else:
            parts.append(" ".join(str(rng.randint(0, 10 ** rng.randint(1, 8))) for _ in range(6)))
    return parts


def merges_of(tok):
    merges = json.loads(tok.to_str())["model"]["merges"]
    return [m if isinstance(m, str) else m[0] + " " + m[1] for m in merges]


def reference_cases(tok, texts):
    cases = []
    for text in texts:
        tok.encode_special_tokens = False
        ids = tok.encode(text, add_special_tokens=False).ids
        tok.encode_special_tokens = True
        raw = tok.encode(text, add_special_tokens=False).ids
        tok.encode_special_tokens = False
        assert tok.decode(ids, skip_special_tokens=False) == text, text
        cases.append({"text": text, "ids": ids, "ids_plain": raw})
    return cases


def write_gguf(path, pre, tokens, types, merges, ids, chat_template, add_bos):
    w = gguf.GGUFWriter(path, arch="llama")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    for key, value in ids.items():
        w.add_uint32("tokenizer.ggml.%s_token_id" % key, value)
    w.add_add_bos_token(add_bos)
    w.add_chat_template(chat_template)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.close()
    print("%s: %d bytes, %d tokens, %d merges" % (path, os.path.getsize(path), len(tokens), len(merges)))


def write_json(path, name, cases):
    with open(path, "w", encoding="utf-8") as fh:  # one case a line
        fh.write('{"vocab": %s, "cases": [\n' % json.dumps(name))
        fh.write(",\n".join(json.dumps(c, ensure_ascii=True) for c in cases))
        fh.write("\n]}\n")
    print("%s: %d cases" % (path, len(cases)))


def field_strings(reader, key):
    f = reader.fields[key]
    return [bytes(f.parts[i]).decode("utf-8") for i in f.data]


def field_value(reader, key):
    f = reader.fields[key]
    v = f.parts[f.data[0]]
    return bytes(v).decode("utf-8") if f.types[0] == gguf.GGUFValueType.STRING else v.tolist()[0]


def make_smollm2(model_path):
    r = gguf.GGUFReader(model_path)
    tokens = field_strings(r, "tokenizer.ggml.tokens")
    merges = field_strings(r, "tokenizer.ggml.merges")
    tt = r.fields["tokenizer.ggml.token_type"]
    types = [int(tt.parts[i][0]) for i in tt.data]
    vocab = {t: i for i, t in enumerate(tokens)}
    bpe = models.BPE(vocab=vocab, merges=[tuple(m.split(" ", 1)) for m in merges])
    tok = Tokenizer(bpe)
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    specials = [t for t, ty in zip(tokens, types) if ty == TOKEN_CONTROL]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    texts = common_corpus() + special_corpus(["<|im_start|>", "<|im_end|>"]) + [
        "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n",
        "<|endoftext|><repo_name>imp<file_sep>main.cpp\n<jupyter_code>print(1)",
    ]
    ids = {k: field_value(r, "tokenizer.ggml.%s_token_id" % k) for k in ("bos", "eos", "unknown", "padding")}
    ids = {"bos": ids["bos"], "eos": ids["eos"], "unknown": ids["unknown"], "padding": ids["padding"]}
    write_gguf(os.path.join(OUT, "smollm2.gguf"), "smollm", tokens, types, merges, ids,
               field_value(r, "tokenizer.chat_template"), bool(field_value(r, "tokenizer.ggml.add_bos_token")))
    write_json(os.path.join(OUT, "smollm2.json"), "smollm2", reference_cases(tok, texts))


def train(pattern, vocab_size):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(training_corpus(), trainer=trainer)
    return tok


def rebuild(trained, pattern, ignore_merges, extra_tokens):
    """Same vocab/merges as `trained`, plus `extra_tokens` appended (reachable only through ignore_merges)."""
    vocab = trained.get_vocab()
    for t in extra_tokens:
        vocab[t] = len(vocab)
    merges = merges_of(trained)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m.split(" ", 1)) for m in merges],
                               ignore_merges=ignore_merges))
    tok.pre_tokenizer = trained.pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    return tok, merges


def gguf_vocab(tok, control, user_defined):
    n = tok.get_vocab_size(with_added_tokens=True)
    tokens = [tok.id_to_token(i) for i in range(n)]
    types = [TOKEN_CONTROL if t in control else TOKEN_USER_DEFINED if t in user_defined else TOKEN_NORMAL
             for t in tokens]
    return tokens, types


def make_llama3():
    trained = train(LLAMA3_PATTERN, 3000)
    # Whole words that only ignore_merges can produce (no merge chain builds them).
    extra = ["Ġzqxjv", "Ġquokka", "ĠÃ©Ã©Ã©"]
    tok, merges = rebuild(trained, LLAMA3_PATTERN, True, extra)
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
                "<|eom_id|>", "<|python_tag|>"]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    tokens, types = gguf_vocab(tok, set(specials), set())
    sid = {s: tok.token_to_id(s) for s in specials}
    texts = common_corpus() + special_corpus(["<|eot_id|>", "<|start_header_id|>"]) + [
        "a zqxjv and a quokka and ééé; zqxjvs quokkas",
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    ]
    ids = {"bos": sid["<|begin_of_text|>"], "eos": sid["<|end_of_text|>"], "eot": sid["<|eot_id|>"],
           "eom": sid["<|eom_id|>"]}
    write_gguf(os.path.join(OUT, "llama3.gguf"), "llama-bpe", tokens, types, merges, ids, LLAMA3_TEMPLATE, True)
    write_json(os.path.join(OUT, "llama3.json"), "llama3", reference_cases(tok, texts))


def make_qwen2():
    trained = train(QWEN2_PATTERN, 2500)
    tok, merges = rebuild(trained, QWEN2_PATTERN, False, [])
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    plain_added = ["<tool_call>", "</tool_call>"]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    tok.add_tokens([AddedToken(s, special=False, normalized=False) for s in plain_added])
    tokens, types = gguf_vocab(tok, set(specials), set(plain_added))
    sid = {s: tok.token_to_id(s) for s in specials}
    texts = common_corpus() + special_corpus(["<|im_start|>", "<|im_end|>"]) + [
        "<tool_call>\n{\"name\": \"f\"}\n</tool_call><|im_end|>",
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<|endoftext|>",
    ]
    ids = {"bos": sid["<|endoftext|>"], "eos": sid["<|im_end|>"], "padding": sid["<|endoftext|>"]}
    write_gguf(os.path.join(OUT, "qwen2.gguf"), "qwen2", tokens, types, merges, ids, QWEN2_TEMPLATE, False)
    write_json(os.path.join(OUT, "qwen2.json"), "qwen2", reference_cases(tok, texts))


def pre_tokenizer_for(pre):
    """HF pre-tokenizer equivalent to each tokenizer.ggml.pre family, and whether it ignores merges."""
    def split(pattern):
        return pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False)
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    if pre == "smollm":
        return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]), False
    if pre == "default":
        return pre_tokenizers.Sequence([split(r"[\p{P}\$\+<=>\^~\|]+"), split(GPT2_PATTERN), split(r"\p{N}+"),
                                        split(r"[0-9][0-9][0-9]"), byte_level]), False
    pattern = {"llama-bpe": LLAMA3_PATTERN, "qwen2": QWEN2_PATTERN, "qwen35": QWEN35_PATTERN, "gpt-2": GPT2_PATTERN}
    return pre_tokenizers.Sequence([split(pattern[pre]), byte_level]), pre == "llama-bpe"


def random_texts(count, seed):
    rng = random.Random(seed)
    pools = [
        list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"), list("0123456789"),
        list("!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~"),
        [" ", " ", "  ", "\n", "\t", "\r", "\r\n", "\u00a0", "\u3000", "\u2028", "\x85", "\x0b", "\x1c"],
        ["'", "'s", "'S", "'t", "'re", "'RE", "'ve", "'m", "'ll", "'Ll", "'d", "\u2019"],
        [chr(c) for c in range(0x4E00, 0x4E40)], ["😀", "👍🏽", "🇺🇸", "👨‍👩‍👧‍👦", "🎉", "\u200d", "\ufe0f"],
        ["\u0301", "\u0300", "\u0308", "é", "ñ", "ß", "Å", "ı", "ſ", "ǅ"], ["한", "국", "어", "ひ", "カ", "ー"],
        ["١", "²", "½", "Ⅻ", "٣", "０", "𝟙"], ["а", "б", "Ж", "α", "Ω", "ا", "ل", "ह", "ि", "्"],
        ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<tool_call>", "<|", "|>"],
        ["the", " the", "ing", " and", "tion", "  ", "    ", "def ", "return", "\n\n", "1234"],
    ]
    return ["".join(rng.choice(rng.choice(pools)) for _ in range(rng.randint(1, 30))) for _ in range(count)]


def make_pretokenizer_cases():
    """The Qwen2 fixture vocab under every pre-tokenizer family, on random mixed strings."""
    r = gguf.GGUFReader(os.path.join(OUT, "qwen2.gguf"))
    tokens = field_strings(r, "tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ", 1)) for m in field_strings(r, "tokenizer.ggml.merges")]
    tt = r.fields["tokenizer.ggml.token_type"]
    types = [int(tt.parts[i][0]) for i in tt.data]
    texts = random_texts(150, 2024)
    out = {}
    for pre in ("llama-bpe", "qwen2", "qwen35", "gpt-2", "smollm", "default"):
        pre_tok, ignore_merges = pre_tokenizer_for(pre)
        tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges,
                                   ignore_merges=ignore_merges))
        tok.pre_tokenizer = pre_tok
        tok.decoder = decoders.ByteLevel()
        for t, ty in zip(tokens, types):
            if ty == TOKEN_CONTROL:
                tok.add_special_tokens([AddedToken(t, special=True, normalized=False)])
            elif ty == TOKEN_USER_DEFINED:
                tok.add_tokens([AddedToken(t, special=False, normalized=False)])
        out[pre] = [{"text": t, "ids": tok.encode(t, add_special_tokens=False).ids} for t in texts]
    path = os.path.join(OUT, "pretokenizers.json")
    with open(path, "w", encoding="utf-8") as fh:  # one case a line
        fh.write("{\n")
        fh.write(",\n".join("%s: [\n%s\n]" % (json.dumps(pre), ",\n".join(json.dumps(c) for c in cases))
                             for pre, cases in out.items()))
        fh.write("\n}\n")
    print("%s: %d cases for each of %d pre-tokenizers" % (path, len(texts), len(out)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    make_smollm2(args.model)
    make_llama3()
    make_qwen2()
    make_pretokenizer_cases()


if __name__ == "__main__":
    main()
