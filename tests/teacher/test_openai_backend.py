"""The OpenAI-compatible backend against a real local HTTP server: request bodies, retries, n, reasoning_content."""

from __future__ import annotations

import pytest

from valley_assets.generation.backends import GenerationRequest, SamplingConfig, load_backend, sample_seed
from valley_assets.generation.openai_backend import (
    EndpointError,
    OpenAIChatBackend,
    completions_from_chat_response,
    merge_reasoning,
    split_usage,
)
from valley_assets.generation.prompts import problem_messages

SAMPLING = SamplingConfig(temperature=0.6, top_p=0.95, max_new_tokens=4096, seed=7)


def _backend(server, **kw) -> OpenAIChatBackend:
    options = {"base_url": server.base_url, "backoff_s": 0.0, "concurrency": 2, **kw}
    return load_backend("openai", "kat-v1-40b", options=options)


def _request(backend, problem, indices=(0,)) -> GenerationRequest:
    ids = backend.render(problem_messages(problem, "lcb-reasoning"))
    return GenerationRequest(problem["question_id"], tuple(ids), tuple(indices))


def test_request_body_and_auth_header(chat_server, demo_world, monkeypatch):
    problems, traces = demo_world
    monkeypatch.setenv("TEACHER_KEY", "sk-test-123")
    backend = _backend(chat_server, api_key_env="TEACHER_KEY")
    out = backend.generate([_request(backend, problems[0])], SAMPLING)
    assert chat_server.hits == 1
    body = chat_server.bodies[0]
    assert body == {
        "model": "kat-v1-40b",
        "messages": problem_messages(problems[0], "lcb-reasoning"),
        "n": 1, "temperature": 0.6, "top_p": 0.95, "max_tokens": 4096, "stream": False,
        "seed": sample_seed(7, problems[0]["question_id"], 0),
    }
    assert chat_server.headers[0]["Authorization"] == "Bearer sk-test-123"
    [[c]] = out
    assert c.text == traces[0]["r1_generation"] and c.finish_reason == "stop"
    assert c.completion_tokens == len(c.text) // 4 + 1 and c.prompt_tokens > 0


def test_greedy_sends_top_p_one_and_stop_strings(chat_server, demo_world):
    problems, _ = demo_world
    backend = _backend(chat_server, send_seed=False, extra_body={"top_k": 20})
    backend.generate([_request(backend, problems[1])],
                     SamplingConfig(temperature=0.0, top_p=0.5, max_new_tokens=64, stop=("</answer>",)))
    body = chat_server.bodies[0]
    assert body["temperature"] == 0.0 and body["top_p"] == 1.0 and body["stop"] == ["</answer>"]
    assert "seed" not in body and body["top_k"] == 20


