"""Generation backends behind one interface: Hugging Face transformers (CPU/GPU) and vLLM (GPU).

Both take the same `GenerationRequest`s (a question, its chat prompt already rendered to token ids through the
student's chat template, and which sample indices to produce) and return one `Completion` per requested sample, so
the chunked/resumable driver (`valley_assets.generation.samples`) and the sample schema do not depend on the backend.

vLLM is an optional extra (GPU images only): it is imported when a `VLLMBackend` is built, never at module import.
Everything that decides *what* vLLM is asked (`vllm_sampling_kwargs`, `build_vllm_requests`) and how its answer is
read (`completions_from_vllm_output`) is a pure function, tested without a GPU.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# The interface types live in a dependency-free module (the config and the OpenAI backend use them too); they are
# re-exported here because every backend is used through them.
from valley_assets.generation.interface import (
    FINISH_REASONS,
    MAX_NEW_TOKENS_LIMIT,
    Completion,
    GenerationBackend,
    GenerationRequest,
    SamplingConfig,
    render_chat,
    sample_seed,
)

__all__ = [
    "FINISH_REASONS", "MAX_NEW_TOKENS_LIMIT", "Completion", "GenerationBackend", "GenerationRequest", "SamplingConfig",
    "TransformersBackend", "VLLMBackend", "build_vllm_requests", "completions_from_vllm_output",
    "finish_generated_tokens", "load_backend", "render_chat", "sample_seed", "transformers_generation_kwargs",
    "vllm_sampling_kwargs",
]


# ----------------------------------------------------------------------------------------------------- transformers


class TransformersBackend:
    """`model.generate`, batched with left padding; works on CPU (demo) and GPU.

    `batch_size` counts sequences (a problem asking for 4 samples fills 4 rows). Sampling randomness comes from
    torch's global generator, seeded per batch from the (question, sample) pairs in it, so a rerun of the same batch
    reproduces its samples.
    """

    name = "transformers"

    def __init__(self, model, tokenizer, *, batch_size: int = 8):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.eos_token_ids = _eos_token_ids(model, tokenizer)
        if not self.eos_token_ids:
            raise ValueError("the model has no EOS token id (generation_config or tokenizer); cannot tell stop from length")
        pad = tokenizer.pad_token_id
        self.pad_token_id = pad if pad is not None else min(self.eos_token_ids)

    @classmethod
    def from_pretrained(
        cls,
        model_path: str,
        *,
        batch_size: int = 8,
        device: str | None = None,
        dtype: str = "auto",
        num_threads: int | None = None,
    ):
        """Load a checkpoint folder or hub id. `num_threads` caps torch's CPU threads: when several generation
        processes share a small machine, oversubscribed threads make CPU decoding many times slower
        (benchmarks/RESULTS_generation.md)."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if num_threads is not None:
            if num_threads < 1:
                raise ValueError(f"num_threads must be >= 1, got {num_threads}")
            torch.set_num_threads(num_threads)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype).to(device)
        model.eval()
        return cls(model, tokenizer, batch_size=batch_size)

    def render(self, messages: list[dict]) -> list[int]:
        return render_chat(self.tokenizer, messages)

    def generate(self, requests: Sequence[GenerationRequest], sampling: SamplingConfig) -> list[list[Completion]]:
        rows = [(ri, idx) for ri, req in enumerate(requests) for idx in req.sample_indices]
        by_row: dict[tuple[int, int], Completion] = {}
        for start in range(0, len(rows), self.batch_size):
            batch = rows[start:start + self.batch_size]
            prompts = [requests[ri].prompt_token_ids for ri, _ in batch]
            seed = sample_seed(sampling.seed, requests[batch[0][0]].question_id, batch[0][1])
            for key, completion in zip(batch, self._generate_batch(prompts, sampling, seed), strict=True):
                by_row[key] = completion
        return [[by_row[(ri, idx)] for idx in req.sample_indices] for ri, req in enumerate(requests)]

    def _generate_batch(self, prompts: list[tuple[int, ...]], sampling: SamplingConfig, seed: int) -> list[Completion]:
        import torch
        from transformers import GenerationConfig

        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):  # left padding: the answer starts at the same column for every row
            input_ids[i, width - len(p):] = torch.tensor(p, dtype=torch.long)
            attention_mask[i, width - len(p):] = 1
        config = GenerationConfig(**transformers_generation_kwargs(sampling, self.eos_token_ids, self.pad_token_id))
        device = self.model.device
        torch.manual_seed(seed)
        with torch.no_grad():
            out = self.model.generate(
                input_ids=input_ids.to(device),
                attention_mask=attention_mask.to(device),
                generation_config=config,
                tokenizer=self.tokenizer if sampling.stop else None,
            )
        new_tokens = out[:, width:].tolist()
        return [
            finish_generated_tokens(
                tokens,
                prompt_tokens=len(p),
                eos_token_ids=self.eos_token_ids,
                pad_token_id=self.pad_token_id,
                stop=sampling.stop,
                decode=lambda ids: self.tokenizer.decode(ids, skip_special_tokens=True),
            )
            for p, tokens in zip(prompts, new_tokens, strict=True)
        ]


