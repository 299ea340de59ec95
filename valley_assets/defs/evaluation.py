"""Evaluation stage: LiveCodeBench generations and scores for every checkpoint (and every ablation checkpoint).

Dagster allows two partition dimensions, and checkpoints already use both (data_size × student), so the release is
run config (`release`, default: the newest release whose `lcb_problems` is materialized). Each release's samples,
grades and scores live under their own path, so re-scoring on a new release never overwrites an older one.
"""


import time

import dagster as dg
import polars as pl

from valley_assets import partitions as P
from valley_assets.analysis import to_markdown_table as md_table
from valley_assets.config import BenchmarkConfig, EvaluationConfig, LaunchConfig, StudyConfig
from valley_assets.data.decontam import overlap_rule, release_overlap
from valley_assets.defs.common import GPU_POOL, config_version, json_meta, on_new_inputs, resolve_release
from valley_assets.defs.model_refs import checkpoint_model_ref
from valley_assets.generation.params import GenerationParams
from valley_assets.launch.base import Launcher
from valley_assets.layout import MAIN_ARM, StudyLayout
from valley_assets.resources import GraderResource
from valley_assets.science import metrics

GENERATION_MODULE = "valley_assets.generation.run"


class EvalRunConfig(dg.Config):
    release: str = ""  # empty: generations take the newest materialized release, scores the one generated on


def generated_release(context, generations_asset: str) -> str:
    """The release the latest `generations_asset` materialization of this partition ran on. Scores follow it rather
    than looking up "the newest" again: a release landing between the two steps would otherwise make the scores
    look for samples that were never generated."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(generations_asset), asset_partitions=[context.partition_key]),
        limit=1).records
    release = records[0].asset_materialization.metadata.get("release") if records else None
    if release is None:
        raise FileNotFoundError(f"{generations_asset}[{context.partition_key}] has no materialization naming its "
                                "release: materialize it first, or pass `release` in the run config")
    return str(getattr(release, "value", release))


def generation_release(context, layout: StudyLayout, requested: str) -> str:
    """The release a generations step samples (`common.resolve_release`): of the registered releases, those whose
    problems are in storage, newest last."""
    registered = context.instance.get_dynamic_partitions(P.lcb_release_partitions.name)
    ready = [r for r in registered if layout.lcb_problems(r).exists()]
    return resolve_release(requested, ready, what="lcb_problems materialized (materialize lcb_problems[<release>])")


def scoring_release(context, layout: StudyLayout, requested: str, *, generations_asset: str, student: str,
                    data_size: str, arm: str, prompt_id: str) -> str:
    """The release a scores step grades (`common.resolve_release`): the requested one when its samples of this
    checkpoint are in storage, else the one this partition's latest generations ran on."""
    if not requested:
        return resolve_release("", [generated_release(context, generations_asset)], what="generations")
    requested = P.validate_release_key(requested)
    registered = context.instance.get_dynamic_partitions(P.lcb_release_partitions.name)
    ready = [r for r in dict.fromkeys([*registered, requested])
             if layout.generations(student, data_size, arm, r, prompt_id).exists()]
    return resolve_release(requested, ready, what=f"{generations_asset} samples of {student}/{data_size}/{arm}")


def generate(context, *, evaluation: EvaluationConfig, launch: LaunchConfig, launcher: Launcher,
             layout: StudyLayout, model: str, student: str, data_size: str, arm: str, release: str) -> dict:
    ev = evaluation
    samples = layout.generations(student, data_size, arm, release, ev.prompt_id)
    params = GenerationParams(
        model_path=model,
        problems_path=layout.lcb_problems(release).uri,
        out_path=samples.uri,
        backend=ev.backend,
        prompt_id=ev.prompt_id,
        n=ev.n_samples,
        chunk_size=ev.chunk_size,
        sampling={"temperature": ev.temperature, "top_p": ev.top_p, "max_new_tokens": ev.max_new_tokens,
                  "seed": ev.seed},
        backend_options=({"tensor_parallel_size": ev.tensor_parallel_size} if ev.backend == "vllm" else {})
        | ev.backend_options,
    ).model_dump(mode="json")
    if layout.is_local:  # the entrypoint appends to the file; object stores have no folders to create
        samples.local_path().parent.mkdir(parents=True, exist_ok=True)
    # The evaluation's own GPU count (vLLM: its tensor-parallel GPUs), never the training's; one process drives them.
    gpus = launch.generation_gpus(ev.backend, ev.tensor_parallel_size)
    report = launcher.run(context, module=GENERATION_MODULE, params=params,
                          name=f"gen-{student}-{layout.eval_label(data_size, arm)}", gpus=gpus, kind="generation")
    return {"release": release, "prompt_id": ev.prompt_id, "samples_path": samples.uri, **report}