def test_n_per_request_splits_samples_and_usage(chat_server, demo_world):
    problems, traces = demo_world
    backend = _backend(chat_server, n_per_request=2)
    [completions] = backend.generate([_request(backend, problems[2], indices=(0, 1, 2))], SAMPLING)
    assert sorted(b["n"] for b in chat_server.bodies) == [1, 2]
    seeds = sorted(b["seed"] for b in chat_server.bodies)
    assert seeds == sorted(sample_seed(7, problems[2]["question_id"], i) for i in (0, 2))
    assert len(completions) == 3 and all(c.text == traces[2]["r1_generation"] for c in completions)
    # the two-choice request reported one total; its parts add up to it
    total = 2 * (len(traces[2]["r1_generation"]) // 4 + 1)
    assert sum(c.completion_tokens for c in completions) == total + len(traces[2]["r1_generation"]) // 4 + 1


def test_retries_on_429_and_500_then_succeeds(chat_server, demo_world):
    problems, traces = demo_world
    chat_server.fail_next = [(429, {"Retry-After": "0"}), (500, {}), (503, {})]
    slept = []
    backend = OpenAIChatBackend("kat-v1-40b", base_url=chat_server.base_url, backoff_s=0.25, backoff_max_s=1.0,
                                sleep=slept.append)
    [[c]] = backend.generate([_request(backend, problems[0])], SAMPLING)
    assert c.text == traces[0]["r1_generation"]
    assert chat_server.hits == 4 and backend.stats == {"requests": 4, "retries": 3}
    assert slept[0] == 0.0  # Retry-After honoured
    assert 0.125 <= slept[1] <= 0.5 and 0.25 <= slept[2] <= 1.0  # exponential backoff with jitter


def test_gives_up_after_max_retries_and_fails_fast_on_4xx(chat_server, demo_world):
    problems, _ = demo_world
    backend = OpenAIChatBackend("kat-v1-40b", base_url=chat_server.base_url, max_retries=2, sleep=lambda s: None)
    chat_server.fail_next = [(500, {})] * 5
    with pytest.raises(EndpointError, match="gave up after 3 attempts; last error HTTP 500: injected 500"):
        backend.generate([_request(backend, problems[0])], SAMPLING)
    assert chat_server.hits == 3
    chat_server.fail_next = [(401, {})]
    with pytest.raises(EndpointError, match="HTTP 401: injected 401"):
        backend.generate([_request(backend, problems[0])], SAMPLING)
    assert chat_server.hits == 4  # no retry on an auth error


def test_connection_refused_is_retried_then_reported():
    backend = OpenAIChatBackend("m", base_url="http://127.0.0.1:9/v1", max_retries=1, timeout_s=2,
                                sleep=lambda s: None)
    req = GenerationRequest("q1", tuple(backend.render([{"role": "user", "content": "hi"}])), (0,))
    with pytest.raises(EndpointError, match="gave up after 2 attempts"):
        backend.generate([req], SAMPLING)


def test_reasoning_content_is_put_back_inside_think_tags(chat_server, demo_world):
    problems, traces = demo_world
    chat_server.reasoning_field = True
    backend = _backend(chat_server)
    [[c]] = backend.generate([_request(backend, problems[3])], SAMPLING)
    original = traces[3]["r1_generation"]
    reasoning, answer = original.split("</think>", 1)
    assert c.text == f"<think>\n{reasoning.replace('<think>', '', 1).strip()}\n</think>\n\n{answer.strip()}"
    assert "<think>" not in c.text[1:] and c.text.count("</think>") == 1


def test_merge_reasoning_rules():
    assert merge_reasoning(None, "answer", "stop") == "answer"
    assert merge_reasoning("  ", "answer", "stop") == "answer"
    assert merge_reasoning("why", "<think>why</think>answer", "stop") == "<think>why</think>answer"
    assert merge_reasoning("still thinking", None, "length") == "<think>\nstill thinking"  # cut: stays unclosed
    assert merge_reasoning("why", "code", "length") == "<think>\nwhy\n</think>\n\ncode"


def test_split_usage_adds_up_and_follows_length():
    assert split_usage(10, ["aaaa", "a"]) == [8, 2]
    assert sum(split_usage(7, ["ab", "abc", "a"])) == 7
    assert split_usage(3, ["", ""]) in ([2, 1], [1, 2])


def test_response_outside_the_protocol_names_the_request():
    ok = {"choices": [{"index": 0, "message": {"content": "x"}, "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 3, "completion_tokens": 1}}
    assert completions_from_chat_response(ok, n_expected=1, where="q")[0].text == "x"
    with pytest.raises(EndpointError, match="q: expected 2 choices, got 1"):
        completions_from_chat_response(ok, n_expected=2, where="q")
    bad = {**ok, "choices": [{**ok["choices"][0], "finish_reason": "content_filter"}]}
    with pytest.raises(EndpointError, match="finish_reason='content_filter'"):
        completions_from_chat_response(bad, n_expected=1, where="q")
    with pytest.raises(EndpointError, match="no usage"):
        completions_from_chat_response({"choices": ok["choices"]}, n_expected=1, where="q")


def test_length_finish_reason_is_recorded(chat_server, demo_world):
    problems, _ = demo_world
    chat_server.finish_reason = "length"
    backend = _backend(chat_server)
    [[c]] = backend.generate([_request(backend, problems[0])], SAMPLING)
    assert c.finish_reason == "length"


def test_bad_options_are_refused_with_the_key(monkeypatch):
    with pytest.raises(ValueError, match="unknown backend_options \\['batch_size'\\] for backend 'openai'"):
        load_backend("openai", "m", options={"base_url": "http://x/v1", "batch_size": 2})
    with pytest.raises(ValueError, match="base_url must be an http"):
        OpenAIChatBackend("m", base_url="localhost:8000")
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    with pytest.raises(ValueError, match="NO_SUCH_KEY_VAR .* is not set"):
        OpenAIChatBackend("m", base_url="http://x/v1", api_key_env="NO_SUCH_KEY_VAR")
    with pytest.raises(ValueError, match="extra_body may not set 'temperature'"):
        OpenAIChatBackend("m", base_url="http://x/v1", extra_body={"temperature": 1.0})
