"""Starts `imp serve` on a free loopback port for a test and stops it (SIGTERM; it must exit 0 within 30 s).

The binary and the source tree come from the environment ctest sets: IMP_BINARY, IMP_SOURCE_DIR."""
import json
import os
import re
import select
import signal
import subprocess
import time
import urllib.request

SOURCE = os.environ.get("IMP_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
BINARY = os.environ.get("IMP_BINARY", os.path.join(SOURCE, "build", "bin", "imp"))
PROFILE = os.path.join(SOURCE, "configs", "smollm2.toml")


class Server:
    def __init__(self, *sets):
        args = [BINARY, "serve", "--profile", PROFILE, "--port", "0", "--set", "runtime.executor=cpu"]
        for s in sets:
            args += ["--set", s]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + 120
        line = ""
        while time.time() < deadline:
            r, _, _ = select.select([self.proc.stdout], [], [], 1.0)
            if r:
                line = self.proc.stdout.readline()
                m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
                if m:
                    self.port = int(m.group(1))
                    self.url = f"http://127.0.0.1:{self.port}"
                    return
                if not line:
                    break
        self.proc.kill()
        raise RuntimeError(f"imp serve did not start: {line!r}")

    def client(self, **kw):
        import openai
        return openai.OpenAI(base_url=self.url + "/v1", api_key="none", max_retries=0, timeout=120, **kw)

    def metrics(self):
        text = urllib.request.urlopen(self.url + "/metrics", timeout=30).read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out

    def wait_metric(self, key, value, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            got = self.metrics().get(key)
            if (value(got) if callable(value) else got == value):
                return True
            time.sleep(0.05)
        return False

    def post(self, path, body, raw=False):
        """POSTs a body (a JSON value, or bytes when raw); returns (status, parsed JSON)."""
        data = body if raw else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise RuntimeError("imp serve did not stop within 30 s of SIGTERM")
        out = self.proc.stdout.read()
        self.proc.stdout.close()
        if rc != 0:
            raise RuntimeError(f"imp serve exited with {rc}: {out}")
