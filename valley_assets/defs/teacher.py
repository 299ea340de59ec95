"""Teacher stage: reasoning traces in the OpenCodeReasoning-2 schema.

The `teacher` resource decides where they come from: the demo's deterministic teacher over `training_problems`, or
OCR2 from the hub with question text recovered from its source datasets. Either way the output is one parquet file
with OCR2's columns, so the pool never knows which teacher wrote it.
"""


import dagster as dg
import polars as pl

from valley_assets.analysis import to_markdown_table as md_table
from valley_assets.config import StudyConfig
from valley_assets.defs.common import json_meta, storage_for


def build(cfg: StudyConfig) -> dg.Definitions:
    storage = storage_for(cfg)

    @dg.asset(group_name="teacher", deps=["training_problems"], required_resource_keys={"teacher"},
              kinds={"python"})
    def teacher_traces(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        """Chain-of-thought traces (`<think>…</think>` then a fenced python answer), OCR2 columns, as parquet shards."""
        problems = storage.read_jsonl("problems", "training.jsonl")
        out_uri = storage.uri("traces", "teacher_traces")
        storage.path("traces", "teacher_traces").mkdir(parents=True, exist_ok=True)
        for stale in storage.path("traces", "teacher_traces").glob("*.parquet"):
            stale.unlink()  # a re-run must not mix shards of two generations of traces
        stats = context.resources.teacher.write_traces(problems, out_uri)
        head = pl.scan_parquet(f"{out_uri}/*.parquet").select("id", "question_id", "difficulty", "judgement", "pass_rate").head(5)
        return dg.MaterializeResult(metadata={
            **{k: v for k, v in stats.items() if isinstance(v, (int, float, str))},
            "stats": json_meta(stats),
            "path": out_uri,
            "preview": dg.MetadataValue.md(md_table(head.collect().to_dicts())),
        })

    return dg.Definitions(assets=[teacher_traces])
