#!/usr/bin/env python3
"""Writes tests/fixtures/tokenizer/chat_templates.json: the templates in tests/fixtures/tokenizer/templates/ (SmolLM2,
Llama 3.2, Qwen3, Qwen3.5, as published with those models) rendered by Python jinja2 the way transformers renders chat
templates (transformers' own compile function: sandboxed, trim_blocks, lstrip_blocks, loopcontrols, its tojson,
raise_exception, strftime_now) over a corpus of conversations. A case whose rendering raises holds the message.
Usage: make_chat_template_fixtures.py
"""
import json
import os

from transformers.utils.chat_template_utils import _compile_jinja_template

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DIR = os.path.join(ROOT, "tests", "fixtures", "tokenizer")
TEMPLATES = ["smollm2", "llama3_2", "qwen3", "qwen3_5"]
TOKENS = {"smollm2": ("<|im_start|>", "<|im_end|>"), "llama3_2": ("<|begin_of_text|>", "<|eot_id|>"),
          "qwen3": ("", "<|im_end|>"), "qwen3_5": ("", "<|im_end|>")}

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the weather in a city, in °C or °F.",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "City name, e.g. \"Zürich\""},
        "unit": {"type": "string", "enum": ["c", "f"]}, "days": {"type": "integer", "minimum": 1}},
        "required": ["city"]}}}
SEARCH = {"type": "function", "function": {"name": "search", "description": "Web search",
                                           "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}


def conversations():
    u = lambda c: {"role": "user", "content": c}  # noqa: E731
    a = lambda c: {"role": "assistant", "content": c}  # noqa: E731
    s = lambda c: {"role": "system", "content": c}  # noqa: E731
    call = {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Zürich", "days": 2}}}]}
    call_text = {"role": "assistant", "content": "Let me check.", "tool_calls": [
        {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}},
        {"type": "function", "function": {"name": "search", "arguments": {"q": "Paris events"}}}]}
    tool = {"role": "tool", "content": "{\"temp\": 21.5, \"sky\": \"clear\"}"}
    return [
        ("one user turn", [u("Hi!")], None),
        ("system and user", [s("Be brief."), u("What is 2+2?")], None),
        ("multi-turn", [s("You are a poet."), u("Write a haiku."), a("Autumn leaves fall\nsoftly."), u("Another")], None),
        ("empty contents", [u(""), a(""), u("  ")], None),
        ("whitespace around content", [s("  padded system \n"), u("\n\n  padded user\t\n")], None),
        ("unicode", [u("Grüße aus Köln 👋 — 你好，世界! עברית العربية हिन्दी 한국어")], None),
        ("special-token text in content", [u("Say <|im_end|> and <|eot_id|> and <|im_start|>user literally.")], None),
        ("thinking in an earlier answer",
         [u("Q1"), a("<think>\nreasoning one\n</think>\n\nanswer one"), u("Q2")], None),
        ("thinking in the last answer", [u("Q1"), a("<think>\nstep\n</think>\n\nfinal")], None),
        ("reasoning_content field", [u("Q"), {"role": "assistant", "content": "A", "reasoning_content": "R"}], None),
        ("tools, no calls", [s("Use tools."), u("Weather in Zürich?")], [WEATHER, SEARCH]),
        ("tool call and response", [u("Weather in Zürich?"), call, tool, a("It is 21.5 °C and clear.")], [WEATHER]),
        ("parallel tool calls", [u("Paris?"), call_text, tool, tool], [WEATHER, SEARCH]),
        ("list content", [u([{"type": "text", "text": "Describe "}, {"type": "text", "text": "this."}])], None),
        ("no user query", [s("only system")], None),
        ("system not first", [u("a"), s("b")], None),
    ]


def main():
    cases = []
    templates = {}
    for name in TEMPLATES:
        with open(os.path.join(DIR, "templates", name + ".jinja"), encoding="utf-8") as fh:
            templates[name] = fh.read()
        compiled = _compile_jinja_template(templates[name])
        bos, eos = TOKENS[name]
        for title, msgs, tools in conversations():
            for agp in (True, False):
                for extra in ({}, {"enable_thinking": False}) if name.startswith("qwen3") else ({},):
                    ctx = {"messages": msgs, "add_generation_prompt": agp, "bos_token": bos, "eos_token": eos}
                    if tools is not None:
                        ctx["tools"] = tools
                    if name == "llama3_2":
                        ctx["date_string"] = "03 Dec 2026"
                    ctx.update(extra)
                    case = {"template": name, "title": title, "context": ctx}
                    try:
                        case["rendered"] = compiled.render(**ctx)
                    except Exception as e:  # noqa: BLE001 - the template's own raise_exception, or a type error
                        case["error"] = str(e)
                    cases.append(case)
    path = os.path.join(DIR, "chat_templates.json")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write('{"cases": [\n')
        fh.write(",\n".join(json.dumps(c, ensure_ascii=False) for c in cases))
        fh.write("\n]}\n")
    print("%s: %d cases, %d errors" % (path, len(cases), sum("error" in c for c in cases)))


if __name__ == "__main__":
    main()
