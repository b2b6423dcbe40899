"""API surface of ``nnx`` against ``flax.nnx`` 0.12.8.

Walks the public names of ``flax.nnx`` and of its public submodules (recursively:
``nnx.nn.*``, ``nnx.transforms.*``, ``nnx.training.*``, ``nnx.graphlib``, ...; not
``bridge``/``wrappers``, which need Linen) and checks, one test per name, that

* ``nnx`` has the same name at the same path, of the same kind (module, class,
  callable, TypeVar, value); a module path is importable (``import nnx.graphlib``);
* callables accept Flax's parameters: same names, kinds and defaults (extra nnx
  parameters are fine when they are optional);
* classes have Flax's public methods and properties (each with Flax's parameters)
  and subclass the nnx counterparts of their Flax base classes.

Checks listed in ``deliberate_differences.py`` are skipped.

What "public names of a submodule" means: names not starting with ``_`` that the
module itself defines (``obj.__module__`` is that module), plus, for the modules
whose job is to re-export (``nn.activations``, ``nn.initializers``, ``compat`` and
the packages ``nn``, ``transforms``, ``training``), what they re-export. TypeVars and
imported helper modules of submodules are not API. At the top level every public
name of ``dir(flax.nnx)`` counts, TypeVars (``A``) included, except Flax's
implementation modules (``extract``, ``proxy_caller``, ``reprlib``, ``tracers``,
``deprecations``). Those, and the implementation names of ``IMPLEMENTATION_NAMES``, are
only counted in the summary.

Run::

    /work/venv-oracle/bin/python -m pytest tests/oracle/test_api_surface.py -m oracle -q -s

``python tests/oracle/test_api_surface.py --gaps FILE`` writes the failures grouped by
the package/file that must fix them (markdown).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import functools
import importlib
import inspect
import pathlib
import sys
import types
import typing as tp

import pytest

flax = pytest.importorskip("flax")
fnnx = importlib.import_module("flax.nnx")

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from deliberate_differences import is_deliberate  # noqa: E402

import nnx  # noqa: E402

pytestmark = pytest.mark.oracle

SKIP_MODULES = {"bridge", "wrappers"}
# Flax implementation modules (not in its API reference): counted with the
# implementation names below, not required.
IMPLEMENTATION_MODULES = {"extract", "proxy_caller", "reprlib", "tracers", "deprecations", "ids"}
# Modules whose purpose is to re-export names defined elsewhere.
REEXPORT_MODULES = {
    "nn",
    "nn.activations",
    "nn.initializers",
    "compat",
    "transforms",
    "training",
}


# Flax implementation names that its submodules define but neither ``flax.nnx`` nor its
# API reference exposes: machinery of Flax's own graph/trace/transform implementation
# (node implementations, reference maps, contexts, JAX primitives, typing Protocols for
# transform signatures, reprs of tabulate). nnx implements the same API differently, so
# these are not required; the summary reports how many nnx has anyway. Keyed by the
# defining module (relative to flax.nnx) and name.
def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


IMPLEMENTATION_NAMES: dict[str, frozenset[str]] = {
    "graph": _words("""ArrayRefDef ArrayRefOutput DataElem GRAPH_CONTEXT GenericPytree GraphContext
        GraphNodeImpl IndexMap IndexesPytreeDef LEAF_ATTR LeafAttr NODE_ATTR NO_UPDATE
        NoUpdate NodeAttr NodeImplBase NodeRef PYTREE_NODE_IMPL PythonRefMap
        PytreeNodeImpl REPEATED RefMap Repeated StaticCache StaticElem TreeNodeDef
        UpdateContextManager get_node_impl get_node_impl_for_type graph_pop
        is_node_leaf is_node_module is_node_type is_pytree_node static_cache
        jax_to_nnx_path"""),
    "pytreelib": _words("""ArrayRepr AttributeStatus MutableArrayRepr OBJECT_CONTEXT ObjectContext
        ObjectMeta PytreeMeta PytreeState VariableRepr"""),
    "module": _words("ModuleMeta tuple_init tuple_reduce"),
    "variablelib": _words("""GetVariable HijaxVariable HijaxVariableMeta NewVariable SetVariable
        VARIABLE_CONTEXT VarDefaultsContext VariableContext VariableEffect
        VariableMeta VariableQDD get_variable_p new_variable_p set_variable_p
        variable_effect is_array_ref"""),
    "rnglib": _words("KeylessInitializer SplitBackups"),
    "statelib": _words("NestedStateRepr create_path_filters"),
    "helpers": _words("ModuleDefApply has_keyword_arg"),
    "summary": _words("""ArrayRepr CallInfo NoneDumper ObjectInfo SimpleObjectRepr SizeBytes
        filter_rng_streams"""),
    "visualization": frozenset(["render_object_constructor"]),
    "training.optimizer": frozenset(["MISSING"]),
    "transforms.autodiff": _words(
        """BwdFn CustomVjpFnWrapper FwdFn GradFn SimpleBwdFn SimpleCustomVjp
        SimpleCustomVjpFn SimpleFwdFn SimpleGradFn SimpleJvpFn SimpleRematFn
        SimpleVjpFn"""
    ),
    "transforms.compilation": _words(
        """JitFn ShardMapFn SimpleCompiled SimpleJitFn SimpleJitPartialFn
        SimpleJitPartialWrapped SimpleJitWrapped SimpleLowered SimplePartialCompiled
        SimplePartialLowered SimplePartialTraced SimpleShardMapFn SimpleTraced
        Stage"""
    ),
    "transforms.iteration": _words(
        """Broadcasted ForiLoopBodyFn PmapFn ScanFn SimpleForiLoopBodyFn SimplePmapFn
        SimpleScanFn SimpleVmapFn SimpleWhileLoopBodyFn SimpleWhileLoopCondFn VmapFn
        WhileLoopBodyFn WhileLoopCondFn"""
    ),
    "transforms.transforms": _words(
        """CheckifyFn LiftedModule SimpleCheckifyFn SimpleCondFn SimpleEvalShapeFn
        SimpleMakeJaxprFn ValueMetadata resolve_kwargs"""
    ),
}
# Dunders a class's own namespace may define that user code relies on.
PROTOCOL_DUNDERS = {
    "__call__",
    "__getitem__",
    "__setitem__",
    "__delitem__",
    "__iter__",
    "__len__",
    "__contains__",
    "__enter__",
    "__exit__",
    "__sub__",
    "__or__",
    "__and__",
    "__invert__",
    "__jax_array__",
    "__array__",
}


# ----------------------------------------------------------------------------- walking


def _is_typevar(obj: object) -> bool:
    return isinstance(obj, tp.TypeVar | tp.ParamSpec)


def _is_typing_construct(obj: object) -> bool:
    # A Protocol subclass is a real class (its metaclass merely lives in `typing`).
    if isinstance(obj, type):
        return False
    return type(obj).__module__ == "typing" and not _is_typevar(obj)


def _kind(obj: object) -> str:
    if isinstance(obj, types.ModuleType):
        return "module"
    if _is_typevar(obj):
        return "typevar"
    if _is_typing_construct(obj):
        return "typing"
    if isinstance(obj, type):
        return "class"
    if callable(obj):
        return "callable"
    return "value"


def _defined_in(obj: object, modname: str) -> bool:
    return getattr(obj, "__module__", None) == modname


def _submodule_names(path: str, mod: types.ModuleType) -> list[str]:
    names = []
    for name in dir(mod):
        if name.startswith("_"):
            continue
        obj = getattr(mod, name)
        if isinstance(obj, types.ModuleType):
            # Only real child modules of this package (nn.attention, transforms.general).
            if obj.__name__ == f"{mod.__name__}.{name}":
                names.append(name)
            continue
        if _is_typevar(obj):
            continue
        if path in REEXPORT_MODULES:
            origin = getattr(obj, "__module__", None) or ""
            if isinstance(obj, functools.partial) or (
                callable(obj) and origin.startswith(("flax.nnx", "jax"))
            ):
                names.append(name)
            continue
        # flax.nnx.graph re-exports flax.nnx.graphlib: the same names count there.
        home = "flax.nnx.graphlib" if mod.__name__ == "flax.nnx.graph" else mod.__name__
        if _defined_in(obj, home):
            names.append(name)
    return names


def _implementation_name(mod: types.ModuleType, name: str) -> bool:
    rel = mod.__name__.removeprefix("flax.nnx.")
    rel = "graph" if rel == "graphlib" else rel  # flax.nnx.graph re-exports graphlib
    return name in IMPLEMENTATION_NAMES.get(rel, frozenset())


IMPLEMENTATION: dict[str, object] = {}


def walk_flax() -> dict[str, object]:
    """Every checked path (relative to flax.nnx) -> Flax's object."""
    out: dict[str, object] = {}
    stack: list[tuple[str, types.ModuleType]] = []
    for name in dir(fnnx):
        if name.startswith("_"):
            continue
        obj = getattr(fnnx, name)
        if name in IMPLEMENTATION_MODULES:
            IMPLEMENTATION[name] = obj
            continue
        out[name] = obj
        if name in SKIP_MODULES:
            continue
        if isinstance(obj, types.ModuleType) and name not in IMPLEMENTATION_MODULES:
            stack.append((name, obj))
    while stack:
        path, mod = stack.pop()
        for name in _submodule_names(path, mod):
            sub = f"{path}.{name}"
            obj = getattr(mod, name)
            if _implementation_name(mod, name):
                IMPLEMENTATION[sub] = obj
                continue
            out[sub] = obj
            if isinstance(obj, types.ModuleType):
                stack.append((sub, obj))
    return dict(sorted(out.items()))


