"""An OpenAI-compatible chat-completions endpoint as a generation backend (large teachers behind an API).

`OpenAIChatBackend` implements the same `GenerationBackend` interface as the transformers and vLLM backends, so the
chunked, resumable driver (`generation.samples.generate_samples`) and the Generation-sample schema are shared. It
speaks `POST {base_url}/chat/completions` with the standard library only (urllib, a thread pool), so it runs inside
a Dagster step without a GPU and without new dependencies. It works against OpenAI-style hosted APIs, DeepSeek's
API, and `vllm serve` / SGLang servers.

The interface hands a backend rendered prompt token ids. An HTTP endpoint tokenizes on the server and takes chat
messages, so `render` returns the UTF-8 bytes of the messages' canonical JSON instead: an opaque prompt handle that
the driver passes back unchanged and `generate` decodes. Token counts come from the server's `usage`, never from
that handle's length.

Behaviour that matters for long teacher runs:
- retries with exponential backoff on 408/429/5xx, connection errors and timeouts (a `Retry-After` header is
  honoured, capped at `backoff_max_s`); other 4xx answers fail at once with the server's message;
- `concurrency` requests in flight; each request asks for up to `n_per_request` samples (`n`). The default 1 gives
  exact per-sample token counts and works with APIs that reject `n > 1`; a larger value lets a vLLM server share
  the prompt's prefill. With `n > 1`, `usage.completion_tokens` (one total for the request) is split across the
  choices in proportion to their text length;
- reasoning returned apart from the answer (`reasoning_content`, DeepSeek and vLLM's reasoning parsers; `reasoning`,
  some other servers) is put back in front of the answer inside `<think>` … `</think>`, so a sample has the same
  shape as one from a model that writes the tags itself. A sample cut by the token limit while still reasoning keeps
  an unclosed `<think>`, as a local model's would;
- `finish_reason` must be `stop` or `length` (the sample schema's two); anything else (a content filter, a tool
  call) is an error naming the question, since such a sample is neither a finished answer nor a length cut.
"""

from __future__ import annotations

import json
import os
import random
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPException
from typing import Any

from valley_assets.generation.interface import (
    FINISH_REASONS,
    Completion,
    GenerationRequest,
    SamplingConfig,
    sample_seed,
)

