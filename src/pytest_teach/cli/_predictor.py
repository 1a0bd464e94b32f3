"""``teach train encoder``, ``teach train predictor``, ``teach evaluate`` and ``teach
select-for-labeling``: the intervention predictor from the store, its honest evaluation, and the
steps to label next.

torch, open_clip, scikit-learn and matplotlib are imported inside the commands.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from ..predictor import DEFAULT_PREDICTOR_DIR as DEFAULT_OUTPUT
from ._common import DB_OPTION, DEFAULT_DB, TeachCommand, fail, open_db

_MODEL_OPTION = click.option(
    "--model",
    "model_path",
    metavar="PATH",
    help="the predictor: a directory from `teach train predictor` or its "
    "intervention_predictor.pt (default: the latest registered in the store, else "
    f"{DEFAULT_OUTPUT})",
)
_DEVICE_OPTION = click.option(
    "--device",
    type=click.Choice(["cpu", "cuda"]),
    default="cpu",
    show_default=True,
    help="where the models run",
)


@contextlib.contextmanager
def _one_line_warnings() -> Iterator[None]:
    """Warnings (a random visual tower, say) as one ``warning:`` line each on stderr."""
    ctx = click.get_current_context(silent=True)
    prefix = ctx.command_path if ctx is not None else "teach"

    def show(message: Any, *args: Any, **kwargs: Any) -> None:
        click.echo(f"{prefix}: warning: {message}", err=True)

    with warnings.catch_warnings():  # restores showwarning afterwards
        warnings.showwarning = show
        yield


class _EpochBars:
    """One tqdm bar per training phase, showing the epoch and its mean loss."""

    def __init__(self) -> None:
        self.bars: dict[str, Any] = {}

    def __call__(self, phase: str, epoch: int, epochs: int, loss: float) -> None:
        from tqdm import tqdm

        bar = self.bars.get(phase)
        if bar is None:
            bar = self.bars[phase] = tqdm(
                total=epochs, desc=f"{phase:<11}", unit="epoch", dynamic_ncols=True
            )
        if epoch == 0:
            return
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}")
        if epoch == epochs:
            bar.close()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def _training_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options `teach train encoder` and `teach train predictor` share."""
    options = [
        DB_OPTION,
        click.option(
            "--epochs-contrastive", type=click.IntRange(min=0), default=20, show_default=True
        ),
        click.option(
            "--batch-size",
            type=click.IntRange(min=1),
            default=4,
            show_default=True,
            help="episodes per batch (all their steps)",
        ),
        click.option(
            "--lr", type=click.FloatRange(0, 1, min_open=True), default=1e-4, show_default=True
        ),
        click.option(
            "--temperature",
            type=click.FloatRange(0, 10, min_open=True),
            default=0.07,
            show_default=True,
            help="the contrastive loss's temperature",
        ),
        _DEVICE_OPTION,
        click.option(
            "--output",
            "-o",
            default=str(DEFAULT_OUTPUT),
            show_default=True,
            metavar="DIR",
            help="where the checkpoints are written",
        ),
        click.option(
            "--clip-model", default="ViT-B-32", show_default=True, help="the open_clip visual tower"
        ),
        click.option(
            "--clip-pretrained",
            metavar="PATH|TAG",
            help="its weights: a local checkpoint file, or an open_clip tag where the network "
            "allows (default: random, with a warning)",
        ),
        click.option("--scenario", metavar="GLOB", help="only scenarios matching this glob"),
        click.option("--model", "models", multiple=True, metavar="SPEC", help="only these models"),
        click.option("--since", metavar="WHEN", help="only episodes since a date or span (7d)"),
        click.option("--seed", type=int, default=0, show_default=True),
    ]
    for option in reversed(options):
        command = option(command)
    return command


#: the phase-1 options a trained encoder (--encoder) already settled, by parameter name
_ENCODER_SETTLED = {
    "epochs_contrastive": "--epochs-contrastive",
    "temperature": "--temperature",
    "clip_model": "--clip-model",
    "clip_pretrained": "--clip-pretrained",
    "scenario": "--scenario",
    "models": "--model",
    "since": "--since",
}


def _training_config(options: dict[str, Any], epochs_predictor: int = 1) -> Any:
    from ..predictor import PredictorTrainingConfig, resolve_device

    return PredictorTrainingConfig(
        epochs_contrastive=options["epochs_contrastive"],
        epochs_predictor=epochs_predictor,
        batch_size=options["batch_size"],
        lr=options["lr"],
        temperature=options["temperature"],
        device=resolve_device(options["device"]),
        seed=options["seed"],
        clip_model=options["clip_model"],
        clip_pretrained=options["clip_pretrained"],
    )


def _filters(options: dict[str, Any]) -> dict[str, Any]:
    return {
        "scenario": options["scenario"],
        "model": list(options["models"]) or None,
        "since": options["since"],
    }


