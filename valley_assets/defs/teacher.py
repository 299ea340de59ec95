"""Teacher stage: reasoning traces in the OpenCodeReasoning-2 schema.

The `teacher` resource decides where they come from: the demo's deterministic teacher over `training_problems`, or
OCR2 from the hub with question text recovered from its source datasets. Either way the output is one parquet file
with OCR2's columns, so the pool never knows which teacher wrote it.

`extra_teacher_traces` adds the teachers listed in `teacher.extra` (KAT-V1-40B behind an OpenAI-compatible endpoint,
R1 on vLLM over new problems, ...): one folder of OCR2-schema shards per teacher under `traces/extra_teacher_traces/`,
labelled by the grader (valley_assets/generation/teacher.py). It is a sibling asset so that adding a teacher never
re-runs the OCR2 recovery; `distill_pool` reads the configured teachers' folders after `teacher_traces`.
"""


from collections.abc import Sequence
from functools import partial
from pathlib import Path

import dagster as dg
import polars as pl

from valley_assets.analysis import to_markdown_table as md_table
from valley_assets.config import ExtraTeacherConfig, StudyConfig
from valley_assets.defs.common import json_meta
from valley_assets.launch.base import Launcher
from valley_assets.layout import StudyLayout
from valley_assets.resources import ExtraTeachers, GraderResource, Teacher


def extra_teacher_trace_uris(specs: Sequence[ExtraTeacherConfig], layout: StudyLayout) -> list[str]:
    """The trace folders of the configured extra teachers that hold shards, in config order (the pool's order)."""
    return [layout.extra_teacher_traces(spec.name).uri for spec in specs
            if layout.extra_teacher_traces(spec.name).list(pattern="*.parquet")]


def generate_on_vllm(todo: list[dict], samples_path: Path, *, context, launcher: Launcher, layout: StudyLayout,
                     spec: ExtraTeacherConfig) -> dict:
    """The generation step of a vLLM teacher: a GPU Job (the generation entrypoint) reads the problems still to do
    from `teacher_work/<teacher>/` and publishes the samples there; the labelling reads `samples_path`, a local
    copy. On a local root both are the same file (the work folder is inside the root), so nothing is copied."""
    from valley_assets.defs.evaluation import GENERATION_MODULE
    from valley_assets.generation.teacher import vllm_generation_params

    problems, samples = layout.teacher_work_problems(spec.name), layout.teacher_work_samples(spec.name)
    problems.write_jsonl(todo)
    params = vllm_generation_params(spec, problems.uri, samples.uri)
    report = launcher.run(context, module=GENERATION_MODULE, params=params, name=f"teacher-{spec.name}",
                          gpus=spec.tensor_parallel_size, kind="generation")
    if samples.uri != str(samples_path):
        Path(samples_path).write_bytes(samples.read_bytes())
    return report


def build(cfg: StudyConfig) -> dg.Definitions:
    @dg.asset(group_name="teacher", deps=["training_problems"], kinds={"python"})
    def teacher_traces(context: dg.AssetExecutionContext, layout: dg.ResourceParam[StudyLayout],
                       teacher: dg.ResourceParam[Teacher]) -> dg.MaterializeResult:
        """Chain-of-thought traces (`<think>…</think>` then a fenced python answer), OCR2 columns, as parquet shards."""
        problems = layout.training_problems().read_jsonl()
        out = layout.teacher_traces()
        # a re-run must not mix shards of two generations of traces
        out.remove_matching(pattern="*.parquet")
        stats = teacher.write_traces(problems, out.uri)
        shards = out.list(pattern="*.parquet")
        head = pl.scan_parquet(shards[0]).select("id", "question_id", "difficulty", "judgement", "pass_rate").head(5)
        return dg.MaterializeResult(metadata={
            **{k: v for k, v in stats.items() if isinstance(v, (int, float, str))},
            "stats": json_meta(stats),
            "path": out.uri,
            "preview": dg.MetadataValue.md(md_table(head.collect().to_dicts())),
        })

    @dg.asset(group_name="teacher", deps=["training_problems"], kinds={"python"})
    def extra_teacher_traces(context: dg.AssetExecutionContext, layout: dg.ResourceParam[StudyLayout],
                             extra_teachers: ExtraTeachers, grader: GraderResource,
                             launcher: dg.ResourceParam[Launcher]) -> dg.MaterializeResult:
        """Traces of the teachers in `teacher.extra`, generated resumably, labelled by the grader on the problems'
        tests, OCR2 columns, one shard folder per teacher; the pool reads them beside `teacher_traces`."""
        from valley_assets.generation.samples import read_problems
        from valley_assets.generation.teacher import endpoint_generate, run_teacher

        specs = extra_teachers.specs
        if not specs:
            return dg.MaterializeResult(metadata={"n_teachers": 0, "note": "no extra teachers configured "
                                                                            "(teacher.extra in the profile)"})
        per_teacher = {}
        for spec in specs:
            problems = (layout.training_problems().read_jsonl() if spec.problems == "training"
                        else read_problems(spec.problems))
            if spec.backend == "openai":
                generate = endpoint_generate(
                    spec, extra_teachers.endpoint_backend(spec), on_chunk=partial(_log_chunk, context, spec.name),
                    published_samples=None if layout.is_local else layout.teacher_work_samples(spec.name).uri)
            else:
                generate = partial(generate_on_vllm, context=context, launcher=launcher, layout=layout, spec=spec)
            per_teacher[spec.name] = run_teacher(
                spec, problems, work_dir=layout.teacher_work(spec.name).local_work_dir(),
                out_dir=layout.extra_teacher_traces(spec.name).uri, generate=generate,
                grade=partial(_grade, grader), log=context.log.info)
        rows = [{k: s[k] for k in ("teacher", "model", "n_samples", "n_traces", "n_right", "n_wrong", "n_unlabelled",
                                   "complete")} for s in per_teacher.values()]
        return dg.MaterializeResult(metadata={
            "n_teachers": len(per_teacher),
            "n_traces": sum(s["n_traces"] for s in per_teacher.values()),
            "complete": all(s["complete"] for s in per_teacher.values()),
            "teachers": dg.MetadataValue.md(md_table(rows)),
            "stats": json_meta(per_teacher),
            "path": layout.extra_teacher_traces().uri,
        })

    return dg.Definitions(assets=[teacher_traces, extra_teacher_traces])


def _log_chunk(context, name: str, r) -> None:
    context.log.info(f"[{name}] chunk {r.chunks_run}: {r.n_existing + r.n_generated}/{r.n_expected} samples, "
                     f"finish reasons {r.finish_reasons}")


def _grade(grader: GraderResource, problems: list[dict], generations: list[dict], results_path: str) -> dict:
    return grader.grade(problems, generations, results_path=results_path)
