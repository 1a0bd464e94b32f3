"""Which steps needed intervention: the labels the intervention predictor learns.

A step's label is 1 ("needs intervention") or 0, decided in this order:

1. Human feedback on the step (``teach feedback add --step N --correct-action JSON``): a
   correct action that differs from the one taken marks the step 1; the same action confirms
   it, 0.
2. The step's own label: ``bad`` is 1, ``good`` is 0.
3. A step of an episode that succeeded is 0.
4. In an episode that needed intervention, the steps from its *first mistake* on are 1 and the
   steps before it 0. The first mistake is the first step where the run leaves every *clean*
   successful run of the same scenario: its trajectory so far (page, action, step error, step by
   step) is no longer the beginning of any of them. The clean runs are the shortest successful
   ones, since a detour (a mistake, even one recovered from) makes a run longer. With no
   successful run of the scenario to compare with, only the last step (the failure itself) is 1.

A mistake that another run made and recovered from is still a mistake here: in the failing run
it is where a human should have stepped in (a loop's first repeat, well before the loop check
stops the run), while the run that recovered needed no one and keeps its 0s. Those steps look
the same in both runs, so the predictor learns how often such a mistake ends in failure, and
warning there is what the early warning is for.

Episodes recorded as ``error`` (infrastructure failures) have no labels. The real failure of an
episode that needed intervention is its last step: that is where the run was stopped (a loop,
``max_steps``) or ended in a state its check rejected, so the lead time of a warning is counted
to it.
"""

from __future__ import annotations

import functools
import json
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from ..store import Episode, Step

__all__ = ["LABELING", "KnownPaths", "action_target", "known_paths", "step_labels", "trajectory"]

#: the name and version of these rules, saved with a trained predictor
LABELING = "first-mistake/1"

#: scenario -> every prefix (a tuple of step signatures) of its clean successful runs
KnownPaths = dict[str, set[tuple[str, ...]]]


def action_target(step: Step) -> tuple[str | None, str]:
    """The role and accessible name of the element a browser action's ``ref`` names, looked up
    in the snapshot the agent acted on; ``(None, "")`` when there is none."""
    action, observation = step.action, step.observation
    if not (isinstance(action, dict) and isinstance(action.get("ref"), str)):
        return None, ""
    if not (isinstance(observation, dict) and isinstance(observation.get("snapshot"), str)):
        return None, ""
    return _targets(observation["snapshot"]).get(action["ref"], (None, ""))


@functools.lru_cache(maxsize=2048)
def _targets(snapshot: str) -> dict[str, tuple[str, str]]:
    """ref -> (role, name) of a snapshot; pages repeat across runs, so each is parsed once."""
    from ..envs.browser import parse_snapshot

    return {n.ref: (n.role, n.name or n.text) for n in parse_snapshot(snapshot) if n.ref}


def _signature(step: Step) -> str:
    """What the agent did at ``step``, independent of refs (which change between runs)."""
    action = step.action
    if isinstance(action, dict) and "ref" in action:
        role, name = action_target(step)
        action = {**{k: v for k, v in action.items() if k != "ref"}, "target": [role, name]}
    observation = step.observation
    where = observation.get("url") if isinstance(observation, dict) else observation
    error = (step.error or {}).get("type")
    return json.dumps([where, action, error], sort_keys=True, ensure_ascii=False, default=str)


def trajectory(episode: Episode) -> tuple[str, ...]:
    """The episode's steps as signatures: page, action (by target, not ref), step error."""
    return tuple(_signature(s) for s in episode.steps)


def known_paths(episodes: Iterable[Episode]) -> KnownPaths:
    """Every prefix of every clean successful run (the shortest of its scenario's successful
    runs), by scenario: the paths known to succeed without a detour."""
    successes: dict[str, list[tuple[str, ...]]] = defaultdict(list)
    for episode in episodes:
        if episode.label == 0:
            successes[episode.scenario].append(trajectory(episode))
    paths: KnownPaths = {}
    for scenario, runs in successes.items():
        shortest = min(map(len, runs))
        paths[scenario] = {
            run[:end] for run in runs if len(run) == shortest for end in range(1, len(run) + 1)
        }
    return paths


def _first_mistake(episode: Episode, paths: KnownPaths) -> int:
    last = len(episode.steps) - 1
    known = paths.get(episode.scenario)
    if not known:
        return last
    signatures = trajectory(episode)
    for end in range(1, len(signatures) + 1):
        if signatures[:end] not in known:
            return end - 1
    return last  # every step is on a clean path, yet the run failed: at its end


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def step_labels(episode: Episode, paths: KnownPaths) -> list[int | None]:
    """The label of each of the episode's steps (see the module docstring); ``None`` for every
    step of an episode without a label."""
    if episode.label not in (0, 1) or not episode.steps:
        return [None] * len(episode.steps)
    if episode.label == 0:
        labels = [0] * len(episode.steps)
    else:
        start = _first_mistake(episode, paths)
        labels = [int(i >= start) for i in range(len(episode.steps))]
    for i, step in enumerate(episode.steps):
        if step.label in ("good", "bad"):
            labels[i] = int(step.label == "bad")
    position = {s.index: i for i, s in enumerate(episode.steps)}
    for fb in episode.feedback:  # oldest first: the latest word wins
        if fb.step is not None and fb.correct_action is not None and fb.step in position:
            i = position[fb.step]
            labels[i] = int(_canonical(fb.correct_action) != _canonical(episode.steps[i].action))
    return labels
