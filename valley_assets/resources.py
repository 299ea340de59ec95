"""The Dagster resources of a study, each a `dg.ConfigurableResource` validated from its profile section.

Assets take them as typed parameters (`layout: dg.ResourceParam[StudyLayout]`, `grader: GraderResource`, ...), never
as untyped `context.resources.x`; `build_resources(cfg)` picks the implementation per profile, so assets never branch
on it:

| key | type | from the profile |
|---|---|---|
| `layout` | `StudyLayoutResource` -> `layout.StudyLayout` | `storage_root` |
| `problem_source` | `DemoProblemSource` / `TacoProblemSource` | `data.demo` / `data.hub.taco` |
| `benchmark` | `DemoBenchmark` / `LCBBenchmark` | `benchmark` (`lcb`, `start_date`, `end_date`) |
| `teacher` | `DemoTeacher` / `OCR2Teacher` | `data.demo` / `data.hub` |
| `extra_teachers` | `ExtraTeachers` | `teacher.extra` |
| `launcher` | `launch.local.LocalProcessLauncher` / `launch.kubernetes.KubernetesJobLauncher` | `launch.kubernetes` |
| `grader` | `GraderResource` | `grading` |
"""

from __future__ import annotations

from typing import Any, Protocol

import dagster as dg
import polars as pl
from dagster._config.pythonic_config.resource import ConfigurableResourceFactory  # not re-exported by dagster
from pydantic import Field

from valley_assets.config import ExtraTeacherConfig, StudyConfig
from valley_assets.grading.kubernetes_backend import KubernetesGradingSettings
from valley_assets.layout import StudyLayout
from valley_assets.storage import StudyStorage


# --- the storage layout ---------------------------------------------------------------------------------------------
class StudyLayoutResource(ConfigurableResourceFactory[StudyLayout]):
    """The study's storage tree on its root (a local folder or an fsspec URL such as s3://bucket/study)."""

    root: str = Field(description="the resolved storage_root")

    def create_resource(self, context) -> StudyLayout:
        return StudyLayout(self.root)


# --- problems the teacher solved ----------------------------------------------------------------------------------
class ProblemSource(Protocol):
    def training_problems(self) -> list[dict]: ...


class DemoProblemSource(dg.ConfigurableResource):
    """The project's own generated problems (training split)."""

    seed: int
    n_train_problems: int
    n_eval_problems: int

    def _splits(self) -> tuple[list[dict], list[dict]]:
        from valley_assets.demo.problems import make_demo_problems

        return make_demo_problems(self.seed, self.n_train_problems, self.n_eval_problems)

    def training_problems(self) -> list[dict]:
        return self._splits()[0]

    def eval_problems(self) -> list[dict]:
        return self._splits()[1]


class TacoProblemSource(dg.ConfigurableResource):
    """TACO's training problems with their difficulty labels, in the LCB record shape (production)."""

    source: str = Field(description="hub id or folder of BAAI/TACO (data.hub.taco)")

    def training_problems(self) -> list[dict]:
        from valley_assets.data.taco import taco_problem_records

        return taco_problem_records(self.source)


# --- the benchmark -------------------------------------------------------------------------------------------------
class Benchmark(Protocol):
    def load_release(self, release: str) -> list[dict]: ...

    def contamination_problems(self, releases: list[str]) -> list[dict]: ...


class LCBBenchmark(dg.ConfigurableResource):
    """LiveCodeBench releases from the hub or from a folder of `test*.jsonl` files, through one loader."""

    source: str = Field(description="hub id or folder of test*.jsonl (benchmark.lcb)")
    start_date: str | None = None
    end_date: str | None = None

    def load_release(self, release: str) -> list[dict]:
        from valley_assets.data.lcb import load_lcb

        return load_lcb(self.source, release=release, start_date=self.start_date, end_date=self.end_date)

    def contamination_problems(self, releases: list[str]) -> list[dict]:
        """Every problem of the configured releases, without the date window: decontamination is not windowed."""
        from valley_assets.data.lcb import load_lcb

        seen, out = set(), []
        for release in releases:
            for p in load_lcb(self.source, release=release):
                if p["question_id"] not in seen:
                    seen.add(p["question_id"])
                    out.append(p)
        return out


class DemoBenchmark(LCBBenchmark):
    """The demo's held-out problems as an LCB-style folder (`source`: `lcb_source` under the storage root, local or
    object store), read through the same loader as production. Dropping a `test2.jsonl` beside `test.jsonl` makes a
    `release_v2`.

    Writing and reading are separate: `write_release` publishes `test.jsonl` (= release_v1) when it is missing, and
    runs once when Dagster sets the resource up for a step; the readers are LCBBenchmark's, unchanged."""

    problems: DemoProblemSource

    def write_release(self) -> None:
        folder = StudyStorage(self.source)
        if not folder.exists("test.jsonl"):
            folder.write_jsonl(self.problems.eval_problems(), "test.jsonl")

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self.write_release()


# --- the teacher ---------------------------------------------------------------------------------------------------
class Teacher(Protocol):
    def write_traces(self, problems: list[dict], out_dir: str) -> dict: ...


class DemoTeacher(dg.ConfigurableResource):
    seed: int
    wrong_fraction: float
    defect_fraction: float

    def write_traces(self, problems: list[dict], out_dir: str) -> dict:
        from valley_assets.data.schema import TRACE_SCHEMA, cast_to_schema
        from valley_assets.demo.teacher import demo_teacher_traces, trace_summary

        traces = demo_teacher_traces(problems, self.seed, self.wrong_fraction, self.defect_fraction)
        frame = cast_to_schema(pl.DataFrame(traces), TRACE_SCHEMA)
        StudyStorage(out_dir).write_parquet(frame, "traces-00000.parquet")
        return {"n_rows": frame.height, **trace_summary(traces)}


