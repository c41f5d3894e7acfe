"""A tiny OpenAI-compatible server on loopback for the judge tests (unit, secrets and DVC-level):
each request takes the next scripted behaviour, so a test can make the endpoint fail the ways real
ones do (500s, 429s with Retry-After, malformed bodies, stalls)."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOpenAI:
    """A tiny OpenAI-compatible server: each request takes the next scripted behaviour."""

    def __init__(self, script, key="sk-test", default="A"):
        self.script, self.key, self.requests, self.default = list(script), key, [], default
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.requests.append({"auth": self.headers.get("Authorization"), "body": body})
                    action = fake.script.pop(0) if fake.script else fake.default
                if callable(action):  # a judge that reads the prompt: returns one of the actions below
                    action = action(body)
                if isinstance(action, dict):  # {"content": text, "top_logprobs": {token: logprob}}
                    return self._reply(body, action["content"], action.get("top_logprobs"))
                if action == "sleep":
                    time.sleep(1.5)
                    action = "A"
                if action == "500":
                    return self._send(500, b'{"error": {"message": "boom"}}')
                if action.startswith("429"):  # "429" or "429:<Retry-After seconds>"
                    wait = action.partition(":")[2]
                    return self._send(429, b'{"error": {"message": "slow down"}}',
                                      {"Retry-After": wait} if wait else {})
                if action == "malformed":
                    return self._send(200, b"{this is not json")
                self._reply(body, action, {"B": -0.2231, "A": -1.6094} if body.get("logprobs") else None)

            def _reply(self, body, content, top_logprobs):
                choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                if top_logprobs:
                    top = [{"token": t, "logprob": lp, "bytes": None} for t, lp in top_logprobs.items()]
                    choice["logprobs"] = {"content": [{**top[0], "top_logprobs": top}]}
                reply = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"], "choices": [choice],
                         "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11}}
                self._send(200, json.dumps(reply).encode())

            def _send(self, code, payload, headers=None):
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
