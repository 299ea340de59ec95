"""Teacher stage: reasoning traces in the OpenCodeReasoning-2 schema.

The `teacher` resource decides where they come from: the demo's deterministic teacher over `training_problems`, or
OCR2 from the hub with question text recovered from its source datasets. Either way the output is one parquet file
with OCR2's columns, so the pool never knows which teacher wrote it.

`extra_teacher_traces` adds the teachers listed in `teacher.extra` (KAT-V1-40B behind an OpenAI-compatible endpoint,
R1 on vLLM over new problems, ...): one folder of OCR2-schema shards per teacher under `traces/extra_teacher_traces/`,
labelled by the grader (valley_assets/generation/teacher.py). It is a sibling asset so that adding a teacher never
re-runs the OCR2 recovery; `distill_pool` reads the configured teachers' folders after `teacher_traces`.
"""


from pathlib import Path

import dagster as dg
import polars as pl

from valley_assets.analysis import to_markdown_table as md_table
from valley_assets.config import StudyConfig
from valley_assets.defs.common import json_meta, storage_for
from valley_assets.storage import StudyStorage

EXTRA_TRACES = ("traces", "extra_teacher_traces")


def extra_teacher_trace_uris(cfg: StudyConfig, storage: StudyStorage) -> list[str]:
    """The trace folders of the configured extra teachers that hold shards, in config order (the pool's order)."""
    return [storage.uri(*EXTRA_TRACES, spec.name) for spec in cfg.teacher.extra
            if storage.list(*EXTRA_TRACES, spec.name, pattern="*.parquet")]


def build(cfg: StudyConfig) -> dg.Definitions:
    storage = storage_for(cfg)

    @dg.asset(group_name="teacher", deps=["training_problems"], required_resource_keys={"teacher"},
              kinds={"python"})
    def teacher_traces(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        """Chain-of-thought traces (`<think>…</think>` then a fenced python answer), OCR2 columns, as parquet shards."""
        problems = storage.read_jsonl("problems", "training.jsonl")
        out_uri = storage.uri("traces", "teacher_traces")
        # a re-run must not mix shards of two generations of traces
        storage.remove_matching("traces", "teacher_traces", pattern="*.parquet")
        stats = context.resources.teacher.write_traces(problems, out_uri)
        shards = storage.list("traces", "teacher_traces", pattern="*.parquet")
        head = pl.scan_parquet(shards[0]).select("id", "question_id", "difficulty", "judgement", "pass_rate").head(5)
        return dg.MaterializeResult(metadata={
            **{k: v for k, v in stats.items() if isinstance(v, (int, float, str))},
            "stats": json_meta(stats),
            "path": out_uri,
            "preview": dg.MetadataValue.md(md_table(head.collect().to_dicts())),
        })

    @dg.asset(group_name="teacher", deps=["training_problems"], kinds={"python"},
              required_resource_keys={"extra_teachers", "grader", "launcher"})
    def extra_teacher_traces(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        """Traces of the teachers in `teacher.extra`, generated resumably, labelled by the grader on the problems'
        tests, OCR2 columns, one shard folder per teacher; the pool reads them beside `teacher_traces`."""
        from valley_assets.defs.evaluation import GENERATION_MODULE
        from valley_assets.generation.samples import read_problems
        from valley_assets.generation.teacher import (
            endpoint_generate,
            run_teacher,
            vllm_generation_params,
        )

        teachers = context.resources.extra_teachers
        if not teachers.specs:
            return dg.MaterializeResult(metadata={"n_teachers": 0, "note": "no extra teachers configured "
                                                                            "(teacher.extra in the profile)"})
        per_teacher = {}
        for spec in teachers.specs:
            problems = (storage.read_jsonl("problems", "training.jsonl") if spec.problems == "training"
                        else read_problems(spec.problems))
            work_dir = storage.local_work_dir("teacher_work", spec.name)
            if spec.backend == "openai":
                def progress(r, name=spec.name):
                    context.log.info(f"[{name}] chunk {r.chunks_run}: {r.n_existing + r.n_generated}/{r.n_expected} "
                                     f"samples, finish reasons {r.finish_reasons}")

                generate = endpoint_generate(
                    spec, teachers.endpoint_backend(spec), on_chunk=progress,
                    published_samples=None if storage.is_local else storage.uri("teacher_work", spec.name,
                                                                                 "samples.jsonl"))
            else:
                def generate(todo, samples_path, spec=spec, work_dir=work_dir):
                    if storage.is_local:  # the job reads and appends where the labelling reads
                        StudyStorage(str(work_dir)).write_jsonl(todo, "problems.jsonl")
                        problems_uri, samples_uri = str(work_dir / "problems.jsonl"), str(samples_path)
                    else:  # a GPU pod elsewhere: it publishes the samples object, the labelling reads a copy
                        storage.write_jsonl(todo, "teacher_work", spec.name, "problems.jsonl")
                        problems_uri = storage.uri("teacher_work", spec.name, "problems.jsonl")
                        samples_uri = storage.uri("teacher_work", spec.name, "samples.jsonl")
                    params = vllm_generation_params(spec, problems_uri, samples_uri)
                    report = context.resources.launcher.run(context, module=GENERATION_MODULE, params=params,
                                                            name=f"teacher-{spec.name}",
                                                            gpus=spec.tensor_parallel_size, kind="generation")
                    if not storage.is_local:
                        Path(samples_path).write_bytes(storage.read_bytes("teacher_work", spec.name, "samples.jsonl"))
                    return report

            per_teacher[spec.name] = run_teacher(
                spec, problems, work_dir=work_dir, out_dir=storage.uri(*EXTRA_TRACES, spec.name), generate=generate,
                grade=lambda probs, gens, path: context.resources.grader.grade(probs, gens, results_path=path),
                log=context.log.info)
        rows = [{k: s[k] for k in ("teacher", "model", "n_samples", "n_traces", "n_right", "n_wrong", "n_unlabelled",
                                   "complete")} for s in per_teacher.values()]
        return dg.MaterializeResult(metadata={
            "n_teachers": len(per_teacher),
            "n_traces": sum(s["n_traces"] for s in per_teacher.values()),
            "complete": all(s["complete"] for s in per_teacher.values()),
            "teachers": dg.MetadataValue.md(md_table(rows)),
            "stats": json_meta(per_teacher),
            "path": storage.uri(*EXTRA_TRACES),
        })

    return dg.Definitions(assets=[teacher_traces, extra_teacher_traces])