# How often the grading log is uploaded while a remote-root grading runs: a killed pod loses at most this much work.
GRADING_SYNC_INTERVAL_S = 30.0


def pool_overlap(layout: StudyLayout, release: str, problems: list[dict], *, ngram: int | None) -> dict | None:
    """The release's problems that the training pool overlaps (`data.decontam.release_overlap`, the pool's own
    rule), written to `pool_overlap.json` beside the release's problems. The pool was decontaminated against the
    releases known when it was built; a release published later may hold problems it trained on. Every checkpoint's
    scoring on a release asks the same question: the answer is computed once per pool version and rule, reading only
    the pool's question column. None when no pool is in storage (a base model scored before any data was built): the
    metadata says it was not checked."""
    pool, stored = layout.pool(), layout.pool_overlap(release)
    if not pool.exists():
        return None
    pool_version, rule = pool.version(), overlap_rule(ngram)
    if stored.exists():
        known = stored.read_json()
        if known.get("pool_version") == pool_version and known.get("rule") == rule:
            return known
    questions = layout.pool().scan_parquet().select("question").collect()["question"]
    overlap = {"release": release, "pool_version": pool_version,
               **release_overlap(problems, questions.to_list(), ngram=ngram)}
    stored.write_json(overlap)
    return overlap


def score(context, *, evaluation: EvaluationConfig, benchmark: BenchmarkConfig, grader: GraderResource,
          layout: StudyLayout, student: str, data_size: str, arm: str, release: str,
          pool_ngram: int | None, cutoff: str | None = None) -> dg.MaterializeResult:
    """`cutoff`: the student's training-data cutoff, for the profile's after-cutoff date window."""
    # Grade the samples by execution, then per-problem counts and the score rows (appended, never overwritten).
    prompt_id = evaluation.prompt_id
    where = (student, data_size, arm, release, prompt_id)
    samples = layout.generations(*where).read_jsonl()
    problems = layout.lcb_problems(release).read_jsonl()
    started = time.time()
    # The grader's resume log (results.samples.jsonl, appended per sample) lives under the storage root, mirrored
    # to a local folder while grading and uploaded as it grows: a re-run on another pod (a fresh /tmp) grades only
    # what the log lacks. (It lived in the pod's local scratch before, so a new pod started from zero.)
    with layout.grading_work(*where).synced_work_dir(interval_s=GRADING_SYNC_INTERVAL_S) as grade_dir:
        grades = grader.grade(problems, metrics.samples_to_generations(samples),
                              results_path=str(grade_dir / "results.json"))
    layout.grades(*where).write_json(grades)

    identity = {"student": student, "data_size": data_size, "arm": arm, "release": release, "prompt_id": prompt_id}
    scored_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    per_problem = [{**identity, **row, "scored_at": scored_at}
                   for row in metrics.per_problem_table(samples, grades, problems)]
    overlap = pool_overlap(layout, release, problems, ngram=pool_ngram)
    rows = [{**identity, **row, "scored_at": scored_at}
            for row in metrics.score_rows(per_problem, date_windows=benchmark.scoring_windows(cutoff),
                                          contaminated=overlap["question_ids"] if overlap else None)]
    run_tag = f"{student}__{layout.eval_label(data_size, arm)}__{release}__{prompt_id}__{context.run.run_id[:8]}"
    # One file per scoring run: concurrent runs append without racing on a shared file.
    layout.scores_file("per_problem", run_tag).write_parquet(pl.DataFrame(per_problem))
    layout.scores_file("runs", run_tag).write_parquet(pl.DataFrame(rows))

    overall = {r["metric"]: r for r in rows if r["difficulty"] == "all" and r["date_window"] == "all"}
    return dg.MaterializeResult(metadata={
        "release": release,
        "prompt_id": prompt_id,
        "pass@1": overall["pass@1"]["value"],
        "pass@1_stderr": overall["pass@1"]["stderr"],
        "completion_rate": overall["completion_rate"]["value"],
        "think_rate": overall["think_rate"]["value"],
        "n_problems": overall["pass@1"]["n_problems"],
        "n_samples": overall["pass@1"]["n_samples"],
        "pass@1_by_date_window": json_meta({r["date_window"]: {"value": r["value"], "stderr": r["stderr"],
                                                               "n_problems": r["n_problems"]}
                                            for r in rows if r["difficulty"] == "all" and r["metric"] == "pass@1"}),
        **_overlap_metadata(overlap, rows),
        "grader": json_meta({k: grades.get(k) for k in ("backend", "isolation", "warning") if k in grades}),
        "grading_wall_s": round(time.time() - started, 2),
        "scores": dg.MetadataValue.md(md_table(
            [r for r in rows if r["date_window"] == metrics.ALL],
            ["difficulty", "metric", "value", "stderr", "n_problems", "n_samples"])),
    })


