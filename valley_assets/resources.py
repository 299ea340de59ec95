"""Resources per profile: where problems, benchmarks and traces come from, how programs are launched and graded.

The assets never branch on the profile; they call these objects. `build_resources(cfg)` picks the implementation
from the config: demo generators or hub loaders, a local subprocess or a Kubernetes Job, the grader's backend.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl

from valley_assets.config import StudyConfig
from valley_assets.storage import StudyStorage


# --- problems the teacher solved -----------------------------------------------------------------------------------
class DemoProblemSource:
    """The project's own generated problems (training split)."""

    def __init__(self, seed: int, n_train: int, n_eval: int):
        self.seed, self.n_train, self.n_eval = seed, n_train, n_eval

    def training_problems(self) -> list[dict]:
        from valley_assets.demo.problems import make_demo_problems

        return make_demo_problems(self.seed, self.n_train, self.n_eval)[0]

    def eval_problems(self) -> list[dict]:
        from valley_assets.demo.problems import make_demo_problems

        return make_demo_problems(self.seed, self.n_train, self.n_eval)[1]


class TacoProblemSource:
    """TACO's training problems with their difficulty labels, in the LCB record shape (production)."""

    def __init__(self, source: str):
        self.source = source

    # TACO's five labels folded onto LCB's three, so one difficulty column serves both record kinds.
    LCB_LEVEL = {"EASY": "easy", "MEDIUM": "medium", "MEDIUM_HARD": "hard", "HARD": "hard", "VERY_HARD": "hard"}

    def training_problems(self) -> list[dict]:
        """TACO's train split as LCB records, its stdin tests as public tests (what teachers are graded on)."""
        import json

        from valley_assets.data.taco import load_taco, taco_stdin_tests

        records = []
        for row in load_taco(self.source, with_tests=True).iter_rows(named=True):
            tests = taco_stdin_tests(row["input_output"], where=f"TACO train row {row['index']}")
            records.append({
                "question_id": f"taco-train-{row['index']}",
                "question_title": "",
                "question_content": row["question"] or "",
                "platform": row.get("source") or "taco",
                "contest_date": "",
                "starter_code": row.get("starter_code") or "",
                "difficulty": self.LCB_LEVEL.get(row["difficulty"], "unknown"),
                "taco_difficulty": row["difficulty"],
                "public_test_cases": json.dumps(tests),
                "private_test_cases": "[]",
                "metadata": "{}",
            })
        return records


# --- the benchmark -------------------------------------------------------------------------------------------------
class LCBBenchmark:
    """LiveCodeBench releases from the hub or from a folder of `test*.jsonl` files, through one loader."""

    def __init__(self, source: str, start_date: str | None = None, end_date: str | None = None):
        self.source, self.start_date, self.end_date = source, start_date, end_date

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
    """The demo's held-out problems, written once as an LCB-style `test.jsonl` (= release_v1) into storage, then read
    through the same LCB loader as production. Dropping a `test2.jsonl` beside it makes a `release_v2`."""

    def __init__(self, folder: str | Path, problems: DemoProblemSource):
        super().__init__(str(folder))
        # a local folder or an object-store URL (`lcb_source` under the storage root, wherever that is)
        self.folder, self.problems = StudyStorage(str(folder)), problems

    def ensure_written(self) -> None:
        if not self.folder.exists("test.jsonl"):
            self.folder.write_jsonl(self.problems.eval_problems(), "test.jsonl")

    def load_release(self, release: str) -> list[dict]:
        self.ensure_written()
        return super().load_release(release)

    def contamination_problems(self, releases: list[str]) -> list[dict]:
        self.ensure_written()
        return super().contamination_problems(releases)


# --- the teacher ---------------------------------------------------------------------------------------------------
class DemoTeacher:
    def __init__(self, seed: int, wrong_fraction: float, defect_fraction: float):
        self.seed, self.wrong_fraction, self.defect_fraction = seed, wrong_fraction, defect_fraction

    def write_traces(self, problems: list[dict], out_dir: str) -> dict:
        from valley_assets.data.schema import TRACE_SCHEMA, cast_to_schema
        from valley_assets.demo.teacher import demo_teacher_traces, trace_summary

        traces = demo_teacher_traces(problems, self.seed, self.wrong_fraction, self.defect_fraction)
        frame = cast_to_schema(pl.DataFrame(traces), TRACE_SCHEMA)
        StudyStorage(out_dir).write_parquet(frame, "traces-00000.parquet")
        return {"n_rows": frame.height, **trace_summary(traces)}