class OCR2Teacher(dg.ConfigurableResource):
    """DeepSeek-R1 traces from OpenCodeReasoning-2, questions recovered from TACO/APPS/CodeContests/Codeforces,
    TACO difficulty attached; streamed shard by shard into parquet. Fields: the profile's `data.hub` section."""

    ocr2: str
    taco: str
    apps: str
    code_contests: str
    codeforces: str
    max_rows: int | None = None

    def write_traces(self, problems: list[dict], out_dir: str) -> dict:
        from valley_assets.data.ocr2 import load_all_source_questions, load_ocr2, write_recovered_traces

        ocr2 = load_ocr2(self.ocr2, max_rows=self.max_rows)
        # The columns `needed_splits` reads: which rows carry the "-" placeholder, and where their source row is.
        traces = pl.from_arrow(ocr2.data.table.select(["question", "dataset", "split"])).lazy()
        questions = load_all_source_questions(traces, {
            "taco": self.taco, "apps": self.apps, "code_contests": self.code_contests,
            "open-r1/codeforces": self.codeforces})
        shards = write_recovered_traces(ocr2, questions, out_dir)
        return {"n_rows": len(ocr2), "n_shards": len(shards)}


class ExtraTeachers(dg.ConfigurableResource):
    """The extra teachers of `teacher.extra` (generation/teacher.py): KAT-V1-40B behind an endpoint, R1 on vLLM, ...
    Each entry is validated as `config.ExtraTeacherConfig` (here and when the profile loads)."""

    # Unset (null) fields are left out: Dagster's config maps take no null values, and every nullable field of
    # ExtraTeacherConfig defaults to null, so validating the entry again restores them.
    teachers: list[dict[str, Any]] = Field(default_factory=list, description="the profile's teacher.extra entries")

    @property
    def specs(self) -> list[ExtraTeacherConfig]:
        return [ExtraTeacherConfig.model_validate(t) for t in self.teachers]

    def endpoint_backend(self, spec: ExtraTeacherConfig):
        """The OpenAI-compatible backend of an `openai` teacher; the API key is read from its env var here."""
        from valley_assets.generation.backends import load_backend

        return load_backend("openai", spec.model, options=spec.endpoint.model_dump())


# --- grading -------------------------------------------------------------------------------------------------------
class GraderResource(dg.ConfigurableResource):
    """The LiveCodeBench-exact grader (valley_assets/grading); fields: the profile's `grading` section."""

    backend: str = "auto"
    timeout_s: float = 6.0
    workers: int | None = None
    memory_mb: int = 1024
    runtime: str | None = None  # docker backend: the engine's runtime for the sandboxes (runsc)
    kubernetes: KubernetesGradingSettings = Field(default_factory=KubernetesGradingSettings)  # kubernetes backend

    def grade(self, problems: list[dict], generations: list[dict], *, results_path: str | None = None) -> dict:
        from valley_assets.grading import grade
        from valley_assets.grading.backends import using_runtime

        if self.backend == "kubernetes":
            from valley_assets.grading.kubernetes_backend import grade_on_kubernetes

            return grade_on_kubernetes(problems, generations, settings=self.kubernetes,
                                       timeout_s=self.timeout_s, memory_mb=self.memory_mb, results_path=results_path)
        with using_runtime(self.runtime):
            return grade(problems, generations, backend=self.backend, timeout_s=self.timeout_s,
                         workers=self.workers, memory_mb=self.memory_mb, results_path=results_path)


# --- assembly ------------------------------------------------------------------------------------------------------
def build_resources(cfg: StudyConfig) -> dict[str, dg.ConfigurableResource | ConfigurableResourceFactory]:
    layout = StudyLayoutResource(root=cfg.resolved_storage_root())
    if cfg.data.source == "demo":
        d = cfg.data.demo
        problem_source = DemoProblemSource(seed=cfg.data.seed, n_train_problems=d.n_train_problems,
                                           n_eval_problems=d.n_eval_problems)
        teacher = DemoTeacher(seed=cfg.data.seed, wrong_fraction=d.wrong_fraction, defect_fraction=d.defect_fraction)
    else:
        problem_source = TacoProblemSource(source=cfg.data.hub.taco)
        teacher = OCR2Teacher(**cfg.data.hub.model_dump())
    if cfg.benchmark.source == "demo":
        if cfg.data.source != "demo":
            raise ValueError("benchmark.source 'demo' needs data.source 'demo' (its problems come from one generator)")
        benchmark = DemoBenchmark(source=StudyLayout(cfg.resolved_storage_root()).lcb_source().uri,
                                  problems=problem_source)
    else:
        benchmark = LCBBenchmark(source=cfg.benchmark.lcb, start_date=cfg.benchmark.start_date,
                                 end_date=cfg.benchmark.end_date)
    return {
        "layout": layout,
        "problem_source": problem_source,
        "benchmark": benchmark,
        "teacher": teacher,
        "extra_teachers": ExtraTeachers(teachers=[t.model_dump(exclude_none=True) for t in cfg.teacher.extra]),
        "launcher": cfg.launch.launcher_resource(),
        "grader": GraderResource(**cfg.grading.model_dump(exclude={"kubernetes"}),
                                 kubernetes=KubernetesGradingSettings(
                                     **cfg.grading.kubernetes.settings(cfg.launch.kubernetes))),
    }
