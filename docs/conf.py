"""Sphinx configuration of the nnx documentation site (``nox -s docs``).

The guides are MyST markdown notebooks executed by myst-nb during the build; the API
reference is generated from each package's ``__all__`` by ``_ext/nnx_api.py``.
Warnings are errors (``sphinx-build -W``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).parent.resolve()
sys.path.insert(0, str(HERE / "_ext"))

import nnx  # noqa: E402

project = "nnx"
author = "the nnx authors"
copyright = "the nnx authors"
release = version = nnx.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx_copybutton",
    "nnx_api",
]

exclude_patterns = ["_build", "**.ipynb_checkpoints", "README.md", "images/*.py"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
master_doc = root_doc = "index"

# --- HTML -----------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = f"nnx {release}"
html_theme_options = {
    "show_toc_level": 2,
    "repository_url": "",
    "navigation_with_keys": False,
}
html_static_path: list[str] = []
html_show_sourcelink = False
html_last_updated_fmt = None

# --- autodoc / napoleon ---------------------------------------------------------------
# Docstrings are Google style ("Args:", "Returns:", "Example::").
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True
# Types go into the parameter lists; signatures stay readable.
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
autodoc_typehints_format = "short"
autodoc_member_order = "bysource"
# (preserve_defaults cannot parse every def line, e.g. a "# type: ignore" comment in it)
autodoc_preserve_defaults = False
autodoc_inherit_docstrings = False
autodoc_class_signature = "mixed"
# Show the packages' type aliases by name instead of expanding them into long unions.
autodoc_type_aliases = {
    name: name
    for name in [
        "AnyMesh",
        "ArrayMode",
        "Axes",
        "ConvGeneralDilatedT",
        "DotGeneralT",
        "Dtype",
        "DtypeLikeInexact",
        "EinsumT",
        "Filter",
        "Initializer",
        "IsLeafCallable",
        "LaxPadding",
        "Layout",
        "LogicalRules",
        "MeshAxes",
        "Padding",
        "PaddingLike",
        "Path",
        "PathLike",
        "PathParts",
        "PrecisionLike",
        "Predicate",
        "PromoteDtypeFn",
        "SeedLike",
        "Shape",
    ]
}
add_module_names = False
python_use_unqualified_type_names = True
# A reference that does not resolve stays plain text, not a warning.
nitpicky = False
suppress_warnings = [
    # jax/optax/numpy type hints that autodoc cannot resolve to a documented object.
    "autodoc.import_object",
    # The same jax-wrapped function may appear under two names (e.g. relu/relu6).
    "ref.python",
    # myst-nb: notebook outputs with mime types the HTML builder does not show.
    "mystnb.unknown_mime_type",
]

# --- myst / myst-nb -------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist", "dollarmath"]
myst_heading_anchors = 3
# Every guide runs during the build (a fresh kernel per notebook); an error in a cell
# fails the build. NNX_DOCS_EXECUTE=cache reuses results between local builds.
nb_execution_mode = os.environ.get("NNX_DOCS_EXECUTE", "force")
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True
# Markdown outputs (the generated tables) are parsed as MyST, which has tables.
nb_render_markdown_format = "myst"
nb_kernel_rgx_aliases = {".*": "python3"}
# The kernels find the checkout's packages and run on CPU with quiet logs.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