class OCR2Teacher:
    """DeepSeek-R1 traces from OpenCodeReasoning-2, questions recovered from TACO/APPS/CodeContests/Codeforces,
    TACO difficulty attached; streamed shard by shard into parquet."""

    def __init__(self, cfg: StudyConfig):
        self.hub = cfg.data.hub

    def write_traces(self, problems: list[dict], out_dir: str) -> dict:
        from valley_assets.data.ocr2 import load_all_source_questions, load_ocr2, write_recovered_traces

        ocr2 = load_ocr2(self.hub.ocr2, max_rows=self.hub.max_rows)
        # The columns `needed_splits` reads: which rows carry the "-" placeholder, and where their source row is.
        traces = pl.from_arrow(ocr2.data.table.select(["question", "dataset", "split"])).lazy()
        questions = load_all_source_questions(traces, {
            "taco": self.hub.taco, "apps": self.hub.apps, "code_contests": self.hub.code_contests,
            "open-r1/codeforces": self.hub.codeforces})
        shards = write_recovered_traces(ocr2, questions, out_dir)
        return {"n_rows": len(ocr2), "n_shards": len(shards)}


class ExtraTeachers:
    """The extra teachers of `teacher.extra` (generation/teacher.py): KAT-V1-40B behind an endpoint, R1 on vLLM, ..."""

    def __init__(self, specs):
        self.specs = list(specs)

    def endpoint_backend(self, spec):
        """The OpenAI-compatible backend of an `openai` teacher; the API key is read from its env var here."""
        from valley_assets.generation.backends import load_backend

        return load_backend("openai", spec.model, options=spec.endpoint.model_dump())


# --- grading -------------------------------------------------------------------------------------------------------
class GraderResource:
    def __init__(self, backend: str, timeout_s: float, workers: int | None, memory_mb: int,
                 runtime: str | None = None, kubernetes: dict | None = None):
        self.backend, self.timeout_s, self.workers, self.memory_mb = backend, timeout_s, workers, memory_mb
        self.runtime = runtime  # docker backend: the engine's runtime (runsc)
        self.kubernetes = kubernetes  # kubernetes backend: KubernetesGradingSettings fields

    def grade(self, problems: list[dict], generations: list[dict], *, results_path: str | None = None) -> dict:
        from valley_assets.grading import grade
        from valley_assets.grading.backends import using_runtime

        if self.backend == "kubernetes":
            from valley_assets.grading.kubernetes_backend import KubernetesGradingSettings, grade_on_kubernetes

            return grade_on_kubernetes(problems, generations, settings=KubernetesGradingSettings(**self.kubernetes),
                                       timeout_s=self.timeout_s, memory_mb=self.memory_mb, results_path=results_path)
        with using_runtime(self.runtime):
            return grade(problems, generations, backend=self.backend, timeout_s=self.timeout_s,
                         workers=self.workers, memory_mb=self.memory_mb, results_path=results_path)


# --- assembly ------------------------------------------------------------------------------------------------------
def build_resources(cfg: StudyConfig) -> dict[str, object]:
    storage = StudyStorage(cfg.resolved_storage_root())
    if cfg.data.source == "demo":
        d = cfg.data.demo
        problem_source = DemoProblemSource(cfg.data.seed, d.n_train_problems, d.n_eval_problems)
        teacher = DemoTeacher(cfg.data.seed, d.wrong_fraction, d.defect_fraction)
    else:
        problem_source = TacoProblemSource(cfg.data.hub.taco)
        teacher = OCR2Teacher(cfg)
    if cfg.benchmark.source == "demo":
        if cfg.data.source != "demo":
            raise ValueError("benchmark.source 'demo' needs data.source 'demo' (its problems come from one generator)")
        benchmark = DemoBenchmark(storage.uri("lcb_source"), problem_source)
    else:
        benchmark = LCBBenchmark(cfg.benchmark.lcb, cfg.benchmark.start_date, cfg.benchmark.end_date)

    if cfg.launch.launcher == "local":
        from valley_assets.launch.local import LocalProcessLauncher

        launcher = LocalProcessLauncher()
    else:
        from valley_assets.launch.kubernetes import KubernetesJobLauncher

        launcher = KubernetesJobLauncher(**cfg.launch.kubernetes.launcher_settings())
    g = cfg.grading
    return {
        "problem_source": dg.ResourceDefinition.hardcoded_resource(problem_source, "problems the teacher solved"),
        "benchmark": dg.ResourceDefinition.hardcoded_resource(benchmark, "LiveCodeBench releases"),
        "teacher": dg.ResourceDefinition.hardcoded_resource(teacher, "reasoning traces"),
        "extra_teachers": dg.ResourceDefinition.hardcoded_resource(
            ExtraTeachers(cfg.teacher.extra), "more teachers (teacher.extra)"),
        "launcher": launcher,
        "grader": dg.ResourceDefinition.hardcoded_resource(
            GraderResource(g.backend, g.timeout_s, g.workers, g.memory_mb, runtime=g.runtime,
                           kubernetes=g.kubernetes.settings(cfg.launch.kubernetes)), "LiveCodeBench-exact grader"),
    }
