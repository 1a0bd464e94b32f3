"""Sphinx configuration for the pytest-teach manual (``make docs``)."""

from __future__ import annotations

import importlib.metadata

project = "pytest-teach"
author = "The pytest-teach developers"
copyright = "2026, the pytest-teach developers"
release = importlib.metadata.version("pytest-teach")
version = release

extensions = ["myst_parser", "sphinx_click", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
exclude_patterns = ["_build"]
html_theme = "furo"
html_title = "pytest-teach"
html_static_path: list[str] = []
