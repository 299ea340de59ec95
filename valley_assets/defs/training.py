"""Training stage: base students, SFT checkpoints per data_size × student, ablation checkpoints per arm × student.

Training runs out of process through the `launcher` resource (a local subprocess in the demo, a Kubernetes Job in
production); both run the same entrypoint, `valley_assets.training.sft`, which reports back through dagster-pipes.
"""


import hashlib
import time

import dagster as dg
import polars as pl

from valley_assets import partitions as P
from valley_assets.analysis.provenance import provenance_manifest, write_manifest
from valley_assets.config import LaunchConfig, StudentSpec, StudyConfig, TrackingConfig
from valley_assets.defs.common import GPU_POOL, config_version, json_meta
from valley_assets.defs.model_refs import base_model_ref, checkpoint_model_ref, is_demo_model
from valley_assets.generation.prompts import build_messages
from valley_assets.launch.base import Launcher
from valley_assets.layout import MAIN_ARM, StudyLayout
from valley_assets.training.params import SFTParams
from valley_assets.training.recipe import load_recipe

SFT_MODULE = "valley_assets.training.sft"


def sft_messages(subset: pl.DataFrame, problems_by_id: dict[str, dict], prompt_id: str) -> list[dict]:
    """One chat per trace: the LCB prompt for the question (what the student sees at evaluation), then the
    teacher's full output, reasoning included, as the assistant turn."""
    rows = []
    for r in subset.iter_rows(named=True):
        starter = problems_by_id.get(r["question_id"], {}).get("starter_code", "") or ""
        messages = build_messages(r["question"], starter, prompt_id)
        rows.append({"id": r["id"], "messages": [*messages, {"role": "assistant", "content": r["r1_generation"]}]})
    return rows


def run_sft(context, *, student: StudentSpec, prompt_id: str, launch: LaunchConfig, tracking: TrackingConfig,
            launcher: Launcher, layout: StudyLayout, data_size: str, arm: str, subset: pl.DataFrame, init_model: str,
            run_name: str) -> dict:
    """Write the training file (the student sees `prompt_id`'s prompt, as at evaluation), launch the SFT entrypoint
    on `launch.training_gpus`, return the metadata it reported plus the exact recipe it was given
    (`trained_recipe`, what the provenance manifest records): the student's recipe is resolved here, once."""
    problems = {p["question_id"]: p for p in layout.training_problems().read_jsonl()}
    train_file = layout.sft_train_file(student.name, data_size, arm)
    train_file.write_jsonl(sft_messages(subset, problems, prompt_id))
    params = SFTParams(
        recipe=load_recipe(student.recipe),
        train_file=train_file.uri,
        base_model=init_model,
        output_dir=layout.sft_output_dir(student.name, data_size, arm).uri,
        resume_from_checkpoint="auto",
        report_to=list(tracking.report_to),
    ).model_dump(mode="json")
    # Re-materializing a checkpoint whose recipe, base model and training data are unchanged launches no Job: the
    # entrypoint would find the same finished model and train nothing, but only after a pod got its GPUs.
    sft = SFTParams.model_validate(params)
    fingerprint = sft.run_fingerprint()
    finished = sft.finished_run(fingerprint)
    if finished is not None:
        context.log.info(f"{params['output_dir']} already holds the model trained from these inputs: no training")
        report = {**finished, "skipped_already_complete": True}
    else:
        report = launcher.run(context, module=SFT_MODULE, params=params, name=run_name,
                              gpus=launch.training_gpus, kind="training")
    # The entrypoint publishes the final model at the root of output_dir, `_COMPLETE` written last.
    return {**report, "final_model_dir": params["output_dir"], "trained_recipe": params["recipe"],
            "run_fingerprint": fingerprint}


