"""The LiveCodeBench-exact grader: `grade()` for the assets, `valley grade` (cli.main) for people."""

from valley_assets.grading.grader import grade, samples_log_path, summarize
from valley_assets.grading.problems import (
    GradingProblem,
    ProblemFormatError,
    decode_private_tests,
    load_generations_json,
    load_problems_jsonl,
    problem_from_record,
)

__all__ = [
    "GradingProblem",
    "ProblemFormatError",
    "decode_private_tests",
    "grade",
    "load_generations_json",
    "load_problems_jsonl",
    "problem_from_record",
    "samples_log_path",
    "summarize",
]
