"""How fast is ``pytest_teach.redaction.redact`` on report-sized text, and next to another
implementation of ``redact(text)``?

It builds a few MB of text like what a report shows (JSON observations, tracebacks, prose, shell
commands, URLs, hashes), with a secret in about one chunk in twenty, cuts it into chunks the way
the report does (long page dumps of 4,096 characters, short labels of under 256), and times
``redact`` over every chunk: the long chunks and, separately, the short ones with the cache
cleared between rounds (each round sees every short chunk once, as a report build does).

``--against FILE`` loads another module that defines ``redact(text)`` (for instance an earlier
version, ``git show REV:path > old.py``) and times it on the same chunks, alternating, so the
two can be compared on one machine; it also counts the secrets each leaves in the text.

Usage::

    .venv/bin/python benchmarks/redaction_speed.py [--mb 4] [--rounds 5] [--against FILE]
        [--json PATH]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from pytest_teach import redaction

_SECRETS = [
    "sk-proj-Zq8vN3pL0wXy7RtK2mB5cD9eF1gH4jSaQq8vN3pL0wXy7RtK2mB5",
    "ghp_0123456789abcdefghijABCDEFGHIJklmnop",
    "https://svc:Zq8vN3pL0wXy7RtK@api.internal/v1",
    "--token Zq8vN3pL0wXy7RtK2mB5cD9eF1gH4jSa",
    "Authorization: Bearer Zq8vN3pL0wXy7RtK2mB5cD9eF1gH4jSa",
    '"api_key": "Zq8vN3pL0wXy7RtK2mB5"',
]
_PIECES = [
    '{"url": "https://shop.example/cart?page=2", "title": "Your cart", "items": [1, 2, 3]}',
    'Traceback (most recent call last):\n  File "agent.py", line 42, in step\n'
    "    raise ValueError('no such element: button#submit')\n",
    "The agent clicked 'Add to cart' twice; the page showed 2 mugs instead of 1.",
    "run tool search --query 'weather in Oslo' --max-tokens 256 --temperature 0.2",
    "commit 3f2a9c1b4d5e6f708192a3b4c5d6e7f8091a2b3c on tests/test_shop.py::test_checkout[x]",
    "max_tokens=256 prompt_tokens: 1200 completion_tokens: 87 tokenizer=gpt2 monkey keyboard",
    "- button 'Checkout' [ref=e12]\n- link 'Continue shopping' [ref=e13]\n- textbox 'Search'\n",
]


def _corpus(megabytes: float, seed: int = 7) -> tuple[list[str], list[str], list[str]]:
    rng = random.Random(seed)
    long_chunks: list[str] = []
    short_chunks: list[str] = []
    target = int(megabytes * 1_000_000)
    size = 0
    while size < target:
        parts: list[str] = []
        while sum(map(len, parts)) < 4096:
            parts.append(rng.choice(_PIECES))
            if rng.random() < 0.05 / 8:
                parts.append(rng.choice(_SECRETS))
        chunk = " ".join(parts)[:4096]
        long_chunks.append(chunk)
        size += len(chunk)
        for _ in range(8):
            label = f"{rng.choice(_PIECES)[:200]} #{rng.randrange(10**9)}"
            short_chunks.append(label)
            size += len(label)
    return long_chunks, short_chunks, _SECRETS


def _time(fn: Callable[[str], str], chunks: list[str], clear: Callable[[], None] | None) -> float:
    if clear is not None:
        clear()
    start = time.perf_counter()
    for chunk in chunks:
        fn(chunk)
    return time.perf_counter() - start


def _load(path: str) -> Callable[[str], str]:
    spec = importlib.util.spec_from_file_location("other_redaction", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.redact


def _clear_of(fn: Callable[[str], str]) -> Callable[[], None]:
    cache = getattr(fn, "__globals__", {}).get("_redact_short")

    def clear() -> None:
        if cache is not None:
            cache.cache_clear()

    return clear


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=4.0, help="megabytes of text (default 4)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    parser.add_argument("--against", help="a module file defining redact(text) to compare with")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    long_chunks, short_chunks, secrets = _corpus(args.mb)
    total_mb = (sum(map(len, long_chunks)) + sum(map(len, short_chunks))) / 1e6
    impls: dict[str, Callable[[str], str]] = {"new": redaction.redact}
    if args.against:
        impls["other"] = _load(args.against)
    times: dict[str, dict[str, list[float]]] = {n: {"long": [], "short": []} for n in impls}
    for _ in range(args.rounds):
        for name, fn in impls.items():
            times[name]["long"].append(_time(fn, long_chunks, None))
            times[name]["short"].append(_time(fn, short_chunks, _clear_of(fn)))
    result: dict[str, object] = {
        "megabytes": round(total_mb, 2),
        "long_chunks": len(long_chunks),
        "short_chunks": len(short_chunks),
    }
    print(
        f"{total_mb:.2f} MB: {len(long_chunks)} chunks of 4,096 chars, {len(short_chunks)} labels"
    )
    for name, fn in impls.items():
        long_s = statistics.median(times[name]["long"])
        short_s = statistics.median(times[name]["short"])
        left = sum(1 for c in long_chunks for s in secrets if s in c and s in fn(c))
        result[name] = {
            "long_s": round(long_s, 4),
            "short_s": round(short_s, 4),
            "total_s": round(long_s + short_s, 4),
            "mb_per_s": round(total_mb / (long_s + short_s), 1),
            "secrets_left": left,
        }
        print(
            f"{name:>5}: {long_s * 1000:8.1f} ms long + {short_s * 1000:7.1f} ms labels = "
            f"{total_mb / (long_s + short_s):6.1f} MB/s; secrets left in the text: {left}"
        )
    if "other" in impls:
        ratio = result["new"]["total_s"] / result["other"]["total_s"]  # type: ignore[index]
        result["ratio_new_over_other"] = round(ratio, 3)
        print(f"ratio new/other: {ratio:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