def build(cfg: StudyConfig) -> dg.Definitions:
    students = P.student_partitions(cfg.student_names)
    checkpoints = P.checkpoint_partitions(cfg.student_names)
    ablations = P.ablation_partitions(cfg.student_names)
    prompt_id, launch, tracking = cfg.evaluation.prompt_id, cfg.launch, cfg.tracking
    profile, data_seed, pool_seed = cfg.profile, cfg.data.seed, cfg.pool.seed
    # What a checkpoint is trained with besides its data: each student's resolved recipe, the GPUs, the prompt.
    training_version = config_version({s.name: [s.model, load_recipe(s.recipe).model_dump(mode="json")]
                                       for s in cfg.students}, cfg.launch.training_gpus, cfg.evaluation.prompt_id)

    @dg.asset(partitions_def=students, group_name="training", deps=["training_problems", "teacher_traces"],
              kinds={"pytorch"})
    def student_base_model(context: dg.AssetExecutionContext,
                           layout: dg.ResourceParam[StudyLayout]) -> dg.MaterializeResult:
        """The untouched student. The demo builds a tiny Qwen2 with its own tokenizer, pre-trained on generic text;
        production students are hub models, checked to load (tokenizer and config) through the same code path."""
        spec = cfg.student(context.partition_key)
        ref = base_model_ref(spec, layout)
        if is_demo_model(spec):
            from valley_assets.demo.tiny_model import build_tiny_student, generic_corpus

            problems = layout.training_problems().read_jsonl()
            traces = pl.read_parquet(layout.teacher_traces().uri + "/*.parquet", columns=["r1_generation"])
            corpus = ([p["question_content"] for p in problems] + traces["r1_generation"].to_list()
                      + generic_corpus(cfg.data.seed, 2000))
            info = build_tiny_student(layout.base_model(spec.name).local_path(), corpus,
                                      seed=cfg.data.seed, pretrain_steps=cfg.data.demo.pretrain_steps)
        else:
            from transformers import AutoConfig, AutoTokenizer

            from valley_assets.model_files import local_model_dir

            tok = AutoTokenizer.from_pretrained(local_model_dir(ref))  # hub id, folder, or a mirror on object storage
            conf = AutoConfig.from_pretrained(local_model_dir(ref))
            info = {"vocab_size": len(tok), "architecture": conf.architectures,
                    "has_chat_template": bool(tok.chat_template)}
        return dg.MaterializeResult(metadata={"model": ref, "info": json_meta(info),
                                              **{k: v for k, v in info.items() if isinstance(v, (int, float))}})

    @dg.asset(partitions_def=checkpoints, group_name="training",
              deps=["distill_subset", "student_base_model"],
              kinds={"pytorch"}, tags={"valley/gpu": "true"}, pool=GPU_POOL, code_version=training_version)
    def sft_checkpoint(context: dg.AssetExecutionContext, layout: dg.ResourceParam[StudyLayout],
                       launcher: dg.ResourceParam[Launcher]) -> dg.MaterializeResult:
        """SFT of a student on one nested subset. `0` is the base model as is (the valley's starting point)."""
        data_size, student = P.checkpoint_key(context)
        base = base_model_ref(cfg.student(student), layout)
        started = time.time()
        data_files = []
        if data_size == "0":
            report = {}
            model = base
        else:
            data_files = [layout.subset(data_size).uri, layout.sft_train_file(student, data_size).uri]
            subset = layout.subset(data_size).read_parquet()
            if subset.height == 0:
                raise ValueError(f"subset {data_size} is empty: the pool has no rows (see distill_pool)")
            report = run_sft(context, student=cfg.student(student), prompt_id=prompt_id, launch=launch,
                             tracking=tracking, launcher=launcher, layout=layout, data_size=data_size, arm=MAIN_ARM,
                             subset=subset, init_model=base, run_name=f"sft-{student}-{data_size}")
            model = report["final_model_dir"]
        manifest = {"model": model, "student": student, "data_size": data_size, "base_model": base,
                    "wall_time_s": round(time.time() - started, 2), "report": report}
        provenance = write_checkpoint_provenance(layout, profile=profile, data_seed=data_seed, pool_seed=pool_seed,
                                                 launch=launch, arm=MAIN_ARM, manifest=manifest, data_files=data_files)
        layout.checkpoint_manifest(student, data_size).write_json(manifest)
        return dg.MaterializeResult(metadata={**_training_metadata(manifest), **provenance},
                                    data_version=model_version(report, base))

    @dg.asset(partitions_def=ablations, group_name="training",
              deps=["ablation_subset", dg.AssetDep("sft_checkpoint", partition_mapping=_stage_mapping(cfg))],
              kinds={"pytorch"}, tags={"valley/gpu": "true"}, pool=GPU_POOL,
              code_version=config_version(training_version, cfg.ablation.base_data_size))
    def ablation_checkpoint(context: dg.AssetExecutionContext, layout: dg.ResourceParam[StudyLayout],
                            launcher: dg.ResourceParam[Launcher]) -> dg.MaterializeResult:
        """Continue SFT from the stage checkpoint (`ablation.base_data_size`) on one ablation arm."""
        keys = context.partition_key.keys_by_dimension
        arm, student = keys["arm"], keys[P.STUDENT]
        stage = cfg.ablation.base_data_size
        init = checkpoint_model_ref(layout, student, stage)
        subset = layout.ablation_subset(arm).read_parquet()
        data_files = [layout.ablation_subset(arm).uri, layout.sft_train_file(student, stage, arm).uri]
        started = time.time()
        report = run_sft(context, student=cfg.student(student), prompt_id=prompt_id, launch=launch,
                         tracking=tracking, launcher=launcher, layout=layout, data_size=stage, arm=arm,
                         subset=subset, init_model=init, run_name=f"ablation-{student}-{arm}")
        manifest = {"model": report["final_model_dir"], "student": student, "arm": arm, "stage": stage,
                    "init_model": init, "wall_time_s": round(time.time() - started, 2), "report": report}
        provenance = write_checkpoint_provenance(layout, profile=profile, data_seed=data_seed, pool_seed=pool_seed,
                                                 launch=launch, arm=arm, manifest=manifest, data_files=data_files)
        layout.checkpoint_manifest(student, stage, arm).write_json(manifest)
        return dg.MaterializeResult(metadata={**_training_metadata(manifest), **provenance},
                                    data_version=model_version(report, init))

    return dg.Definitions(assets=[student_base_model, sft_checkpoint, ablation_checkpoint])


