"""The supervision patches: what a teacher can put in the student's prompt at one decision.

- ``demo``: the right action, stated.
- ``hint``: the teacher's one- or two-sentence diagnosis, which points towards the action
  (for the oracle teacher, where the mission's object is and what kind of move helps).
- ``contrast``: the student's action set against the right one.

The same builders make the patched rows the tiny student is trained on and the patches the
contextual patch test shows, so the student meets one format.
"""

from __future__ import annotations

import re

from ..envs.minigrid import Patch

__all__ = ["PATCH_KINDS", "contrast_patch", "demo_patch", "hint_patch", "two_sentences"]

PATCH_KINDS: tuple[str, ...] = ("demo", "hint", "contrast")

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def two_sentences(text: str) -> str:
    """At most the first two sentences of ``text``, whitespace collapsed."""
    parts = _SENTENCE_END.split(" ".join(text.split()))
    return " ".join(parts[:2])


def demo_patch(action: str) -> Patch:
    """The right action, stated."""
    return Patch("demo", f"The expert's action here is {action}.", action)


def hint_patch(diagnosis: str, action: str | None) -> Patch:
    """The teacher's diagnosis, cut to two sentences."""
    return Patch("hint", two_sentences(diagnosis), action)


def contrast_patch(student_action: str, action: str) -> Patch:
    """The student's action against the right one."""
    return Patch("contrast", f"Not {student_action}: {action} is the better action here.", action)