# Options `load_backend("openai", model, options=...)` accepts (the constructor's keyword arguments).
ENDPOINT_OPTIONS = frozenset({
    "base_url", "api_key_env", "concurrency", "n_per_request", "max_retries", "timeout_s", "backoff_s",
    "backoff_max_s", "send_seed", "extra_body",
})
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
REASONING_FIELDS = ("reasoning_content", "reasoning")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Body keys the backend sets itself; `extra_body` may not override them (a silent override would desynchronise the
# request from the sampling config recorded with the samples).
_RESERVED_BODY_KEYS = frozenset({"model", "messages", "n", "temperature", "top_p", "max_tokens", "seed", "stop",
                                 "stream"})


class EndpointError(RuntimeError):
    """The endpoint refused a request, kept failing after the retries, or answered outside the protocol."""


def chat_request_body(model: str, messages: list[dict], *, n: int, sampling: SamplingConfig, seed: int | None,
                      extra_body: Mapping[str, Any] | None = None) -> dict:
    """The JSON body of one chat-completions request."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "n": n,
        "temperature": float(sampling.temperature),
        "top_p": float(sampling.top_p) if not sampling.greedy else 1.0,
        "max_tokens": sampling.max_new_tokens,
        "stream": False,
    }
    if seed is not None:
        body["seed"] = seed
    if sampling.stop:
        body["stop"] = list(sampling.stop)
    for key, value in (extra_body or {}).items():
        if key in _RESERVED_BODY_KEYS:
            raise ValueError(f"extra_body may not set {key!r}: the backend sets it from the sampling config")
        body[key] = value
    return body


def merge_reasoning(reasoning: str | None, content: str | None, finish_reason: str) -> str:
    """One sample text from a choice whose reasoning may come in a separate field."""
    content = content or ""
    if not reasoning or not reasoning.strip():
        return content
    if "<think>" in content:  # the server sent the tags in the content as well: do not nest them
        return content
    if finish_reason == "length" and not content.strip():
        return f"<think>\n{reasoning.strip()}"  # cut mid-reasoning: no closing tag, as a local model would leave it
    return f"<think>\n{reasoning.strip()}\n</think>\n\n{content.lstrip()}"


def split_usage(total: int, texts: Sequence[str]) -> list[int]:
    """Split one request's completion-token total over its choices in proportion to their lengths (largest remainder,
    so the parts add up to the total); equal parts when every text is empty."""
    if not texts:
        return []
    weights = [max(len(t), 0) for t in texts]
    if sum(weights) == 0:
        weights = [1] * len(texts)
    scale = sum(weights)
    exact = [total * w / scale for w in weights]
    parts = [int(x) for x in exact]
    by_remainder = sorted(range(len(texts)), key=lambda i: exact[i] - parts[i], reverse=True)
    for i in by_remainder[: total - sum(parts)]:
        parts[i] += 1
    return parts


def completions_from_chat_response(payload: object, *, n_expected: int, where: str) -> list[Completion]:
    """Read a chat-completions response into Completions, in choice-index order; `where` names the request."""
    if not isinstance(payload, dict):
        raise EndpointError(f"{where}: the response is not a JSON object")
    choices = payload.get("choices")
    if not isinstance(choices, list) or len(choices) != n_expected:
        got = len(choices) if isinstance(choices, list) else type(choices).__name__
        raise EndpointError(f"{where}: expected {n_expected} choices, got {got}")
    usage = payload.get("usage")
    if not isinstance(usage, dict) or not all(
            isinstance(usage.get(k), int) and usage[k] >= 0 for k in ("prompt_tokens", "completion_tokens")):
        raise EndpointError(f"{where}: the response has no usage.prompt_tokens / usage.completion_tokens; "
                            "token counts are part of every sample")
    ordered = sorted(choices, key=lambda c: c.get("index", 0) if isinstance(c, dict) else 0)
    texts, reasons = [], []
    for i, choice in enumerate(ordered):
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            raise EndpointError(f"{where}: choice {i} has no message object")
        reason = choice.get("finish_reason")
        if reason not in FINISH_REASONS:
            raise EndpointError(f"{where}: choice {i} finished with finish_reason={reason!r}; a sample must end by "
                                f"{FINISH_REASONS[0]!r} (EOS/stop) or {FINISH_REASONS[1]!r} (token limit)")
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            raise EndpointError(f"{where}: choice {i} message.content is {type(content).__name__}, not a string")
        reasoning = next((message[f] for f in REASONING_FIELDS if isinstance(message.get(f), str)), None)
        texts.append(merge_reasoning(reasoning, content, reason))
        reasons.append(reason)
    if n_expected == 1:
        counts = [usage["completion_tokens"]]
    else:
        counts = split_usage(usage["completion_tokens"], texts)
    return [Completion(text=t, finish_reason=r, prompt_tokens=usage["prompt_tokens"], completion_tokens=c)
            for t, r, c in zip(texts, reasons, counts, strict=True)]


class OpenAIChatBackend:
    """Chat completions over HTTP; see the module docstring."""

    name = "openai"

    def __init__(self, model: str, *, base_url: str, api_key_env: str | None = None, concurrency: int = 8,
                 n_per_request: int = 1, max_retries: int = 6, timeout_s: float = 600.0, backoff_s: float = 1.0,
                 backoff_max_s: float = 60.0, send_seed: bool = True, extra_body: Mapping[str, Any] | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        if not isinstance(model, str) or not model:
            raise ValueError("model must be the endpoint's non-empty model name")
        if not isinstance(base_url, str) or not re.match(r"^https?://[^/\s]+", base_url):
            raise ValueError(f"base_url must be an http(s) URL such as http://host:8000/v1, got {base_url!r}")
        for label, value, low in (("concurrency", concurrency, 1), ("n_per_request", n_per_request, 1),
                                  ("max_retries", max_retries, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{label} must be an int >= {low}, got {value!r}")
        for label, value in (("timeout_s", timeout_s), ("backoff_s", backoff_s), ("backoff_max_s", backoff_max_s)):
            if not isinstance(value, (int, float)) or value < 0 or (label == "timeout_s" and value == 0):
                raise ValueError(f"{label} must be a number {'> 0' if label == 'timeout_s' else '>= 0'}, got {value!r}")
        self.api_key = None
        if api_key_env is not None:
            if not _ENV_NAME_RE.match(api_key_env):
                raise ValueError(f"api_key_env must name an environment variable, got {api_key_env!r}")
            self.api_key = os.environ.get(api_key_env)
            if not self.api_key:
                raise ValueError(f"environment variable {api_key_env} (api_key_env) is not set or empty; it must "
                                 f"hold the API key of {base_url}")
        # Reject reserved keys now, not at the first request.
        chat_request_body(model, [], n=1, sampling=SamplingConfig(), seed=None, extra_body=extra_body)
        self.model, self.url = model, base_url.rstrip("/") + "/chat/completions"
        self.concurrency, self.n_per_request, self.max_retries = concurrency, n_per_request, max_retries
        self.timeout_s, self.backoff_s, self.backoff_max_s = float(timeout_s), float(backoff_s), float(backoff_max_s)
        self.send_seed, self.extra_body = send_seed, dict(extra_body or {})
        self._sleep = sleep
        self.stats = {"requests": 0, "retries": 0}  # counted across the worker threads, under the lock
        self._stats_lock = threading.Lock()

    # --- the GenerationBackend interface ----------------------------------------------------------------------------
    def render(self, messages: list[dict]) -> list[int]:
        """The messages' canonical JSON as UTF-8 bytes: the prompt handle `generate` decodes (module docstring)."""
        return list(json.dumps(messages, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode())

    @staticmethod
    def messages_from_prompt(prompt_token_ids: Sequence[int], question_id: str) -> list[dict]:
        try:
            messages = json.loads(bytes(prompt_token_ids).decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"question {question_id!r}: the prompt was not rendered by OpenAIChatBackend.render "
                             f"({exc})") from None
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise ValueError(f"question {question_id!r}: the rendered prompt is not a list of chat messages")
        return messages

    def generate(self, requests: Sequence[GenerationRequest], sampling: SamplingConfig) -> list[list[Completion]]:
        calls = []  # (request index, sample indices of this HTTP call)
        for ri, req in enumerate(requests):
            idx = req.sample_indices
            calls += [(ri, idx[s:s + self.n_per_request]) for s in range(0, len(idx), self.n_per_request)]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, max(len(calls), 1))) as pool:
            futures = [pool.submit(self._call, requests[ri], indices, sampling) for ri, indices in calls]
            try:
                answers = [f.result() for f in futures]
            except BaseException:
                for f in futures:
                    f.cancel()  # do not start the calls still queued once one has failed
                raise
        out: list[list[Completion]] = [[] for _ in requests]
        for (ri, _), completions in zip(calls, answers, strict=True):
            out[ri].extend(completions)
        return out

    # --- HTTP ---------------------------------------------------------------------------------------------------------
    def _call(self, req: GenerationRequest, indices: tuple[int, ...], sampling: SamplingConfig) -> list[Completion]:
        messages = self.messages_from_prompt(req.prompt_token_ids, req.question_id)
        seed = sample_seed(sampling.seed, req.question_id, indices[0]) if self.send_seed else None
        body = chat_request_body(self.model, messages, n=len(indices), sampling=sampling, seed=seed,
                                 extra_body=self.extra_body)
        where = f"{self.url} (question {req.question_id!r}, samples {list(indices)})"
        return completions_from_chat_response(self._post(body, where), n_expected=len(indices), where=where)

    def _post(self, body: dict, where: str) -> dict:
        data = json.dumps(body, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = ""
        for attempt in range(self.max_retries + 1):
            with self._stats_lock:
                self.stats["requests"] += 1
                self.stats["retries"] += bool(attempt)
            retry_after = None
            try:
                request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    raw = response.read()
                try:
                    return json.loads(raw)
                except ValueError:
                    raise EndpointError(f"{where}: the response is not JSON: {raw[:200]!r}") from None
            except urllib.error.HTTPError as exc:
                detail = _error_detail(exc)
                if exc.code not in RETRY_STATUSES:
                    raise EndpointError(f"{where}: HTTP {exc.code}: {detail}") from None
                last = f"HTTP {exc.code}: {detail}"
                retry_after = _retry_after_s(exc.headers.get("Retry-After") if exc.headers else None)
            except (urllib.error.URLError, HTTPException, ConnectionError, TimeoutError) as exc:
                last = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
            if attempt < self.max_retries:
                self._sleep(self._delay(attempt, retry_after))
        raise EndpointError(f"{where}: gave up after {self.max_retries + 1} attempts; last error {last}")

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.backoff_max_s)
        # Full jitter keeps many concurrent workers from retrying in lockstep after a shared 429.
        return random.uniform(0.5, 1.0) * min(self.backoff_max_s, self.backoff_s * 2 ** attempt)


def _error_detail(exc: urllib.error.HTTPError) -> str:
    try:
        raw = exc.read()
    except Exception:  # the body is only for the message
        return str(exc.reason)
    try:
        err = json.loads(raw).get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    except (ValueError, AttributeError):
        pass
    return raw[:300].decode("utf-8", "replace") or str(exc.reason)


def _retry_after_s(value: str | None) -> float | None:
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None  # an HTTP-date: fall back to the backoff
