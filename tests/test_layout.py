"""`StudyLayout` owns every storage path (issue K): the same tree on a local root and on an s3:// root (moto), and no
asset module builds a storage path by hand (an AST scan of valley_assets/defs/)."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import polars as pl
import pytest

from tests.rehearsal.moto_s3 import (  # noqa: F401 (fixtures)
    MotoS3,
    clear_s3_client_cache,
    moto_s3,
    moto_s3_env,
    moto_s3_server,
)
from valley_assets.analysis.provenance import MANIFEST_NAME
from valley_assets.layout import PROVENANCE_MANIFEST, StudyLayout

REPO = Path(__file__).resolve().parents[1]
DEFS = REPO / "valley_assets" / "defs"

# Every location the layout names, relative to the root: the tree of docs/architecture.md "Storage layout".
EXPECTED = {
    ("training_problems",): "problems/training.jsonl",
    ("lcb_problems", "release_v6"): "lcb/release_v6/problems.jsonl",
    ("pool_overlap", "release_v6"): "lcb/release_v6/pool_overlap.json",
    ("lcb_source",): "lcb_source",
    ("teacher_traces",): "traces/teacher_traces",
    ("extra_teacher_traces",): "traces/extra_teacher_traces",
    ("extra_teacher_traces", "kat"): "traces/extra_teacher_traces/kat",
    ("teacher_work", "kat"): "teacher_work/kat",
    ("teacher_work_problems", "kat"): "teacher_work/kat/problems.jsonl",
    ("teacher_work_samples", "kat"): "teacher_work/kat/samples.jsonl",
    ("pool_dir",): "pool",
    ("pool",): "pool/pool.parquet",
    ("pool_quarantine",): "pool/quarantine.parquet",
    ("subset", "10k"): "subsets/10k.parquet",
    ("ablation_subset", "easy"): "ablation/easy/subset.parquet",
    ("base_model", "qwen"): "models/qwen/base",
    ("checkpoint_dir", "qwen", "1k"): "checkpoints/qwen/1k",
    ("checkpoint_dir", "qwen", "1k", "hard"): "ablation/hard/checkpoints/qwen",
    ("checkpoint_manifest", "qwen", "1k"): "checkpoints/qwen/1k/checkpoint.json",
    ("checkpoint_manifest", "qwen", "1k", "easy"): "ablation/easy/checkpoints/qwen/checkpoint.json",
    ("checkpoint_provenance", "qwen", "1k"): "checkpoints/qwen/1k/provenance.json",
    ("sft_train_file", "qwen", "1k"): "checkpoints/qwen/1k/train.jsonl",
    ("sft_output_dir", "qwen", "1k"): "checkpoints/qwen/1k/run",
    ("sft_output_dir", "qwen", "1k", "correct"): "ablation/correct/checkpoints/qwen/run",
    ("generations", "qwen", "1k", "main", "release_v6", "lcb-reasoning"):
        "generations/qwen/1k/release_v6/lcb-reasoning/samples.jsonl",
    ("generations", "qwen", "1k", "easy", "release_v6", "lcb-reasoning"):
        "generations/qwen/ablation-easy/release_v6/lcb-reasoning/samples.jsonl",
    ("grades", "qwen", "1k", "main", "release_v6", "lcb-reasoning"):
        "grades/qwen/1k/release_v6/lcb-reasoning/results.json",
    ("grading_work", "qwen", "1k", "main", "release_v6", "lcb-reasoning"):
        "grades/qwen/1k/release_v6/lcb-reasoning/work",
    ("scores_table", "runs"): "scores/runs",
    ("scores_file", "per_problem", "tag"): "scores/per_problem/tag.parquet",
    ("report_html",): "reports/valley_report.html",
    ("valley_curve_png",): "reports/valley_curve.png",
    ("valley_curve_json",): "reports/valley_curve.json",
    ("ablation_report_json",): "reports/ablation_report.json",
}


def _located(layout: StudyLayout) -> dict[tuple, str]:
    return {call: getattr(layout, call[0])(*call[1:]).uri for call in EXPECTED}


def test_every_location_on_a_local_root(tmp_path):
    layout = StudyLayout(str(tmp_path / "study"))
    assert _located(layout) == {call: str(tmp_path / "study" / rel) for call, rel in EXPECTED.items()}
    public = {name for name in vars(StudyLayout) if not name.startswith("_")} - {"is_local", "eval_label"}
    assert public == {call[0] for call in EXPECTED}  # a new location gets a row here (and in the docs' tree)
    assert PROVENANCE_MANIFEST == MANIFEST_NAME


def test_every_location_on_an_s3_root_and_files_round_trip(moto_s3_env: MotoS3):  # noqa: F811
    clear_s3_client_cache()
    root = moto_s3_env.uri("study")
    layout = StudyLayout(root)
    assert not layout.is_local
    assert _located(layout) == {call: f"{root}/{rel}" for call, rel in EXPECTED.items()}
    layout.subset("1k").write_parquet(pl.DataFrame({"id": ["a", "b"]}))
    layout.training_problems().write_jsonl([{"question_id": "q1"}])
    layout.checkpoint_manifest("qwen", "0").write_json({"model": "hub/id"})
    assert layout.subset("1k").read_parquet()["id"].to_list() == ["a", "b"]
    assert layout.training_problems().read_jsonl() == [{"question_id": "q1"}]
    assert layout.checkpoint_manifest("qwen", "0").read_json() == {"model": "hub/id"}
    assert layout.scores_table("runs").list() == []
    layout.scores_file("runs", "t1").write_parquet(pl.DataFrame({"x": [1]}))
    assert layout.scores_table("runs").list(pattern="*.parquet") == [f"{root}/scores/runs/t1.parquet"]
    assert layout.subset("1k").exists() and not layout.subset("10k").exists()


def test_bad_parts_and_tables_are_refused(tmp_path):
    layout = StudyLayout(str(tmp_path))
    with pytest.raises(ValueError, match="'..'"):
        layout.checkpoint_dir("..", "1k")
    with pytest.raises(ValueError, match="scores table 'run'"):
        layout.scores_table("run")


# --- no hand-built storage paths in the asset modules ----------------------------------------------------------------
STORAGE_METHODS = {
    "uri", "path", "exists", "is_file", "is_dir", "list", "names", "makedirs", "remove", "remove_matching", "open",
    "open_atomic", "upload", "download", "synced_work_dir", "local_path", "local_work_dir", "read_bytes",
    "write_bytes", "read_json", "write_json", "read_jsonl", "write_jsonl", "read_parquet", "write_parquet",
}


def hand_built_paths(source: str, filename: str) -> list[str]:
    """Places in `source` that build a storage path themselves: a string (or f-string) or a tuple of them handed
    positionally to a storage method, a starred tuple literal, a module-level tuple of path names, or a
    `StudyStorage` made on the spot."""
    found = []
    tree = ast.parse(source, filename)

    def is_path_literal(node) -> bool:
        if isinstance(node, ast.Constant) and isinstance(node.value, str) or isinstance(node, ast.JoinedStr):
            return True
        return isinstance(node, ast.Tuple) and any(is_path_literal(e) for e in node.elts)

    for node in ast.walk(tree):
        where = f"{filename}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in STORAGE_METHODS:
                for arg in node.args:
                    inner = arg.value if isinstance(arg, ast.Starred) else arg
                    if is_path_literal(inner):
                        found.append(f"{where}: .{func.attr}({ast.unparse(arg)}, ...)")
            if isinstance(func, ast.Name) and func.id == "StudyStorage":
                found.append(f"{where}: StudyStorage(...) made in an asset module")
            for arg in node.args:
                if isinstance(arg, ast.Starred) and isinstance(arg.value, ast.Tuple):
                    found.append(f"{where}: *{ast.unparse(arg.value)}")
    for node in tree.body:  # module constants like EXTRA_TRACES = ("traces", "extra_teacher_traces")
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Tuple) and node.value.elts and all(
                isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.value.elts):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            if any(n.endswith(("_PARTS", "_TRACES", "_DIR", "_PATH")) for n in names):
                found.append(f"{filename}:{node.lineno}: path tuple {names[0]}")
    return found


def test_no_asset_module_builds_a_storage_path():
    found = [hit for path in sorted(DEFS.glob("*.py")) for hit in hand_built_paths(path.read_text(), path.name)]
    assert found == [], "ask valley_assets.layout.StudyLayout instead:\n" + "\n".join(found)


def test_the_scan_finds_what_the_asset_modules_did_before_the_layout():
    """The scan is not vacuous: it flags the shapes the defs used (issue K's 26 literal tuples), checked on the
    modules as they were before the layout when git has them, and on a sample always."""
    sample = '''
EXTRA_TRACES = ("traces", "extra_teacher_traces")
def f(storage, parts, key):
    storage.write_jsonl(rows, "problems", "training.jsonl")
    storage.uri(*EXTRA_TRACES, key)
    storage.read_parquet("subsets", f"{key}.parquet")
    g(*("checkpoints", key))
    StudyStorage(str(work_dir)).write_jsonl([], "problems.jsonl")
'''
    lines = {int(hit.split(":")[1]) for hit in hand_built_paths(sample, "sample.py")}
    assert lines == {2, 4, 6, 7, 8}  # line 5 uses the tuple of line 2
    before = subprocess.run(["git", "show", "0e27ef7:valley_assets/defs/evaluation.py"], cwd=REPO,
                            capture_output=True, text=True)
    if before.returncode == 0:
        assert len(hand_built_paths(before.stdout, "evaluation.py")) >= 5
