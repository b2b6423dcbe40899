"""``.. nnx-api:: PACKAGE``: the API reference of a package, generated from its ``__all__``.

Each public name of the package gets one autodoc entry (classes, functions, data),
grouped by kind; public submodules (``nnx_nn.initializers``, ``nnx_optim.metrics``,
``nnx.nn``, ...) get a section each. An object is described once, on the page of the
first package that exports it (packages are visited in ``CANONICAL_ORDER``); every other
place that re-exports it (the ``nnx`` namespace, ``nnx_nn.nn``) shows a summary table
whose rows link to that description. Names added to an ``__all__`` appear on the next
build without editing the pages.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import pkgutil
import re
import types
import typing as tp

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

# Packages whose pages hold the descriptions, in order of precedence.
CANONICAL_ORDER = ("nnx_graph", "nnx_nn", "nnx_optim", "nnx_viz", "nnx")

# Section underlines for nesting depth 0, 1, 2 inside the directive.
_UNDERLINES = ("-", "~", "^")


def _public_names(module: types.ModuleType) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n in vars(module) if not n.startswith("_")]
    return [n for n in names if n != "__version__" and hasattr(module, n)]


def _load_public_submodules(package: str) -> None:
    """Import every public submodule of ``package`` up front: the packages load some
    of them on first access, and the page must not depend on what happened to be
    imported before it was rendered (an object would be described twice)."""
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, f"{package}."):
        if not any(part.startswith("_") for part in info.name.split(".")[1:]):
            importlib.import_module(info.name)
    for name in dir(root):  # lazily loaded attributes (``nnx.graphlib``, ...)
        if not name.startswith("_"):
            getattr(root, name)


def _submodules(module: types.ModuleType) -> list[tuple[str, types.ModuleType]]:
    """Public submodules reachable as attributes of ``module`` and defined under the
    same top-level package (``nnx.nn`` may live in ``nnx_nn``: also accepted)."""
    found = []
    for name in sorted(dir(module)):
        value = getattr(module, name)
        if name.startswith("_") or not isinstance(value, types.ModuleType):
            continue
        if value.__name__.split(".")[0] not in CANONICAL_ORDER:
            continue
        found.append((name, value))
    return found


def _key(obj: object) -> int:
    return id(obj)


def _is_plain_value(obj: object) -> bool:
    return isinstance(obj, (str, bytes, int, float, bool, tuple, frozenset, type(None)))


def _canonical() -> dict[int, str]:
    """``id(object) -> dotted name`` of the entry that describes it."""
    where: dict[int, str] = {}

    def visit(module: types.ModuleType, dotted: str, depth: int) -> None:
        for name in _public_names(module):
            obj = getattr(module, name)
            if isinstance(obj, types.ModuleType) or _is_plain_value(obj):
                continue
            where.setdefault(_key(obj), f"{dotted}.{name}")
        if depth < 2:
            for name, sub in _submodules(module):
                visit(sub, f"{dotted}.{name}", depth + 1)

    for package in CANONICAL_ORDER:
        _load_public_submodules(package)
    for package in CANONICAL_ORDER:
        visit(importlib.import_module(package), package, 0)
    return where


def _kind(obj: object) -> str:
    if inspect.isclass(obj):
        return "class"
    if isinstance(obj, types.ModuleType):
        return "module"
    if callable(obj) and not isinstance(obj, tp.TypeVar):
        # Functions, jax-wrapped functions (jit/custom_jvp objects), partials.
        return "function"
    return "data"


_TITLES = {"class": "Classes", "function": "Functions", "data": "Other names"}


def _partial_doc(obj: functools.partial[tp.Any]) -> str:
    func = obj.func
    name = f"{getattr(func, '__module__', '')}.{getattr(func, '__qualname__', func)}"
    bound = ", ".join(f"``{k}={v!r}``" for k, v in obj.keywords.items())
    doc = f":py:obj:`{name.lstrip('.')}` with {bound or 'arguments'} bound."
    original = inspect.getdoc(func)
    return f"{doc}\n\n{original}" if original else doc


def _doc(obj: object) -> str:
    if isinstance(obj, functools.partial) and obj.__doc__ == functools.partial.__doc__:
        return _partial_doc(obj)
    return inspect.getdoc(obj) or ""


def _summary(obj: object) -> str:
    """The docstring's first paragraph, shortened, as inline text safe in a table cell."""
    doc = _doc(obj)
    first = " ".join(doc.strip().split("\n\n")[0].split())
    if len(first) > 160:
        first = first[:157].rsplit(" ", 1)[0] + " ..."
    if first.count("``") % 2:  # the cut fell inside an inline literal
        first = first[: first.rindex("``")].rstrip() + " ..."
    if first.endswith("::"):
        first = first[:-1]
    return _fix_inline_literals(first).replace("|", "\\|")


# ``dict``s: an inline literal directly followed by a letter is not closed for docutils.
# (An opening ``...`` follows a space or punctuation and its text starts with no space.)
_LITERAL_SUFFIX = re.compile(r"(?<![\w`])(``[^`\s](?:[^`]*[^`\s])?``)(?=[A-Za-z0-9])")
# A wrapped list of parameter names ("use_bias, dtype,\n    rngs: ...") in an Args section.
_NAME_LIST = re.compile(r"^\s*\*{0,2}\w+(,\s*\*{0,2}\w+)*,$")
# The start of an entry of an Args section: "name:" or "a, b, *args:" or "name (type):".
_ENTRY = re.compile(r"^\s*\*{0,2}\w+(,\s*\*{0,2}\w+)*(\s*\([^)]*\))?:(\s|$)")


