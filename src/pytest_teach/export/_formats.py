"""Export formats: one :class:`Exporter` subclass each, found by name in :data:`EXPORTERS`."""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .._util import (
    NothingWritten,
    WriteError,
    atomic_write_dir,
    atomic_write_lines,
    atomic_write_text,
    json_line,
)
from ..redaction import redact_value
from ..store import Episode
from ._steps import Message, corrections, prompt_of, reply_of, text_of, verdict

__all__ = [
    "EXPORTERS",
    "ExportError",
    "ExportResult",
    "Exporter",
    "NothingToExport",
    "atomic_write_dir",
    "atomic_write_lines",
    "atomic_write_text",
    "json_line",
    "writing",
]


class ExportError(Exception):
    """An export could not be written; nothing was left half-written."""


class NothingToExport(ExportError):
    """The export would hold no rows and an empty one was not allowed; nothing was written."""


@dataclass
class ExportResult:
    """What an export wrote."""

    format: str
    path: Path
    rows: int
    details: dict[str, Any] = field(default_factory=dict)


@contextmanager
def writing() -> Iterator[None]:
    """Around an atomic write: its errors become the export's own (:class:`NothingToExport`,
    :class:`ExportError`)."""
    try:
        yield
    except NothingWritten as exc:
        raise NothingToExport(str(exc)) from None
    except WriteError as exc:
        raise ExportError(str(exc)) from None


class Exporter(ABC):
    """One export format. Subclasses turn episodes into rows; writing is shared."""

    name: ClassVar[str]
    description: ClassVar[str]
    #: filters applied unless the caller gives its own value for them
    default_filters: ClassVar[dict[str, Any]] = {}

    @abstractmethod
    def rows(self, episodes: Iterable[Episode]) -> Iterator[dict[str, Any]]:
        """The rows this format writes for ``episodes``."""

    def write(
        self,
        episodes: Iterable[Episode],
        out: Path,
        context: dict[str, Any] | None = None,
        *,
        allow_empty: bool = True,
    ) -> ExportResult:
        """Write the rows as JSON Lines to ``out``, atomically. ``context`` describes the source
        (store path and filters) for formats that keep a manifest.

        Raises:
            NothingToExport: no rows and ``allow_empty`` is false; ``out`` is left as it was.
        """
        rows = (json_line(r) for r in self.rows(episodes))
        with writing():
            count = atomic_write_lines(out, rows, allow_empty=allow_empty)
        return ExportResult(self.name, out, count)


class ChatExporter(Exporter):
    """``{"messages": [...]}`` lines for OpenAI fine-tuning and TRL's SFTTrainer.

    Good steps become assistant turns: a step with its own ``messages`` is one row; steps without
    them chain into one conversation per episode, up to the first step that was not good.
    Corrections add a row with the corrected action as the reply.
    """

    name = "openai"
    description = "chat rows {messages} for OpenAI fine-tuning and TRL SFT"

    def rows(self, episodes: Iterable[Episode]) -> Iterator[dict[str, Any]]:
        for episode in episodes:
            chain: list[Message] = []
            chaining = True
            for step in episode.steps:
                good = verdict(episode, step) == "good"
                if step.messages:
                    if good:
                        yield {
                            "messages": [
                                *prompt_of(episode, step),
                                {"role": "assistant", "content": reply_of(step)},
                            ]
                        }
                    continue
                if chaining and good:
                    chain.append({"role": "user", "content": text_of(step.observation)})
                    chain.append({"role": "assistant", "content": text_of(step.action)})
                else:
                    chaining = False
            if chain:
                yield {"messages": chain}
            for step, correct in corrections(episode):
                yield {
                    "messages": [
                        *prompt_of(episode, step),
                        {"role": "assistant", "content": text_of(correct)},
                    ]
                }


class SFTExporter(ChatExporter):
    """The same rows as ``openai``, named for TRL's SFTTrainer."""

    name = "sft"
    description = "chat rows {messages} for TRL's SFTTrainer (same as openai)"


class DPOExporter(Exporter):
    """``{"prompt", "chosen", "rejected"}`` preference pairs in TRL's conversational format.

    Pairs come from corrections (correction chosen over the action taken) and from a good and a
    bad action taken on the same prompt (the most frequent good action is chosen).
    """

    name = "dpo"
    description = "preference pairs {prompt, chosen, rejected}"

    def rows(self, episodes: Iterable[Episode]) -> Iterator[dict[str, Any]]:
        seen: set[tuple[str, str, str]] = set()
        prompts: dict[str, list[Message]] = {}
        good: dict[str, Counter[str]] = {}
        bad: dict[str, list[str]] = {}

        def pair(key: str, chosen: str, rejected: str) -> Iterator[dict[str, Any]]:
            if chosen == rejected or (key, chosen, rejected) in seen:
                return
            seen.add((key, chosen, rejected))
            yield {
                "prompt": prompts[key],
                "chosen": [{"role": "assistant", "content": chosen}],
                "rejected": [{"role": "assistant", "content": rejected}],
            }

        for episode in episodes:
            for step in episode.steps:
                prompt = prompt_of(episode, step)
                key = json.dumps(prompt, ensure_ascii=False, sort_keys=True)
                prompts.setdefault(key, prompt)
                kind = verdict(episode, step)
                if kind == "good":
                    good.setdefault(key, Counter())[reply_of(step)] += 1
                elif kind == "bad":
                    bad.setdefault(key, []).append(reply_of(step))
            for step, correct in corrections(episode):
                prompt = prompt_of(episode, step)
                key = json.dumps(prompt, ensure_ascii=False, sort_keys=True)
                prompts.setdefault(key, prompt)
                good.setdefault(key, Counter())[text_of(correct)] += 1
                yield from pair(key, text_of(correct), reply_of(step))
        for key, rejected_all in bad.items():
            if key not in good:
                continue
            chosen = good[key].most_common(1)[0][0]
            for rejected in rejected_all:
                yield from pair(key, chosen, rejected)


