"""The pool's per-row rules, as pure functions of one batch of traces (`valley_assets.data.pool` documents each
rule, its reason and the order they are checked in).

Nothing here reads files or holds state: pass 1 (`pool_pass1`) applies these to every batch, in this process or in
spawned workers, and the tests check them directly.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import polars as pl
import pyarrow as pa

from valley_assets.data.reading import BAD_UTF8, ROW
from valley_assets.data.schema import REQUIRED_TRACE_COLUMNS, TRACE_SCHEMA
from valley_assets.science.text import THINK_CLOSE, THINK_OPEN, extract_code

MALFORMED_REASONS = (
    "non_utf8",
    "missing_field",
    "invalid_pass_rate",
    "empty_question",
    "empty_generation",
    "unrecovered_question",
    "invalid_judgement",
)
FILTER_REASONS = (
    "no_closed_think",
    "no_code",
    "too_long",
    "contaminated",
    "duplicate_id",
    "exact_duplicate",
    "near_duplicate",
)
JUDGEMENTS = ("right", "wrong")

# Same language check as science.text: `<think>` followed later by `</think>`.
_CLOSED_THINK_RE = r"(?s)<think>.*</think>"
# Near-duplicate keys look at the opening and closing characters only: normalising whole 30K-character traces with
# a regex dominated the pool build (measured 4x slower), and independent samples never share both ends.
NEAR_DUP_WINDOW = 2048

Rejected = tuple[int, str, str, str, str]  # a quarantined row: (row, id, kind, reason, detail)


def rank_key(seed: int, row_id: str) -> int:
    """The seeded sort key of a row: the first 8 bytes of blake2b(seed, id), unsigned little-endian."""
    digest = hashlib.blake2b(f"{seed}\x00{row_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def token_bounds(n_bytes: int, n_chars: int, *, chars_per_token_low: float, chars_per_token_high: float | None,
                 overhead: int) -> tuple[int, int]:
    """(lower, upper) bounds on the token count of a text of that many UTF-8 bytes and characters."""
    upper = math.ceil(n_bytes / chars_per_token_low) + overhead
    lower = (math.floor(n_chars / chars_per_token_high) if chars_per_token_high else 0) + overhead
    return lower, upper


def with_all_columns(batch: pl.DataFrame) -> pl.DataFrame:
    """Absent trace columns become null columns (required ones are then reported as missing_field)."""
    missing = [pl.lit(None, dtype=dt).alias(c) for c, dt in TRACE_SCHEMA.items() if c not in batch.columns]
    return batch.with_columns(missing) if missing else batch


def malformed_reasons(batch: pl.DataFrame) -> pl.DataFrame:
    """`_row`, `id`, `reason`, `detail` for every row of the batch; reason null when the row is well-formed.

    Pure and vectorised; the order of the `when` chain is the order of MALFORMED_REASONS.
    """
    batch = with_all_columns(batch)
    missing = pl.concat_str(
        [pl.when(pl.col(c).is_null()).then(pl.lit(c)) for c in REQUIRED_TRACE_COLUMNS],
        separator=",", ignore_nulls=True,
    )
    raw_pass_rate = pl.col("pass_rate")
    pass_rate = raw_pass_rate.cast(pl.Float64, strict=False)
    pass_rate_ok = pass_rate.is_finite() & ((pass_rate == -1.0) | ((pass_rate >= 0.0) & (pass_rate <= 1.0)))
    question = pl.col("question")
    generation = pl.col("r1_generation")
    reason = (
        pl.when(pl.col(BAD_UTF8).is_not_null()).then(pl.lit("non_utf8"))
        .when(missing != "").then(pl.lit("missing_field"))
        .when(~pass_rate_ok.fill_null(False)).then(pl.lit("invalid_pass_rate"))
        .when(question.str.strip_chars() == "").then(pl.lit("empty_question"))
        # (no non-whitespace character: same as strip_chars() == "", without copying every trace)
        .when(~generation.str.contains(r"\S")).then(pl.lit("empty_generation"))
        .when(question.str.strip_chars() == "-").then(pl.lit("unrecovered_question"))
        .when(~pl.col("judgement").is_in(JUDGEMENTS)).then(pl.lit("invalid_judgement"))
    )
    detail = (
        pl.when(reason == "non_utf8").then(pl.col(BAD_UTF8))
        .when(reason == "missing_field").then(missing)
        .when(reason == "invalid_pass_rate").then(pl.format("pass_rate={}", raw_pass_rate.cast(pl.String)))
        .when(reason == "invalid_judgement").then(pl.format("judgement={}", pl.col("judgement")))
    )
    return batch.select(
        pl.col(ROW),
        pl.col("id").cast(pl.String),
        reason.alias("reason"),
        detail.cast(pl.String).fill_null("").alias("detail"),
    )


def closed_think_and_answer(generations: pl.Series) -> tuple[list[bool], list[str | None]]:
    """Vectorised `has_closed_think`, and the answer part (text after the last `</think>`) of those rows.

    The answer is a byte slice after the first `</think>` (`str.find` gives byte offsets); only when that slice holds
    another `</think>` (rare) does Python's `rfind` find the last one. Splitting or counting over every 30K-character
    trace would read it again; slicing copies only the answer.
    """
    frame = generations.to_frame("g")
    g = pl.col("g")
    close_at = g.str.find(THINK_CLOSE, literal=True)
    feats = frame.select(
        g.str.contains(_CLOSED_THINK_RE).alias("think"),
        g.cast(pl.Binary).bin.slice(close_at + len(THINK_CLOSE)).cast(pl.String).alias("answer"),
    ).with_columns(pl.col("answer").str.contains(THINK_CLOSE, literal=True).fill_null(False).alias("more"))
    think = feats["think"].to_list()
    answers = feats["answer"].to_list()
    for k in feats["more"].arg_true().to_list():
        text = generations[k]
        answers[k] = text[text.rfind(THINK_CLOSE) + len(THINK_CLOSE):]
    for k, closed in enumerate(think):
        if not closed:
            answers[k] = None
    return think, answers


def answer_has_code(answer: str) -> bool:
    """`extract_code(generation) is not None` for a generation whose answer part (after `</think>`) is `answer`.

    Prefixing an empty closed think block makes `answer_part` return exactly `answer`, so this is the shared
    definition applied to the short answer rather than to the whole trace.
    """
    return extract_code(THINK_OPEN + THINK_CLOSE + answer) is not None


# The only code points outside ASCII whose lowercase holds an ASCII letter or digit (checked over all of Unicode
# against polars' to_lowercase): KELVIN SIGN -> "k", LATIN CAPITAL LETTER I WITH DOT ABOVE -> "i" + U+0307.
_LOWERCASE_TO_ASCII = (("\u212a", "k"), ("\u0130", "i"))


def normalised_bytes(texts: pl.Series) -> pa.Array:
    """Each text lowercased with every character that is not an ASCII letter or digit deleted, as large_binary.

    Equal to `to_lowercase()` then deleting `[^0-9a-z]`, computed on the UTF-8 bytes with numpy: a regex replacing
    every run of spaces and punctuation was most of pass 1's polars time (measured 570 ms per 8K traces, numpy ~30).
    Bytes >= 0x80 belong to non-ASCII characters, which are all deleted, except the two whose lowercase is ASCII.
    """
    for source, target in _LOWERCASE_TO_ASCII:
        texts = texts.str.replace_all(source, target, literal=True)
    array = texts.cast(pl.Binary).to_arrow()
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    array = array.cast(pa.large_binary())
    n = len(array)
    validity, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64, count=n + 1, offset=array.offset * 8)
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.empty(0, np.uint8)
    data = data[offsets[0]:offsets[-1]]
    lowered = np.where((data >= 65) & (data <= 90), data + 32, data).astype(np.uint8)
    keep = ((lowered >= 48) & (lowered <= 57)) | ((lowered >= 97) & (lowered <= 122))
    kept_before = np.concatenate([np.zeros(1, np.int64), np.cumsum(keep, dtype=np.int64)])
    new_offsets = kept_before[offsets - offsets[0]]
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), n, [validity, pa.py_buffer(new_offsets),
                                                                   pa.py_buffer(lowered[keep])],
                                            null_count=array.null_count)


def near_duplicate_keys(generations: pl.Series) -> np.ndarray:
    """uint64 key of the normalised first and last NEAR_DUP_WINDOW characters (see `valley_assets.data.pool`)."""
    head = pl.Series(normalised_bytes(generations.str.head(NEAR_DUP_WINDOW))).hash(seed=0).to_numpy()
    tail = pl.Series(normalised_bytes(generations.str.tail(NEAR_DUP_WINDOW))).hash(seed=0).to_numpy()
    with np.errstate(over="ignore"):  # a 64-bit mix of the two hashes: wrapping is intended
        return head * np.uint64(0x9E3779B97F4A7C15) ^ tail
