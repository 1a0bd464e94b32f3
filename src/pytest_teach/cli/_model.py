"""``teach model init-tiny`` (a tiny local model, built offline) and ``teach model list`` (the
registered specialists; also ``teach models list``)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import click

from ._common import DB_OPTION, TeachGroup, fail, open_db


@click.group("model", cls=TeachGroup)
def model() -> None:
    """Local models: build a tiny one offline, list the registered specialists."""


@model.command("init-tiny")
@click.option("--out", required=True, metavar="DIR", help="the model directory to write")
@click.option("--corpus", metavar="FILE", help="train the tokenizer on this text or .jsonl file")
@click.option(
    "--from-store", is_flag=True, help="train the tokenizer on the texts of the store (--db)"
)
@DB_OPTION
@click.option("--vocab-size", default=512, show_default=True, type=click.IntRange(min=259))
@click.option("--hidden-size", default=64, show_default=True, type=click.IntRange(min=2))
@click.option("--layers", default=2, show_default=True, type=click.IntRange(min=1))
@click.option("--heads", default=4, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--force", is_flag=True, help="replace DIR if it exists and is not empty")
@click.option(
    "--tools",
    is_flag=True,
    help="a chat template with tool calls in the format TRL's GRPO parses (Qwen2.5's "
    "<tool_call> JSON), for teach train grpo --env",
)
def init_tiny(
    out: str,
    corpus: str | None,
    from_store: bool,
    db: str,
    vocab_size: int,
    hidden_size: int,
    layers: int,
    heads: int,
    seed: int,
    force: bool,
    tools: bool,
) -> None:
    """Build a tiny random causal LM (Qwen2) and its byte-level BPE tokenizer, fully offline.

    The tokenizer has a ChatML chat template with generation markers, so TRL can train on
    assistant turns only. The result loads with AutoModelForCausalLM/AutoTokenizer
    .from_pretrained(DIR) and as --model hf:DIR. Nothing is downloaded.
    """
    if corpus and from_store:
        fail("--corpus and --from-store exclude each other: give one")
    target = Path(out).expanduser()
    if target.exists() and not target.is_dir():
        fail(f"--out {target} exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not force:
        fail(f"--out {target} exists and is not empty; pass --force to replace it")
    try:
        from ..train import corpus_from_file, corpus_from_store, write_tiny_model
    except ImportError as exc:  # pragma: no cover - the train extra is missing
        fail(f"building a model needs torch, transformers and tokenizers ({exc})")
    texts: list[str] | None = None
    source = "the built-in corpus"
    if corpus:
        try:
            texts = corpus_from_file(corpus)
        except ValueError as exc:
            fail(f"--corpus {exc}")
        source = f"{len(texts)} texts from {corpus}"
    elif from_store:
        with open_db(db) as store:
            texts = corpus_from_store(store)
        if not texts:
            fail(f"the store {db} has no texts to train a tokenizer on; record some episodes")
        source = f"{len(texts)} texts from the store {db}"
    build = write_tiny_model
    if tools:
        from ..rl import write_tool_model as build
    build(
        target,
        texts,
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_layers=layers,
        num_heads=heads,
        seed=seed,
    )
    config = json.loads((target / "config.json").read_text(encoding="utf-8"))
    click.echo(
        f"wrote a tiny {config.get('model_type', 'model')} to {target} "
        f"(vocab {config.get('vocab_size')}, hidden {config.get('hidden_size')}, "
        f"{config.get('num_hidden_layers')} layers; tokenizer from {source}"
        f"{'; a chat template with tool calls' if tools else ''}); "
        f"use it as --model hf:{target}"
    )


@click.command("list", cls=TeachGroup.command_class)
@DB_OPTION
@click.option("--agent", metavar="NAME", help="only this agent's specialists")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def list_models_cmd(db: str, agent: str | None, as_json: bool) -> None:
    """The registered specialist models, newest first, with the --model spec for each."""
    from ..pipeline import list_specialist_models

    with open_db(db) as store:
        models = list_specialist_models(store, agent=agent)
    if as_json:
        click.echo(json.dumps([vars(m) for m in models], indent=2, ensure_ascii=False))
        return
    if not models:
        click.echo(
            "no registered models"
            + (f" for agent {agent!r}" if agent else "")
            + "; register one with `teach pipeline register --run RUN`"
        )
        return
    for m in models:
        when = datetime.fromtimestamp(m.created_at, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")
        loss = m.metrics.get("loss")
        parts = [m.name, m.agent, when, m.kind, m.spec or m.path]
        if isinstance(loss, (int, float)):
            parts.append(f"loss={loss:.4f}")
        click.echo("  ".join(parts))


model.add_command(list_models_cmd)


@click.group("models", cls=TeachGroup)
def models() -> None:
    """The registered specialist models (same as `teach model list`)."""


models.add_command(list_models_cmd)