def transformers_generation_kwargs(sampling: SamplingConfig, eos_token_ids: Iterable[int], pad_token_id: int) -> dict:
    """`GenerationConfig` fields that make `model.generate` sample exactly like our vLLM requests.

    transformers fills every field left unset (None) from the checkpoint's generation_config.json, then from its
    global defaults (top_k=50). Qwen2.5-Instruct's file sets top_k=20 and repetition_penalty=1.05, which vLLM does
    not apply to explicit SamplingParams; so every processor is set to its neutral value here, leaving only
    temperature and top_p, on both backends.
    """
    return {
        "max_new_tokens": sampling.max_new_tokens,
        "min_new_tokens": 0,
        "do_sample": not sampling.greedy,
        "temperature": sampling.temperature if not sampling.greedy else 1.0,
        "top_p": sampling.top_p if not sampling.greedy else 1.0,
        "top_k": 0,
        "min_p": 0.0,
        "typical_p": 1.0,
        "repetition_penalty": 1.0,
        "no_repeat_ngram_size": 0,
        "num_beams": 1,
        "use_cache": True,
        "eos_token_id": sorted(set(eos_token_ids)),
        "pad_token_id": pad_token_id,
        "stop_strings": list(sampling.stop) or None,
    }


def finish_generated_tokens(
    tokens: Sequence[int],
    *,
    prompt_tokens: int,
    eos_token_ids: Iterable[int],
    pad_token_id: int,
    stop: Sequence[str],
    decode,
) -> Completion:
    """Turn one row of `generate`'s new tokens into a Completion with vLLM's conventions.

    The row ends at the first EOS (counted as a generated token, as vLLM counts it). A row that finished before the
    others is right-filled with the pad token; when there is no EOS, the first pad marks where a stop string ended
    it. The text is cut before the first stop string, which vLLM also leaves out.
    """
    eos = set(eos_token_ids)
    end = next((i for i, t in enumerate(tokens) if t in eos), None)
    if end is not None:
        body, n_generated, stopped = tokens[:end], end + 1, True
    else:
        pad_at = next((i for i, t in enumerate(tokens) if t == pad_token_id), len(tokens))
        body, n_generated, stopped = tokens[:pad_at], pad_at, False
    text = decode(list(body))
    cut = min((i for i in (text.find(s) for s in stop) if i != -1), default=-1)
    if cut != -1:
        text, stopped = text[:cut], True
    return Completion(
        text=text,
        finish_reason="stop" if stopped else "length",
        prompt_tokens=prompt_tokens,
        completion_tokens=n_generated,
    )


