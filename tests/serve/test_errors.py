"""Bad requests of every kind get HTTP 400 naming the field (and the next good request succeeds), unknown routes
404; a client that hangs up mid-stream frees its sequence and KV blocks at once; a full queue gives 429."""
import http.client
import json
import socket
import threading
import unittest

import openai

from server import Server

MSG = [{"role": "user", "content": "Say hello."}]


class ErrorsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # One sequence, one waiting request, a 256-token context (16 KV blocks).
        cls.s = Server("runtime.max_seqs=1", "server.max_queue=1", "runtime.max_seq_len=256")
        cls.c = cls.s.client()

    @classmethod
    def tearDownClass(cls):
        cls.s.stop()

    def good(self):
        r = self.c.chat.completions.create(model="x", messages=MSG, max_tokens=4, temperature=0)
        self.assertTrue(r.choices[0].message.content)

    def expect_400(self, path, body, param, raw=False):
        status, j = self.s.post(path, body, raw=raw)
        self.assertEqual(status, 400, (body, j))
        self.assertEqual(j["error"]["type"], "invalid_request_error")
        self.assertEqual(j["error"]["param"], param, j)
        self.assertTrue(j["error"]["message"])
        self.good()

    def test_bad_requests(self):
        chat, comp = "/v1/chat/completions", "/v1/completions"
        self.expect_400(chat, b'{"messages": [', None, raw=True)
        self.expect_400(chat, b"\xff\xfe", None, raw=True)
        self.expect_400(chat, [1, 2], None)
        self.expect_400(chat, {}, "messages")
        self.expect_400(chat, {"messages": []}, "messages")
        self.expect_400(chat, {"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role")
        self.expect_400(chat, {"messages": [{"role": "user"}]}, "messages[0].content")
        self.expect_400(comp, {}, "prompt")
        self.expect_400(comp, {"prompt": 3}, "prompt")
        self.expect_400(comp, {"prompt": [999999]}, "prompt")  # outside the vocabulary
        self.expect_400(comp, {"prompt": ""}, "prompt")
        long_prompt = "word " * 400
        self.expect_400(comp, {"prompt": long_prompt}, "prompt")
        self.expect_400(chat, {"messages": [{"role": "user", "content": long_prompt}]}, "messages")
        self.expect_400(comp, {"prompt": "hi", "max_tokens": 300}, "max_tokens")
        for field, value in [("temperature", -0.5), ("temperature", "hot"), ("top_p", 0), ("top_p", 2),
                             ("top_k", "all"), ("min_p", 1.5), ("repetition_penalty", 0), ("max_tokens", 0),
                             ("max_tokens", 2.5), ("seed", "x"), ("stop", [1]), ("n", 2), ("stream", "yes"),
                             ("top_logprobs", 30), ("logprobs", "yes")]:
            self.expect_400(chat, {"messages": MSG, field: value}, field)
        self.expect_400(comp, {"prompt": "hi", "logprobs": 50}, "logprobs")
        # The openai client sees them as BadRequestError.
        with self.assertRaises(openai.BadRequestError):
            self.c.chat.completions.create(model="x", messages=MSG, temperature=-1)
        self.good()

    def test_unknown_route(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.s.port, timeout=30)
        conn.request("GET", "/v2/nothing")
        r = conn.getresponse()
        self.assertEqual(r.status, 404)
        self.assertIn("error", json.loads(r.read()))
        conn.request("GET", "/v1/chat/completions")
        r = conn.getresponse()
        self.assertEqual(r.status, 405)
        r.read()
        conn.close()
        self.good()

    def open_stream(self, max_tokens=200):
        """A streaming request on a raw connection, read until its first content event."""
        conn = http.client.HTTPConnection("127.0.0.1", self.s.port, timeout=60)
        conn.request("POST", "/v1/completions", json.dumps(
            {"prompt": "Count: 1, 2, 3,", "max_tokens": max_tokens, "temperature": 0, "stream": True}),
            {"Content-Type": "application/json"})
        r = conn.getresponse()
        self.assertEqual(r.status, 200)
        line = r.fp.readline()
        self.assertTrue(line.startswith(b"data: "), line)
        return conn, r

    def test_disconnect_frees_blocks(self):
        conn, r = self.open_stream()
        m = self.s.metrics()
        self.assertEqual(m["imp_requests_running"], 1)
        self.assertGreater(m["imp_kv_blocks_used"], 0)
        r.close()
        conn.sock.close() if conn.sock else None
        conn.close()
        self.assertTrue(self.s.wait_metric("imp_requests_running", 0))
        self.assertTrue(self.s.wait_metric("imp_kv_blocks_used", 0))
        self.assertTrue(self.s.wait_metric('imp_requests_total{status="499"}', lambda n: (n or 0) >= 1))
        self.good()

    def test_disconnect_cancels_whole_response(self):
        """A non-streaming request whose client leaves is cancelled while its tokens still flow (it has no write that
        could fail): it does not run on to max_tokens, frees its blocks and counts as 499."""
        m0 = self.s.metrics()
        gone0 = m0.get('imp_requests_total{status="499"}', 0)
        conn = http.client.HTTPConnection("127.0.0.1", self.s.port, timeout=60)
        conn.request("POST", "/v1/completions", json.dumps(
            {"prompt": "Count: 1, 2, 3,", "max_tokens": 240, "ignore_eos": True, "temperature": 0}),
            {"Content-Type": "application/json"})
        started = m0["imp_generation_tokens_total"] + 3
        self.assertTrue(self.s.wait_metric("imp_generation_tokens_total", lambda n: n >= started))
        conn.sock.shutdown(socket.SHUT_RDWR)
        conn.close()
        self.assertTrue(self.s.wait_metric('imp_requests_total{status="499"}', gone0 + 1))
        # The handler counts the 499 as it leaves; the scheduler drops the job at its next step.
        self.assertTrue(self.s.wait_metric("imp_requests_running", 0))
        self.assertTrue(self.s.wait_metric("imp_kv_blocks_used", 0))
        m = self.s.metrics()
        self.assertLess(m["imp_generation_tokens_total"] - m0["imp_generation_tokens_total"], 120)
        self.good()

    def test_queue_full_429(self):
        conn, r = self.open_stream()  # holds the one sequence
        waiting = {}

        def second():
            waiting["r"] = self.c.completions.create(model="x", prompt="Hi", max_tokens=3, temperature=0)

        t = threading.Thread(target=second)
        t.start()
        self.assertTrue(self.s.wait_metric("imp_requests_waiting", 1))
        with self.assertRaises(openai.RateLimitError) as e:
            self.c.completions.create(model="x", prompt="Hi", max_tokens=3)
        self.assertEqual(e.exception.status_code, 429)
        r.close()
        conn.close()
        t.join(timeout=120)
        self.assertEqual(waiting["r"].usage.completion_tokens, 3)
        self.good()


if __name__ == "__main__":
    unittest.main()