def model_version(report: dict, base: str) -> dg.DataVersion:
    """The checkpoint's data version: what its model was trained from (the SFT run fingerprint: recipe, base model,
    training file), or the base model itself for `0`. Unchanged when a re-materialization trains nothing, so the
    evaluation's automation condition (`on_new_inputs`) does not re-generate."""
    if report.get("run_fingerprint"):
        return dg.DataVersion(report["run_fingerprint"])
    return dg.DataVersion(hashlib.sha256(f"base:{base}".encode()).hexdigest())


def _stage_mapping(cfg: StudyConfig) -> dg.PartitionMapping:
    """ablation_checkpoint[arm|student] reads sft_checkpoint[<stage>|student] of the same student.

    Dagster cannot map a dynamic dimension (data_size) onto a static one (arm) key by key, so the lineage says "this
    student's checkpoints" (unmapped dimensions mean all partitions); the asset itself reads the configured stage
    (`ablation.base_data_size`) and fails clearly when that checkpoint is missing.
    """
    return dg.MultiPartitionMapping({
        P.STUDENT: dg.DimensionPartitionMapping(P.STUDENT, dg.IdentityPartitionMapping()),
    })


# Keys of the entrypoint's summary that the provenance manifest keeps (the loss curve stays in checkpoint.json).
_SUMMARY_KEYS = ("steps", "epochs", "examples", "examples_dropped_too_long", "tokens_seen", "tokens_per_epoch",
                 "resumed_from_step", "skipped_already_complete", "wall_time_s")
_LAUNCH_KEYS = ("world_size", "gradient_accumulation_steps", "precision")


def write_checkpoint_provenance(layout: StudyLayout, *, profile: str, data_seed: int, pool_seed: int,
                                launch: LaunchConfig, arm: str, manifest: dict, data_files: list[str]) -> dict:
    """Write `provenance.json` beside the checkpoint and return its materialization metadata.

    The manifest (valley_assets.analysis.provenance) holds the git revision, package versions, the seeds, the sha256
    of the subset and of the SFT training file, the recipe exactly as shipped to the entrypoint (`trained_recipe`,
    resolved once by `run_sft`), what the launch derived (world size, gradient accumulation, precision), the asset's
    wall time and the GPU-hours it held.
    A checkpoint with no data files is the base model as is: nothing trained, no recipe, no GPU time.
    """
    report = manifest.get("report") or {}
    data_size = manifest.get("data_size") or manifest["stage"]
    stored = layout.checkpoint_provenance(manifest["student"], data_size, arm)
    if report.get("skipped_already_complete") and stored.exists():
        # Nothing was trained: the manifest of the run that trained this model stays (its wall time, GPU-hours).
        record = stored.read_json()
        return {"provenance": json_meta(record), "provenance_path": stored.uri,
                "git_revision": record["git"]["revision"], "gpu_hours": record["gpu_hours"]}
    trained = bool(data_files)
    seeds: dict[str, int] = {"data": data_seed}
    hyperparameters: dict = {}
    if trained:
        recipe = report["trained_recipe"]
        seeds |= {"pool": pool_seed, "train": recipe["seed"]}
        hyperparameters = {"recipe": recipe,
                           "launch": {"gpus": launch.training_gpus,
                                      **{k: report[k] for k in _LAUNCH_KEYS if k in report}}}
    checkpoint = {k: v for k, v in manifest.items() if k not in ("report", "wall_time_s")}
    record = provenance_manifest(
        hyperparameters=hyperparameters, seeds=seeds, data_files=data_files, wall_time_s=manifest["wall_time_s"],
        gpu_count=launch.training_gpus if trained else 0,
        extra={"profile": profile, "checkpoint": checkpoint,
               "training_summary": {k: report[k] for k in _SUMMARY_KEYS if k in report}})
    path = write_manifest(layout.checkpoint_dir(manifest["student"], data_size, arm).uri, record)
    return {"provenance": json_meta(record), "provenance_path": path, "git_revision": record["git"]["revision"],
            "gpu_hours": record["gpu_hours"]}


def _training_metadata(manifest: dict) -> dict:
    report = manifest.get("report") or {}
    meta = {"model": manifest["model"], "wall_time_s": manifest["wall_time_s"]}
    if report:
        meta["training_launched"] = not report.get("skipped_already_complete", False)
    for key in ("final_loss", "train_loss_mean", "tokens_seen", "steps", "epochs", "examples",
                "examples_dropped_too_long", "resumed_from_step", "world_size", "precision"):
        if key in report:
            meta[key] = report[key]
    if report.get("loss_curve"):
        meta["loss_curve"] = json_meta(report["loss_curve"])
    return meta
