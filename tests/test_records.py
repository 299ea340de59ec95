"""The records between stages (valley_assets.records): one definition, checked where a stage reads another's output."""

import json

import pytest

from valley_assets.analysis.tables import SCORES_COLUMNS
from valley_assets.data.schema import PROBLEM_FIELDS
from valley_assets.generation.samples import SAMPLE_FIELDS, read_problems, read_samples
from valley_assets.records import (
    Problem,
    RecordError,
    Sample,
    ScoreRow,
    ScoreValues,
    check_record,
    check_rows,
    record_fields,
)
from valley_assets.science import metrics


def _sample(**extra) -> dict:
    return {"question_id": "q1", "sample_idx": 0, "prompt_id": "lcb-chat", "text": "x", "finish_reason": "stop",
            "prompt_tokens": 3, "completion_tokens": 1} | extra


def test_the_record_shapes_are_those_of_the_architecture_doc():
    assert PROBLEM_FIELDS == ("question_id", "question_title", "question_content", "platform", "contest_date",
                              "starter_code", "difficulty", "public_test_cases", "private_test_cases", "metadata")
    assert set(record_fields(Problem).values()) == {str}
    assert SAMPLE_FIELDS == ("question_id", "sample_idx", "prompt_id", "text", "finish_reason", "prompt_tokens",
                             "completion_tokens")
    assert SCORES_COLUMNS == {"student": str, "data_size": str, "arm": str, "release": str, "date_window": str,
                              "prompt_id": str, "difficulty": str, "metric": str, "value": float, "n_problems": int,
                              "n_samples": int, "stderr": float, "scored_at": str}
    values, row = record_fields(ScoreValues), record_fields(ScoreRow)
    assert all(row[name] is kind for name, kind in values.items())


def test_check_rows_names_the_row_and_the_field():
    rows = [_sample(), _sample(sample_idx=1, finish_reason="eos")]
    with pytest.raises(RecordError, match=r"^samples\.jsonl row 1: finish_reason must be one of \('stop', 'length'\)"):
        check_rows(rows, Sample, source="samples.jsonl")
    with pytest.raises(RecordError, match=r"^s row 0: prompt_tokens must be an int, got True"):
        check_rows([_sample(prompt_tokens=True)], Sample, source="s")
    with pytest.raises(RecordError, match=r"^s row 0: text is missing"):
        check_rows([{k: v for k, v in _sample().items() if k != "text"}], Sample, source="s")
    with pytest.raises(RecordError, match=r"^s row 0: a Sample must be a JSON object, got list"):
        check_rows([[1]], Sample, source="s")
    assert check_record({"value": 1}, ScoreRow, where="w", required=["value"]) == {"value": 1}  # ints are numbers
    assert check_rows([_sample(extra="kept")], Sample, source="s")[0]["extra"] == "kept"


def test_generation_checks_the_problems_it_reads(tmp_path):
    path = tmp_path / "problems.jsonl"
    path.write_text(json.dumps({"question_id": "a", "question_content": "x"}) + "\n"
                    + json.dumps({"question_id": "b", "question_content": None}) + "\n")
    with pytest.raises(RecordError, match=rf"^{path} row 1: question_content must be a string, got None"):
        read_problems(path)


def test_generation_checks_the_samples_it_reads(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps(_sample()) + "\n" + json.dumps(_sample(sample_idx=1, text=7)) + "\n")
    with pytest.raises(RecordError, match=r"s\.jsonl:2: text must be a string, got 7"):
        read_samples(path)


def test_metrics_check_the_samples_they_read():
    with pytest.raises(RecordError, match=r"^samples row 1: sample_idx must be an int, got '1'"):
        metrics.samples_to_generations([_sample(), _sample(sample_idx="1")])
    with pytest.raises(RecordError, match=r"^samples row 0: finish_reason is missing"):
        metrics.samples_to_generations([{k: v for k, v in _sample().items() if k != "finish_reason"}])