def build(cfg: StudyConfig) -> dg.Definitions:
    checkpoints = P.checkpoint_partitions(cfg.student_names)
    ablations = P.ablation_partitions(cfg.student_names)
    evaluation, benchmark, launch = cfg.evaluation, cfg.benchmark, cfg.launch
    stage = cfg.ablation.base_data_size
    # The UI marks samples/scores stale when what produced them changes (sampling, prompt; grading, windows).
    generation_version = config_version(evaluation)
    pool_ngram = cfg.pool.ngram
    scoring_version = config_version(cfg.grading, benchmark.date_windows, evaluation.prompt_id, pool_ngram,
                                     {s.name: s.cutoff for s in cfg.students})

    @dg.asset(partitions_def=checkpoints, group_name="evaluation", deps=["sft_checkpoint", _newest_release_dep()],
              kinds={"pytorch"}, tags={"valley/gpu": "true"}, pool=GPU_POOL,
              automation_condition=on_new_inputs(checkpoint="sft_checkpoint"), code_version=generation_version)
    def lcb_generations(context: dg.AssetExecutionContext, config: EvalRunConfig,
                        layout: dg.ResourceParam[StudyLayout],
                        launcher: dg.ResourceParam[Launcher]) -> dg.MaterializeResult:
        """n samples per LCB problem from one checkpoint, LCB prompt through the student's chat template."""
        data_size, student = P.checkpoint_key(context)
        release = generation_release(context, layout, config.release)
        report = generate(context, evaluation=evaluation, launch=launch, launcher=launcher, layout=layout,
                          model=checkpoint_model_ref(layout, student, data_size), student=student,
                          data_size=data_size, arm=MAIN_ARM, release=release)
        return dg.MaterializeResult(metadata=_generation_metadata(report))

    @dg.asset(partitions_def=checkpoints, group_name="evaluation", deps=["lcb_generations"], kinds={"docker"},
              automation_condition=on_new_inputs(), code_version=scoring_version)
    def lcb_scores(context: dg.AssetExecutionContext, config: EvalRunConfig, layout: dg.ResourceParam[StudyLayout],
                   grader: GraderResource) -> dg.MaterializeResult:
        """pass@1 (unbiased over n), completion rate and think-tag rate, overall and per difficulty."""
        data_size, student = P.checkpoint_key(context)
        release = scoring_release(context, layout, config.release, generations_asset="lcb_generations",
                                  student=student, data_size=data_size, arm=MAIN_ARM,
                                  prompt_id=evaluation.prompt_id)
        return score(context, evaluation=evaluation, benchmark=benchmark, grader=grader, layout=layout,
                     student=student, data_size=data_size, arm=MAIN_ARM, release=release, pool_ngram=pool_ngram,
                     cutoff=cfg.student(student).cutoff)

    @dg.asset(partitions_def=ablations, group_name="evaluation", deps=["ablation_checkpoint", _newest_release_dep()],
              kinds={"pytorch"}, tags={"valley/gpu": "true"}, pool=GPU_POOL,
              automation_condition=on_new_inputs(checkpoint="ablation_checkpoint"),
              code_version=generation_version)
    def ablation_generations(context: dg.AssetExecutionContext, config: EvalRunConfig,
                             layout: dg.ResourceParam[StudyLayout],
                             launcher: dg.ResourceParam[Launcher]) -> dg.MaterializeResult:
        keys = context.partition_key.keys_by_dimension
        arm, student = keys["arm"], keys[P.STUDENT]
        release = generation_release(context, layout, config.release)
        report = generate(context, evaluation=evaluation, launch=launch, launcher=launcher, layout=layout,
                          model=checkpoint_model_ref(layout, student, stage, arm), student=student,
                          data_size=stage, arm=arm, release=release)
        return dg.MaterializeResult(metadata=_generation_metadata(report))

    @dg.asset(partitions_def=ablations, group_name="evaluation", deps=["ablation_generations"], kinds={"docker"},
              automation_condition=on_new_inputs(), code_version=scoring_version)
    def ablation_scores(context: dg.AssetExecutionContext, config: EvalRunConfig,
                        layout: dg.ResourceParam[StudyLayout], grader: GraderResource) -> dg.MaterializeResult:
        keys = context.partition_key.keys_by_dimension
        arm, student = keys["arm"], keys[P.STUDENT]
        release = scoring_release(context, layout, config.release, generations_asset="ablation_generations",
                                  student=student, data_size=stage, arm=arm, prompt_id=evaluation.prompt_id)
        return score(context, evaluation=evaluation, benchmark=benchmark, grader=grader, layout=layout,
                     student=student, data_size=stage, arm=arm, release=release, pool_ngram=pool_ngram,
                     cutoff=cfg.student(student).cutoff)

    return dg.Definitions(assets=[lcb_generations, lcb_scores, ablation_generations, ablation_scores])


