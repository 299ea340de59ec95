"""Reading model outputs: think tags and the final code block.

One definition serves the pool filter (teacher traces), the metrics (student samples) and the grader input, so that
"has a closed think tag" and "extractable code" mean the same thing everywhere.
"""

from __future__ import annotations

import re

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

# A fenced block: ``` optionally followed by a language tag, then the body up to the next fence.
_FENCE_RE = re.compile(r"```[ \t]*([A-Za-z0-9_+#.-]*)[ \t]*\n(.*?)```", re.DOTALL)


def has_closed_think(text: str) -> bool:
    """True when the text contains a `<think>` ... `</think>` pair, in that order."""
    start = text.find(THINK_OPEN)
    return start != -1 and text.find(THINK_CLOSE, start + len(THINK_OPEN)) != -1


def answer_part(text: str) -> str:
    """The part of a response after the last `</think>`; the whole text when there is none.

    Code written inside the reasoning is a draft, never the answer, so only what follows the closing tag counts.
    A response that opens `<think>` but never closes it has no answer part at all.
    """
    close = text.rfind(THINK_CLOSE)
    if close != -1:
        return text[close + len(THINK_CLOSE):]
    if THINK_OPEN in text:
        return ""
    return text


def extract_code(text: str) -> str | None:
    """The last fenced code block of the answer part (after `</think>`), or None.

    Mirrors LiveCodeBench's extraction (last ``` block of the output) applied to the answer after the reasoning.
    Python-tagged and untagged blocks are accepted; blocks tagged with another language are skipped.
    """
    blocks = [
        body
        for lang, body in _FENCE_RE.findall(answer_part(text))
        if lang.lower() in ("", "python", "python3", "py")
    ]
    if not blocks:
        return None
    code = blocks[-1].strip("\n")
    return code if code.strip() else None
