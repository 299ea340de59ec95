from valley_assets.science.text import answer_part, extract_code, has_closed_think


def test_closed_think_needs_both_tags_in_order():
    assert has_closed_think("<think>a</think>b")
    assert not has_closed_think("<think>never closed")
    assert not has_closed_think("</think> before <think>")
    assert not has_closed_think("no tags")


def test_code_after_think_is_the_answer_and_last_block_wins():
    text = "<think>\n```python\ndraft()\n```\n</think>\nFirst:\n```python\na = 1\n```\nFinal:\n```python\nprint(2)\n```\n"
    assert extract_code(text) == "print(2)"


def test_code_only_inside_unclosed_think_is_not_an_answer():
    assert extract_code("<think>\n```python\nprint(1)\n```\n") is None
    assert answer_part("<think>still thinking") == ""


def test_no_think_uses_whole_text_and_untagged_fences():
    assert extract_code("Here:\n```\nx = input()\nprint(x)\n```") == "x = input()\nprint(x)"
    assert extract_code("```py\nprint(3)\n```") == "print(3)"


def test_other_languages_and_empty_blocks_are_skipped():
    assert extract_code("```cpp\nint main(){}\n```") is None
    assert extract_code("```python\n\n```") is None
    assert extract_code("```python\nprint(1)\n```\n```bash\nls\n```") == "print(1)"


def test_unterminated_fence_is_not_code():
    assert extract_code("</think>```python\nprint(1)\n") is None
