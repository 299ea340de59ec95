"""Training stage: base students, SFT checkpoints per data_size × student, ablation checkpoints per arm × student.

Training runs out of process through the `launcher` resource (a local subprocess in the demo, a Kubernetes Job in
production); both run the same entrypoint, `valley_assets.training.sft`, which reports back through dagster-pipes.
"""


import time

import dagster as dg
import polars as pl

from valley_assets import partitions as P
from valley_assets.config import StudyConfig
from valley_assets.defs.common import json_meta, storage_for
from valley_assets.generation.prompts import build_messages
from valley_assets.models import (
    DEMO_PREFIX,
    base_model_ref,
    checkpoint_manifest_parts,
    checkpoint_model_ref,
)
from valley_assets.storage import StudyStorage

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


def run_sft(context, *, cfg: StudyConfig, storage: StudyStorage, student: str, subset: pl.DataFrame,
            init_model: str, out_parts: tuple[str, ...], run_name: str) -> dict:
    """Write the training file, launch the SFT entrypoint, return the metadata it reported."""
    spec = cfg.student(student)
    problems = {p["question_id"]: p for p in storage.read_jsonl("problems", "training.jsonl")}
    train_parts = (*out_parts, "train.jsonl")
    storage.write_jsonl(sft_messages(subset, problems, cfg.evaluation.prompt_id), *train_parts)
    params = {
        "recipe": spec.recipe,
        "recipe_overrides": {"max_length": spec.max_length},
        "train_file": storage.uri(*train_parts),
        "base_model": init_model,
        "output_dir": storage.uri(*out_parts, "run"),
        "resume_from_checkpoint": "auto",
    }
    report = context.resources.launcher.run(context, module=SFT_MODULE, params=params, name=run_name,
                                            gpus=cfg.launch.training_gpus)
    # The entrypoint publishes the final model at the root of output_dir, `_COMPLETE` written last.
    return {**report, "final_model_dir": params["output_dir"]}


