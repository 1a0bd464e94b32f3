"""The tiny LM student: a fresh tiny model fine-tuned on the BabyAI bot's demonstrations for a
short budget, so that it is imperfect.

1. **demos**: ``scripted:oracle`` on the gridworld suite, recorded (seeds from
   :data:`DEMO_SEED_START`, apart from the seeds the teachable phases mine).
2. **rows**: every demonstrated step as a chat row (its recorded prompt and the bot's action),
   plus, for a share of steps, the same step with a supervision patch in the prompt (demo,
   hint or contrast, made by the builders the contextual patch test uses), so the student has
   met advice before it is tested with it. Each step is replayed from its episode's seed and
   checked against the recorded observation.
3. **train**: :func:`~pytest_teach.pipeline.train_from_store` on the rows file, with a fresh
   :func:`~pytest_teach.train.build_tiny_model` base (tokenizer from the rows; TRL SFT, full
   fine-tuning, assistant-only loss).

The folder holds ``base/``, ``model/`` (use it as ``hf:DIR/model``), ``demos.jsonl``, the
demos' pytest log and ``student.json`` (what was built, from what, and the training metrics).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .._progress import Progress
from ..envs import minigrid as mg
from ._collect import Rollouts, collect
from ._files import TeachableError, write_json, write_rows
from ._mine import walk
from ._patches import contrast_patch, demo_patch, hint_patch

__all__ = ["DEMO_SEED_START", "StudentSettings", "build_student", "demo_rows"]

#: Demonstrations use seeds from here on; the phases mine from seed 0.
DEMO_SEED_START = 100_000

Echo = Callable[[str], None]


@dataclass(frozen=True)
class StudentSettings:
    """How the tiny student is built."""

    output: Path
    db: Path
    suite: str = "scenarios/minigrid"
    levels: tuple[str, ...] = tuple(mg.DEFAULT_LEVELS)
    episodes: int = 100  # demonstrations per level
    max_steps: int = 24
    mock: bool = False
    patch_share: float = 0.5
    steps: int = 600
    learning_rate: float = 3e-3
    batch_size: int = 16
    hidden_size: int = 64
    layers: int = 2
    heads: int = 4
    vocab_size: int = 512
    seed: int = 0


def demo_rows(db: Path, session: str, patch_share: float, seed: int) -> list[dict[str, Any]]:
    """The chat rows of a demonstration session (see the module docstring).

    Raises:
        TeachableError: a replayed step doesn't match what was recorded.
    """
    from ..store import Store

    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    with Store.open(db, create=False) as store:
        for episode in store.episodes(session=session, outcome="success"):
            for step, world in walk(episode):
                action = str(step.action)
                rows.append({"messages": step.messages})
                if rng.random() < patch_share:
                    kind = rng.choice(("demo", "hint", "contrast"))
                    if kind == "demo":
                        patch = demo_patch(action)
                    elif kind == "hint":
                        patch = hint_patch(mg.hint_for(world, action), action)
                    else:
                        wrong = rng.choice([a for a in mg.ACTIONS if a != action])
                        patch = contrast_patch(wrong, action)
                    messages = mg.build_messages(step.observation, patch)
                    rows.append({"messages": [*messages, {"role": "assistant", "content": action}]})
    return rows


def build_student(s: StudentSettings, echo: Echo = lambda line: None) -> dict[str, Any]:
    """Build the tiny student in ``s.output``; return what ``student.json`` records."""
    from ..pipeline import train_from_store
    from ..train import TrainSettings, build_tiny_model

    out = s.output
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rollouts = Rollouts(s.levels, s.episodes, DEMO_SEED_START, s.max_steps, s.mock)
    echo(
        f"[1/3 demos] scripted:oracle on {len(s.levels)} levels x {s.episodes} seeds "
        f"(from {DEMO_SEED_START}) -> {s.db}"
    )
    demos = collect(s.suite, s.db, "scripted:oracle", rollouts, out / "demos.log", echo=echo,
                    prefix="[1/3 demos] ")  # fmt: skip
    if demos.episodes == 0:
        raise TeachableError(f"the demonstrations recorded no episode; see {demos.log}")
    rows = demo_rows(s.db, demos.session, s.patch_share, s.seed)
    data = out / "demos.jsonl"
    write_rows(data, rows)
    patched = sum("\nAdvice: " in r["messages"][1]["content"] for r in rows)
    echo(
        f"            {demos.episodes} episodes, {len(rows)} rows ({patched} with a patch) "
        f"-> {data}"
    )

    def fresh_base(rows: list[dict]) -> str:
        corpus = [m["content"] for r in rows for m in r["messages"]]
        base = build_tiny_model(
            out / "base",
            corpus,
            vocab_size=s.vocab_size,
            hidden_size=s.hidden_size,
            num_layers=s.layers,
            num_heads=s.heads,
            seed=s.seed,
        )
        echo(
            f"[2/3 base]  a fresh tiny qwen2 (hidden {s.hidden_size}, {s.layers} layers, "
            f"{s.heads} heads), tokenizer from the rows -> {base}"
        )
        return str(base)

    every = max(1, s.steps // 6)
    trained = train_from_store(
        "sft",
        out / "model",
        TrainSettings(
            max_steps=s.steps,
            lora=False,
            learning_rate=s.learning_rate,
            batch_size=s.batch_size,
            max_length=512,
            seed=s.seed,
        ),
        data=data,
        base_model=fresh_base,
        announce=lambda plan: echo(
            f"[3/3 sft]   {plan.steps} steps, lr {s.learning_rate:g}, batch {s.batch_size}, full"
        ),
        echo=echo,
        progress=lambda steps: Progress(steps, echo=echo, prefix=" " * 12, every=every),
    )
    metrics = trained.metrics
    manifest = {
        "spec": f"hf:{(out / 'model').resolve()}",
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(s).items()},
        "demos": {
            "session": demos.session,
            "episodes": demos.episodes,
            "rows": len(rows),
            "patched_rows": patched,
        },
        "train": metrics,
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_json(out / "student.json", manifest)
    return manifest
