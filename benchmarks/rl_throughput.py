"""Multi-turn rollouts per second on the CPU, and where a rollout's time goes: generation,
environment steps, reward.

For each family (the gridworld, ``MockGoTo``; the browser, the bundled sites in Chromium) a
tiny tool-calling model (:func:`pytest_teach.rl.write_tool_model`, the shape of the RL
experiment's student, its tokenizer trained on the family's oracle demonstrations) plays ``--rollouts`` rollouts, the conversation built as TRL builds it.
So that every rollout is a full, successful episode whatever the untrained model would say,
each turn's action is the family's oracle's tool call, and the model generates exactly as many
tokens as that call takes (``min_new_tokens = max_new_tokens``) on the real prompt: the
generation cost of the policy's turn, without depending on its skill. Timed apart:

- generation: ``model.generate`` per turn (the prompt grows with each tool response);
- environment: ``reset`` and each tool call (the family's ``_step``: world step or Playwright
  action and snapshot), the oracle's planning excluded;
- reward: ``get_reward()``, the scenario's own test replaying the rollout in the reward pool (1
  worker, started before the clock).

Target: environment + reward under 20% of a rollout's time for the gridworld. Usage::

    .venv/bin/python benchmarks/rl_throughput.py [--family gridworld|browser|all]
        [--rollouts 12] [--json PATH]

The browser family needs Playwright's Chromium (``TEACH_CHROMIUM`` or ``/usr/bin/chromium``);
it is skipped with a line when the environment can't start.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def rollouts(family: str, scratch: Path, n: int, max_steps: int) -> dict[str, Any]:
    """``n`` oracle-driven rollouts of ``family`` with timed model generation per turn, by a
    tiny tool model whose tokenizer is trained on the family's oracle demonstrations (as the
    RL experiment's student is), built under ``scratch``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pytest_teach.rewards import RewardPool
    from pytest_teach.rl import (
        RolloutContext,
        oracle_demonstrations,
        resolve_env,
        task_of,
        tool_schemas,
        write_tool_model,
    )

    env_class = resolve_env(family)
    if family == "gridworld":
        from pytest_teach.rl import gridworld_task_ids

        tasks = gridworld_task_ids(["MockGoTo"], range(0, 8))
        options: dict[str, Any] = {"max_steps": max_steps, "oracle": True}
    else:
        from pytest_teach.rl import browser_task_ids

        tasks = browser_task_ids()
        options = {"oracle": True}
    demos = oracle_demonstrations(env_class, tasks[:4], options=options, successful_only=False)
    corpus = [m["content"] for r in demos for m in r["messages"] if m["content"]]
    corpus += [json.dumps(c["function"]) for r in demos for m in r["messages"]
               for c in m.get("tool_calls", [])] + [demos[0]["tools"]]  # fmt: skip
    model_dir = write_tool_model(
        scratch / family, corpus, vocab_size=1024, hidden_size=128, sliding_window=48
    )
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    limit = model.config.max_position_embeddings
    tools = tool_schemas(env_class)
    pytest_args = env_class._suite_args(tasks, options)
    with RewardPool([str(ROOT / env_class.suite)], workers=1, pytest_args=pytest_args,
                    cwd=str(ROOT)) as pool:  # fmt: skip
        nodeids = {task_of(n): n for n in pool.nodeids}
        tasks = [t for t in tasks if t in nodeids]
        context = RolloutContext(pool, {t: nodeids[t] for t in tasks}, options=options)
        env = env_class(context)
        gen = env_s = reward_s = 0.0
        turns = tokens = 0
        truncated = 0
        rewards = []
        began = time.perf_counter()
        for i in range(n):
            task = tasks[i % len(tasks)]
            started = time.perf_counter()
            observation = env.reset(task=task)
            env_s += time.perf_counter() - started
            messages: list[dict[str, Any]] = [
                {"role": "system", "content": env_class.instructions},
                {"role": "user", "content": observation},
            ]
            while not env._finished():
                call = env._oracle()
                if call is None:
                    break
                name, arguments = call
                turn = {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {"type": "function", "function": {"name": name, "arguments": arguments}}
                    ],
                }
                prompt = tokenizer.apply_chat_template(
                    messages, tools=tools, add_generation_prompt=True, return_dict=False
                )
                full = tokenizer.apply_chat_template(
                    [*messages, turn], tools=tools, return_dict=False
                )
                length = max(1, len(full) - len(prompt))
                if len(prompt) + length > limit:  # the model's window: keep the latest tokens
                    prompt = prompt[-(limit - length) :]
                    truncated += 1
                started = time.perf_counter()
                with torch.no_grad():
                    model.generate(
                        torch.tensor([prompt]),
                        min_new_tokens=length,
                        max_new_tokens=length,
                        do_sample=True,
                        pad_token_id=tokenizer.pad_token_id,
                    )
                gen += time.perf_counter() - started
                turns += 1
                tokens += length
                started = time.perf_counter()
                result = getattr(env, name)(**arguments)
                env_s += time.perf_counter() - started
                messages += [turn, {"role": "tool", "name": name, "content": result}]
            started = time.perf_counter()
            rewards.append(env.get_reward())
            reward_s += time.perf_counter() - started
        total = time.perf_counter() - began
        env._close()
    return {
        "family": family,
        "rollouts": n,
        "turns": turns,
        "generated_tokens": tokens,
        "prompts_truncated": truncated,
        "seconds": round(total, 3),
        "rollouts_per_s": round(n / total, 3),
        "generation_share": round(gen / total, 4),
        "env_share": round(env_s / total, 4),
        "reward_share": round(reward_s / total, 4),
        "overhead_share": round((env_s + reward_s) / total, 4),
        "env_ms_per_step": round(1000 * env_s / max(turns, 1), 2),
        "reward_ms_per_rollout": round(1000 * reward_s / n, 2),
        "mean_reward": round(statistics.fmean(r for r in rewards if r is not None), 3)
        if any(r is not None for r in rewards)
        else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", choices=("gridworld", "browser", "all"), default="all")
    parser.add_argument("--rollouts", type=int, default=12)
    parser.add_argument("--max-steps", type=int, default=6, help="the gridworld's step limit")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    families = ["gridworld", "browser"] if args.family == "all" else [args.family]
    results = []
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for family in families:
            try:
                result = rollouts(family, Path(tmp), args.rollouts, args.max_steps)
            except Exception as exc:  # noqa: BLE001 - a family that can't start is reported
                print(f"{family}: skipped ({type(exc).__name__}: {exc})", flush=True)
                continue
            results.append(result)
            print(json.dumps(result), flush=True)
    if families and "browser" in families:
        from pytest_teach.rl import close_browser

        close_browser()
    print()
    print("| family | rollouts/s | generation | environment | reward | env + reward |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['family']} | {r['rollouts_per_s']:.2f} | {r['generation_share']:.1%} | "
            f"{r['env_share']:.1%} | {r['reward_share']:.1%} | {r['overhead_share']:.1%} |"
        )
        if r["family"] == "gridworld" and r["overhead_share"] >= 0.20:
            print(f"gridworld: environment + reward is {r['overhead_share']:.1%} (target < 20%)")
            failed = True
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
