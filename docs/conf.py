"""Sphinx configuration of the opex_trio documentation (``nox -s docs`` builds it).

Pages are MyST Markdown; the API reference is autodoc, through the ``opex-api``
directive of ``_ext/opex_api.py``. Cross-references into trio's and Python's
documentation use the inventories in ``_inventories/`` (kept in the repository: the
build downloads nothing), written by ``_inventories/make.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent))

import opex_trio  # noqa: E402

project = "opex_trio"
author = "The opex_trio developers"
copyright = "The opex_trio developers"
release = opex_trio.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    # Docstrings list arguments and attributes under Google-style "Args:" and "Attributes:".
    "sphinx.ext.napoleon",
    "opex_api",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
# CONVENTIONS.md is for contributors, not the site.
exclude_patterns = ["_build", "_inventories", "CONVENTIONS.md", ".venv"]

myst_enable_extensions = ["colon_fence", "deflist"]
# Anchors for headings of levels 1 to 3, so `page.md#a-section` links resolve.
myst_heading_anchors = 3

napoleon_google_docstring = True
napoleon_numpy_docstring = False
# Attributes as fields of their class, not entries of their own (autodoc describes the
# attributes that have doc comments; a second entry would clash with it).
napoleon_use_ivar = True

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autodoc_inherit_docstrings = False
autodoc_class_signature = "mixed"

# Local inventories only: the build must not reach any host but 127.0.0.1.
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", str(HERE / "_inventories" / "python.inv")),
    "trio": ("https://trio.readthedocs.io/en/stable", str(HERE / "_inventories" / "trio.inv")),
}
intersphinx_timeout = 1

html_theme = "furo"
html_title = f"opex_trio {release}"
html_static_path: list[str] = []
html_show_sourcelink = False

nitpicky = True
# What the reference may name without an entry to link to:
nitpick_ignore_regex = [
    # libraries without a Sphinx inventory here (httpx2, hypothesis, temporalio, ...):
    # shown as code, unlinked
    (
        r"py:.*",
        r"(httpx2|hypothesis|temporalio|trio_websocket|h11|attrs?|jsonschema|opentelemetry|joserfc)(\..*)?",
    ),
    # private modules and classes that public signatures and docstrings mention
    (r"py:.*", r"(.*\.)?_[A-Za-z].*"),
    # type variables
    (r"py:class", r"(.*\.)?[A-Z]"),
    # pieces of a generic annotation that autodoc splits badly in dataclass signatures
    (r"py:class", r".*\[.*"),
]
