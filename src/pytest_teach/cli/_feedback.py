"""``teach feedback add|list``: human ratings and corrections on recorded episodes."""

from __future__ import annotations

import json

import click

from ._common import DB_OPTION, TeachGroup, open_db, parse_json


def _aspects(values: tuple[str, ...]) -> dict[str, int]:
    out: dict[str, int] = {}
    for raw in values:
        name, sep, score = raw.partition("=")
        if not sep or not name.strip() or not score.strip().isdigit() or not 1 <= int(score) <= 5:
            raise click.BadParameter(f"{raw!r} is not NAME=1..5", param_hint="--aspect")
        out[name.strip()] = int(score)
    return out


@click.group(cls=TeachGroup)
def feedback() -> None:
    """Add and list human feedback on recorded episodes."""


@feedback.command("add")
@DB_OPTION
@click.option("--example", required=True, metavar="ID", help="episode id (a unique prefix works)")
@click.option("--rating", type=click.IntRange(1, 5), help="overall rating, 1 (bad) to 5 (good)")
@click.option(
    "--aspect", "aspects", multiple=True, metavar="NAME=1..5", help="rate one aspect (repeatable)"
)
@click.option("--comment", help="free text")
@click.option("--suggested-action", metavar="JSON", help="what the agent should have done overall")
@click.option(
    "--step", type=int, metavar="N", help="the step being corrected (with --correct-action)"
)
@click.option("--correct-action", metavar="JSON", help="the right action at --step")
def add(
    db: str,
    example: str,
    rating: int | None,
    aspects: tuple[str, ...],
    comment: str | None,
    suggested_action: str | None,
    step: int | None,
    correct_action: str | None,
) -> None:
    """Rate an episode, or correct one of its steps.

    A rating of 1-2 marks the run's steps bad and 4-5 good in exports. A step correction becomes
    a DPO pair (the correction chosen over what the agent did) and a good SFT example.
    """
    parsed_aspects = _aspects(aspects)
    suggested = parse_json(suggested_action, "--suggested-action")
    correct = parse_json(correct_action, "--correct-action")
    with open_db(db) as store:
        fb = store.add_feedback(
            example,
            rating=rating,
            aspects=parsed_aspects,
            comment=comment,
            suggested_action=suggested,
            step=step,
            correct_action=correct,
        )
    target = f"{fb.episode_id}" + (f" step {fb.step}" if fb.step is not None else "")
    click.echo(f"feedback #{fb.id} added to {target}")


@feedback.command("list")
@DB_OPTION
@click.option("--example", metavar="ID", help="only this episode's feedback")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def list_(db: str, example: str | None, as_json: bool) -> None:
    """List feedback, oldest first."""
    from ..report import render_feedback

    with open_db(db) as store:
        items = store.feedback(example)
    if as_json:
        click.echo(json.dumps([vars(f) for f in items], indent=2, ensure_ascii=False))
        return
    click.echo(render_feedback(items))
