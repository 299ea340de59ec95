"""The pool's token counter: the longest tokenization of a text over the students' tokenizers, picklable.

The pool is shared by every student, so "within the token limit" must hold for the tightest one: a text's count is
the max over their tokenizers. `build_pool` runs pass 1 in spawned worker processes only when `count_tokens`
pickles; a closure over loaded tokenizers does not, so this class holds only the tokenizer references (hub ids or
local folders, what `from_pretrained` takes) and loads them lazily in whichever process first counts. Pickling
drops the loaded tokenizers: each worker loads its own once (the demo's tokenizer folder goes through the same
`from_pretrained` as a hub id).
"""

from __future__ import annotations

from collections.abc import Sequence


class MaxTokenCounter:
    """`count_tokens(texts) -> [max over tokenizers of len(input_ids)]`, no special tokens added."""

    def __init__(self, tokenizer_refs: Sequence[str]):
        refs = tuple(str(r) for r in tokenizer_refs)
        if not refs:
            raise ValueError("MaxTokenCounter needs at least one tokenizer reference")
        self.tokenizer_refs = refs
        self._tokenizers: list | None = None

    def __getstate__(self) -> dict:
        return {"tokenizer_refs": self.tokenizer_refs}  # loaded tokenizers stay behind; workers load their own

    def __setstate__(self, state: dict) -> None:
        self.tokenizer_refs = state["tokenizer_refs"]
        self._tokenizers = None

    def __repr__(self) -> str:
        return f"MaxTokenCounter({list(self.tokenizer_refs)!r})"

    def tokenizers(self) -> list:
        if self._tokenizers is None:
            from valley_assets.model_files import load_tokenizer  # transformers is imported only when counting

            self._tokenizers = [load_tokenizer(ref) for ref in self.tokenizer_refs]
        return self._tokenizers

    def __call__(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        counts = [tok(texts, add_special_tokens=False, return_attention_mask=False)["input_ids"]
                  for tok in self.tokenizers()]
        return [max(len(c[i]) for c in counts) for i in range(len(texts))]