FLAX = walk_flax()


# ---------------------------------------------------------------------------- checking

_MISSING = object()


def _resolve_nnx(path: str) -> object:
    obj: object = nnx
    for part in path.split("."):
        obj = getattr(obj, part, _MISSING)
        if obj is _MISSING:
            return _MISSING
    return obj


def _signature(obj: object) -> inspect.Signature | None:
    try:
        if isinstance(obj, type):
            init = obj.__init__  # type: ignore[misc]
            if init is object.__init__:
                return None
            sig = inspect.signature(init)
            params = list(sig.parameters.values())[1:]
            return sig.replace(parameters=params)
        return inspect.signature(obj)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _simple(value: object) -> bool:
    if value is None or isinstance(value, bool | int | float | str | bytes | enum.Enum):
        return True
    if isinstance(value, tuple | frozenset):
        return all(_simple(v) for v in value)
    return False


def _is_flax_sentinel(value: object) -> bool:
    cls = value if isinstance(value, type) else type(value)
    return cls.__name__ == "Missing" and cls.__module__.startswith("flax")


def _equivalent(f: object, n: object) -> bool:
    """Whether nnx's default ``n`` stands for Flax's default ``f``."""
    if _simple(f):
        return (type(f) is type(n) and f == n) or f is n
    if isinstance(f, tuple | list):
        return (
            isinstance(n, tuple | list)
            and len(f) == len(n)
            and all(_equivalent(a, b) for a, b in zip(f, n))
        )
    if isinstance(f, type):
        # Flax's classes stand for their nnx counterparts (nnx.Carry for Carry).
        return f is n or (isinstance(n, type) and f.__name__ == n.__name__)
    if callable(f):
        # A default function (an initializer, a split function): nnx may use another
        # function or None for "the default".
        return n is None or callable(n)
    try:
        return bool(f == n)
    except Exception:
        return type(f) is type(n)