def build(cfg: StudyConfig) -> dg.Definitions:
    storage = storage_for(cfg)
    students = P.student_partitions(cfg.student_names)
    checkpoints = P.checkpoint_partitions(cfg.student_names)
    ablations = P.ablation_partitions(cfg.student_names)

    @dg.asset(partitions_def=students, group_name="training", deps=["training_problems", "teacher_traces"],
              kinds={"pytorch"})
    def student_base_model(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        """The untouched student. The demo builds a tiny Qwen2 with its own tokenizer, pre-trained on generic text;
        production students are hub models, checked to load (tokenizer and config) through the same code path."""
        spec = cfg.student(context.partition_key)
        ref = base_model_ref(cfg, storage, spec.name)
        if spec.model.startswith(DEMO_PREFIX):
            from valley_assets.demo.tiny_model import build_tiny_student, generic_corpus

            problems = storage.read_jsonl("problems", "training.jsonl")
            traces = pl.read_parquet(storage.uri("traces", "teacher_traces") + "/*.parquet", columns=["r1_generation"])
            corpus = ([p["question_content"] for p in problems] + traces["r1_generation"].to_list()
                      + generic_corpus(cfg.data.seed, 2000))
            info = build_tiny_student(storage.local_path("models", spec.name, "base"), corpus,
                                      seed=cfg.data.seed, pretrain_steps=cfg.data.demo.pretrain_steps)
        else:
            from transformers import AutoConfig, AutoTokenizer

            tok = AutoTokenizer.from_pretrained(ref)
            conf = AutoConfig.from_pretrained(ref)
            info = {"vocab_size": len(tok), "architecture": conf.architectures,
                    "has_chat_template": bool(tok.chat_template)}
        return dg.MaterializeResult(metadata={"model": ref, "info": json_meta(info),
                                              **{k: v for k, v in info.items() if isinstance(v, (int, float))}})

    @dg.asset(partitions_def=checkpoints, group_name="training",
              deps=["distill_subset", "student_base_model"], required_resource_keys={"launcher"},
              kinds={"pytorch"}, tags={"valley/gpu": "true"})
    def sft_checkpoint(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        """SFT of a student on one nested subset. `0` is the base model as is (the valley's starting point)."""
        data_size, student = P.checkpoint_key(context)
        base = base_model_ref(cfg, storage, student)
        parts = checkpoint_manifest_parts(student, data_size)[:-1]
        started = time.time()
        if data_size == "0":
            report = {}
            model = base
        else:
            subset = storage.read_parquet("subsets", f"{data_size}.parquet")
            if subset.height == 0:
                raise ValueError(f"subset {data_size} is empty: the pool has no rows (see distill_pool)")
            report = run_sft(context, cfg=cfg, storage=storage, student=student, subset=subset, init_model=base,
                             out_parts=parts, run_name=f"sft-{student}-{data_size}")
            model = report["final_model_dir"]
        manifest = {"model": model, "student": student, "data_size": data_size, "base_model": base,
                    "wall_time_s": round(time.time() - started, 2), "report": report}
        storage.write_json(manifest, *parts, "checkpoint.json")
        return dg.MaterializeResult(metadata=_training_metadata(manifest))

    @dg.asset(partitions_def=ablations, group_name="training",
              deps=["ablation_subset", dg.AssetDep("sft_checkpoint", partition_mapping=_stage_mapping(cfg))],
              required_resource_keys={"launcher"}, kinds={"pytorch"}, tags={"valley/gpu": "true"})
    def ablation_checkpoint(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        """Continue SFT from the stage checkpoint (`ablation.base_data_size`) on one ablation arm."""
        keys = context.partition_key.keys_by_dimension
        arm, student = keys["arm"], keys[P.STUDENT]
        stage = cfg.ablation.base_data_size
        init = checkpoint_model_ref(storage, student, stage)
        parts = checkpoint_manifest_parts(student, stage, arm)[:-1]
        subset = storage.read_parquet("ablation", arm, "subset.parquet")
        started = time.time()
        report = run_sft(context, cfg=cfg, storage=storage, student=student, subset=subset, init_model=init,
                         out_parts=parts, run_name=f"ablation-{student}-{arm}")
        manifest = {"model": report["final_model_dir"], "student": student, "arm": arm, "stage": stage,
                    "init_model": init, "wall_time_s": round(time.time() - started, 2), "report": report}
        storage.write_json(manifest, *parts, "checkpoint.json")
        return dg.MaterializeResult(metadata=_training_metadata(manifest))

    return dg.Definitions(assets=[student_base_model, sft_checkpoint, ablation_checkpoint])


def _stage_mapping(cfg: StudyConfig) -> dg.PartitionMapping:
    """ablation_checkpoint[arm|student] reads sft_checkpoint[<stage>|student] of the same student.

    Dagster cannot map a dynamic dimension (data_size) onto a static one (arm) key by key, so the lineage says "this
    student's checkpoints" (unmapped dimensions mean all partitions); the asset itself reads the configured stage
    (`ablation.base_data_size`) and fails clearly when that checkpoint is missing.
    """
    return dg.MultiPartitionMapping({
        P.STUDENT: dg.DimensionPartitionMapping(P.STUDENT, dg.IdentityPartitionMapping()),
    })


def _training_metadata(manifest: dict) -> dict:
    report = manifest.get("report") or {}
    meta = {"model": manifest["model"], "wall_time_s": manifest["wall_time_s"]}
    for key in ("final_loss", "train_loss_mean", "tokens_seen", "steps", "epochs", "examples",
                "examples_dropped_too_long", "resumed_from_step", "world_size", "precision"):
        if key in report:
            meta[key] = report[key]
    if report.get("loss_curve"):
        meta["loss_curve"] = json_meta(report["loss_curve"])
    return meta
