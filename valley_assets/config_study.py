"""The sections of the study config that say what is studied: the students, the training data and its pool, the
benchmark and its date windows, the ablation arms and the analysis. `valley_assets.config` puts them together
(`StudyConfig`) and re-exports them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from valley_assets.partitions import ABLATION_ARMS, validate_data_size_key, validate_release_key


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")



class StudentSpec(_Strict):
    name: str = Field(description="partition key of the student, e.g. qwen2.5-7b-instruct")
    model: str = Field(description="hub id or local folder; 'demo:tiny-qwen2' is built by the demo world")
    recipe: str = Field(description="training recipe name (valley_assets/training/recipes) or a YAML path; its "
                                    "max_length is the student's token budget, for the pool filter and for SFT")
    cutoff: str | None = Field(
        default=None, description="the base model's training-data cutoff (ISO date): a date window with "
                                  "`after_student_cutoff` scores this student on the contests after it")

    @field_validator("cutoff")
    @classmethod
    def _iso_cutoff(cls, v: str | None) -> str | None:
        from datetime import date

        if v is not None:
            try:
                date.fromisoformat(v)
            except ValueError:
                raise ValueError(f"students: cutoff {v!r} is not an ISO date (YYYY-MM-DD)") from None
        return v

    @field_validator("name")
    @classmethod
    def _name_is_partition_safe(cls, v: str) -> str:
        validate_release_key(v)  # same character rules as release keys
        return v


class DemoDataConfig(_Strict):
    n_train_problems: int = 360
    n_eval_problems: int = 36
    wrong_fraction: float = 0.3
    defect_fraction: float = 0.04
    pretrain_steps: int = Field(default=300, ge=0, description="generic-text pre-training of the tiny student")


class HubDataConfig(_Strict):
    """Production sources. Each is a hub id or a local/object-store folder (same `datasets` code path)."""

    ocr2: str = "nvidia/OpenCodeReasoning-2"
    taco: str = "BAAI/TACO"
    apps: str = "codeparrot/apps"
    code_contests: str = "deepmind/code_contests"
    codeforces: str = "open-r1/codeforces"
    max_rows: int | None = Field(default=None, description="read only the first N OCR2 rows (smoke runs)")


class DataConfig(_Strict):
    source: Literal["demo", "hub"]
    seed: int = 0
    demo: DemoDataConfig = DemoDataConfig()
    hub: HubDataConfig = HubDataConfig()


class PoolConfig(_Strict):
    seed: int = 0
    chars_per_token_low: float = Field(
        default=2.0, description="fewest characters (bytes) a token can stand for: the length pre-filter's upper bound"
    )
    chars_per_token_high: float | None = Field(
        default=None, description="most characters a token can stand for; rows below chars/this skip tokenizing"
    )
    prompt_overhead_tokens: int = Field(default=256, ge=0, description="tokens of the prompt template and chat markup")
    ngram: int | None = Field(
        default=13, ge=5,
        description="word n-gram length of the decontamination overlap test; null = exact normalised text only")


AFTER_CUTOFF = "after_cutoff"  # date_window label of the per-student window after each student's cutoff


class DateWindow(_Strict):
    """Problems whose contest_date falls in [start, end] (ISO dates, both inclusive, either side open): LiveCodeBench
    is read per window after a model's cutoff, which is how its leaderboard avoids contamination."""

    start: str | None = None
    end: str | None = None
    after_student_cutoff: bool = Field(
        default=False, description="per student: contests after that student's `cutoff` (up to `end`, if set); "
                                   "rows carry date_window 'after_cutoff' (or 'after_cutoff..<end>')")

    @property
    def label(self) -> str:
        if self.after_student_cutoff:
            return AFTER_CUTOFF + (f"..{self.end}" if self.end else "")
        return f"{self.start or ''}..{self.end or ''}"

    def bounds(self, cutoff: str | None) -> tuple[str | None, str | None]:
        """(start, end), both inclusive; an after-cutoff window starts the day after `cutoff`."""
        if not self.after_student_cutoff:
            return self.start, self.end
        from datetime import date, timedelta

        if cutoff is None:
            raise ValueError(f"date window {self.label!r} needs the student's `cutoff`")
        return (date.fromisoformat(cutoff) + timedelta(days=1)).isoformat(), self.end

    @model_validator(mode="after")
    def _iso_dates(self) -> DateWindow:
        from datetime import date

        if self.after_student_cutoff and self.start is not None:
            raise ValueError("benchmark.date_windows: an after_student_cutoff window takes no start (it starts "
                             "after each student's cutoff)")

        for side in ("start", "end"):
            value = getattr(self, side)
            if value is not None:
                try:
                    date.fromisoformat(value)
                except ValueError:
                    raise ValueError(f"benchmark.date_windows: {side} {value!r} is not an ISO date (YYYY-MM-DD)") from None
        if self.start is None and self.end is None and not self.after_student_cutoff:
            raise ValueError("benchmark.date_windows: a window needs a start or an end (all problems are always scored)")
        if self.start and self.end and self.start > self.end:
            raise ValueError(f"benchmark.date_windows: start {self.start} is after end {self.end}")
        return self


class BenchmarkConfig(_Strict):
    source: Literal["demo", "lcb"]
    lcb: str = Field(default="livecodebench/code_generation_lite", description="hub id or folder of test*.jsonl")
    releases: list[str] = Field(description="releases registered as lcb_release partitions at start-up")
    start_date: str | None = None
    end_date: str | None = None
    date_windows: list[DateWindow] = Field(
        default_factory=list, description="contest-date windows scored besides all problems (scores table rows with "
                                          "date_window '<start>..<end>')")

    def scoring_windows(self, cutoff: str | None = None) -> list[tuple[str, str | None, str | None]]:
        """(label, start, end) of all problems first, then each configured window, as
        `science.metrics.score_rows` takes them; `cutoff`: the scored student's (after-cutoff windows)."""
        return [("all", None, None), *((w.label, *w.bounds(cutoff)) for w in self.date_windows)]

    @field_validator("releases")
    @classmethod
    def _valid_releases(cls, v: list[str]) -> list[str]:
        return [validate_release_key(r) for r in v]


class AblationConfig(_Strict):
    base_data_size: str = Field(description="stage checkpoint the ablation arms continue from")
    rows: dict[str, int] = Field(description="rows per arm: easy, hard, correct, incorrect")

    @field_validator("base_data_size")
    @classmethod
    def _valid_base(cls, v: str) -> str:
        return validate_data_size_key(v)

    @field_validator("rows")
    @classmethod
    def _arms_known(cls, v: dict[str, int]) -> dict[str, int]:
        unknown = set(v) - set(ABLATION_ARMS)
        missing = set(ABLATION_ARMS) - set(v)
        if unknown or missing:
            raise ValueError(f"ablation.rows needs exactly the arms {ABLATION_ARMS}; unknown {sorted(unknown)}, "
                             f"missing {sorted(missing)}")
        for arm, n in v.items():
            if n < 1:
                raise ValueError(f"ablation.rows.{arm} must be >= 1, got {n}")
        return v


class AnalysisConfig(_Strict):
    bootstrap_samples: int = 1000
    seed: int = 0
