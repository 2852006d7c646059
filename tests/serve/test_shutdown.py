"""SIGTERM while requests run: a stream being generated and one still queued both end with an error event naming the
shutdown, then `data: [DONE]`; the server exits 0 within the bound server.py sets."""
import http.client
import json
import signal
import unittest

from server import Server


def open_stream(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", "/v1/completions", json.dumps(
        {"prompt": "Count: 1, 2, 3,", "max_tokens": 200, "ignore_eos": True, "temperature": 0, "stream": True}),
        {"Content-Type": "application/json"})
    return conn


def events(response):
    """The data lines of a server-sent-event stream, read to its end."""
    out = []
    for line in response.fp:
        if line.startswith(b"data: "):
            out.append(line[6:].strip().decode())
    return out


class ShutdownTest(unittest.TestCase):
    def test_sigterm_ends_streams_with_an_error_and_done(self):
        s = Server("runtime.max_seqs=1", "runtime.max_seq_len=256")
        try:
            running = open_stream(s.port)
            r1 = running.getresponse()
            self.assertEqual(r1.status, 200)
            first = r1.fp.readline()
            self.assertTrue(first.startswith(b"data: "), first)
            queued = open_stream(s.port)  # waits for the one sequence
            self.assertTrue(s.wait_metric("imp_requests_waiting", 1))
            s.proc.send_signal(signal.SIGTERM)
            r2 = queued.getresponse()
            self.assertEqual(r2.status, 200)
            for r in (r1, r2):
                ev = events(r)
                self.assertGreaterEqual(len(ev), 2, ev)
                self.assertEqual(ev[-1], "[DONE]")
                err = json.loads(ev[-2])["error"]
                self.assertEqual(err["message"], "the server is shutting down")
                self.assertEqual(err["type"], "server_error")
            running.close()
            queued.close()
        finally:
            s.stop()  # exits 0 within 30 s of the SIGTERM, or raises


if __name__ == "__main__":
    unittest.main()