def _default_matches(f: object, n: object) -> bool:
    if f is inspect.Parameter.empty:
        return True  # Flax requires it; nnx may give a default.
    if n is inspect.Parameter.empty:
        return False
    if _is_flax_sentinel(f):
        return True  # Flax's "not given" sentinel; nnx may use its own or None.
    return _equivalent(f, n)


def _show_default(value: object) -> str:
    if value is inspect.Parameter.empty:
        return "required"
    if _is_flax_sentinel(value):
        return "optional (MISSING)"
    return repr(value)


_KIND_NAMES = {
    inspect.Parameter.POSITIONAL_ONLY: "positional-only",
    inspect.Parameter.POSITIONAL_OR_KEYWORD: "positional-or-keyword",
    inspect.Parameter.VAR_POSITIONAL: "*args",
    inspect.Parameter.KEYWORD_ONLY: "keyword-only",
    inspect.Parameter.VAR_KEYWORD: "**kwargs",
}


def compare_signatures(
    fsig: inspect.Signature, nsig: inspect.Signature, *, dunder: bool = False
) -> tuple[list[str], int]:
    """Differences (readable) and the number of Flax parameters checked.

    ``self``/``cls`` are not compared. For dunder methods only the number of
    positional parameters matters (Python calls them positionally).
    """
    problems: list[str] = []
    fparams = [p for p in fsig.parameters.values() if p.name not in ("self", "cls")]
    nparams = [p for p in nsig.parameters.values() if p.name not in ("self", "cls")]
    if dunder:
        positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        fpos = [p for p in fparams if p.kind in positional]
        npos = [p for p in nparams if p.kind in positional]
        nvar = any(p.kind is p.VAR_POSITIONAL for p in nparams)
        if len(npos) < len(fpos) and not nvar:
            problems.append(f"takes {len(npos)} positional parameters, Flax: {len(fpos)}")
        return problems, len(fpos)
    named = [p for p in fparams if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if named and all(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in nparams):
        # A bare (*args, **kwargs) forwarder: it may accept everything, but its
        # parameters cannot be checked (functools.wraps would expose the target's).
        listed = ", ".join(p.name for p in named)
        return [f"(*args, **kwargs) hides Flax's parameters ({listed})"], len(fparams)
    nby = {p.name: p for p in nparams}
    has_var_kw = any(p.kind is p.VAR_KEYWORD for p in nparams)
    for i, fp in enumerate(fparams):
        if fp.kind is fp.VAR_POSITIONAL:
            if not any(p.kind is p.VAR_POSITIONAL for p in nparams):
                problems.append(f"missing *{fp.name}")
            continue
        if fp.kind is fp.VAR_KEYWORD:
            if not has_var_kw:
                problems.append(f"missing **{fp.name}")
            continue
        np_ = nby.get(fp.name)
        if np_ is None:
            problems.append(f"missing parameter {fp.name!r}")
            continue
        if fp.kind is not np_.kind:
            ok = fp.kind is fp.POSITIONAL_ONLY and np_.kind is np_.POSITIONAL_OR_KEYWORD
            ok = ok or (fp.kind is fp.KEYWORD_ONLY and np_.kind is np_.POSITIONAL_OR_KEYWORD)
            if not ok:
                problems.append(
                    f"{fp.name!r} is {_KIND_NAMES[np_.kind]}, Flax: {_KIND_NAMES[fp.kind]}"
                )
        if fp.kind in (fp.POSITIONAL_ONLY, fp.POSITIONAL_OR_KEYWORD) and nparams.index(np_) != i:
            problems.append(f"{fp.name!r} at position {nparams.index(np_)}, Flax: {i}")
        if not _default_matches(fp.default, np_.default):
            problems.append(
                f"{fp.name!r} default {_show_default(np_.default)}, "
                f"Flax: {_show_default(fp.default)}"
            )
    fnames = {p.name for p in fparams}
    for np_ in nparams:
        if np_.name in fnames or np_.kind in (np_.VAR_POSITIONAL, np_.VAR_KEYWORD):
            continue
        if np_.default is np_.empty:
            problems.append(f"extra required parameter {np_.name!r} (Flax has none)")
    return problems, len(fparams)


def _failed_params(problems: list[str], checked: int) -> int:
    if any("hides Flax's parameters" in p for p in problems):
        return checked
    return min(len(problems), checked) if checked else len(problems)


def _member_kind(cls: type, name: str) -> str:
    for klass in cls.__mro__:
        if name in klass.__dict__:
            attr = klass.__dict__[name]
            if isinstance(attr, property | functools.cached_property):
                return "property"
            if isinstance(attr, classmethod | staticmethod) or callable(attr):
                return "method"
            return "attribute"
    return "dynamic"


def _own_public_members(cls: type) -> list[str]:
    names = []
    for name in cls.__dict__:
        if name.startswith("_") and name not in PROTOCOL_DUNDERS:
            continue
        names.append(name)
    # Members inherited from Flax base classes that are not themselves checked (not
    # public in flax.nnx) are checked here.
    checked_bases = {id(v) for v in FLAX.values() if isinstance(v, type)}
    for base in cls.__mro__[1:]:
        if not base.__module__.startswith("flax.") or id(base) in checked_bases:
            continue
        for name in base.__dict__:
            if (not name.startswith("_") or name in PROTOCOL_DUNDERS) and name not in names:
                names.append(name)
    return sorted(names)


def _flax_to_nnx_class(cls: type) -> object:
    for path, obj in FLAX.items():
        if obj is cls and "." not in path:
            return _resolve_nnx(path)
    return _MISSING


@dataclasses.dataclass
class Result:
    path: str
    kind: str
    status: str = "ok"  # ok | missing | differing | deliberate
    problems: list[str] = dataclasses.field(default_factory=list)
    params_checked: int = 0
    params_failed: int = 0
    nnx_module: str | None = None
    nnx_id: int | None = None


def _aliases(path: str) -> list[str]:
    """``path`` and the paths of the same Flax object one level up or at the top level
    (``training.optimizer.Optimizer`` is also ``Optimizer``), so that a table entry
    written for the top-level name covers every path that reaches the object."""
    obj = FLAX.get(path, IMPLEMENTATION.get(path))
    names = [path]
    head, _, leaf = path.rpartition(".")
    if head and FLAX.get(leaf) is obj and obj is not None:
        names.append(leaf)
    return names


def deliberate(path: str, aspect: str) -> bool:
    """``is_deliberate`` for ``path`` or its top-level alias; members keep their suffix."""
    return any(is_deliberate(alias, aspect) for alias in _aliases(path))


def check(path: str) -> Result:
    fobj = FLAX[path]
    kind = _kind(fobj)
    res = Result(path, kind)
    if deliberate(path, "name"):
        res.status = "deliberate"
        return res
    nobj = _resolve_nnx(path)
    if nobj is _MISSING and kind == "module":
        with contextlib.suppress(ImportError):
            nobj = importlib.import_module(f"nnx.{path}")
    if nobj is _MISSING:
        res.status = "missing"
        res.problems.append(f"nnx.{path} does not exist")
        return res
    target = nobj.func if isinstance(nobj, functools.partial) else nobj
    res.nnx_module = getattr(target, "__module__", None) or getattr(target, "__name__", None)
    res.nnx_id = id(target)
    problems = res.problems
    nkind = _kind(nobj)
    if kind == "typing":
        try:
            fobj[int]  # type: ignore[index]
        except TypeError:
            pass
        else:
            try:
                nobj[int]  # type: ignore[index]
            except TypeError:
                problems.append("kind: Flax's can be subscripted (X[int]); nnx's cannot")
    elif kind != nkind and not deliberate(path, "kind"):
        ok = kind == "callable" and nkind == "class"
        ok = ok or (kind == "value" and nkind in {"callable", "class"} and callable(fobj))
        if not ok:
            problems.append(f"kind: nnx has a {nkind}, Flax a {kind}")
    if kind == "module":
        try:
            importlib.import_module(fobj.__name__)  # type: ignore[attr-defined]
            importable = True
        except ImportError:
            importable = False
        if importable and fobj.__name__ == f"flax.nnx.{path}":  # type: ignore[attr-defined]
            try:
                importlib.import_module(f"nnx.{path}")
            except ImportError as e:
                problems.append(f"`import nnx.{path}` fails: {e}")
    if kind in {"class", "callable"} and callable(nobj) and not deliberate(path, "signature"):
        fsig, nsig = _signature(fobj), _signature(nobj)
        if fsig is not None:
            if nsig is None:
                problems.append("signature: nnx's is not introspectable")
            else:
                sig_problems, n = compare_signatures(fsig, nsig)
                res.params_checked += n
                res.params_failed += _failed_params(sig_problems, n)
                problems.extend(f"signature: {p}" for p in sig_problems)
    if kind == "class" and isinstance(nobj, type) and not deliberate(path, "members"):
        assert isinstance(fobj, type)
        for base in fobj.__mro__[1:]:
            if base is object or not base.__module__.startswith("flax.nnx"):
                continue
            nbase = _flax_to_nnx_class(base)
            if isinstance(nbase, type) and not issubclass(nobj, nbase):
                problems.append(f"bases: not a subclass of nnx.{base.__name__}")
        for member in _own_public_members(fobj):
            top = [f"{a}.{member}" for a in _aliases(path)]
            if any(is_deliberate(m, "members") for m in top):
                continue
            if not hasattr(nobj, member):
                problems.append(f"member: no {member!r}")
                continue
            fk, nk = _member_kind(fobj, member), _member_kind(nobj, member)
            if fk == "property" and nk == "method":
                problems.append(f"member: {member!r} is a method, Flax: property")
            elif fk == "method" and nk == "property":
                problems.append(f"member: {member!r} is a property, Flax: method")
            skip_sig = any(is_deliberate(m, "signature") for m in top)
            if fk == "method" and nk == "method" and not skip_sig:
                fm, nm = inspect.getattr_static(fobj, member), inspect.getattr_static(nobj, member)
                try:
                    fsig = inspect.signature(getattr(fobj, member))
                    nsig = inspect.signature(getattr(nobj, member))
                except (TypeError, ValueError):
                    continue
                if isinstance(fm, staticmethod) != isinstance(nm, staticmethod):
                    continue
                dunder = member.startswith("__")
                sig_problems, n = compare_signatures(fsig, nsig, dunder=dunder)
                res.params_checked += n
                res.params_failed += _failed_params(sig_problems, n)
                problems.extend(f"{member}(): {p}" for p in sig_problems)
    if problems:
        res.status = "differing"
    return res


# ------------------------------------------------------------------------------ tests

RESULTS: dict[str, Result] = {}


def summary_lines(results: tp.Iterable[Result]) -> list[str]:
    results = list(results)
    by = {
        s: [r for r in results if r.status == s]
        for s in ("ok", "missing", "differing", "deliberate")
    }
    pc = sum(r.params_checked for r in results)
    pf = sum(r.params_failed for r in results)
    return [
        f"flax.nnx API surface: {len(results)} names walked",
        f"  covered (same name, kind, parameters, members): {len(by['ok'])}",
        f"  missing: {len(by['missing'])}",
        f"  differing: {len(by['differing'])}",
        f"  deliberate differences skipped: {len(by['deliberate'])}",
        f"  parameters checked: {pc}, matching: {pc - pf}, differing: {pf}",
        f"  Flax implementation names (not required): {len(IMPLEMENTATION)}, "
        f"present in nnx anyway: {sum(_resolve_nnx(p) is not _MISSING for p in IMPLEMENTATION)}",
    ]


@pytest.fixture(scope="module", autouse=True)
def _print_summary() -> tp.Iterator[None]:
    yield
    if RESULTS:
        print("\n" + "\n".join(summary_lines(RESULTS.values())))


@pytest.mark.parametrize("path", list(FLAX))
def test_api_surface(path: str) -> None:
    res = check(path)
    RESULTS[path] = res
    if res.status == "deliberate":
        pytest.skip("listed in deliberate_differences.py")
    assert not res.problems, f"nnx.{path}:\n  " + "\n  ".join(res.problems)


def test_walk_is_not_trivial() -> None:
    # The walk must reach into the submodules the issue names, not just the top level.
    for path in ("nn.attention.combine_masks", "transforms.general", "training.metrics.Average"):
        assert path in FLAX
    assert len(FLAX) > 400


# ------------------------------------------------------------------------ gaps report

OWNERS = [
    ("nnx_graph.transforms", "core-transforms (packages/nnx-graph/src/nnx_graph/transforms)"),
    ("nnx_graph._", "core-graph (packages/nnx-graph/src/nnx_graph/_*.py)"),
    ("nnx_optim", "optim (packages/nnx-optim)"),
    ("nnx_nn", "nn-layers (packages/nnx-nn)"),
    ("nnx_viz", "compat-surface (nnx-viz)"),
    ("nnx_graph", "compat-surface (alias modules in nnx_graph, src/nnx)"),
    ("nnx", "compat-surface (src/nnx)"),
]

FLAX_OWNERS = [
    ("transforms", "core-transforms (packages/nnx-graph/src/nnx_graph/transforms)"),
    ("compat", "core-transforms (packages/nnx-graph/src/nnx_graph/transforms)"),
    ("training", "optim (packages/nnx-optim)"),
    ("optimizer", "optim (packages/nnx-optim)"),
    ("metrics", "optim (packages/nnx-optim)"),
    ("nn", "nn-layers (packages/nnx-nn)"),
    ("initializers", "nn-layers (packages/nnx-nn)"),
    ("summary", "compat-surface (nnx-viz)"),
    ("visualization", "compat-surface (nnx-viz)"),
]


def owner_of(res: Result) -> str:
    fobj = FLAX[res.path]
    head = res.path.split(".")[0]
    if res.status == "missing":
        # Present at the top level but not at this path: an alias is missing.
        leaf = res.path.rsplit(".", 1)[-1]
        if "." in res.path and _resolve_nnx(leaf) is not _MISSING and res.kind != "module":
            return "compat-surface (alias modules in nnx_graph, src/nnx)"
        if res.kind == "module":
            for prefix, owner in FLAX_OWNERS:
                if head == prefix and "." in res.path:
                    return owner
            return "compat-surface (alias modules in nnx_graph, src/nnx)"
        fmod = getattr(fobj, "__module__", "") or ""
        rel = fmod.removeprefix("flax.nnx.")
        for prefix, owner in FLAX_OWNERS:
            if rel.split(".")[0] == prefix or head == prefix:
                return owner
        return "core-graph (packages/nnx-graph/src/nnx_graph/_*.py)"
    if res.kind == "module":
        return "compat-surface (alias modules in nnx_graph, src/nnx)"
    mod = res.nnx_module or ""
    for prefix, owner in OWNERS:
        if mod.startswith(prefix):
            return owner
    return "compat-surface (src/nnx)"


def gaps_markdown(results: list[Result]) -> str:
    bad = [r for r in results if r.status in {"missing", "differing"}]
    # The same nnx object reached by several paths (nnx.Linear, nnx.nn.linear.Linear)
    # with the same problems is listed once, with its other paths.
    first: dict[tuple[object, ...], Result] = {}
    also: dict[str, list[str]] = {}
    for r in bad:
        key = (r.nnx_id if r.nnx_id is not None else r.path, *r.problems)
        if r.status == "differing" and key in first:
            also.setdefault(first[key].path, []).append(r.path)
            continue
        first[key] = r
    groups: dict[str, list[Result]] = {}
    for r in first.values():
        groups.setdefault(owner_of(r), []).append(r)
    lines = [
        "# API gaps against flax.nnx 0.12.8",
        "",
        "Generated by `python tests/oracle/test_api_surface.py --gaps /work/coord/api_gaps.md`",
        "(with /work/venv-oracle/bin/python). Grouped by the package/file that must fix them,",
        "by where nnx defines the object today (or, when missing, where Flax defines it).",
        "A name missing only at a submodule path but present at the top level is an alias",
        "(compat-surface). Deliberate differences: tests/oracle/deliberate_differences.py.",
        "",
        *summary_lines(results),
        "",
    ]
    for owner in sorted(groups):
        rs = groups[owner]
        lines += [f"## {owner} — {len(rs)} distinct", ""]
        for r in rs:
            others = "".join(f", `nnx.{p}`" for p in also.get(r.path, []))
            lines.append(f"- `nnx.{r.path}`{others} ({r.kind}, {r.status})")
            for p in r.problems:
                lines.append(f"  - {p}")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    results = [check(p) for p in FLAX]
    print("\n".join(summary_lines(results)))
    if len(argv) >= 2 and argv[0] == "--gaps":
        pathlib.Path(argv[1]).write_text(gaps_markdown(results))
        print(f"wrote {argv[1]}")


if __name__ == "__main__":
    main(sys.argv[1:])
