from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # `tests.rehearsal.students`

from tiny_world import build_tiny_student, write_train_file  # noqa: E402


@pytest.fixture(scope="session")
def tiny_student(tmp_path_factory) -> Path:
    return build_tiny_student(tmp_path_factory.mktemp("student") / "tiny-qwen2")


@pytest.fixture(scope="session")
def train_file(tmp_path_factory) -> Path:
    return write_train_file(tmp_path_factory.mktemp("data") / "train.jsonl", n=48)
