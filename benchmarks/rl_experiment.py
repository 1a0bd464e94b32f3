"""Does multi-turn RL on the test suite help? The gridworld, three arms, several seeds.

For each seed a fresh tiny tool-calling model (:func:`pytest_teach.rl.write_tool_model`) is
warm-started by SFT on the BabyAI bot's demonstrations written as ``act`` tool calls, then:

- (a) ``sft``: the warm start alone;
- (b) ``binary``: SFT, then multi-turn GRPO (:func:`pytest_teach.rl.train_env_grpo`) with the
  reward of ``scenarios/minigrid/test_minigrid.py`` (1 on success, 0 otherwise);
- (c) ``graded``: the same GRPO with the reward of ``scenarios/minigrid/graded.py``, the share
  of its subtests passed (reached the goal, got closer, next to it, kept going).

Every model is evaluated greedily on held-out tasks: unseen seeds of the training level
(``MockGoTo``) and a held-out level (``MockPickup``, never trained on, not even by SFT). GRPO
runs in chunks of ``--eval-every`` steps, each chunk continuing from the last one's model (the
optimizer state restarts; the learning rate is constant), and held-out success is measured
after each chunk: the learning curve. Success rates are pooled over seeds and tasks with 95%
Wilson intervals; (b) and (c) are compared with (a) task by task (McNemar's exact test, and a
bootstrap interval of the paired difference).

Why RL does or doesn't help is reported beside it: per GRPO group, the spread of rewards (a
group whose rollouts all earn the same reward teaches nothing), and how often the model's turns
parse as tool calls (on the held-out evaluation, and TRL's own call frequency in training).

Throughput (rollouts per second, and the share of a rollout's time spent in generation, in
environment steps and in the reward) is measured on the warm-started model of the first seed:
``--throughput-rollouts`` rollouts sampled at temperature 1 on training tasks, generation timed
around ``model.generate``, environment steps around the tool call, the reward around the reward
pool's ``score`` (the scenario test replayed). Target: environment + reward < 20% of a rollout.

Each arm x seed result is cached as JSON under ``--cache`` (default ``.teach/bench/rl/``), keyed
by the configuration, so a rerun skips the cells already done. Usage::

    .venv/bin/python benchmarks/rl_experiment.py --quick      # a ~2 minute smoke run
    .venv/bin/python benchmarks/rl_experiment.py              # the full run (~30 min, 2 cores)
    .venv/bin/python benchmarks/rl_experiment.py --figure docs/images/rl-experiment.png

Prints a table (Markdown) and writes the figure (matplotlib, when installed) and a summary JSON
beside the cache.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BINARY_SUITE = str(ROOT / "scenarios" / "minigrid" / "test_minigrid.py")
GRADED_SUITE = str(ROOT / "scenarios" / "minigrid" / "graded.py")
ARMS = ("sft", "binary", "graded")
LABELS = {
    "sft": "(a) SFT warm start",
    "binary": "(b) SFT + GRPO, binary reward",
    "graded": "(c) SFT + GRPO, graded reward",
}

FULL = {
    "seeds": 3,
    "max_steps": 6,
    "demo_seeds": [100, 200],
    "train_seeds": [0, 24],
    "heldout_seeds": [1000, 1024],
    "heldout_level_seeds": [1000, 1016],
    "sft_steps": 60,
    "grpo_steps": 8,
    "eval_every": 4,
    "batch_tasks": 2,
    "generations": 4,
    "grpo_lr": 1e-3,
    "throughput_rollouts": 24,
}
QUICK = {
    **FULL,
    "seeds": 1,
    "demo_seeds": [100, 130],
    "heldout_seeds": [1000, 1004],
    "heldout_level_seeds": [1000, 1003],
    "sft_steps": 12,
    "grpo_steps": 1,
    "eval_every": 1,
    "throughput_rollouts": 4,
}
LEVEL, HELD_LEVEL = "MockGoTo", "MockPickup"


def solvable(level: str, seeds: range, max_steps: int) -> list[str]:
    """Task ids of ``seeds`` the BabyAI bot solves within ``max_steps`` (the others can't be
    won at all and would only dilute every arm alike)."""
    from pytest_teach.envs import minigrid as mg

    ids = []
    for seed in seeds:
        world = mg.make_world(level, seed, max_steps=max_steps)
        while not world.done:
            action = world.expert_action()
            if action is None:
                break
            world.step(action)
        if world.success:
            ids.append(f"{level}-s{seed}")
    return ids


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of ``k`` successes in ``n`` trials."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


# -- the policy, run greedily or sampled --------------------------------------------------------


class Policy:
    """A tool-calling model driving :class:`~pytest_teach.rl.GridworldEnv`, one turn at a time,
    the conversation built as TRL builds it (instructions, observation, then a tool call and its
    result per turn)."""

    def __init__(self, model_dir: Path) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from trl.chat_template_utils import add_response_schema

        from pytest_teach.rl import GridworldEnv, tool_schemas

        self.torch = torch
        self.tokenizer = add_response_schema(AutoTokenizer.from_pretrained(model_dir))
        self.model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
        self.tools = tool_schemas(GridworldEnv)
        self.instructions = GridworldEnv.instructions

    def turns(
        self, conversations: list[list[dict[str, Any]]], *, sample: bool
    ) -> tuple[list[dict | None], float]:
        """The model's next turn in each conversation (TRL's parse of it; ``None`` when it
        doesn't parse), generated as one left-padded batch, and the seconds it took."""
        from trl.chat_template_utils import parse_response

        tok, torch = self.tokenizer, self.torch
        prompts = [
            tok.apply_chat_template(
                m, tools=self.tools, add_generation_prompt=True, return_dict=False
            )
            for m in conversations
        ]
        width = max(len(p) for p in prompts)
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        started = time.perf_counter()
        with torch.no_grad():
            out = self.model.generate(
                ids,
                attention_mask=mask,
                max_new_tokens=48,
                do_sample=sample,
                temperature=1.0 if sample else None,
                top_p=None,
                top_k=None,
                pad_token_id=pad,
            )
        seconds = time.perf_counter() - started
        replies: list[dict | None] = []
        for prompt, row in zip(prompts, out[:, width:].tolist(), strict=True):
            if tok.eos_token_id in row:
                row = row[: row.index(tok.eos_token_id) + 1]
            try:
                replies.append(parse_response(tok, row, prefix=prompt))
            except Exception:  # noqa: BLE001 - a turn TRL can't parse is a turn without a call
                replies.append(None)
        return replies, seconds

    def rollout(
        self, env: Any, task: str, max_turns: int, *, sample: bool = False
    ) -> dict[str, Any]:
        """One episode; returns success, the turns, the parsed tool calls and the timings."""
        started = time.perf_counter()
        observation = env.reset(task=task)
        env_s = time.perf_counter() - started
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": self.instructions},
            {"role": "user", "content": observation},
        ]
        turns = parsed = 0
        gen_s = 0.0
        while not env._finished() and turns < max_turns:
            (reply,), seconds = self.turns([messages], sample=sample)
            gen_s += seconds
            turns += 1
            calls = (reply or {}).get("tool_calls") or []
            if not calls:
                break
            parsed += 1
            function = calls[0]["function"]
            arguments = function.get("arguments") or {}
            started = time.perf_counter()
            if function.get("name") == "act" and isinstance(arguments, dict):
                result = env.act(str(arguments.get("action", "")))
            else:
                result = json.dumps({"error": {"type": "unknown_tool"}})
            env_s += time.perf_counter() - started
            messages.append(
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [{"type": "function", "function": function}],
                }
            )
            messages.append({"role": "tool", "name": "act", "content": result})
        return {
            "task": task,
            "success": bool(env._succeeded()),
            "turns": turns,
            "parsed": parsed,
            "replies": env.replies,
            "gen_s": gen_s,
            "env_s": env_s,
        }


