from __future__ import annotations

from pathlib import Path

import pytest
from analysis_fixtures import SHARED_DATA


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared real data folder {SHARED_DATA} is absent (fresh clone outside the project setup)")
    return SHARED_DATA
