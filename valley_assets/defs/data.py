"""Data stage: problems, the distillation pool and its nested subsets, the ablation arms.

Traces come from the teacher stage (`teacher_traces`, then `extra_teacher_traces`); tokenizers from the students'
base models, because "within the token limit" is a property of the student that will read the trace.
"""


import dataclasses
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import dagster as dg

from valley_assets import partitions as P
from valley_assets.analysis import to_markdown_table as md_table
from valley_assets.config import PoolConfig, StudentSpec, StudyConfig
from valley_assets.data import checks
from valley_assets.data import pool as pool_lib
from valley_assets.data.subsets import select_ablation_arm, select_subset
from valley_assets.data.tokens import MaxTokenCounter
from valley_assets.defs.common import json_meta, mix
from valley_assets.defs.model_refs import base_model_ref
from valley_assets.defs.teacher import extra_teacher_trace_uris
from valley_assets.layout import StudyLayout
from valley_assets.resources import Benchmark, ProblemSource
from valley_assets.training.recipe import load_recipe


def pool_token_budget(students: Iterable[StudentSpec]) -> int:
    """The pool keeps traces that every student trains on: the tightest `max_length` of the students' recipes (the
    one home of a student's token budget; the SFT entrypoint drops longer examples by the same number)."""
    return min(load_recipe(s.recipe).max_length for s in students)


def build_study_pool(pool_cfg: PoolConfig, layout: StudyLayout, *, extra_trace_uris: list[str],
                     contamination_problems: list[dict], count_tokens, max_tokens: int) -> pool_lib.PoolResult:
    """`distill_pool`'s work: the teacher trace folders under the storage root (local or object store) into
    `pool/pool.parquet` and `pool/quarantine.parquet` there."""
    # The pool streams to local parquet (1.4M traces do not fit in memory); remote roots get the files uploaded
    # after, streamed (a 1.4M-row pool is ~10 GB: never read into memory whole).
    pool, quarantine = layout.pool(), layout.pool_quarantine()
    work = layout.pool_dir().local_path() if layout.is_local else Path(tempfile.mkdtemp(prefix="valley-pool-"))
    try:
        result = pool_lib.build_pool(
            [layout.teacher_traces().uri, *extra_trace_uris],
            contamination_problems=contamination_problems,
            count_tokens=count_tokens,
            max_tokens=max_tokens,
            seed=pool_cfg.seed,
            chars_per_token_low=pool_cfg.chars_per_token_low,
            chars_per_token_high=pool_cfg.chars_per_token_high,
            prompt_overhead_tokens=pool_cfg.prompt_overhead_tokens,
            ngram=pool_cfg.ngram,
            out_path=work / pool.name,
            quarantine_path=work / quarantine.name,
        )
        if not layout.is_local:
            for stored in (pool, quarantine):
                stored.upload(work / stored.name)
            # the result's lazy frames scan the local copies, which are removed below: point them at the store
            result = dataclasses.replace(result, pool=layout.pool().scan_parquet(), pool_path=None, quarantine_path=None)
    finally:
        if not layout.is_local:
            shutil.rmtree(work, ignore_errors=True)
    return result


