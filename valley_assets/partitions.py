"""Every partitions definition of the study, in one place.

- `data_size` (dynamic): how much distillation data a checkpoint saw. `0` is the untouched base model; `1k`, `10k`,
  `30k`, … are row counts in thousands. Dynamic so that a user can add `100k` from the UI or a sensor without a code
  change. Dagster does not validate dynamic keys: the project's own adds go through `add_data_sizes`, and in a
  deployed instance `partition_keys_sensor` (valley_assets/defs/partition_keys.py) registers the profile's keys and
  deletes invalid ones added through the UI.
- `student` (static, from the profile): which base model is distilled.
- checkpoints: `data_size × student` (Dagster allows exactly two dimensions).
- `lcb_release` (dynamic): LiveCodeBench releases (`release_v6`, …; the demo registers `demo_v1`).
- `ablation_arm` (static): the ablation subsets (easy/hard by TACO difficulty, correct/incorrect by judgement).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import dagster as dg

DATA_SIZE = "data_size"
STUDENT = "student"

data_size_partitions = dg.DynamicPartitionsDefinition(name=DATA_SIZE)
lcb_release_partitions = dg.DynamicPartitionsDefinition(name="lcb_release")

_DATA_SIZE_RE = re.compile(r"^(0|[1-9][0-9]*k)$")
_RELEASE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

ABLATION_ARMS = ("easy", "hard", "correct", "incorrect")


class PartitionKeyError(ValueError):
    """A partition key that the study cannot interpret."""


def validate_data_size_key(key: str) -> str:
    """Return the key if it is `0` or `<positive int>k` (e.g. `1k`, `30k`, `100k`); raise otherwise."""
    if not isinstance(key, str) or not _DATA_SIZE_RE.match(key):
        raise PartitionKeyError(
            f"invalid data_size partition key {key!r}: expected '0' (the base model) or a positive whole number of "
            "thousands followed by 'k', such as '1k', '10k', '30k' or '100k'"
        )
    return key


def data_size_thousands(key: str) -> int:
    """`1k` -> 1, `30k` -> 30, `0` -> 0."""
    validate_data_size_key(key)
    return 0 if key == "0" else int(key[:-1])


def data_size_rows(key: str, rows_per_k: int) -> int:
    """Rows of distillation data behind a data_size key; the demo profile shrinks `rows_per_k` (paper: 1000)."""
    if rows_per_k < 1:
        raise PartitionKeyError(f"rows_per_k must be >= 1, got {rows_per_k}")
    return data_size_thousands(key) * rows_per_k


def sort_data_sizes(keys: Iterable[str]) -> list[str]:
    return sorted(keys, key=data_size_thousands)


def validate_release_key(key: str) -> str:
    if not isinstance(key, str) or not _RELEASE_RE.match(key):
        raise PartitionKeyError(
            f"invalid lcb_release partition key {key!r}: use letters, digits, '_', '.', '-' (e.g. 'release_v6')"
        )
    return key


def add_data_sizes(instance: dg.DagsterInstance, keys: Iterable[str]) -> list[str]:
    """Validate then register data_size keys; returns the keys that were new. Nothing is added if any key is bad."""
    keys = [validate_data_size_key(k) for k in keys]
    existing = set(instance.get_dynamic_partitions(DATA_SIZE))
    new = [k for k in dict.fromkeys(keys) if k not in existing]
    if new:
        instance.add_dynamic_partitions(DATA_SIZE, new)
    return new


def add_releases(instance: dg.DagsterInstance, keys: Iterable[str]) -> list[str]:
    keys = [validate_release_key(k) for k in keys]
    existing = set(instance.get_dynamic_partitions(lcb_release_partitions.name))
    new = [k for k in dict.fromkeys(keys) if k not in existing]
    if new:
        instance.add_dynamic_partitions(lcb_release_partitions.name, new)
    return new


def student_partitions(students: Iterable[str]) -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition(list(students))


def checkpoint_partitions(students: Iterable[str]) -> dg.MultiPartitionsDefinition:
    return dg.MultiPartitionsDefinition(
        {DATA_SIZE: data_size_partitions, STUDENT: student_partitions(students)}
    )


def ablation_partitions(students: Iterable[str]) -> dg.MultiPartitionsDefinition:
    return dg.MultiPartitionsDefinition(
        {"arm": dg.StaticPartitionsDefinition(list(ABLATION_ARMS)), STUDENT: student_partitions(students)}
    )


def checkpoint_key(context: dg.AssetExecutionContext) -> tuple[str, str]:
    """(data_size, student) of the running partition, validated: a key added behind our back fails loudly here."""
    keys = context.partition_key.keys_by_dimension
    return validate_data_size_key(keys[DATA_SIZE]), keys[STUDENT]
