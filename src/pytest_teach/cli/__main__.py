"""``python -m pytest_teach.cli``: the ``teach`` command."""

from . import main

if __name__ == "__main__":
    main()