def evaluate(model_dir: Path, tasks: list[str], max_steps: int) -> dict[str, Any]:
    """Greedy held-out success of ``model_dir`` on ``tasks``, all tasks stepped together (one
    batched generation per turn); success as the world sees it, the verdict the scenario test
    gives. A turn without a parseable tool call ends that task's episode."""
    from pytest_teach.rl import GridworldEnv, RolloutContext

    policy = Policy(model_dir)
    context = RolloutContext(None, {t: t for t in tasks}, options={"max_steps": max_steps})
    envs = {t: GridworldEnv(context) for t in tasks}
    conversations = {
        t: [
            {"role": "system", "content": policy.instructions},
            {"role": "user", "content": envs[t].reset(task=t)},
        ]
        for t in tasks
    }
    active = list(tasks)
    turns = parsed = 0
    for _ in range(max_steps + 2):
        active = [t for t in active if not envs[t]._finished()]
        if not active:
            break
        replies, _ = policy.turns([conversations[t] for t in active], sample=False)
        still = []
        for task, reply in zip(active, replies, strict=True):
            turns += 1
            calls = (reply or {}).get("tool_calls") or []
            if not calls:
                continue
            parsed += 1
            function = calls[0]["function"]
            arguments = function.get("arguments") or {}
            if function.get("name") == "act" and isinstance(arguments, dict):
                result = envs[task].act(str(arguments.get("action", "")))
            else:
                result = json.dumps({"error": {"type": "unknown_tool"}})
            conversations[task] += [
                {"role": "assistant", "content": "", "tool_calls": [
                    {"type": "function", "function": function}]},
                {"role": "tool", "name": "act", "content": result},
            ]  # fmt: skip
            still.append(task)
        active = still
    results = {t: bool(envs[t]._succeeded()) for t in tasks}
    for env in envs.values():
        env._close()
    return {"success": results, "turns": turns, "parsed": parsed}