class GRPOExporter(Exporter):
    """Prompt-only rows for GRPO, with the columns a reward function needs to find its check:
    ``scenario``, ``nodeid``, ``category``, and ``params``/``meta`` as JSON strings; and the
    recorded run's ``reward`` with its ``reward_components`` (a JSON string: a graded test's
    subtests by name, 1.0 passed and 0.0 failed)."""

    name = "grpo"
    description = "prompt-only rows with scenario id and metadata for reward functions"

    def rows(self, episodes: Iterable[Episode]) -> Iterator[dict[str, Any]]:
        seen: set[tuple[str, str]] = set()
        for episode in episodes:
            if not episode.steps:
                continue
            prompt = prompt_of(episode, episode.steps[0])
            key = (episode.scenario, json.dumps(prompt, ensure_ascii=False, sort_keys=True))
            if key in seen:
                continue
            seen.add(key)
            yield {
                "prompt": prompt,
                "scenario": episode.scenario,
                "nodeid": episode.nodeid,
                "category": episode.category or "",
                "params": json.dumps(
                    redact_value(episode.params), ensure_ascii=False, sort_keys=True
                ),
                "meta": json.dumps(redact_value(episode.meta), ensure_ascii=False, sort_keys=True),
                "reward": episode.reward,
                "reward_components": json.dumps(
                    episode.reward_components, ensure_ascii=False, sort_keys=True
                ),
                "episode_id": episode.id,
            }


def _episode_summary(episode: Episode) -> dict[str, Any]:
    return {
        "episode_id": episode.id,
        "scenario": episode.scenario,
        "nodeid": episode.nodeid,
        "category": episode.category,
        "model": episode.model,
        "session_id": episode.session_id,
        "label": episode.label,
        "reason": redact_value(episode.label_reason),
        "reward": episode.reward,
        "reward_components": episode.reward_components,
        "quality": episode.quality,
        "metrics": episode.metrics,
        "created_at": episode.created_at,
        "steps": [
            {
                "index": s.index,
                "observation": s.observation,
                "action": s.action,
                "label": verdict(episode, s),
                "correction": s.correction,
                "screenshot": s.screenshot,
                "error": redact_value(s.error),
            }
            for s in episode.steps
        ],
    }


class InterventionsExporter(Exporter):
    """A directory: ``interventions.json``, ``successes.json`` and ``manifest.json``."""

    name = "interventions"
    description = "directory of interventions.json, successes.json, manifest.json"

    def rows(self, episodes: Iterable[Episode]) -> Iterator[dict[str, Any]]:
        for episode in episodes:
            if episode.label is not None:
                yield _episode_summary(episode)

    def write(
        self,
        episodes: Iterable[Episode],
        out: Path,
        context: dict[str, Any] | None = None,
        *,
        allow_empty: bool = True,
    ) -> ExportResult:
        interventions: list[dict[str, Any]] = []
        successes: list[dict[str, Any]] = []
        sessions: set[str] = set()
        models: Counter[str] = Counter()
        scenarios: set[str] = set()
        for row in self.rows(episodes):
            (interventions if row["label"] == 1 else successes).append(row)
            if row["session_id"]:
                sessions.add(row["session_id"])
            models[row["model"] or "none"] += 1
            scenarios.add(row["scenario"])
        total = len(interventions) + len(successes)
        if total == 0 and not allow_empty:
            raise NothingToExport(f"nothing written to {out}")
        manifest = {
            "format": "interventions",
            "created_at": time.time(),
            "counts": {
                "interventions": len(interventions),
                "successes": len(successes),
                "total": total,
            },
            "balance": {
                "intervention_ratio": len(interventions) / total if total else None,
                "guidance": "aim for 60-70% interventions when training an intervention predictor",
            },
            "sources": {
                "sessions": sorted(sessions),
                "models": dict(models),
                "scenarios": len(scenarios),
                **(context or {}),
            },
        }

        def dump(value: Any) -> str:
            return json.dumps(value, ensure_ascii=False, indent=1) + "\n"

        with writing():
            atomic_write_dir(
                out,
                {
                    "interventions.json": dump(interventions),
                    "successes.json": dump(successes),
                    "manifest.json": dump(manifest),
                },
            )
        return ExportResult(self.name, out, total, {"manifest": manifest})


EXPORTERS: dict[str, type[Exporter]] = {
    cls.name: cls
    for cls in (ChatExporter, SFTExporter, DPOExporter, GRPOExporter, InterventionsExporter)
}
