"""Agents under test, chosen by a model spec such as ``scripted:oracle``.

A spec is ``PROVIDER:NAME``. ``scripted`` agents are the deterministic or seeded-noisy baselines
that ship with each scenario family; each family turns an :class:`Agent` into its own policy.
"""

from ._spec import PROVIDERS, Agent, ModelSpec, ModelSpecError, parse_model_spec

__all__ = ["PROVIDERS", "Agent", "ModelSpec", "ModelSpecError", "parse_model_spec"]
