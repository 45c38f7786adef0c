"""Sphinx configuration for the skvae documentation.

Build with::

    sphinx-build -W -b html docs docs/_build/html

The example gallery runs every ``examples/plot_*.py`` and embeds its figures.
To build without running them (a quick check of the prose and the API pages),
set ``SKVAE_DOCS_FAST=1`` or pass ``-D plot_gallery=0`` to ``sphinx-build``.
"""

import os
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent

# Build against the working tree, whether or not skvae is installed.
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DOCS / "sphinxext"))

# The examples run inside this process. One BLAS thread each keeps the build
# polite on small shared machines; set before numpy is first imported.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import skvae

# -- Project information -----------------------------------------------------

project = "skvae"
author = "The skvae developers"
copyright = "The skvae developers"
release = skvae.__version__
version = ".".join(release.split(".")[:2])

# -- General configuration ---------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
default_role = "literal"

# autosummary writes one page per public estimator into generated/.
autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": True}
autodoc_typehints = "none"

# The class template lists methods itself; numpydoc's own member tables would
# duplicate them and produce toctree warnings.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

# -- HTML output -------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"skvae {release}"
html_theme_options = {
    "navigation_depth": 2,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
html_sidebars = {"install": [], "quickstart": []}
html_show_sourcelink = False

# -- Example gallery ---------------------------------------------------------

_truthy = {"1", "true", "yes", "on"}
_fast = os.environ.get("SKVAE_DOCS_FAST", "").strip().lower() in _truthy

sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    # Run every plot_*.py file; others (if any) are shown without running.
    "filename_pattern": r"/plot_",
    "plot_gallery": "False" if _fast else "True",
    "within_subsection_order": "gallery_order.ExampleOrder",
    "doc_module": ("skvae",),
    "backreferences_dir": "generated/backreferences",
    "reference_url": {"skvae": None},
    "image_scrapers": ("matplotlib",),
    "remove_config_comments": True,
    "min_reported_time": 1,
    "show_signature": False,
}


# -- Docstring fix-ups -------------------------------------------------------

# A bare name with a trailing underscore is a reST reference ("target_"), so a
# type such as "ndarray of shape (n_samples, n_features_in_)" breaks the
# build. Escape such names where they close a shape tuple; names already in
# backquotes are left alone.
_SHAPE_NAME = re.compile(r"(?<![`\w\\])([A-Za-z]\w*)_(?=,?\))")


def _escape_trailing_underscores(app, what, name, obj, options, lines):
    for i, line in enumerate(lines):
        lines[i] = _SHAPE_NAME.sub(r"\1\\_", line)


def setup(app):
    # run before numpydoc (priority 500) turns the docstring into reST
    app.connect("autodoc-process-docstring", _escape_trailing_underscores, 400)
