"""``teach view``: a local web viewer over the experience store, and a review queue whose
corrections become training data at once.

Pages: sessions, episodes (filtered, sorted and paged on the server), one episode as a timeline,
A/B pairs, and the review queue. Feedback given on a step is the same row ``teach feedback add``
writes, so ``teach export --format dpo`` turns a correction into a preference pair.

Importing this package loads no web framework: :func:`create_app` and :func:`serve_viewer` load
FastAPI on first use (the ``serve`` extra).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports
from ._security import TOKEN_ENV, ViewerError, check_bind, is_loopback

if TYPE_CHECKING:
    from ._app import CSP, PAGE_SIZE, create_app, serve_viewer

__all__ = [
    "CSP",
    "PAGE_SIZE",
    "TOKEN_ENV",
    "ViewerError",
    "check_bind",
    "create_app",
    "is_loopback",
    "serve_viewer",
]

__getattr__, __dir__ = lazy_exports(
    __name__, {"_app": ("CSP", "PAGE_SIZE", "create_app", "serve_viewer")}
)