# -- the cells -----------------------------------------------------------------------------------


def config_key(cfg: dict[str, Any]) -> str:
    """A short hash of what makes a cell's result (the seed count aside)."""
    shown = {k: v for k, v in cfg.items() if k not in ("seeds", "throughput_rollouts")}
    return hashlib.sha256(json.dumps(shown, sort_keys=True).encode()).hexdigest()[:10]


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


def sft_cell(cell: Path, seed: int, cfg: dict[str, Any], tasks: dict[str, list[str]]) -> dict:
    """The warm start of ``seed`` (built once, reused by every arm) and its evaluation."""
    from pytest_teach import rl

    done = cell / "sft.json"
    if done.is_file() and (cell / "sft" / "config.json").is_file():
        return json.loads(done.read_text())
    started = time.perf_counter()
    demos = rl.oracle_demonstrations(
        rl.GridworldEnv, tasks["demo"], options={"max_steps": cfg["max_steps"]}
    )
    corpus = [m["content"] for r in demos for m in r["messages"] if m["content"]]
    corpus += [json.dumps(c["function"]) for r in demos for m in r["messages"]
               for c in m.get("tool_calls", [])] + [demos[0]["tools"]]  # fmt: skip
    base = rl.write_tool_model(
        cell / "base", corpus, vocab_size=1024, hidden_size=128, sliding_window=48, seed=seed
    )
    metrics = rl.warm_start(
        demos,
        base,
        cell / "sft",
        max_steps=cfg["sft_steps"],
        learning_rate=3e-3,
        batch_size=4,
        seed=seed,
    )
    ev = evaluate(cell / "sft", tasks["heldout"] + tasks["heldout_level"], cfg["max_steps"])
    result = {
        "arm": "sft",
        "seed": seed,
        "demos": len(demos),
        "sft_loss": metrics.get("loss"),
        "eval": ev,
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_json(done, result)
    return result


def grpo_cell(
    cell: Path, arm: str, seed: int, cfg: dict[str, Any], tasks: dict[str, list[str]], sft: dict
) -> dict:
    """GRPO from the warm start with the ``arm``'s reward, in chunks, evaluated after each."""
    from pytest_teach import rl

    done = cell / f"{arm}.json"
    if done.is_file():
        return json.loads(done.read_text())
    started = time.perf_counter()
    suite = BINARY_SUITE if arm == "binary" else GRADED_SUITE
    curve = [{"step": 0, "eval": sft["eval"]}]
    chunks = []
    previous = cell / "sft"
    step = 0
    while step < cfg["grpo_steps"]:
        k = min(cfg["eval_every"], cfg["grpo_steps"] - step)
        out = cell / f"{arm}-{step + k}"
        run = rl.train_env_grpo(
            "gridworld",
            out,
            tasks=tasks["train"],
            held_out=tasks["heldout"] + tasks["heldout_level"],
            suite=[suite],
            options={"max_steps": cfg["max_steps"]},
            base_model=previous,
            store=cell / f"{arm}.db",
            max_steps=k,
            batch_size=cfg["batch_tasks"],
            num_generations=cfg["generations"],
            max_completion_length=cfg.get("max_completion_length", 256),
            max_turns=cfg["max_steps"],
            learning_rate=cfg["grpo_lr"],
            workers=1,
            seed=seed * 1000 + step,
        )
        step += k
        groups = run.metrics.get("rollouts", {})
        chunks.append(
            {
                "step": step,
                "stats": run.stats,
                "metrics": {
                    key: value
                    for key, value in run.metrics.items()
                    if not isinstance(value, (list, dict))
                },
                "spreads": _spreads(cell / f"{arm}.db", run.session_id),
                "rollouts": groups.get("rollouts"),
            }
        )
        ev = evaluate(out, tasks["heldout"] + tasks["heldout_level"], cfg["max_steps"])
        curve.append({"step": step, "eval": ev})
        if previous != cell / "sft":
            shutil.rmtree(previous, ignore_errors=True)
        previous = out
    result = {
        "arm": arm,
        "seed": seed,
        "curve": curve,
        "chunks": chunks,
        "eval": curve[-1]["eval"],
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_json(done, result)
    return result


def _spreads(db: Path, session_id: str | None) -> list[float]:
    """The reward spread (population SD) of each GRPO group (a step's rollouts of one task)
    of the session's stored rollouts."""
    from pytest_teach import open_store

    groups: dict[tuple[int, str], list[float]] = {}
    store = open_store(db)
    try:
        for e in store.episodes():
            if e.session_id == session_id and e.reward is not None:
                groups.setdefault((e.meta["step"], e.meta["task"]), []).append(e.reward)
    finally:
        store.close()
    return [statistics.pstdev(v) for v in groups.values() if len(v) > 1]


# -- throughput ----------------------------------------------------------------------------------


def throughput(model_dir: Path, tasks: list[str], cfg: dict[str, Any], n: int) -> dict[str, Any]:
    """Rollouts per second of ``model_dir`` sampled on ``tasks`` and the share of their time in
    generation, environment steps and reward (the scenario test replayed in the reward pool)."""
    from pytest_teach.rewards import RewardPool
    from pytest_teach.rl import GridworldEnv, RolloutContext

    args = GridworldEnv._suite_args(tasks, {"max_steps": cfg["max_steps"]})
    policy = Policy(model_dir)
    out: dict[str, Any] = {}
    for name, suite in (("binary", BINARY_SUITE), ("graded", GRADED_SUITE)):
        with RewardPool([suite], workers=1, pytest_args=args, cwd=str(ROOT)) as pool:
            from pytest_teach.rl import task_of

            nodeids = {task_of(n): n for n in pool.nodeids}
            context = RolloutContext(pool, {t: nodeids[t] for t in tasks}, options={
                "max_steps": cfg["max_steps"]})  # fmt: skip
            env = GridworldEnv(context)
            gen = env_s = reward_s = 0.0
            rewards = []
            began = time.perf_counter()
            for i in range(n):
                r = policy.rollout(env, tasks[i % len(tasks)], cfg["max_steps"] + 2, sample=True)
                gen += r["gen_s"]
                env_s += r["env_s"]
                started = time.perf_counter()
                rewards.append(env.get_reward())
                reward_s += time.perf_counter() - started
            total = time.perf_counter() - began
            env._close()
        out[name] = {
            "rollouts": n,
            "seconds": round(total, 3),
            "rollouts_per_s": round(n / total, 3),
            "generation_share": round(gen / total, 4),
            "env_share": round(env_s / total, 4),
            "reward_share": round(reward_s / total, 4),
            "overhead_share": round((env_s + reward_s) / total, 4),
            "reward_ms_per_rollout": round(1000 * reward_s / n, 2),
            "env_ms_per_rollout": round(1000 * env_s / n, 2),
            "mean_reward": round(statistics.fmean(rewards), 3) if rewards else None,
        }
    return out


# -- the report ----------------------------------------------------------------------------------


def pooled(results: list[dict], group: str, tasks: dict[str, list[str]]) -> tuple[int, int]:
    """Successes and trials of ``results``' final evaluations on the ``group`` tasks."""
    k = n = 0
    for r in results:
        for task in tasks[group]:
            k += bool(r["eval"]["success"][task])
            n += 1
    return k, n


def paired(a: list[dict], b: list[dict], tasks: list[str]) -> dict[str, Any]:
    """(b) against (a), task by task over the seeds: McNemar's exact p and the bootstrap 95%
    interval of the mean paired difference."""
    from pytest_teach.compare import bootstrap_mean_diff_ci, mcnemar_exact

    by_seed = {r["seed"]: r for r in a}
    diffs = []
    only_b = only_a = 0
    for r in b:
        base = by_seed[r["seed"]]["eval"]["success"]
        for task in tasks:
            x, y = bool(base[task]), bool(r["eval"]["success"][task])
            diffs.append(float(y) - float(x))
            only_b += y and not x
            only_a += x and not y
    ci = bootstrap_mean_diff_ci(diffs)
    return {
        "diff": statistics.fmean(diffs) if diffs else None,
        "ci": ci,
        "gained": only_b,
        "lost": only_a,
        "p": mcnemar_exact(only_b, only_a),
    }


def report(
    cells: dict[str, list[dict]], tasks: dict[str, list[str]], tput: dict | None, cfg: dict
) -> tuple[str, dict[str, Any]]:
    """The Markdown table and the summary."""
    lines = [
        "| arm | held-out seeds (MockGoTo) | held-out level (MockPickup) | tool-call parse rate |",
        "|---|---|---|---|",
    ]
    summary: dict[str, Any] = {"config": cfg, "tasks": tasks, "arms": {}}
    for arm in ARMS:
        results = cells.get(arm) or []
        if not results:
            continue
        row = [LABELS[arm]]
        entry: dict[str, Any] = {"seeds": [r["seed"] for r in results]}
        for group in ("heldout", "heldout_level"):
            k, n = pooled(results, group, tasks)
            low, high = wilson(k, n)
            entry[group] = {"k": k, "n": n, "rate": k / n if n else None, "ci": [low, high]}
            row.append(f"{k}/{n} = {k / n:.0%} [{low:.0%}, {high:.0%}]" if n else "-")
        turns = sum(r["eval"]["turns"] for r in results)
        parsed = sum(r["eval"]["parsed"] for r in results)
        entry["parse_rate"] = parsed / turns if turns else None
        row.append(f"{parsed}/{turns} = {parsed / turns:.0%}" if turns else "-")
        if arm != "sft":
            spreads = [s for r in results for c in r["chunks"] for s in c["spreads"]]
            entry["groups"] = len(spreads)
            entry["groups_with_variance"] = sum(s > 0 for s in spreads)
            entry["mean_group_spread"] = statistics.fmean(spreads) if spreads else None
            entry["train_call_frequency"] = statistics.fmean(
                c["metrics"].get("tools_call_frequency", 0.0) for r in results for c in r["chunks"]
            )
            entry["train_reward"] = statistics.fmean(
                c["stats"].get("reward_mean") or 0.0 for r in results for c in r["chunks"]
            )
            entry["curve"] = _curve(results, tasks)
            if cells.get("sft"):
                entry["vs_sft"] = {
                    g: paired(cells["sft"], results, tasks[g]) for g in ("heldout", "heldout_level")
                }
        summary["arms"][arm] = entry
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "| GRPO arm | groups | with reward variance | mean group SD | train reward |"]
    lines += ["|---|---|---|---|---|"]
    for arm in ("binary", "graded"):
        e = summary["arms"].get(arm)
        if e:
            spread = e["mean_group_spread"]
            lines.append(
                f"| {LABELS[arm]} | {e['groups']} | {e['groups_with_variance']} "
                f"({e['groups_with_variance'] / max(e['groups'], 1):.0%}) | "
                f"{spread:.3f} | {e['train_reward']:.3f} |"
                if spread is not None
                else f"| {LABELS[arm]} | 0 | - | - | - |"
            )
    lines += ["", "| GRPO arm vs (a) | held-out seeds: diff [95% CI], gained/lost, p | "
              "held-out level: diff [95% CI], gained/lost, p |", "|---|---|---|"]  # fmt: skip
    for arm in ("binary", "graded"):
        vs = summary["arms"].get(arm, {}).get("vs_sft")
        if vs:
            cells_ = []
            for g in ("heldout", "heldout_level"):
                v = vs[g]
                lo, hi = v["ci"] or (0.0, 0.0)
                cells_.append(
                    f"{v['diff']:+.1%} [{lo:+.1%}, {hi:+.1%}], {v['gained']}/{v['lost']}, "
                    f"p = {v['p']:.2f}"
                )
            lines.append(f"| {LABELS[arm]} | " + " | ".join(cells_) + " |")
    training = _training_time(cells)
    if training:
        summary["grpo_time"] = training
        lines += [
            "",
            "| in GRPO training | rollouts | rollouts/s | environment | reward | env + reward |",
            "|---|---|---|---|---|---|",
        ]
        for arm, t in training.items():
            lines.append(
                f"| {LABELS[arm]} | {t['rollouts']} | {t['rollouts_per_s']:.2f} | "
                f"{t['env_share']:.1%} | {t['reward_share']:.1%} | {t['overhead_share']:.1%} |"
            )
    if tput:
        summary["throughput"] = tput
        lines += [
            "",
            "| reward | rollouts/s | generation | environment | reward | env + reward |",
            "|---|---|---|---|---|---|",
        ]
        for name, t in tput.items():
            lines.append(
                f"| {name} | {t['rollouts_per_s']:.2f} | {t['generation_share']:.1%} | "
                f"{t['env_share']:.1%} | {t['reward_share']:.1%} | {t['overhead_share']:.1%} |"
            )
    return "\n".join(lines), summary


def _training_time(cells: dict[str, list[dict]]) -> dict[str, dict[str, float]]:
    """Per GRPO arm: rollouts, their rate over the trainer's wall time, and the share of that
    time the environment's tool calls and the reward pool's scoring took (the rest is
    generation and the optimiser)."""
    out = {}
    for arm in ("binary", "graded"):
        chunks = [c for r in cells.get(arm) or [] for c in r["chunks"]]
        seconds = sum(c["metrics"].get("seconds") or 0.0 for c in chunks)
        if not seconds:
            continue
        env_s = sum(c["stats"]["env_seconds"] for c in chunks)
        reward_s = sum(c["stats"]["reward_seconds"] for c in chunks)
        rollouts = sum(c["stats"]["rollouts"] for c in chunks)
        out[arm] = {
            "rollouts": rollouts,
            "seconds": round(seconds, 1),
            "rollouts_per_s": rollouts / seconds,
            "env_share": env_s / seconds,
            "reward_share": reward_s / seconds,
            "overhead_share": (env_s + reward_s) / seconds,
        }
    return out


def _curve(results: list[dict], tasks: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Held-out success per GRPO step, pooled over seeds, with Wilson intervals."""
    steps = sorted({p["step"] for r in results for p in r["curve"]})
    points = []
    for step in steps:
        point: dict[str, Any] = {"step": step}
        for group in ("heldout", "heldout_level"):
            k = n = 0
            for r in results:
                for p in r["curve"]:
                    if p["step"] == step:
                        k += sum(bool(p["eval"]["success"][t]) for t in tasks[group])
                        n += len(tasks[group])
            point[group] = {"k": k, "n": n, "ci": list(wilson(k, n))}
        points.append(point)
    return points


def figure(summary: dict[str, Any], path: Path, title: str) -> bool:
    """The learning curves (held-out success over GRPO steps, with the SFT level) as a PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no figure", file=sys.stderr)
        return False
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    names = {"heldout": "held-out seeds (MockGoTo)", "heldout_level": "held-out level (MockPickup)"}
    for ax, group in zip(axes, ("heldout", "heldout_level"), strict=True):
        sft = summary["arms"].get("sft", {}).get(group)
        for arm, colour, shift in (("binary", "tab:blue", -0.06), ("graded", "tab:orange", 0.06)):
            curve = summary["arms"].get(arm, {}).get("curve")
            if not curve:
                continue
            xs = [p["step"] + shift for p in curve]  # shifted apart so equal points both show
            ys = [p[group]["k"] / p[group]["n"] for p in curve]
            lo = [p[group]["ci"][0] for p in curve]
            hi = [p[group]["ci"][1] for p in curve]
            ax.plot(xs, ys, marker="o", color=colour, label=LABELS[arm])
            ax.fill_between(xs, lo, hi, color=colour, alpha=0.15)
        if sft:
            ax.axhline(sft["rate"], color="grey", linestyle="--", label=LABELS["sft"])
            ax.axhspan(sft["ci"][0], sft["ci"][1], color="grey", alpha=0.08)
        ax.set_title(names[group])
        ax.set_xlabel("GRPO steps")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("greedy success (95% Wilson CI)")
    axes[0].legend(fontsize=8, loc="best")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a ~2 minute smoke run")
    parser.add_argument("--seeds", type=int, help="how many seeds (default 3, 1 with --quick)")
    parser.add_argument("--grpo-steps", type=int, help="GRPO steps per arm")
    parser.add_argument("--eval-every", type=int, help="GRPO steps between evaluations")
    parser.add_argument("--grpo-lr", type=float, help="GRPO learning rate (default 1e-3)")
    parser.add_argument(
        "--max-completion-length",
        type=int,
        help="a GRPO rollout's token budget, tool responses included (default 256)",
    )
    parser.add_argument("--cache", default=str(ROOT / ".teach" / "bench" / "rl"))
    parser.add_argument("--figure", help="write the learning-curve PNG here")
    parser.add_argument("--json", help="write the summary JSON here too")
    parser.add_argument("--no-throughput", action="store_true")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    cfg = dict(QUICK if args.quick else FULL)
    for key in ("seeds", "grpo_steps", "eval_every", "grpo_lr", "max_completion_length"):
        if getattr(args, key) is not None:  # a setting given joins the cache key
            cfg[key] = getattr(args, key)
    ms = cfg["max_steps"]
    tasks = {
        "demo": solvable(LEVEL, range(*cfg["demo_seeds"]), ms),
        "train": solvable(LEVEL, range(*cfg["train_seeds"]), ms),
        "heldout": solvable(LEVEL, range(*cfg["heldout_seeds"]), ms),
        "heldout_level": solvable(HELD_LEVEL, range(*cfg["heldout_level_seeds"]), ms),
    }
    assert not set(tasks["train"]) & set(tasks["heldout"] + tasks["demo"])
    key = ("quick-" if args.quick else "") + config_key(cfg)
    root = Path(args.cache) / key
    root.mkdir(parents=True, exist_ok=True)
    print(
        f"config {key}: {len(tasks['demo'])} demos, {len(tasks['train'])} training tasks, "
        f"{len(tasks['heldout'])} held-out seeds, {len(tasks['heldout_level'])} held-out-level "
        f"tasks; {cfg['seeds']} seed(s); cache {root}",
        flush=True,
    )
    began = time.perf_counter()
    cells: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    tput = None
    for seed in range(cfg["seeds"]):
        cell = root / f"seed{seed}"
        cell.mkdir(exist_ok=True)
        sft = sft_cell(cell, seed, cfg, tasks)
        cells["sft"].append(sft)
        print(f"seed {seed} sft: {_line(sft, tasks)} ({sft['seconds']}s)", flush=True)
        if seed == 0 and not args.no_throughput:
            done = root / "throughput.json"
            if done.is_file():
                tput = json.loads(done.read_text())
            else:
                tput = throughput(cell / "sft", tasks["train"], cfg, cfg["throughput_rollouts"])
                write_json(done, tput)
            print(f"throughput: {json.dumps(tput)}", flush=True)
        for arm in ("binary", "graded"):
            r = grpo_cell(cell, arm, seed, cfg, tasks, sft)
            cells[arm].append(r)
            print(f"seed {seed} {arm}: {_line(r, tasks)} ({r['seconds']}s)", flush=True)
    table, summary = report(cells, tasks, tput, cfg)
    summary["seconds"] = round(time.perf_counter() - began, 1)
    print()
    print(table)
    print(f"\n{summary['seconds']}s (cells already cached count as 0)")
    write_json(root / "summary.json", summary)
    if args.json:
        write_json(Path(args.json), summary)
    if args.figure:
        title = f"Gridworld, {cfg['seeds']} seed(s), {cfg['grpo_steps']} GRPO steps" + (
            " (--quick smoke run)" if args.quick else ""
        )
        if figure(summary, Path(args.figure), title):
            print(f"figure: {args.figure}")
    return 0


def _line(result: dict, tasks: dict[str, list[str]]) -> str:
    parts = []
    for group in ("heldout", "heldout_level"):
        k = sum(bool(result["eval"]["success"][t]) for t in tasks[group])
        parts.append(f"{group} {k}/{len(tasks[group])}")
    ev = result["eval"]
    parts.append(f"parsed {ev['parsed']}/{ev['turns']}")
    return ", ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