@click.command("encoder", cls=TeachCommand)
@_training_options
def encoder_cmd(db: str, output: str, **options: Any) -> None:
    """Train the experience encoder alone (phase 1 of `teach train predictor`): SupCon over
    screenshot, actions so far and page state, pulling apart the states that needed
    intervention and those that did not.

    The episodes are split by episode, stratified by label, and the split is saved with the
    encoder: `teach train predictor --encoder DIR` then trains the classifier on it, with the
    same held-out episodes.
    """
    from ..predictor import render_encoder_training, train_encoder

    bars = _EpochBars()
    with open_db(db) as store, _one_line_warnings():
        try:
            metrics = train_encoder(
                store, output, _training_config(options), filters=_filters(options), on_epoch=bars
            )
        finally:
            bars.close()
    click.echo(render_encoder_training(metrics, output))


@click.command("predictor", cls=TeachCommand)
@_training_options
@click.option("--epochs-predictor", type=click.IntRange(min=1), default=10, show_default=True)
@click.option(
    "--encoder",
    "encoder",
    metavar="PATH",
    help="a trained experience encoder (`teach train encoder`'s directory or its "
    "experience_encoder.pt): skip phase 1 and train the classifier on its split",
)
@click.option("--name", metavar="NAME", help="the registered model's name")
def predictor_cmd(
    db: str,
    output: str,
    epochs_predictor: int,
    encoder: str | None,
    name: str | None,
    **options: Any,
) -> None:
    """Train the intervention predictor: a contrastive experience encoder (SupCon over
    screenshot, actions so far and page state), then a classifier on the frozen encoder.

    The episodes are split by episode, stratified by label: the test episodes are held out
    for `teach evaluate` and the validation episodes choose the threshold. The result is
    registered in the store (`teach models list --agent intervention-predictor`) and runs
    live with `pytest --intervention-predictor DIR`.
    """
    from ..predictor import render_predictor_training, train_and_register_predictor

    if encoder is not None:
        ctx = click.get_current_context()
        given = [
            flag
            for key, flag in _ENCODER_SETTLED.items()
            if ctx.get_parameter_source(key) != click.core.ParameterSource.DEFAULT
        ]
        if given:
            fail(
                f"--encoder excludes {', '.join(given)}: the encoder's own settings and split apply"
            )
    cfg = _training_config(options, epochs_predictor)
    bars = _EpochBars()
    with open_db(db) as store, _one_line_warnings():
        try:
            metrics, registered = train_and_register_predictor(
                store,
                output,
                cfg,
                filters=_filters(options),
                on_epoch=bars,
                encoder=encoder,
                name=name,
            )
        finally:
            bars.close()
    click.echo(render_predictor_training(metrics, output, registered))


@click.command("evaluate", cls=TeachCommand)
@DB_OPTION
@_MODEL_OPTION
@click.option(
    "--output",
    "-o",
    metavar="DIR",
    help="where evaluation_metrics.json and the plots go (default: the model's directory)",
)
@_DEVICE_OPTION
@click.option("--json", "as_json", is_flag=True, help="print the metrics as JSON")
def evaluate_cmd(
    db: str, model_path: str | None, output: str | None, device: str, as_json: bool
) -> None:
    """Score the predictor on the episodes it held out, beside a logistic-regression baseline.

    Writes evaluation_metrics.json (accuracy, precision, recall, F1, ROC AUC, the confusion
    matrix, the threshold, and the early warnings' lead times, for both models),
    confusion_matrix.png and roc_curve.png.
    """
    from ..predictor import evaluate_predictor, load_predictor, predictor_path, render_evaluation

    with open_db(db) as store, _one_line_warnings():
        predictor = load_predictor(predictor_path(store, model_path), device=device)
        out = Path(output) if output else predictor.path.parent
        metrics = evaluate_predictor(store, predictor, out)
    if as_json:
        click.echo(json.dumps(metrics, indent=2))
        return
    click.echo(render_evaluation(metrics, out))


@click.command("select-for-labeling", cls=TeachCommand)
@DB_OPTION
@_MODEL_OPTION
@click.option("--k", "k", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--scenario", metavar="GLOB", help="only scenarios matching this glob")
@click.option("--since", metavar="WHEN", help="only episodes since a date or span (7d)")
@_DEVICE_OPTION
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def select_cmd(
    db: str,
    model_path: str | None,
    k: int,
    scenario: str | None,
    since: str | None,
    device: str,
    as_json: bool,
) -> None:
    """List the K unlabelled steps the predictor is least sure of, each with the `teach
    feedback add` line that labels it.

    Keep the action in that line to confirm the step was fine; put the action the agent should
    have taken instead to mark it as needing intervention (and record the correction). The next
    `teach train predictor` learns from both.
    """
    from ..predictor import (
        load_predictor,
        predictor_path,
        render_selection,
        select_for_labeling,
    )

    with open_db(db) as store, _one_line_warnings():
        predictor = load_predictor(predictor_path(store, model_path), device=device)
        picked = select_for_labeling(store, predictor, k, scenario=scenario, since=since)
    if as_json:
        click.echo(json.dumps([c.as_dict() for c in picked], indent=2, ensure_ascii=False))
        return
    click.echo(render_selection(picked, predictor.threshold, None if db == DEFAULT_DB else db))
