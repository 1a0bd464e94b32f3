"""The HTTP limit options every pytest-teach server's command shares (``--max-body``,
``--header-timeout``, ``--body-timeout``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ._http import DEFAULT_BODY_TIMEOUT, DEFAULT_HEADER_TIMEOUT, parse_size

__all__ = ["SizeType", "http_limit_options"]


class SizeType(click.ParamType):
    """A size in bytes: ``1048576``, ``512KB``, ``1MB``, ``4MiB``."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        try:
            return parse_size(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def http_limit_options(max_body: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--max-body``, ``--header-timeout`` and ``--body-timeout``, with ``max_body`` as the
    default size."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        command = click.option(
            "--body-timeout",
            type=click.FloatRange(min=0, min_open=True),
            default=DEFAULT_BODY_TIMEOUT,
            show_default=True,
            metavar="SECONDS",
            help="a request body must arrive within this; slower ones get 408 and are closed",
        )(command)
        command = click.option(
            "--header-timeout",
            type=click.FloatRange(min=0, min_open=True),
            default=DEFAULT_HEADER_TIMEOUT,
            show_default=True,
            metavar="SECONDS",
            help="a request's head (line and headers) must arrive within this; "
            "a silent or dripping client gets 408 and is closed",
        )(command)
        return click.option(
            "--max-body",
            type=SizeType(),
            default=max_body,
            show_default=True,
            metavar="SIZE",
            help="the largest request body (bytes, or 512KB, 1MB, 4MiB); larger ones get 413 "
            "without being read",
        )(command)

    return decorate
