"""Decontamination of training questions against benchmark (LiveCodeBench) problems.

Two rules, both on normalised text (lowercase; every run of characters that is not a letter or digit becomes one
space; trimmed):
- exact: the normalised training question equals a normalised benchmark `question_content`;
- n-gram: the training question shares at least one word n-gram (default 13, the GPT-3 / Llama decontamination
  convention) with a benchmark problem. Texts shorter than n words are covered by the exact rule only.
A hit names the benchmark question_ids it matched, so a report can say which problems leaked.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

_NON_ALNUM_RE = re.compile(r"[^0-9a-z]+")


def normalise_text(text: str) -> str:
    """Lowercase, non-alphanumeric runs to one space, trimmed (Unicode letters outside a-z count as separators)."""
    return _NON_ALNUM_RE.sub(" ", text.lower()).strip()


def _digest(text: str) -> int:
    # Python's hash() of str is salted per process; a fixed digest keeps results reproducible across runs.
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def word_ngrams(normalised: str, n: int) -> set[int]:
    """Digests of every word n-gram of an already normalised text (empty when it has fewer than n words)."""
    return {_digest(" ".join(gram)) for gram in _ngram_tuples(normalised, n)}


def _ngram_tuples(normalised: str, n: int) -> set[tuple[str, ...]]:
    """Every word n-gram of an already normalised text, as a tuple of its words.

    The index keys on these tuples rather than on `word_ngrams` digests: a blake2b call (and a string join) per
    n-gram dominated the pool build (~4 ms per 2K-character question, tens of thousands of distinct questions),
    and the keys never leave the process, so a fixed digest buys nothing here. Matching is the same n-grams,
    compared exactly instead of by a 64-bit digest.
    """
    words = normalised.split()
    return set(zip(*(words[i:] for i in range(n)), strict=False)) if len(words) >= n else set()


@dataclass(frozen=True)
class ContaminationHit:
    rule: str  # "exact" or "13-gram" (the n used)
    question_ids: tuple[str, ...]  # benchmark problems matched, sorted


class ContaminationIndex:
    """Exact-text and n-gram index over benchmark problems; `match(question)` says whether a question leaks."""

    def __init__(self, problems: Iterable[dict], *, ngram: int | None = 13):
        # ngram=None: exact normalised-text matches only (for benchmarks built from the same templates as the
        # training problems, where every sibling shares long phrases by design).
        if ngram is not None and ngram < 1:
            raise ValueError(f"ngram must be >= 1, got {ngram}")
        self.ngram = ngram
        self._exact: dict[str, set[str]] = {}
        self._ngrams: dict[tuple[str, ...], set[str]] = {}
        self.n_problems = 0
        for i, problem in enumerate(problems):
            for key in ("question_id", "question_content"):
                if not isinstance(problem.get(key), str):
                    raise ValueError(f"benchmark problem #{i}: field {key!r} must be a string, "
                                     f"got {type(problem.get(key)).__name__}")
            qid = problem["question_id"]
            normalised = normalise_text(problem["question_content"])
            if not normalised:
                raise ValueError(f"benchmark problem #{i} ({qid}): question_content is empty")
            self._exact.setdefault(normalised, set()).add(qid)
            for gram in _ngram_tuples(normalised, ngram) if ngram is not None else ():
                self._ngrams.setdefault(gram, set()).add(qid)
            self.n_problems += 1

    def match(self, question: str) -> ContaminationHit | None:
        normalised = normalise_text(question)
        exact = self._exact.get(normalised)
        if exact:
            return ContaminationHit("exact", tuple(sorted(exact)))
        if self.ngram is None:
            return None
        ids: set[str] = set()
        for gram in _ngram_tuples(normalised, self.ngram) & self._ngrams.keys():
            ids.update(self._ngrams[gram])
        if ids:
            return ContaminationHit(f"{self.ngram}-gram", tuple(sorted(ids)))
        return None


def overlap_rule(ngram: int | None) -> str:
    return "exact" if ngram is None else f"exact or {ngram}-gram"


def release_overlap(problems: Iterable[dict], pool_questions: Iterable[str], *, ngram: int | None = 13) -> dict:
    """Which of a release's problems the training pool overlaps, by the rule the pool was decontaminated with.

    The pool is decontaminated against the releases known when it was built; a release published later is checked
    here, when it is scored. Returns `{"rule", "n_pool_questions", "n_overlapping", "question_ids"}` (ids sorted).
    """
    index = ContaminationIndex(problems, ngram=ngram)
    overlapping: set[str] = set()
    questions = set(pool_questions)
    for question in questions:
        hit = index.match(question)
        if hit is not None:
            overlapping.update(hit.question_ids)
    return {"rule": overlap_rule(ngram), "n_pool_questions": len(questions),
            "n_overlapping": len(overlapping), "question_ids": sorted(overlapping)}
