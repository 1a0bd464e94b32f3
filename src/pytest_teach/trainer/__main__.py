"""``python -m pytest_teach.trainer serve ...``: ``teach trainer serve`` on its own."""

import click

from ._main import serve_command

if __name__ == "__main__":
    click.Group("trainer", commands=[serve_command]).main(prog_name="teach trainer")
