"""Oracle: nnx's scan/vmap/custom_vjp/remat against flax.nnx 0.12's.

The same program runs once with ``flax.nnx`` and once with ``nnx_graph``; results
must be equal and errors must be of the same type. Covers scan per-step outputs
holding Modules/Variables and scan's errors, Modules returned from vmap,
``out_axes`` as a StateAxes, custom_vjp with Modules in ``nondiff_argnums``
(``graph_updates=False``), ``symbolic_zeros`` and Variable updates, and remat of a
function that changes structure.

Run with ``/work/venv-oracle/bin/python -m pytest tests/oracle -m oracle``.
"""

from __future__ import annotations

import typing as tp
import warnings

import numpy as np
import pytest

flax = pytest.importorskip("flax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import nnx as fnnx  # noqa: E402

import nnx_graph  # noqa: E402

pytestmark = pytest.mark.oracle

LIBS = {"flax": fnnx, "nnx": nnx_graph}
XS = jnp.arange(3.0)


@pytest.fixture(autouse=True)
def _quiet() -> tp.Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def foo_class(nnx: tp.Any) -> tp.Any:
    class Foo(nnx.Module):
        def __init__(self, x: tp.Any = 2.0) -> None:
            self.w = nnx.Param(jnp.asarray(x) * jnp.ones(2))
            self.s = nnx.BatchStat(jnp.asarray(x))

    return Foo


def outcome(fn: tp.Callable[[], tp.Any]) -> tp.Any:
    """The result as nested lists (Modules/Variables by their state), or the
    exception type."""
    try:
        out = fn()
    except Exception as error:  # the type is what is compared
        return type(error)
    return _plain(out)


def _plain(out: tp.Any) -> tp.Any:
    if isinstance(out, (fnnx.Module, nnx_graph.Module)):
        lib = fnnx if isinstance(out, fnnx.Module) else nnx_graph
        flat = lib.to_flat_state(lib.state(out))
        return {".".join(map(str, p)): _plain(v) for p, v in flat}
    if isinstance(out, (fnnx.Variable, nnx_graph.Variable)):
        return (type(out).__name__, np.asarray(out.get_value()).tolist())
    if isinstance(out, (tuple, list)):
        return [_plain(o) for o in out]
    if isinstance(out, dict):
        return {k: _plain(v) for k, v in out.items()}
    return np.asarray(out).tolist() if out is not None else None


def both(program: tp.Callable[[tp.Any], tp.Any]) -> tuple[tp.Any, tp.Any]:
    return outcome(lambda: program(fnnx)), outcome(lambda: program(nnx_graph))


def _error_kind(x: tp.Any) -> tp.Any:
    """ValueError and TypeError subclasses compare as the builtin they extend."""
    if isinstance(x, type) and issubclass(x, BaseException):
        for base in (ValueError, TypeError, KeyError, AttributeError):
            if issubclass(x, base):
                return base
    return x


SCAN_PROGRAMS: dict[str, tp.Callable[[tp.Any], tp.Any]] = {
    "ys new module": lambda nnx: nnx.scan(lambda c, x: (c + x, foo_class(nnx)(x)))(0.0, XS),
    "ys new variable": lambda nnx: nnx.scan(lambda c, x: (c, nnx.Param(x * 2)))(0.0, XS),
    "ys new module out axis 1": lambda nnx: nnx.scan(
        lambda c, x: (c, nnx.Param(x * jnp.ones(2))), out_axes=(nnx.Carry, 1)
    )(0.0, XS),
    "ys StateAxes": lambda nnx: nnx.scan(
        lambda c, x: (c, foo_class(nnx)(x)),
        out_axes=(nnx.Carry, nnx.StateAxes({nnx.Param: 1, ...: 0})),
    )(0.0, XS),
    "ys scanned module": lambda nnx: nnx.scan(lambda c, m: (c + m.s[...], m))(
        0.0, nnx.vmap(lambda x: foo_class(nnx)(x))(XS)
    ),
    "ys carried module": lambda nnx: nnx.scan(lambda c, x: (c, c))(foo_class(nnx)(), XS),
    "ys broadcast module": lambda nnx: nnx.scan(
        lambda c, m, x: (c, m), in_axes=(nnx.Carry, None, 0)
    )(0.0, foo_class(nnx)(), XS),
    "ys variable of carry": lambda nnx: nnx.scan(lambda c, x: (c, c.w))(foo_class(nnx)(), XS),
    "broadcast out_axes": lambda nnx: nnx.scan(lambda c, x: (c, x), out_axes=(nnx.Carry, None))(
        0.0, XS
    ),
    "out_axes None": lambda nnx: nnx.scan(lambda c, x: c, out_axes=None)(0.0, XS),
    "double carry out": lambda nnx: nnx.scan(lambda c, x: (c, c), out_axes=(nnx.Carry, nnx.Carry))(
        0.0, XS
    ),
    "double carry in": lambda nnx: nnx.scan(lambda c, d: (c, d), in_axes=(nnx.Carry, nnx.Carry))(
        0.0, XS
    ),
    "carry in only": lambda nnx: nnx.scan(lambda c, x: x, in_axes=(nnx.Carry, 0), out_axes=0)(
        0.0, XS
    ),
    "carry out only": lambda nnx: nnx.scan(lambda c, x: (c, x), in_axes=(None, 0))(0.0, XS),
    "nested carry": lambda nnx: nnx.scan(lambda c: c, in_axes=((nnx.Carry, 0),))((0.0, XS)),
    "carry identity": lambda nnx: nnx.scan(lambda c, x: (foo_class(nnx)(), x))(
        foo_class(nnx)(), XS
    ),
    "carry module to array": lambda nnx: nnx.scan(lambda c, x: (c.s[...], x))(foo_class(nnx)(), XS),
    "carry shape": lambda nnx: nnx.scan(lambda c, x: (jnp.zeros(2), x))(0.0, XS),
    "in_axes Carry, two args": lambda nnx: nnx.scan(
        lambda a, b: (a, b), in_axes=nnx.Carry, out_axes=nnx.Carry, length=2
    )(0.0, 1.0),
}


@pytest.mark.parametrize("name", list(SCAN_PROGRAMS))
def test_scan_matches_flax(name: str) -> None:
    got_flax, got_nnx = both(SCAN_PROGRAMS[name])
    assert _error_kind(got_nnx) == _error_kind(got_flax)


VMAP_PROGRAMS: dict[str, tp.Callable[[tp.Any], tp.Any]] = {
    "return broadcast arg": lambda nnx: nnx.vmap(lambda m, x: m, in_axes=(None, 0))(
        foo_class(nnx)(), XS
    ),
    "return broadcast arg, out None": lambda nnx: nnx.vmap(
        lambda m, x: m, in_axes=(None, 0), out_axes=None
    )(foo_class(nnx)(), XS),
    "return a Variable of a broadcast arg": lambda nnx: nnx.vmap(
        lambda m, x: m.w, in_axes=(None, 0)
    )(foo_class(nnx)(), XS),
    "return it twice": lambda nnx: nnx.vmap(
        lambda m, x: (m, m), in_axes=(None, 0), out_axes=(None, 0)
    )(foo_class(nnx)(), XS),
    "return it in a new List": lambda nnx: nnx.vmap(lambda m, x: nnx.List([m]), in_axes=(None, 0))(
        foo_class(nnx)(), XS
    ),
    "return a mapped arg": lambda nnx: nnx.vmap(lambda m: m)(
        nnx.vmap(lambda x: foo_class(nnx)(x))(XS)
    ),
    "new module, StateAxes out": lambda nnx: nnx.vmap(
        lambda x: foo_class(nnx)(x), out_axes=nnx.StateAxes({nnx.Param: 1, ...: 0})
    )(XS),
}


@pytest.mark.parametrize("name", list(VMAP_PROGRAMS))
def test_vmap_returns_match_flax(name: str) -> None:
    got_flax, got_nnx = both(VMAP_PROGRAMS[name])
    assert _error_kind(got_nnx) == _error_kind(got_flax)


def test_vmap_returning_a_captured_module_is_rejected_as_in_flax() -> None:
    def program(nnx: tp.Any) -> tp.Any:
        m = foo_class(nnx)()
        return nnx.vmap(lambda x: m)(XS)

    got_flax, got_nnx = both(program)
    assert got_flax is ValueError and _error_kind(got_nnx) is ValueError


def test_custom_vjp_module_in_nondiff_argnums_matches_flax() -> None:
    def program(nnx: tp.Any) -> tp.Any:
        @nnx.custom_vjp(nondiff_argnums=(0,), graph_updates=False)
        def f(m: tp.Any, x: tp.Any) -> tp.Any:
            return m.s[...] * x

        def f_fwd(m: tp.Any, x: tp.Any) -> tp.Any:
            return f(m, x), x

        def f_bwd(m: tp.Any, x: tp.Any, g: tp.Any) -> tp.Any:
            return (g * m.s[...] * 10,)

        f.defvjp(f_fwd, f_bwd)
        m = foo_class(nnx)()
        return f(m, 3.0), jax.grad(lambda x: f(m, x))(3.0), nnx.grad(lambda x: f(m, x))(3.0)

    got_flax, got_nnx = both(program)
    assert got_nnx == got_flax == [6.0, 20.0, 20.0]

    def default_mode(nnx: tp.Any) -> tp.Any:
        g = nnx.custom_vjp(lambda m: m.s[...], nondiff_argnums=(0,))
        g.defvjp(lambda m: (m.s[...], None), lambda m, res, ct: ())
        return g(foo_class(nnx)())

    got_flax, got_nnx = both(default_mode)
    assert got_flax is TypeError and _error_kind(got_nnx) is TypeError


@pytest.mark.parametrize("graph_updates", [True, False])
def test_custom_vjp_updates_and_symbolic_zeros_match_flax(graph_updates: bool) -> None:
    def program(nnx: tp.Any) -> tp.Any:
        perturbed = []

        @nnx.custom_vjp(graph_updates=graph_updates)
        def f(x: tp.Any, y: tp.Any) -> tp.Any:
            return x * y

        def f_fwd(x: tp.Any, y: tp.Any) -> tp.Any:
            perturbed.append((x.perturbed, y.perturbed))
            return x.value * y.value, (x.value, y.value)

        def f_bwd(res: tp.Any, g: tp.Any) -> tp.Any:
            out_g = g[1] if graph_updates else g
            return out_g * res[1], out_g * res[0]

        f.defvjp(f_fwd, f_bwd, symbolic_zeros=True)
        grads = jax.grad(f, argnums=1)(2.0, 3.0)
        return grads, perturbed

    got_flax, got_nnx = both(program)
    assert got_nnx == got_flax

    def updates(nnx: tp.Any) -> tp.Any:
        @nnx.custom_vjp(graph_updates=graph_updates)
        def f(m: tp.Any) -> tp.Any:
            m.s[...] = m.s[...] * 2.0
            return m.w[...].sum()

        def f_fwd(m: tp.Any) -> tp.Any:
            m.s[...] = m.s[...] * 2.0
            return m.w[...].sum(), m

        def f_bwd(res: tp.Any, g: tp.Any) -> tp.Any:
            if graph_updates:
                (m_g,), out_g = g
                m_g = jax.tree.map(lambda v: v, m_g)
                m_g["w"][...] = out_g * jnp.ones(2)
                return (m_g,)
            m_g = nnx.clone(res)  # graph_updates=False: the tangent is a Module
            m_g.w[...] = g * jnp.ones(2)
            m_g.s[...] = jnp.zeros(())
            return (m_g,)

        f.defvjp(f_fwd, f_bwd)
        m = foo_class(nnx)()
        first = f(m)
        grads = nnx.grad(f)(m)
        return first, m.s[...], grads["w"][...]

    got_flax, got_nnx = both(updates)
    assert got_nnx == got_flax


def test_remat_structure_change_matches_flax() -> None:
    def program(nnx: tp.Any) -> tp.Any:
        def f(m: tp.Any, x: tp.Any) -> tp.Any:
            m.extra = nnx.BatchStat(x * 2)
            del m.s
            return m.w[...].sum() * x

        m = foo_class(nnx)()
        out = nnx.remat(f)(m, jnp.array(3.0))
        g = nnx.grad(lambda m, x: nnx.remat(f)(m, x))(foo_class(nnx)(), jnp.array(3.0))
        made = nnx.remat(lambda x: foo_class(nnx)(x))(jnp.array(1.0))
        return out, m.extra, hasattr(m, "s"), g, made

    got_flax, got_nnx = both(program)
    assert got_nnx == got_flax


def test_state_axes_and_diff_state_members_match_flax() -> None:
    def program(nnx: tp.Any) -> tp.Any:
        axes = nnx.StateAxes({nnx.Param: 0, ...: nnx.Carry})
        w = nnx.Param(jnp.ones(1))
        s = nnx.BatchStat(jnp.ones(1))
        diff = nnx.DiffState(0, nnx.Param)
        return (
            [a is nnx.Carry or a for a in axes.axes],
            len(axes.filters),
            axes.map_prefix(("w",), w),
            axes.map_prefix(("s",), s) is nnx.Carry,
            diff.map_prefix(("w",), w),
            diff.map_prefix(("s",), s),
            isinstance(nnx.Carry, type),
        )

    got_flax, got_nnx = both(program)
    assert got_nnx == got_flax