def _overlap_metadata(overlap: dict | None, rows: list[dict]) -> dict:
    """The pool re-checked against this release: the problems it overlaps (count, ids), and pass@1 without them."""
    if overlap is None:
        return {"pool_overlap": "not checked: no pool.parquet in storage"}
    clean = [r for r in rows if r["difficulty"] == metrics.ALL and r["metric"] == "pass@1"
             and r["date_window"] == metrics.UNCONTAMINATED]
    meta = {"pool_overlap_count": overlap["n_overlapping"], "pool_overlap_ids": json_meta(overlap["question_ids"]),
            "pool_overlap_rule": overlap["rule"]}
    if clean:  # absent when the pool overlaps every problem
        meta |= {"pass@1_uncontaminated": clean[0]["value"], "pass@1_uncontaminated_stderr": clean[0]["stderr"],
                 "n_problems_uncontaminated": clean[0]["n_problems"]}
    return meta


def _newest_release_dep() -> dg.AssetDep:
    """Generations read one release's problems (run config, default: the newest), not a partition of the same key.
    Without a mapping Dagster maps checkpoint key `2k|student` to an lcb_problems partition of that name, and a UI
    backfill of a new data size fails with "depends on non-existent partitions"."""
    return dg.AssetDep("lcb_problems", partition_mapping=dg.LastPartitionMapping())


def _generation_metadata(report: dict) -> dict:
    meta = {}
    for key, value in report.items():
        if isinstance(value, (int, float, str)):
            meta[key] = value
        elif isinstance(value, (dict, list)):
            meta[key] = json_meta(value)
    return meta
