"""Sphinx configuration: the API pages come from the docstrings."""
import os
import sys

sys.path.insert(0, os.path.abspath(".."))

import multi_lfilter  # noqa: E402

project = "multi_lfilter"
author = "multi_lfilter developers"
copyright = "2026, multi_lfilter developers (BSD-3-Clause)"
release = multi_lfilter.__version__
# MathJax is served with the docs (sphinx-mathjax-offline), so formulas render offline.
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx-mathjax-offline",
]
autodoc_typehints = "description"
autodoc_member_order = "bysource"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
html_theme = "alabaster"
exclude_patterns = ["_build"]
nitpicky = False
