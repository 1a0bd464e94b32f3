"""The ``stories`` export: story runs as trajectories and DPO preference pairs, in one directory."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..store import Episode
from ._formats import (
    Exporter,
    ExportResult,
    NothingToExport,
    atomic_write_dir,
    json_line,
    writing,
)
from ._steps import Message, prompt_of, reply_of

__all__ = ["MIN_REWARD_GAP", "StoriesExporter"]

#: A preference pair needs the chosen generation's reward to beat the rejected one's by this.
MIN_REWARD_GAP = 0.1


def _generation(episode: Episode) -> tuple[list[Message], list[Message], str] | None:
    """(prompt, full conversation, reply) of a story episode's generation, or None when the
    episode is not a recorded story."""
    if not isinstance(episode.meta.get("story_result"), dict):
        return None
    steps = [step for step in episode.steps if step.messages] or episode.steps
    if not steps:
        return None
    step = steps[-1]
    prompt = prompt_of(episode, step)
    reply = reply_of(step)
    return prompt, [*prompt, {"role": "assistant", "content": reply}], reply


class StoriesExporter(Exporter):
    """A directory: ``trajectories.jsonl``, ``dpo-preferences.jsonl`` and ``manifest.json``.

    Each trajectory row is one story run: ``messages`` (the prompt and the generated reply),
    ``reward``, ``storyResult`` (the check's verdict: components, weights, axe violations,
    every check), ``intent``, ``model``, ``passed`` and ``episode_id``. Preference pairs
    (``prompt``, ``chosen``, ``rejected`` in TRL's conversational format) come from runs of the
    same prompt: the highest-reward generation is chosen over every other generation whose
    reward is at least :data:`MIN_REWARD_GAP` lower.
    """

    name = "stories"
    description = "directory of trajectories.jsonl, dpo-preferences.jsonl (story runs), manifest"

    def rows(self, episodes: Iterable[Episode]) -> Iterator[dict[str, Any]]:
        for episode in episodes:
            generation = _generation(episode)
            if generation is None:
                continue
            _, messages, _ = generation
            yield {
                "messages": messages,
                "reward": episode.reward,
                "storyResult": episode.meta["story_result"],
                "intent": episode.meta.get("intent") or episode.meta["story_result"].get("intent"),
                "model": episode.model,
                "passed": episode.label == 0,
                "episode_id": episode.id,
            }

    @staticmethod
    def pairs(trajectories: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Preference pairs from trajectory rows: per prompt, the best reply over each reply
        scoring at least :data:`MIN_REWARD_GAP` less (distinct replies only)."""
        by_prompt: dict[str, tuple[list[Message], dict[str, float]]] = {}
        for row in trajectories:
            if row["reward"] is None:
                continue
            prompt, reply = row["messages"][:-1], row["messages"][-1]["content"]
            key = json.dumps(prompt, ensure_ascii=False, sort_keys=True)
            replies = by_prompt.setdefault(key, (prompt, {}))[1]
            replies[reply] = max(replies.get(reply, row["reward"]), row["reward"])
        out: list[dict[str, Any]] = []
        for prompt, replies in by_prompt.values():
            best = max(replies, key=lambda reply: replies[reply])  # first seen wins a tie
            for reply, reward in replies.items():
                if replies[best] - reward >= MIN_REWARD_GAP - 1e-9:
                    out.append(
                        {
                            "prompt": prompt,
                            "chosen": [{"role": "assistant", "content": best}],
                            "rejected": [{"role": "assistant", "content": reply}],
                        }
                    )
        return out

    def write(
        self,
        episodes: Iterable[Episode],
        out: Path,
        context: dict[str, Any] | None = None,
        *,
        allow_empty: bool = True,
    ) -> ExportResult:
        """Write the directory atomically.

        Raises:
            NothingToExport: no story episode matched and ``allow_empty`` is false (nothing is
                written).
            ExportError: ``out`` can't be written.
        """
        context = context or {}
        trajectories = list(self.rows(episodes))
        if not trajectories and not allow_empty:
            where = f" in {context['db']}" if context.get("db") else ""
            raise NothingToExport(
                f"no story episodes to export{where}: record some with `pytest scenarios/stories "
                "--collect-training-data`, or loosen the filters (see `teach stats`)"
            )
        pairs = self.pairs(trajectories)
        models = Counter(row["model"] or "none" for row in trajectories)
        manifest = {
            "format": self.name,
            "created_at": time.time(),
            "counts": {
                "trajectories": len(trajectories),
                "passed": sum(row["passed"] for row in trajectories),
                "pairs": len(pairs),
                "intents": len({row["intent"] for row in trajectories}),
            },
            "min_reward_gap": MIN_REWARD_GAP,
            "sources": {"models": dict(models), **context},
        }
        with writing():
            atomic_write_dir(
                out,
                {
                    "trajectories.jsonl": "".join(json_line(row) for row in trajectories),
                    "dpo-preferences.jsonl": "".join(json_line(pair) for pair in pairs),
                    "manifest.json": json.dumps(manifest, ensure_ascii=False, indent=1) + "\n",
                },
            )
        return ExportResult(
            self.name, out, len(trajectories), {"pairs": len(pairs), "manifest": manifest}
        )
