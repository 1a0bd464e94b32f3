"""What does ``teach train sft``'s layer cost, against a plain TRL script doing the same steps?

One tiny local base (:func:`pytest_teach.train.sft.ensure_tiny_base`) and one JSONL of 64 chat
rows shaped like the ``tool_selection`` export (the planner prompt of each of the first 64
scenarios plus the canonical plan as the assistant turn) are built once. Two variants then train
on them, each in a fresh subprocess of this interpreter so both pay the same import costs:

- ``ours``: :func:`pytest_teach.train.sft.train_sft` with LoRA (validation of every row, the
  base loaded through our helpers, the CPU-safe config, the step callback, the save);
- ``plain``: the same steps written by hand -- ``AutoTokenizer``/``AutoModelForCausalLM`` in
  float32, a pad token, a peft ``LoraConfig`` (r=8, alpha=16, dropout 0, all linear layers), an
  ``SFTConfig`` with the fields our layer sets (no GPU: ``use_cpu``, no bf16, no reporting, no
  saving during training, activation checkpointing off, constant LR, ``logging_steps=1``,
  ``assistant_only_loss`` when the chat template marks generations, no packing), then
  ``SFTTrainer(...).train()``, ``save_model`` and the tokenizer saved beside it.

Two times are taken per run: the wall time of the whole subprocess (interpreter start, imports,
training, save) and the in-process time each worker reports, from loading the base to the saved
model (the heavy libraries are imported before that clock starts, in both). The variants
alternate (ours, plain, ours, plain...) for ``--rounds`` rounds; the medians and the ratio
ours/plain of each are printed. Target: ratio <= 1.05 for both.

Usage::

    .venv/bin/python benchmarks/train_overhead.py [--rounds 3] [--steps 10] [--json PATH]

Exit status: 0 normally (whatever the ratio), 1 when a check fails (a worker crashed, did not
run the steps, or saved no adapter).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_RATIO = 1.05
ROWS = 64
RESULT_PREFIX = "TRAIN_OVERHEAD_RESULT "


# ------------------------------------------------------------------------------------------------
# Workers (run in a subprocess)
# ------------------------------------------------------------------------------------------------


def _preimport() -> None:
    """Import the heavy libraries before the in-process clock starts (both variants)."""
    import datasets  # noqa: F401
    import peft  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401
    import trl  # noqa: F401


def worker_ours(opts: argparse.Namespace) -> dict[str, Any]:
    """Train through ``train_sft``; the in-process time spans the whole call."""
    _preimport()
    from pytest_teach.train.sft import train_sft

    started = time.perf_counter()
    metrics = train_sft(
        opts.data,
        opts.base,
        opts.out,
        max_steps=opts.steps,
        lora=True,
        learning_rate=opts.lr,
        batch_size=opts.batch_size,
        max_length=opts.max_length,
        seed=0,
    )
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "train_seconds": float(metrics["seconds"]),
        "steps": int(metrics["steps"]),
        "loss": float(metrics["loss"]),
        "assistant_only_loss": bool(metrics["assistant_only_loss"]),
    }


def worker_plain(opts: argparse.Namespace) -> dict[str, Any]:
    """The same steps with plain transformers/peft/TRL calls."""
    _preimport()
    import re

    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    started = time.perf_counter()
    rows = [json.loads(line) for line in Path(opts.data).read_text().splitlines() if line.strip()]
    tokenizer = AutoTokenizer.from_pretrained(opts.base)
    model = AutoModelForCausalLM.from_pretrained(opts.base, dtype=torch.float32)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    assistant_only = bool(re.search(r"{%-?\s*generation\s*-?%}", tokenizer.chat_template))
    peft_config = LoraConfig(
        r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"
    )
    gpu = torch.cuda.is_available()
    with tempfile.TemporaryDirectory(prefix=".plain-work.", dir=Path(opts.out).parent) as work:
        args = SFTConfig(
            output_dir=work,
            use_cpu=not gpu,
            bf16=gpu,
            fp16=False,
            report_to=[],
            save_strategy="no",
            push_to_hub=False,
            dataloader_num_workers=0,
            disable_tqdm=True,
            activation_checkpointing=False,
            max_steps=opts.steps,
            per_device_train_batch_size=min(opts.batch_size, len(rows)),
            gradient_accumulation_steps=1,
            learning_rate=opts.lr,
            lr_scheduler_type="constant",
            warmup_steps=0,
            logging_steps=1,
            max_length=opts.max_length,
            assistant_only_loss=assistant_only,
            packing=False,
            dataset_num_proc=None,
            seed=0,
            data_seed=0,
            dataloader_pin_memory=False,
            save_only_model=True,
        )
        trainer = SFTTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            peft_config=peft_config,
        )
        trainer.remove_callback(PrinterCallback)  # as ours: metrics are returned, not printed
        train_started = time.perf_counter()
        result = trainer.train()
        train_seconds = time.perf_counter() - train_started
        trainer.save_model(opts.out)
        tokenizer.save_pretrained(opts.out)
    seconds = time.perf_counter() - started
    losses = [float(e["loss"]) for e in trainer.state.log_history if "loss" in e]
    return {
        "seconds": seconds,
        "train_seconds": train_seconds,
        "steps": int(result.global_step),
        "loss": losses[-1] if losses else float(result.training_loss),
        "assistant_only_loss": assistant_only,
    }


# ------------------------------------------------------------------------------------------------
# Driver
# ------------------------------------------------------------------------------------------------


def build_inputs(root: Path) -> tuple[Path, Path]:
    """The tiny base and the chat JSONL (built once, shared by every run)."""
    from pytest_teach.envs.tool_selection import SCENARIOS, format_plan, planner_messages
    from pytest_teach.train.sft import ensure_tiny_base

    base = ensure_tiny_base(root / "cache")
    data = root / "tool_selection.jsonl"
    with data.open("w", encoding="utf-8") as fh:
        for s in SCENARIOS[:ROWS]:
            messages = planner_messages(s.query)
            messages.append({"role": "assistant", "content": format_plan(s.expected)})
            fh.write(json.dumps({"messages": messages}) + "\n")
    return base, data


def run_variant(variant: str, base: Path, data: Path, out: Path, opts: argparse.Namespace) -> dict:
    """One subprocess run: its wall time plus what the worker reports."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        variant,
        "--base",
        str(base),
        "--data",
        str(data),
        "--out",
        str(out),
        "--steps",
        str(opts.steps),
        "--batch-size",
        str(opts.batch_size),
        "--max-length",
        str(opts.max_length),
        "--lr",
        str(opts.lr),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - started
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"train_overhead: the {variant} worker failed (rc {proc.returncode})")
    result = json.loads(lines[-1][len(RESULT_PREFIX) :])
    if result["steps"] != opts.steps:
        raise SystemExit(f"train_overhead: {variant} ran {result['steps']} of {opts.steps} steps")
    if not (out / "adapter_config.json").is_file():
        raise SystemExit(f"train_overhead: {variant} saved no adapter in {out}")
    return {"wall": wall, **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--worker", choices=("ours", "plain"), help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)

    if opts.worker:
        result = (worker_ours if opts.worker == "ours" else worker_plain)(opts)
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return 0

    runs: dict[str, list[dict]] = {"ours": [], "plain": []}
    with tempfile.TemporaryDirectory(prefix="train-overhead.") as tmp:
        root = Path(tmp)
        base, data = build_inputs(root)
        for r in range(opts.rounds):
            for variant in ("ours", "plain"):
                out = root / f"out-{variant}-{r}"
                run = run_variant(variant, base, data, out, opts)
                runs[variant].append(run)
                print(
                    f"round {r + 1}/{opts.rounds} {variant:5s}: wall {run['wall']:.2f} s, "
                    f"in-process {run['seconds']:.2f} s (train {run['train_seconds']:.2f} s), "
                    f"loss {run['loss']:.4f}",
                    flush=True,
                )

    med = {
        v: {
            k: statistics.median(run[k] for run in rs) for k in ("wall", "seconds", "train_seconds")
        }
        for v, rs in runs.items()
    }
    ratio = {k: med["ours"][k] / med["plain"][k] for k in ("wall", "seconds", "train_seconds")}
    labels = {
        "wall": "subprocess wall",
        "seconds": "in-process (load..save)",
        "train_seconds": "trainer.train() only",
    }
    print(
        f"\n{opts.rounds} rounds, {opts.steps} steps, batch {opts.batch_size}, {ROWS} rows "
        f"(medians, seconds)"
    )
    for key, label in labels.items():
        verdict = (
            "" if key == "train_seconds" else ("  ok" if ratio[key] <= TARGET_RATIO else "  OVER")
        )
        print(
            f"  {label:24s} ours {med['ours'][key]:7.2f}  plain {med['plain'][key]:7.2f}  "
            f"ratio {ratio[key]:.3f}{verdict}"
        )
    print(f"  target ratio <= {TARGET_RATIO}")

    if opts.json:
        opts.json.write_text(
            json.dumps(
                {
                    "rounds": opts.rounds,
                    "steps": opts.steps,
                    "batch_size": opts.batch_size,
                    "max_length": opts.max_length,
                    "rows": ROWS,
                    "target_ratio": TARGET_RATIO,
                    "median": med,
                    "ratio": ratio,
                    "runs": runs,
                    "python": platform.python_version(),
                    "machine": platform.machine(),
                    "cpus": os.cpu_count(),
                },
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