def _eos_token_ids(model, tokenizer) -> set[int]:
    ids: set[int] = set()
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (gen_eos, tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif value:
            ids.update(int(v) for v in value)
    return ids


# ------------------------------------------------------------------------------------------------------------- vLLM


def vllm_sampling_kwargs(cfg: SamplingConfig, *, n: int = 1, seed: int | None = None, max_tokens: int | None = None):
    """Keyword arguments for `vllm.SamplingParams`; a dict so that it is checked without vLLM installed."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    kwargs: dict[str, Any] = {
        "n": n,
        "temperature": float(cfg.temperature),
        "top_p": float(cfg.top_p) if not cfg.greedy else 1.0,
        "max_tokens": cfg.max_new_tokens if max_tokens is None else max_tokens,
        "seed": cfg.seed if seed is None else seed,
        "skip_special_tokens": True,
    }
    if cfg.stop:
        kwargs["stop"] = list(cfg.stop)
    return kwargs


def build_vllm_requests(
    requests: Sequence[GenerationRequest], cfg: SamplingConfig, *, max_model_len: int | None = None
) -> tuple[list[dict], list[dict]]:
    """(prompts, SamplingParams kwargs) for `LLM.generate`, one pair per request.

    One prompt per question with `n = len(sample_indices)`, so vLLM shares the prompt's KV cache among its samples.
    Each request is seeded from (seed, question, first sample index): a rerun that asks for the same samples draws
    the same ones. With `max_model_len`, max_tokens is capped to the room the prompt leaves (vLLM rejects more).
    """
    prompts, params = [], []
    for req in requests:
        max_tokens = cfg.max_new_tokens
        if max_model_len is not None:
            room = max_model_len - len(req.prompt_token_ids)
            if room < 1:
                raise ValueError(
                    f"question {req.question_id!r}: prompt has {len(req.prompt_token_ids)} tokens, no room left in "
                    f"max_model_len={max_model_len}"
                )
            max_tokens = min(max_tokens, room)
        prompts.append({"prompt_token_ids": list(req.prompt_token_ids)})
        params.append(
            vllm_sampling_kwargs(
                cfg,
                n=len(req.sample_indices),
                seed=sample_seed(cfg.seed, req.question_id, req.sample_indices[0]),
                max_tokens=max_tokens,
            )
        )
    return prompts, params


def completions_from_vllm_output(request_output) -> list[Completion]:
    """Read one `vllm.RequestOutput` (its `.prompt_token_ids` and `.outputs[*]`) into Completions."""
    prompt_tokens = len(request_output.prompt_token_ids)
    completions = []
    for out in request_output.outputs:
        reason = out.finish_reason
        if reason not in FINISH_REASONS:
            raise RuntimeError(
                f"vLLM returned finish_reason={reason!r} for request {getattr(request_output, 'request_id', '?')}; "
                f"expected one of {FINISH_REASONS}"
            )
        completions.append(
            Completion(text=out.text, finish_reason=reason, prompt_tokens=prompt_tokens,
                       completion_tokens=len(out.token_ids))
        )
    return completions


def _import_vllm():
    try:
        import vllm
    except ImportError as exc:
        raise ImportError(
            "the vllm backend needs the optional 'vllm' package (GPU images install it); "
            "use backend='transformers' on machines without it"
        ) from exc
    return vllm


@dataclass
class VLLMBackend:
    """`vllm.LLM` over the checkpoint folder; one `LLM.generate` call per chunk."""

    model_path: str
    tensor_parallel_size: int = 1
    max_model_len: int | None = None
    dtype: str = "auto"
    gpu_memory_utilization: float = 0.9
    seed: int = 0
    llm_kwargs: dict = field(default_factory=dict)
    name: str = "vllm"

    def __post_init__(self) -> None:
        vllm = _import_vllm()
        self._sampling_params_cls = vllm.SamplingParams
        self.llm = vllm.LLM(
            model=self.model_path,
            tensor_parallel_size=self.tensor_parallel_size,
            max_model_len=self.max_model_len,
            dtype=self.dtype,
            gpu_memory_utilization=self.gpu_memory_utilization,
            seed=self.seed,
            **self.llm_kwargs,
        )
        self.tokenizer = self.llm.get_tokenizer()
        if self.max_model_len is None:
            self.max_model_len = self.llm.llm_engine.model_config.max_model_len

    def render(self, messages: list[dict]) -> list[int]:
        return render_chat(self.tokenizer, messages)

    def generate(self, requests: Sequence[GenerationRequest], sampling: SamplingConfig) -> list[list[Completion]]:
        prompts, kwargs = build_vllm_requests(requests, sampling, max_model_len=self.max_model_len)
        params = [self._sampling_params_cls(**kw) for kw in kwargs]
        outputs = self.llm.generate(prompts, sampling_params=params, use_tqdm=False)
        return [completions_from_vllm_output(o) for o in outputs]


def load_backend(name: str, model_path: str, *, options: Mapping[str, Any] | None = None) -> GenerationBackend:
    """Build a backend by name: `transformers` (options: batch_size, device, dtype, num_threads) or `vllm` (options: the
    `VLLMBackend` fields: tensor_parallel_size, max_model_len, dtype, gpu_memory_utilization, seed, llm_kwargs) or
    `openai` (an OpenAI-compatible endpoint; options: `openai_backend.ENDPOINT_OPTIONS`, `base_url` required)."""
    options = dict(options or {})
    if name in ("transformers", "vllm"):
        from valley_assets.model_files import local_model_dir

        model_path = local_model_dir(model_path)  # a checkpoint on object storage is copied to local disk once
    if name == "transformers":
        allowed = {"batch_size", "device", "dtype", "num_threads"}
        _check_options(name, options, allowed)
        return TransformersBackend.from_pretrained(model_path, **options)
    if name == "vllm":
        allowed = {"tensor_parallel_size", "max_model_len", "dtype", "gpu_memory_utilization", "seed", "llm_kwargs"}
        _check_options(name, options, allowed)
        return VLLMBackend(model_path, **options)
    if name == "openai":  # `model_path` is the endpoint's model name; see generation/openai_backend.py
        from valley_assets.generation.openai_backend import ENDPOINT_OPTIONS, OpenAIChatBackend

        _check_options(name, options, set(ENDPOINT_OPTIONS))
        return OpenAIChatBackend(model_path, **options)
    raise ValueError(f"unknown generation backend {name!r}; use 'transformers', 'vllm' or 'openai'")


def _check_options(backend: str, options: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"unknown backend_options {unknown} for backend {backend!r}; allowed: {sorted(allowed)}")
