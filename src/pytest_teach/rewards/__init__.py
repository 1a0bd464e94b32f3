"""Rewards from scenario checks: a suite's own pytest tests score completions for GRPO.

A scenario's test sends a prompt through the ``agent`` fixture and asserts on a check that
returns a :class:`~pytest_teach.Reward`. :class:`RewardPool` collects the suite with pytest
(parametrization, markers, ``-k``/``-m`` apply), captures each test's prompt, and scores
candidate completions by running the test with the ``agent`` answering the candidate, in
persistent worker processes whose fixtures stay warm. ``teach train grpo --suite PATH`` is built
on it. Importing this package is light; the workers import pytest and the suite.
"""

from ._pool import PoolStats, RewardPool, RewardPoolError, Score, Task, completion_text

__all__ = ["PoolStats", "RewardPool", "RewardPoolError", "Score", "Task", "completion_text"]
