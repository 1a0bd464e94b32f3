"""What a model call costs: USD per 1M input/output tokens for common OpenAI models.

Unknown and local models cost 0. Set ``TEACH_PRICES`` to a JSON file mapping
``model -> {"input": USD_PER_1M, "output": USD_PER_1M}`` to add or override prices.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

__all__ = ["PRICES", "PRICES_ENV", "cost_usd", "load_prices", "price_for"]

PRICES_ENV = "TEACH_PRICES"

#: USD per 1M tokens (``input`` = prompt, ``output`` = completion), list prices.
PRICES: dict[str, dict[str, float]] = {
    "gpt-4o": {"input": 2.50, "output": 10.00},
    "gpt-4o-mini": {"input": 0.15, "output": 0.60},
    "gpt-4.1": {"input": 2.00, "output": 8.00},
    "gpt-4.1-mini": {"input": 0.40, "output": 1.60},
    "gpt-4.1-nano": {"input": 0.10, "output": 0.40},
    "gpt-4-turbo": {"input": 10.00, "output": 30.00},
    "gpt-3.5-turbo": {"input": 0.50, "output": 1.50},
    "o1": {"input": 15.00, "output": 60.00},
    "o3": {"input": 2.00, "output": 8.00},
    "o3-mini": {"input": 1.10, "output": 4.40},
    "o4-mini": {"input": 1.10, "output": 4.40},
}


def _read_overrides(path: str | Path) -> dict[str, dict[str, float]]:
    """Parse a price-override file; raise ValueError naming the file and what is wrong."""
    where = f"price file {str(path)!r} (env {PRICES_ENV})"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{where}: cannot read it: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{where}: malformed JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    if not isinstance(data, dict):
        raise ValueError(f'{where}: expected an object {{"MODEL": {{"input": x, "output": y}}}}')
    prices: dict[str, dict[str, float]] = {}
    for model, entry in data.items():
        if not isinstance(entry, dict):
            raise ValueError(f'{where}: {model!r} must be {{"input": x, "output": y}}')
        parsed: dict[str, float] = {}
        for side in ("input", "output"):
            value = entry.get(side, 0.0)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value < 0
            ):
                raise ValueError(
                    f"{where}: {model!r}.{side} must be a non-negative number (USD per 1M "
                    f"tokens), got {value!r}"
                )
            parsed[side] = float(value)
        extra = sorted(set(entry) - {"input", "output"})
        if extra:
            raise ValueError(f"{where}: {model!r} has unknown keys {extra}; use input/output")
        prices[model] = parsed
    return prices


def load_prices(path: str | Path | None = None) -> dict[str, dict[str, float]]:
    """The price table: :data:`PRICES` updated with the override file (``path`` or ``TEACH_PRICES``).

    Raises:
        ValueError: the override file is unreadable, not JSON or not a price table; the message
            names the file.
    """
    table = {model: dict(entry) for model, entry in PRICES.items()}
    path = path if path is not None else os.environ.get(PRICES_ENV) or None
    if path:
        table.update(_read_overrides(path))
    return table


def price_for(model: str, table: dict[str, dict[str, float]] | None = None) -> tuple[float, float]:
    """``(input, output)`` USD per 1M tokens for ``model``; ``(0, 0)`` when it isn't priced.

    An exact name wins; otherwise the longest priced name that ``model`` extends with a dash
    (``gpt-4o-mini-2024-07-18`` is priced as ``gpt-4o-mini``).
    """
    table = load_prices() if table is None else table
    entry = table.get(model)
    if entry is None:
        stems = [name for name in table if model.startswith(name + "-")]
        if stems:
            entry = table[max(stems, key=len)]
    if entry is None:
        return 0.0, 0.0
    return float(entry.get("input", 0.0)), float(entry.get("output", 0.0))


def cost_usd(
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    table: dict[str, dict[str, float]] | None = None,
) -> float:
    """The USD cost of one call with these token counts (0.0 for unpriced models)."""
    price_in, price_out = price_for(model, table)
    return (prompt_tokens * price_in + completion_tokens * price_out) / 1_000_000
