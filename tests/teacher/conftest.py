"""A real OpenAI-compatible chat-completions server on 127.0.0.1 that answers as the demo's deterministic teacher.

`ChatServer` runs `http.server.ThreadingHTTPServer` in a thread. For each request it finds the demo problem whose
question text is in the user turn and answers with that problem's demo-teacher `r1_generation` (so the grader's
verdicts are known: the demo teacher's deliberately wrong rows must come out "wrong"). It records every request
body and header, can fail the next requests with given HTTP statuses (429 with Retry-After, 500, ...), can stop
answering (HTTP 400) after a number of successful answers (a crash mid-run), and can return the reasoning in a
separate `reasoning_content` field as DeepSeek's API and vLLM's reasoning parsers do.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from valley_assets.demo.problems import make_demo_problems
from valley_assets.demo.teacher import demo_teacher_traces

N_PROBLEMS = 8
WRONG_FRACTION = 0.25


class ChatServer:
    def __init__(self, answers: dict[str, str]):
        self.answers = answers  # question_content -> the demo teacher's r1_generation
        self.lock = threading.Lock()
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        self.fail_next: list[tuple[int, dict]] = []  # (status, extra headers) for the next requests
        self.stop_after: int | None = None  # answer this many requests successfully, then HTTP 400
        self.reasoning_field = False
        self.finish_reason = "stop"
        self.ok = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                status, payload, extra = server.respond(self.path, body, dict(self.headers))
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in extra.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    @property
    def hits(self) -> int:
        return len(self.bodies)

    def respond(self, path: str, body: dict, headers: dict):
        with self.lock:
            self.bodies.append(body)
            self.headers.append(headers)
            if path != "/v1/chat/completions":
                return 404, {"error": {"message": f"no route {path}"}}, {}
            if self.fail_next:
                status, extra = self.fail_next.pop(0)
                return status, {"error": {"message": f"injected {status}"}}, extra
            if self.stop_after is not None and self.ok >= self.stop_after:
                return 400, {"error": {"message": "server stopped answering (test crash)"}}, {}
            self.ok += 1
        user = next(m["content"] for m in body["messages"] if m["role"] == "user")
        text = next((a for q, a in self.answers.items() if q in user), None)
        if text is None:
            return 400, {"error": {"message": "unknown question"}}, {}
        choices = []
        for i in range(body.get("n", 1)):
            message = {"role": "assistant", "content": text}
            if self.reasoning_field and "</think>" in text:
                reasoning, answer = text.split("</think>", 1)
                message = {"role": "assistant", "reasoning_content": reasoning.replace("<think>", "", 1).strip(),
                           "content": answer.strip()}
            choices.append({"index": i, "message": message, "finish_reason": self.finish_reason})
        prompt_tokens = sum(len(m["content"]) for m in body["messages"]) // 4
        return 200, {
            "id": f"chatcmpl-{self.ok}", "object": "chat.completion", "model": body["model"], "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": body.get("n", 1) * (len(text) // 4 + 1),
                      "total_tokens": 0},
        }, {}


@pytest.fixture(scope="session")
def demo_world():
    """(problems, demo-teacher traces) for a few demo training problems; traces labelled by running them."""
    problems = make_demo_problems(0, N_PROBLEMS, 1)[0]
    traces = demo_teacher_traces(problems, 0, WRONG_FRACTION, 0.0)
    return problems, traces


@pytest.fixture
def chat_server(demo_world):
    problems, traces = demo_world
    server = ChatServer({p["question_content"]: t["r1_generation"] for p, t in zip(problems, traces, strict=True)})
    yield server
    server.close()
