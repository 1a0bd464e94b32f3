"""Errors that are the harness's or the infrastructure's fault, not the agent's.

A test that fails with one of these is recorded with outcome ``error`` and no label, so it never
becomes a training example of the agent needing intervention.
"""

from __future__ import annotations


class InfrastructureError(RuntimeError):
    """A failure outside the agent: a model endpoint down, a browser that won't start..."""
