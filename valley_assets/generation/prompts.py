"""LiveCodeBench prompts, as chat messages, keyed by a prompt id.

The texts are copied from LiveCodeBench's harness (`lcb_runner/prompts/code_generation.py`, current main) so that our
scores are comparable with the leaderboard:

- `lcb-chat`: the harness's chat styles (`OpenAIChat`, `LLaMa3`, `MistralWeb`, ...): system message
  `SYSTEM_MESSAGE_GENERIC`, user turn from `get_generic_question_template_answer` (`### Question:`, `### Format:`,
  `### Answer:`). LiveCodeBench renders `LLaMa3` students (Llama-3.1-8B-Instruct) exactly this way through the
  model's chat template, and so do we.
- `lcb-codeqwen`: the harness's `CodeQwenInstruct` style, which it uses for Qwen2.5-*-Instruct. The harness writes the
  ChatML string by hand; we return the same system and user texts as messages, so the student's own chat template
  adds the `<|im_start|>`/`<|im_end|>` markers (the only difference is one blank line the hand-written string puts at
  the start of the user turn).
- `lcb-reasoning`: ours, for distilled students. The user turn of the harness's `DeepSeekR1` style (the one it uses
  for DeepSeek-R1-Distill-*) plus one sentence asking for the reasoning inside `<think>` … `</think>` first, and no
  system message, as DeepSeek recommends for R1 models. The SFT user turn is built with the same prompt id that the
  evaluation uses, so a student is scored on the prompt it was trained on.

The prompt id is recorded with every sample, grade and score.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# --- Texts from lcb_runner/prompts/code_generation.py (PromptConstants), verbatim. ---
SYSTEM_MESSAGE_GENERIC = (
    "You are an expert Python programmer. You will be given a question (problem specification) and will generate a "
    "correct Python program that matches the specification and passes all tests."
)
SYSTEM_MESSAGE_CODEQWEN = "You are a helpful assistant."
FORMATTING_MESSAGE_WITH_STARTER_CODE = (
    "You will use the following starter code to write the solution to the problem and enclose your code within "
    "delimiters."
)
FORMATTING_WITHOUT_STARTER_CODE = (
    "Read the inputs from stdin solve the problem and write the answer to stdout (do not directly test on the sample "
    "inputs). Enclose your code within delimiters as follows. Ensure that when the python program runs, it reads the "
    "inputs, runs the algorithm and writes output to STDOUT."
)
_TASK_SENTENCE = (
    "You will be given a question (problem specification) and will generate a correct Python program that matches "
    "the specification and passes all tests."
)
_NOTHING_ELSE_SENTENCE = " You will NOT return anything except for the program."

# --- Ours: the one sentence the reasoning variant adds. ---
THINK_INSTRUCTION = (
    "Think through the problem step by step inside <think> and </think> tags first, then give your final solution "
    "as one Python program in a ```python code block."
)


def _format_block(starter_code: str, *, heading: str) -> str:
    """The `Format` paragraph plus the code block the model is asked to fill (shared by every style)."""
    if starter_code:
        return f"{heading}{FORMATTING_MESSAGE_WITH_STARTER_CODE}\n```python\n{starter_code}\n```\n\n"
    return f"{heading}{FORMATTING_WITHOUT_STARTER_CODE}\n```python\n# YOUR CODE HERE\n```\n\n"


def generic_user_turn(question_content: str, starter_code: str) -> str:
    """`get_generic_question_template_answer`."""
    return (
        f"### Question:\n{question_content}\n\n"
        + _format_block(starter_code, heading="### Format: ")
        + "### Answer: (use the provided format with backticks)\n\n"
    )


def codeqwen_user_turn(question_content: str, starter_code: str) -> str:
    """`get_codeqwen_question_template_answer` without the hand-written ChatML markers."""
    return (
        _TASK_SENTENCE
        + _NOTHING_ELSE_SENTENCE
        + "\n\n"
        + f"Question: {question_content}\n\n"
        + _format_block(starter_code, heading="")
    )


def r1_user_turn(question_content: str, starter_code: str) -> str:
    """`get_deepseek_r1_question_template_answer` without the hand-written `<｜Assistant｜>` marker."""
    return f"{_TASK_SENTENCE}\n\nQuestion: {question_content}\n\n" + _format_block(starter_code, heading="")


def reasoning_user_turn(question_content: str, starter_code: str) -> str:
    return r1_user_turn(question_content, starter_code) + THINK_INSTRUCTION


@dataclass(frozen=True)
class PromptSpec:
    prompt_id: str
    description: str
    system: str | None
    user: Callable[[str, str], str]


PROMPTS: dict[str, PromptSpec] = {
    spec.prompt_id: spec
    for spec in (
        PromptSpec(
            "lcb-chat",
            "LiveCodeBench chat style (OpenAIChat/LLaMa3): generic system message + ### Question/Format/Answer",
            SYSTEM_MESSAGE_GENERIC,
            generic_user_turn,
        ),
        PromptSpec(
            "lcb-codeqwen",
            "LiveCodeBench CodeQwenInstruct style (used for Qwen2.5-Instruct), as chat messages",
            SYSTEM_MESSAGE_CODEQWEN,
            codeqwen_user_turn,
        ),
        PromptSpec(
            "lcb-reasoning",
            "LiveCodeBench DeepSeekR1 user turn + ask to reason in <think> tags first; no system message",
            None,
            reasoning_user_turn,
        ),
    )
}


def get_prompt(prompt_id: str) -> PromptSpec:
    try:
        return PROMPTS[prompt_id]
    except KeyError:
        raise KeyError(f"unknown prompt_id {prompt_id!r}; registered prompt ids: {sorted(PROMPTS)}") from None


def build_messages(question_content: str, starter_code: str, prompt_id: str = "lcb-chat") -> list[dict]:
    """Chat messages (system?, user) for one problem; render them with the student's chat template.

    `starter_code` is "" for stdin problems, the class/function stub for LeetCode (functional) problems.
    """
    if not isinstance(question_content, str) or not question_content.strip():
        raise ValueError("build_messages needs a non-empty question_content string")
    if starter_code is None:
        starter_code = ""
    if not isinstance(starter_code, str):
        raise ValueError(f"starter_code must be a string ('' for stdin problems), got {type(starter_code).__name__}")
    spec = get_prompt(prompt_id)
    messages = [] if spec.system is None else [{"role": "system", "content": spec.system}]
    messages.append({"role": "user", "content": spec.user(question_content, starter_code)})
    return messages


def problem_messages(problem: dict, prompt_id: str) -> list[dict]:
    """`build_messages` for a Problem record; names the question when a field is missing."""
    qid = problem.get("question_id", "<no question_id>")
    if "question_content" not in problem:
        raise KeyError(f"problem {qid!r} has no 'question_content' field")
    try:
        return build_messages(problem["question_content"], problem.get("starter_code") or "", prompt_id)
    except ValueError as exc:
        raise ValueError(f"problem {qid!r}: {exc}") from exc
