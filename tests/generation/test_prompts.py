import pytest

from valley_assets.generation.prompts import PROMPTS, build_messages, get_prompt, problem_messages


def test_chat_prompt_matches_livecodebench_generic_template_for_stdin():
    messages = build_messages("Print 1.", "", "lcb-chat")
    assert messages[0] == {
        "role": "system",
        "content": "You are an expert Python programmer. You will be given a question (problem specification) and "
        "will generate a correct Python program that matches the specification and passes all tests.",
    }
    assert messages[1]["role"] == "user"
    assert messages[1]["content"] == (
        "### Question:\nPrint 1.\n\n"
        "### Format: Read the inputs from stdin solve the problem and write the answer to stdout (do not directly "
        "test on the sample inputs). Enclose your code within delimiters as follows. Ensure that when the python "
        "program runs, it reads the inputs, runs the algorithm and writes output to STDOUT.\n"
        "```python\n# YOUR CODE HERE\n```\n\n"
        "### Answer: (use the provided format with backticks)\n\n"
    )


def test_chat_prompt_with_starter_code_uses_the_starter_format():
    starter = "class Solution:\n    def f(self, x: int) -> int:\n        "
    user = build_messages("Return x.", starter)[1]["content"]
    assert user == (
        "### Question:\nReturn x.\n\n"
        "### Format: You will use the following starter code to write the solution to the problem and enclose your "
        "code within delimiters.\n"
        f"```python\n{starter}\n```\n\n"
        "### Answer: (use the provided format with backticks)\n\n"
    )


def test_codeqwen_style_matches_harness_texts():
    messages = build_messages("Q?", "", "lcb-codeqwen")
    assert messages[0] == {"role": "system", "content": "You are a helpful assistant."}
    user = messages[1]["content"]
    assert user.startswith(
        "You will be given a question (problem specification) and will generate a correct Python program that "
        "matches the specification and passes all tests. You will NOT return anything except for the program.\n\n"
        "Question: Q?\n\n"
    )
    assert user.endswith("```python\n# YOUR CODE HERE\n```\n\n")


def test_reasoning_variant_has_no_system_message_and_asks_for_think_tags():
    messages = build_messages("Q?", "def f():\n    ", "lcb-reasoning")
    assert [m["role"] for m in messages] == ["user"]
    user = messages[0]["content"]
    assert user.startswith("You will be given a question (problem specification)")
    assert "Question: Q?\n\n" in user
    assert "```python\ndef f():\n    \n```\n\n" in user
    assert "<think>" in user and "</think>" in user


def test_registry_and_errors():
    assert {"lcb-chat", "lcb-codeqwen", "lcb-reasoning"} <= set(PROMPTS)
    with pytest.raises(KeyError, match="unknown prompt_id 'nope'"):
        get_prompt("nope")
    with pytest.raises(ValueError, match="non-empty question_content"):
        build_messages("  ", "")
    with pytest.raises(KeyError, match="'q9' has no 'question_content'"):
        problem_messages({"question_id": "q9"}, "lcb-chat")
    # None starter code (missing in some dumps) is the stdin form
    assert build_messages("Q", None) == build_messages("Q", "")
