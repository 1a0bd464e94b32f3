"""``python -m pytest_teach.trainer serve ...``: the ``teach trainer`` group on its own."""

from ..cli._trainer import trainer

if __name__ == "__main__":
    trainer.main(prog_name="teach trainer")
