"""The story prompt a model answers, and strict parsing of its reply into HTML."""

from __future__ import annotations

import re

from ._intents import Intent

__all__ = ["SYSTEM_PROMPT", "StoryParseError", "format_reply", "parse_html", "story_messages"]

SYSTEM_PROMPT = (
    "You are a front-end engineer who builds accessible user interface components. Answer "
    "with one self-contained HTML snippet in a single ```html fenced code block and nothing "
    "else. The snippet is placed inside the <body> of an otherwise empty page: no <html>, "
    "<head> or <body> tags and no external resources (inline <style> and <script> only, no "
    "frameworks). Prefer semantic HTML elements and use WAI-ARIA only where HTML has no native "
    "element. Every control must be operable with the keyboard alone (Tab to focus, Enter or "
    "Space to activate) and expose its name, role and state. Hide inactive content with the "
    "hidden attribute; no animations, transitions or timers."
)


def story_messages(intent: Intent) -> list[dict[str, str]]:
    """The chat prompt for ``intent``: the system instructions and a user turn asking for one
    self-contained HTML snippet."""
    user = f"Build this UI component: {intent.title}.\n\n{intent.prompt}"
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def format_reply(html: str) -> str:
    """The canonical assistant reply for ``html``: one ```html fenced block."""
    return f"```html\n{html.strip()}\n```"


class StoryParseError(ValueError):
    """A model reply that is not one HTML snippet."""


_FENCE = re.compile(r"\A```[ \t]*html[ \t]*\n(?P<body>.*?)\n?```\Z", re.DOTALL | re.IGNORECASE)


def parse_html(reply: str) -> str:
    """Strictly parse a model reply into the HTML it contains.

    Accepted (surrounding whitespace aside): exactly one ```html fenced block and nothing else,
    or raw HTML that starts with ``<`` and ends with ``>``. The HTML must not be empty. Anything
    else (prose around the block, another language tag, two blocks, plain text) raises
    :class:`StoryParseError` saying what was wrong.
    """
    if not isinstance(reply, str):
        raise StoryParseError(f"reply must be a string, got {type(reply).__name__}")
    text = reply.strip()
    if not text:
        raise StoryParseError("empty reply: expected one ```html fenced block")
    if text.startswith("```"):
        match = _FENCE.match(text)
        if match is None:
            first = text.splitlines()[0]
            if text.count("```") > 2:
                raise StoryParseError("reply has more than one fenced block; give exactly one")
            if first.strip("`").strip().lower() != "html":
                raise StoryParseError(f"fenced block must be tagged html, got {first[:40]!r}")
            raise StoryParseError("unterminated ```html fenced block (no closing ```)")
        html = match.group("body").strip()
        if "```" in html:
            raise StoryParseError("reply has more than one fenced block; give exactly one")
    elif text.startswith("<"):
        html = text
    else:
        head = text[:60].replace("\n", " ")
        raise StoryParseError(
            f"reply is neither a ```html fenced block nor raw HTML starting with '<': {head!r}"
        )
    if not html.startswith("<") or not html.endswith(">"):
        raise StoryParseError(
            f"HTML must start with '<' and end with '>', got {html[:40]!r}...{html[-20:]!r}"
            if html
            else "the ```html block is empty"
        )
    return html
