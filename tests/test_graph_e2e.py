"""The whole study graph, materialized in-process on a minimal demo config: every asset, every partition.

Then a new data size (`3k`) is added at run time and materialized with no code change, and the analysis picks it up.
"""

import dagster as dg
import polars as pl
import pytest

from valley_assets import partitions as P
from valley_assets.config import PROFILES_DIR, load_study_config
from valley_assets.definitions import build_definitions
from valley_assets.study_runner import run_study, unmaterialized

MINIMAL = {
    "rows_per_k": 4,
    "data_sizes": ["0", "1k"],
    "data": {"demo": {"n_train_problems": 80, "n_eval_problems": 6, "pretrain_steps": 20}},
    "evaluation": {"n_samples": 2, "max_new_tokens": 48, "chunk_size": 16},
    "grading": {"backend": "process", "timeout_s": 3.0},
    "ablation": {"base_data_size": "1k", "rows": {"easy": 4, "hard": 4, "correct": 4, "incorrect": 4}},
    "analysis": {"bootstrap_samples": 50},
}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    cfg = load_study_config(PROFILES_DIR / "demo.yaml", overrides={**MINIMAL, "storage_root": str(root / "store")})
    instance = dg.DagsterInstance.ephemeral()
    defs = build_definitions(cfg)
    summary = run_study(defs, cfg, instance, log=lambda m: None)
    return cfg, defs, instance, summary, root / "store"


def _materialized(instance, key):
    return instance.get_materialized_partitions(dg.AssetKey(key))


def test_every_asset_and_partition_is_materialized(study):
    cfg, defs, instance, summary, _ = study
    expected, missing = unmaterialized(defs, instance)
    assert not missing and summary["runs"] > 0
    n_checkpoints = len(cfg.data_sizes) * len(cfg.student_names)
    assert expected > 3 * n_checkpoints  # checkpoints, generations and scores at least, plus the rest


def test_checks_pass_and_subsets_nest(study):
    cfg, defs, instance, _, store = study
    for check in ("subsets_are_nested", "pool_is_clean"):
        records = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("distill_subset" if check == "subsets_are_nested" else "distill_pool"),
                             check), limit=1)
        assert records and records[0].status.value == "SUCCEEDED", check
    ids = {k: set(pl.read_parquet(store / "subsets" / f"{k}.parquet")["id"]) for k in ("0", "1k")}
    assert len(ids["1k"]) == 4 and not ids["0"]
    pool = pl.read_parquet(store / "pool" / "pool.parquet")
    assert set(pool.filter(pl.col("pool_rank") < 4)["id"]) == ids["1k"]  # the first rows of the seeded order


def test_scores_and_valley_curve_metadata(study):
    cfg, defs, instance, _, store = study
    scores = pl.concat([pl.read_parquet(f) for f in (store / "scores" / "runs").glob("*.parquet")])
    main = scores.filter((pl.col("arm") == "main") & (pl.col("difficulty") == "all"))
    assert set(main["data_size"]) == {"0", "1k"}
    assert set(main["metric"]) == {"pass@1", "completion_rate", "think_rate"}
    assert main["value"].is_between(0, 1).all()
    event = instance.get_latest_materialization_event(dg.AssetKey("valley_curve"))
    meta = event.asset_materialization.metadata
    assert meta["plot"].value.startswith("![plot](data:image/png;base64,")
    assert "| student" in meta["table"].value
    assert (store / "reports" / "valley_report.html").exists()
    abl = instance.get_latest_materialization_event(dg.AssetKey("ablation_report")).asset_materialization.metadata
    assert "easy" in abl["table"].value


def test_new_data_size_added_at_run_time(study):
    cfg, defs, instance, _, store = study
    assert P.add_data_sizes(instance, ["3k"]) == ["3k"]
    summary = run_study(defs, cfg, instance, log=lambda m: None)
    assert summary["runs"] >= 3  # subset, checkpoint+eval, analysis refresh for the new key
    for key in ("distill_subset", "sft_checkpoint", "lcb_scores"):
        keys = {str(k) for k in _materialized(instance, key)}
        assert any(k.startswith("3k") or k == "3k" for k in keys), (key, keys)
    subset_3k = set(pl.read_parquet(store / "subsets" / "3k.parquet")["id"])
    assert len(subset_3k) == 12
    assert set(pl.read_parquet(store / "subsets" / "1k.parquet")["id"]) <= subset_3k
    curve = instance.get_latest_materialization_event(dg.AssetKey("valley_curve")).asset_materialization.metadata
    assert "3k" in curve["table"].value  # the analysis refreshed with the new point


def test_bad_partition_key_is_refused_and_nothing_is_lost(study):
    cfg, defs, instance, _, _ = study
    before = instance.get_dynamic_partitions(P.DATA_SIZE)
    with pytest.raises(P.PartitionKeyError):
        P.add_data_sizes(instance, ["10k", "bad|key"])
    assert instance.get_dynamic_partitions(P.DATA_SIZE) == before
