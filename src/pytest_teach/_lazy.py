"""Lazy re-exports for packages whose modules import heavy libraries (Playwright, torch, ...).

A package lists which private module holds each public name; :func:`lazy_exports` gives it the
module-level ``__getattr__`` and ``__dir__`` that import that module on first use, so importing
the package itself costs next to nothing.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, Sequence[str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, whose ``exports`` map a submodule (``"_agents"``)
    to the public names it defines.

    Use it at the end of the package's ``__init__``::

        __getattr__, __dir__ = lazy_exports(__name__, {"_agents": ("Policy", "policy_for")})
    """
    where = {name: module for module, names in exports.items() for name in names}
    public = sorted(where)

    def __getattr__(name: str) -> Any:  # noqa: N807 - the module protocol's name
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:  # noqa: N807
        return sorted({*vars(sys.modules[package]), *public})

    return __getattr__, __dir__