def _fix_inline_literals(text: str) -> str:
    return _LITERAL_SUFFIX.sub(r"\1\\ ", text)


def _tidy_docstring(
    app: Sphinx, what: str, name: str, obj: object, options: tp.Any, lines: list[str]
) -> None:
    """Make common docstring idioms valid reStructuredText before napoleon reads them."""
    if isinstance(obj, functools.partial) and obj.__doc__ == functools.partial.__doc__:
        lines[:] = _partial_doc(obj).splitlines()
    i = 0
    while i < len(lines):
        lines[i] = _fix_inline_literals(lines[i])
        if _NAME_LIST.match(lines[i]) and i + 1 < len(lines) and lines[i + 1].strip():
            lines[i] = lines[i] + " " + lines.pop(i + 1).strip()
            if not _NAME_LIST.match(lines[i]):
                # The description went on at the names' indentation: indent it under them.
                indent = _indent(lines[i])
                j = i + 1
                while (
                    j < len(lines)
                    and lines[j].strip()
                    and _indent(lines[j]) == indent
                    and not _ENTRY.match(lines[j])
                ):
                    lines[j] = "    " + lines[j]
                    j += 1
            continue
        i += 1


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _entry(kind: str, dotted: str, obj: object) -> list[str]:
    if kind == "class":
        return [f".. autoclass:: {dotted}", "   :members:", "   :show-inheritance:", ""]
    if kind == "function":
        return [f".. autofunction:: {dotted}", ""]
    if _is_plain_value(obj):
        return [f".. py:data:: {dotted}", f"   :value: {obj!r}", ""]
    return [f".. autodata:: {dotted}", "   :no-value:", ""]


def _link_table(rows: list[tuple[str, str, str]]) -> list[str]:
    """A two-column list-table: the name linking to its description, and its summary."""
    lines = [".. list-table::", "   :header-rows: 1", "   :widths: 30 70", ""]
    lines += ["   * - Name", "     - Description"]
    for name, target, summary in rows:
        lines += [f"   * - :py:obj:`{name} <{target}>`", f"     - {summary or ' '}"]
    return [*lines, ""]


def _link(name: str, target: str) -> str:
    return f":py:obj:`{name} <{target}>`"


def _module_lines(
    module: types.ModuleType, dotted: str, where: dict[int, str], depth: int
) -> list[str]:
    """RST for one (sub)module: its own entries, links for re-exports, submodules.

    At the top of a page re-exports get a table with their summaries; in submodules
    (mostly Flax-path aliases such as ``nnx.graphlib``) one paragraph of links.
    """
    lines: list[str] = []
    groups: dict[str, list[tuple[str, object]]] = {"class": [], "function": [], "data": []}
    linked: list[tuple[str, str, str]] = []
    for name in _public_names(module):
        obj = getattr(module, name)
        kind = _kind(obj)
        if kind == "module":
            continue
        target = where.get(_key(obj))
        if target is not None and target != f"{dotted}.{name}":
            linked.append((name, target, _summary(obj) if depth == 0 else ""))
        else:
            groups[kind].append((name, obj))

    underline = _UNDERLINES[min(depth, len(_UNDERLINES) - 1)]
    if linked and depth > 0:
        links = ", ".join(_link(name, target) for name, target, _ in linked)
        lines += [f"Re-exported here: {links}.", ""]
    for kind, members in groups.items():
        if not members:
            continue
        title = _TITLES[kind] if depth == 0 else f"{_TITLES[kind]} in ``{dotted}``"
        lines += [title, underline * len(title), ""]
        for name, obj in members:
            lines += _entry(kind, f"{dotted}.{name}", obj)
    if linked and depth == 0:
        title = "Re-exported names"
        lines += [title, underline * len(title), ""]
        lines += [
            "Described on the page of the package that defines them:",
            "",
            *_link_table(linked),
        ]
    if depth < 2:
        for name, sub in _submodules(module):
            sub_dotted = f"{dotted}.{name}"
            title = f"``{sub_dotted}``"
            lines += [title, underline * len(title), ""]
            if sub.__name__ != sub_dotted:
                lines += [f"``{sub_dotted}`` is ``{sub.__name__}``.", ""]
            if inspect.getdoc(sub):
                lines += [f".. automodule:: {sub_dotted}", "   :no-index:", ""]
            lines += _module_lines(sub, sub_dotted, where, depth + 1)
    return lines


class NnxApiDirective(SphinxDirective):
    """``.. nnx-api:: nnx_graph``: module docstring, then every public name."""

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        package = self.arguments[0]
        module = importlib.import_module(package)
        version = getattr(module, "__version__", None)
        lines = [f".. automodule:: {package}", ""]
        if version is not None:
            lines += [f"Version: ``{version}``.", ""]
        lines += _module_lines(module, package, _canonical(), 0)
        container = nodes.section()
        container.document = self.state.document
        nested_parse_with_titles(
            self.state, StringList(lines, source=f"<nnx-api {package}>"), container
        )
        return list(container.children)


def setup(app: Sphinx) -> dict[str, tp.Any]:
    app.add_directive("nnx-api", NnxApiDirective)
    # Before napoleon (priority 500) turns the Google sections into fields.
    app.connect("autodoc-process-docstring", _tidy_docstring, priority=400)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
