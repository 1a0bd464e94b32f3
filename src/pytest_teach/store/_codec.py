"""Turn recorded values into JSON the store can hold, or fail with a message naming the field.

Recorded values come from people's agents: numpy arrays, dataclasses, tuples, PIL images. Each is
either converted cleanly or rejected with an :class:`EpisodeDataError` that names the field and
the path inside it, so one bad value fails one test and never reaches the store.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

__all__ = ["EpisodeDataError", "dumps", "loads", "to_jsonable"]


class EpisodeDataError(ValueError):
    """A value given to the episode recorder cannot be stored."""


_MAX_DEPTH = 64


def to_jsonable(value: Any, where: str, *, image_sink: Any = None) -> Any:
    """Return a JSON-compatible copy of ``value``.

    ``where`` names the field for error messages (``episode.step(observation=...)``).
    ``image_sink`` is a callable ``(image) -> dict`` that stores a PIL image as an artifact and
    returns a reference; without one, images are rejected.
    """
    return _convert(value, where, "", image_sink, 0)


def _fail(where: str, path: str, message: str) -> EpisodeDataError:
    at = f" at {path}" if path else ""
    return EpisodeDataError(f"{where}{at}: {message}")


def _convert(value: Any, where: str, path: str, image_sink: Any, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise _fail(where, path, f"nested deeper than {_MAX_DEPTH} levels (a cycle?)")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _fail(where, path, f"{value!r} is not a finite number; JSON cannot hold it")
        return float(value)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                if isinstance(key, (int, float, bool)):
                    key = str(key)
                else:
                    raise _fail(where, path, f"dict key {key!r} is not a string")
            out[key] = _convert(
                item, where, f"{path}.{key}" if path else key, image_sink, depth + 1
            )
        return out
    if isinstance(value, (list, tuple)):
        return [
            _convert(item, where, f"{path}[{i}]", image_sink, depth + 1)
            for i, item in enumerate(value)
        ]
    if isinstance(value, (set, frozenset)):
        items = [_convert(item, where, f"{path}{{}}", image_sink, depth + 1) for item in value]
        try:
            return sorted(items)
        except TypeError:
            return items
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise _fail(
            where,
            path,
            "bytes cannot be stored as JSON; decode them to text, or use episode.attach(name, data)",
        )
    if isinstance(value, enum.Enum):
        return _convert(value.value, where, path, image_sink, depth + 1)
    if isinstance(value, PurePath):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return _convert(fields, where, path, image_sink, depth + 1)
    kind = type(value)
    module = kind.__module__
    if module == "numpy" or module.startswith("numpy."):
        return _convert_numpy(value, where, path, image_sink, depth)
    if module.startswith("PIL.") and hasattr(value, "save") and hasattr(value, "size"):
        if image_sink is None:
            raise _fail(
                where, path, "images can't be stored here; pass it as screenshot= or attach()"
            )
        return image_sink(value)
    if hasattr(value, "model_dump") and callable(value.model_dump):  # pydantic models
        return _convert(value.model_dump(), where, path, image_sink, depth + 1)
    raise _fail(
        where,
        path,
        f"{kind.__qualname__} is not JSON-serialisable; convert it to str, dict or list first",
    )


def _convert_numpy(value: Any, where: str, path: str, image_sink: Any, depth: int) -> Any:
    if hasattr(value, "tolist"):
        dtype = getattr(value, "dtype", None)
        if dtype is not None and getattr(dtype, "kind", "") in "OVSUMmc" and dtype.kind != "U":
            if dtype.kind in "c":
                raise _fail(where, path, "complex numbers cannot be stored as JSON")
            if dtype.kind in "S":
                raise _fail(where, path, "numpy bytes cannot be stored; decode them to text")
        return _convert(value.tolist(), where, path, image_sink, depth + 1)
    raise _fail(where, path, f"numpy {type(value).__qualname__} is not JSON-serialisable")


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def dumps(value: Any) -> str:
    """Serialise an already JSON-compatible value compactly, keeping unicode as is."""
    return _ENCODER.encode(value)


def loads(text: str | None) -> Any:
    """Inverse of :func:`dumps`; ``None`` stays ``None``."""
    return None if text is None else json.loads(text)


EpisodeDataError.__module__ = "pytest_teach"
