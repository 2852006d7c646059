"""The official openai client against imp serve on SmolLM2: chat, completion, streaming, stop strings, seeds,
usage, logprobs, /v1/models, and prefix caching (usage.prompt_tokens_details.cached_tokens)."""
import unittest

from server import Server

Q = [{"role": "user", "content": "What is the capital of France?"}]


class OpenAIClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server("runtime.max_seqs=4")
        cls.c = cls.server.client()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_models(self):
        ids = [m.id for m in self.c.models.list()]
        self.assertEqual(ids, ["SmolLM2-135M-Instruct.Q4_1"])

    def test_chat(self):
        r = self.c.chat.completions.create(model="x", messages=Q, max_tokens=24, temperature=0)
        self.assertIn("Paris", r.choices[0].message.content)
        self.assertEqual(r.choices[0].message.role, "assistant")
        self.assertIn(r.choices[0].finish_reason, ("stop", "length"))
        self.assertGreater(r.usage.prompt_tokens, 10)
        self.assertLessEqual(r.usage.completion_tokens, 24)
        self.assertEqual(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens)

    def test_completion_length_and_usage(self):
        r = self.c.completions.create(model="x", prompt="The capital of France is", max_tokens=6, temperature=0)
        self.assertIn("Paris", r.choices[0].text)
        self.assertEqual(r.choices[0].finish_reason, "length")
        self.assertEqual(r.usage.completion_tokens, 6)
        self.assertEqual(r.usage.prompt_tokens, 5)

    def test_stream_equals_whole(self):
        whole = self.c.chat.completions.create(model="x", messages=Q, max_tokens=20, temperature=0)
        chunks = list(self.c.chat.completions.create(model="x", messages=Q, max_tokens=20, temperature=0, stream=True,
                                                     stream_options={"include_usage": True}))
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        self.assertEqual(text, whole.choices[0].message.content)
        finals = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
        self.assertEqual(finals, [whole.choices[0].finish_reason])
        self.assertEqual(chunks[-1].choices, [])
        self.assertEqual(chunks[-1].usage.completion_tokens, whole.usage.completion_tokens)
        self.assertEqual(chunks[-1].usage.prompt_tokens, whole.usage.prompt_tokens)

    def test_prefix_cache(self):
        # A conversation sent again with one more turn starts on the KV blocks of the first request (16-token
        # blocks); the greedy answer to the same messages is the same; the metrics count the hits.
        msgs = [{"role": "system", "content": "You are a careful assistant who answers in one short sentence."},
                {"role": "user", "content": "Name a large river in South America and the ocean it flows into."}]
        first = self.c.chat.completions.create(model="x", messages=msgs, max_tokens=12, temperature=0)
        again = self.c.chat.completions.create(model="x", messages=msgs, max_tokens=12, temperature=0)
        n = first.usage.prompt_tokens
        self.assertGreater(n, 32)
        self.assertEqual(first.usage.prompt_tokens_details.cached_tokens, 0)
        self.assertEqual(again.usage.prompt_tokens_details.cached_tokens, (n - 1) // 16 * 16)
        self.assertEqual(again.choices[0].message.content, first.choices[0].message.content)
        longer = msgs + [{"role": "assistant", "content": first.choices[0].message.content},
                         {"role": "user", "content": "And its length?"}]
        third = self.c.chat.completions.create(model="x", messages=longer, max_tokens=4, temperature=0)
        self.assertGreaterEqual(third.usage.prompt_tokens_details.cached_tokens, (n - 1) // 16 * 16 - 16)
        self.assertGreater(third.usage.prompt_tokens, n)
        m = self.server.metrics()
        self.assertGreaterEqual(m["imp_prefix_cache_hits_total"], again.usage.prompt_tokens_details.cached_tokens)
        # Streaming usage carries the same details; a salted request shares nothing with unsalted ones.
        chunks = list(self.c.chat.completions.create(model="x", messages=msgs, max_tokens=3, temperature=0,
                                                     stream=True, stream_options={"include_usage": True}))
        self.assertEqual(chunks[-1].usage.prompt_tokens_details.cached_tokens, (n - 1) // 16 * 16)
        salted = self.c.chat.completions.create(model="x", messages=msgs, max_tokens=3, temperature=0,
                                                extra_body={"cache_salt": "tenant-b"})
        self.assertEqual(salted.usage.prompt_tokens_details.cached_tokens, 0)

    def test_tokenize_and_detokenize(self):
        # POST /tokenize counts what a chat completion bills as prompt tokens; /detokenize gives the text back
        # (vLLM's and llama.cpp's field names both work); a bad body is a 400 naming the field.
        r = self.c.chat.completions.create(model="x", messages=Q, max_tokens=2, temperature=0)
        st, t = self.server.post("/tokenize", {"model": "x", "messages": Q})
        self.assertEqual(st, 200, t)
        self.assertEqual(t["count"], r.usage.prompt_tokens)
        self.assertEqual(len(t["tokens"]), t["count"])
        st, t = self.server.post("/tokenize", {"content": "The capital of France is", "with_pieces": True})
        self.assertEqual(st, 200, t)
        self.assertEqual("".join(p["piece"] for p in t["tokens"]), "The capital of France is")
        st, d = self.server.post("/detokenize", {"tokens": [p["id"] for p in t["tokens"]]})
        self.assertEqual((st, d["prompt"], d["content"]), (200, "The capital of France is", "The capital of France is"))
        st, e = self.server.post("/detokenize", {"tokens": [1, -5]})
        self.assertEqual((st, e["error"]["param"]), (400, "tokens"))

    def test_stop_string(self):
        p = "Here is a list of fruits: apple, banana,"
        full = self.c.completions.create(model="x", prompt=p, max_tokens=24, temperature=0).choices[0].text
        words = full.split()
        self.assertGreater(len(words), 3, full)
        stop = words[2]
        cut = full[:full.index(stop)]
        r = self.c.completions.create(model="x", prompt=p, max_tokens=24, temperature=0, stop=[stop, "@@@"])
        self.assertEqual(r.choices[0].text, cut)
        self.assertEqual(r.choices[0].finish_reason, "stop")
        chunks = self.c.completions.create(model="x", prompt=p, max_tokens=24, temperature=0, stop=stop, stream=True)
        self.assertEqual("".join(ch.choices[0].text for ch in chunks if ch.choices), cut)

    def test_seed(self):
        kw = dict(model="x", prompt="Once upon a time", max_tokens=24, temperature=1.0, top_p=1.0,
                  extra_body={"top_k": 0, "min_p": 0})
        a = self.c.completions.create(seed=42, **kw).choices[0].text
        b = self.c.completions.create(seed=42, **kw).choices[0].text
        c = self.c.completions.create(seed=7, **kw).choices[0].text
        self.assertEqual(a, b)
        self.assertNotEqual(a, c)

    def test_logprobs(self):
        r = self.c.chat.completions.create(model="x", messages=Q, max_tokens=8, temperature=0, logprobs=True,
                                           top_logprobs=3)
        content = r.choices[0].logprobs.content
        self.assertEqual(len(content), r.usage.completion_tokens)
        for t in content:
            self.assertEqual(len(t.top_logprobs), 3)
            self.assertLessEqual(t.logprob, 0)
            self.assertEqual(t.token, t.top_logprobs[0].token)  # greedy picks the most likely
            self.assertAlmostEqual(t.logprob, t.top_logprobs[0].logprob, places=5)
        c = self.c.completions.create(model="x", prompt="The capital of France is", max_tokens=3, temperature=0,
                                      logprobs=2)
        self.assertEqual(len(c.choices[0].logprobs.tokens), 3)
        self.assertEqual("".join(c.choices[0].logprobs.tokens), c.choices[0].text)

    def test_completion_top_logprobs_include_the_sampled_token(self):
        # OpenAI's completions: "the API will always return the logprob of the sampled token, so there may be up to
        # logprobs+1 elements". At temperature 1.5 some of 24 tokens are not the most likely one.
        c = self.c.completions.create(model="x", prompt="Once upon a time", max_tokens=24, temperature=1.5, seed=7,
                                      logprobs=1, extra_body={"top_k": 0, "min_p": 0})
        lp = c.choices[0].logprobs
        extra = 0
        for tok, l, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
            self.assertIn(tok, top)
            self.assertAlmostEqual(top[tok], l, places=5)
            self.assertLessEqual(len(top), 2)
            extra += len(top) == 2
        self.assertGreater(extra, 0, "no token other than the most likely was sampled: the check checked nothing")
        # logprobs 0: the sampled token's alone
        c = self.c.completions.create(model="x", prompt="Once upon a time", max_tokens=4, temperature=0, logprobs=0)
        lp = c.choices[0].logprobs
        self.assertEqual(lp.top_logprobs, [{t: l} for t, l in zip(lp.tokens, lp.token_logprobs)])

    def test_stream_logprobs_offsets(self):
        # A stop string whose start (", ") keeps appearing holds text back in the stream; the streamed text_offset
        # still counts every earlier token's text, as the whole response does.
        kw = dict(model="x", prompt="Here is a list of fruits: apple, banana,", max_tokens=16, temperature=0,
                  logprobs=1, stop=[", zzz"])
        whole = self.c.completions.create(**kw).choices[0].logprobs
        tokens, offsets = [], []
        for ch in self.c.completions.create(stream=True, **kw):
            if ch.choices and ch.choices[0].logprobs:
                tokens += ch.choices[0].logprobs.tokens
                offsets += ch.choices[0].logprobs.text_offset
        self.assertEqual(tokens, whole.tokens)
        self.assertEqual(offsets, whole.text_offset)
        self.assertEqual(offsets, [sum(len(t) for t in tokens[:i]) for i in range(len(tokens))])
        self.assertIn(",", "".join(tokens))  # the held-back case happened

    def test_token_id_prompt(self):
        a = self.c.completions.create(model="x", prompt="The capital of France is", max_tokens=4, temperature=0)
        ids = [1, 504, 3575, 282, 4649, 314]  # not checked against the text: only that ids are accepted
        b = self.c.completions.create(model="x", prompt=ids, max_tokens=4, temperature=0)
        self.assertEqual(b.usage.prompt_tokens, len(ids))
        self.assertTrue(a.choices[0].text)


if __name__ == "__main__":
    unittest.main()
