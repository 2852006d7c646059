"""Continuous batching: 16 concurrent greedy requests of different prompts and lengths (chat and completion,
streamed and not) each give exactly what the same request gives when served alone."""
import os
import threading
import unittest

from server import Server

# 16 by default; the sanitizer build runs fewer (each step is ~20x slower there), still several at once.
N_REQUESTS = int(os.environ.get("IMP_SERVE_TEST_REQUESTS", "16"))

TOPICS = ["the sea", "a red bicycle", "winter in Oslo", "prime numbers", "a cat named Tom", "coffee", "the moon",
          "an old library", "rain", "trains", "volcanoes", "a chess game", "bread", "the desert", "music", "robots"]


def request(i):
    kind = "chat" if i % 2 == 0 else "completion"
    stream = i % 3 == 0
    max_tokens = 6 + (i * 5) % 17
    if kind == "chat":
        words = " ".join(["Please"] * (i % 4))  # different prompt lengths
        body = dict(messages=[{"role": "user", "content": f"{words} Write one sentence about {TOPICS[i]}."}])
    else:
        body = dict(prompt=f"A short story about {TOPICS[i]}:" + " Once" * (i % 5))
    return kind, stream, dict(model="x", max_tokens=max_tokens, temperature=0, **body)


def run(c, i):
    kind, stream, body = request(i)
    api = c.chat.completions if kind == "chat" else c.completions
    if not stream:
        r = api.create(**body)
        return r.choices[0].message.content if kind == "chat" else r.choices[0].text
    text = ""
    for ch in api.create(stream=True, **body):
        if ch.choices:
            text += (ch.choices[0].delta.content or "") if kind == "chat" else ch.choices[0].text
    return text


class BatchingTest(unittest.TestCase):
    def test_concurrent_equals_alone(self):
        s = Server("runtime.max_seqs=16", "server.step_tokens=64")
        try:
            c = s.client()
            alone = [run(c, i) for i in range(N_REQUESTS)]
            together = [None] * 16
            errors = []

            def worker(i):
                try:
                    together[i] = run(c, i)
                except Exception as e:  # noqa: BLE001 (reported below)
                    errors.append(f"request {i}: {e!r}")

            threads = [threading.Thread(target=worker, args=(i,)) for i in range(N_REQUESTS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=300)
            self.assertEqual(errors, [])
            for i in range(N_REQUESTS):
                self.assertTrue(alone[i], f"request {i} gave no text")
                self.assertEqual(together[i], alone[i], f"request {i}")
            # The last finished sequence is released at the end of its step, just after its answer went out.
            self.assertTrue(s.wait_metric("imp_requests_running", 0))
            self.assertTrue(s.wait_metric("imp_kv_blocks_used", 0))
            # A request is counted once its last byte is written, which a streaming client may see first.
            key = 'imp_requests_total{status="200"}'
            self.assertTrue(s.wait_metric(key, 2 * N_REQUESTS), f"{key} = {s.metrics().get(key)}, want {2 * N_REQUESTS}")
        finally:
            s.stop()


if __name__ == "__main__":
    unittest.main()