def build(cfg: StudyConfig) -> dg.Definitions:
    students: list[StudentSpec] = list(cfg.students)
    pool_cfg, ablation_rows, releases = cfg.pool, dict(cfg.ablation.rows), list(cfg.benchmark.releases)
    rows_per_k, extra_teachers = cfg.rows_per_k, list(cfg.teacher.extra)
    arm_partitions = P.ablation_partitions(cfg.student_names).get_partitions_def_for_dimension("arm")

    @dg.asset(group_name="data", kinds={"python"})
    def training_problems(context: dg.AssetExecutionContext, layout: dg.ResourceParam[StudyLayout],
                          problem_source: dg.ResourceParam[ProblemSource]) -> dg.MaterializeResult:
        """Problems the teacher solved: the demo generator's training split, or TACO in production."""
        problems = problem_source.training_problems()
        if not problems:
            raise ValueError("the problem source returned no training problems")
        path = layout.training_problems().write_jsonl(problems)
        return dg.MaterializeResult(metadata={
            "n_problems": len(problems),
            "difficulty_mix": json_meta(mix(p.get("difficulty", "") for p in problems)),
            "platform_mix": json_meta(mix(p.get("platform", "") for p in problems)),
            "path": path,
        })

    @dg.asset(
        partitions_def=P.lcb_release_partitions, group_name="data", kinds={"python"},
    )
    def lcb_problems(context: dg.AssetExecutionContext, layout: dg.ResourceParam[StudyLayout],
                     benchmark: dg.ResourceParam[Benchmark]) -> dg.MaterializeResult:
        """The evaluation problems of one LiveCodeBench release (the demo's own release in the embedded profile)."""
        release = P.validate_release_key(context.partition_key)
        problems = benchmark.load_release(release)
        if not problems:
            raise ValueError(f"release {release!r} has no problems in the configured benchmark source")
        path = layout.lcb_problems(release).write_jsonl(problems)
        dates = sorted(p["contest_date"] for p in problems if p.get("contest_date"))
        return dg.MaterializeResult(metadata={
            "n_problems": len(problems),
            "difficulty_mix": json_meta(mix(p.get("difficulty", "") for p in problems)),
            "n_functional": sum(1 for p in problems if p.get("starter_code")),
            "first_contest_date": dates[0] if dates else "",
            "last_contest_date": dates[-1] if dates else "",
            "path": path,
        })

    @dg.asset(
        group_name="data", deps=["teacher_traces", "extra_teacher_traces", "student_base_model"],
        kinds={"polars"},
    )
    def distill_pool(context: dg.AssetExecutionContext, layout: dg.ResourceParam[StudyLayout],
                     benchmark: dg.ResourceParam[Benchmark]) -> dg.MaterializeResult:
        """Usable traces in a deterministic seeded order: closed think tag, extractable code, within every student's
        token limit, deduplicated, decontaminated against every configured LCB release; bad rows quarantined."""
        contamination = benchmark.contamination_problems(releases)
        # The pool is shared by all students (subsets must be the same rows for each), so a trace must fit the
        # tightest student: the token count is the max over their tokenizers, the limit the min of their budgets.
        # A picklable counter (tokenizer references, loaded lazily per process), so pass 1 can use worker processes.
        count_tokens = MaxTokenCounter([base_model_ref(s, layout) for s in students])
        max_tokens = pool_token_budget(students)

        result = build_study_pool(pool_cfg, layout, extra_trace_uris=extra_teacher_trace_uris(extra_teachers, layout),
                                  contamination_problems=contamination, count_tokens=count_tokens,
                                  max_tokens=max_tokens)
        pool_df = result.pool.select("difficulty", "judgement").collect()
        context.log.info(f"pool: {pool_df.height} rows kept, {result.quarantine.height} quarantined")
        return dg.MaterializeResult(metadata={
            "n_rows": pool_df.height,
            "n_quarantined": result.quarantine.height,
            "quarantine_reasons": json_meta(mix(result.quarantine["reason"].to_list())),
            "max_tokens": max_tokens,
            "stats": json_meta(result.stats),
            "difficulty_mix": json_meta(mix(pool_df["difficulty"].to_list())),
            "judgement_mix": json_meta(mix(pool_df["judgement"].to_list())),
            "path": layout.pool().uri,
        })

    @dg.asset(partitions_def=P.data_size_partitions, group_name="data", deps=["distill_pool"], kinds={"polars"})
    def distill_subset(context: dg.AssetExecutionContext,
                       layout: dg.ResourceParam[StudyLayout]) -> dg.MaterializeResult:
        """The first N rows of the pool's seeded order: 1k ⊂ 10k ⊂ 30k by construction. `0` is empty."""
        key = P.validate_data_size_key(context.partition_key)
        n_rows = P.data_size_rows(key, rows_per_k)
        # Scanned lazily: only the subset's rows are read, not the whole pool (tens of GB at 1.4M traces).
        subset = select_subset(layout.pool().scan_parquet(), n_rows)
        layout.subset(key).write_parquet(subset)
        return dg.MaterializeResult(metadata={
            "n_rows": subset.height,
            "rows_per_k": rows_per_k,
            "n_tokens_total": int(subset["n_tokens"].sum()) if subset.height else 0,
            "difficulty_mix": json_meta(mix(subset["difficulty"].to_list())),
            "judgement_mix": json_meta(mix(subset["judgement"].to_list())),
        })

    @dg.asset_check(asset=distill_subset, blocking=True)
    def subsets_are_nested(context: dg.AssetCheckExecutionContext,
                           layout: dg.ResourceParam[StudyLayout]) -> dg.AssetCheckResult:
        """Every materialized subset contains every smaller one."""
        subsets = {}
        for key in P.sort_data_sizes(context.instance.get_dynamic_partitions(P.DATA_SIZE)):
            if layout.subset(key).exists():
                subsets[key] = layout.subset(key).read_parquet()
        passed, details = checks.check_nested(subsets)
        return dg.AssetCheckResult(passed=passed, metadata={"details": json_meta(details),
                                                            "subsets": json_meta(sorted(subsets))})

    @dg.asset_check(asset=distill_pool, blocking=True)
    def pool_is_clean(context: dg.AssetCheckExecutionContext,
                      layout: dg.ResourceParam[StudyLayout]) -> dg.AssetCheckResult:
        """No LCB contamination, no empty trace or question, the declared schema."""
        pool_df = layout.pool().scan_parquet()  # the checks stream the columns they need
        problems = []
        for release in releases:
            if layout.lcb_problems(release).exists():
                problems += layout.lcb_problems(release).read_jsonl()
        results = {
            "no_contamination": checks.check_no_contamination(pool_df, problems, ngram=pool_cfg.ngram),
            "non_empty": checks.check_non_empty(pool_df),
            "schema": checks.check_schema(pool_df),
        }
        return dg.AssetCheckResult(
            passed=all(ok for ok, _ in results.values()),
            metadata={name: json_meta({"passed": ok, **details}) for name, (ok, details) in results.items()},
        )

    @dg.asset(partitions_def=arm_partitions, group_name="data", deps=["distill_pool"], kinds={"polars"})
    def ablation_subset(context: dg.AssetExecutionContext,
                        layout: dg.ResourceParam[StudyLayout]) -> dg.MaterializeResult:
        """One ablation arm: easy vs hard TACO problems, correct vs incorrect teacher answers (sizes from config)."""
        arm = context.partition_key
        subset = select_ablation_arm(layout.pool().scan_parquet(), arm, ablation_rows[arm], pool_cfg.seed)
        layout.ablation_subset(arm).write_parquet(subset)
        return dg.MaterializeResult(metadata={
            "n_rows": subset.height,
            "difficulty_mix": json_meta(mix(subset["difficulty"].to_list())),
            "judgement_mix": json_meta(mix(subset["judgement"].to_list())),
            "preview": dg.MetadataValue.md(md_table(
                subset.select("id", "difficulty", "judgement", "n_tokens").head(5).to_dicts())),
        })

    return dg.Definitions(
        assets=[training_problems, lcb_problems, distill_pool, distill_subset, ablation_subset],
        asset_checks=[subsets_are_nested, pool_is_clean],
    )
