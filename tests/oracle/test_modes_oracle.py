"""Oracle: graph=False / graph_updates=False and the AOT stages against flax.nnx 0.12.

The same program runs once with ``flax.nnx`` and once with ``nnx_graph``: it must
succeed in both (with equal results) or raise ValueError in both. The one
deliberate difference (structural changes carried back instead of dropped) is
checked on its own.

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
MODES = {
    "default": {},
    "graph=False": {"graph": False},
    "graph_updates=False": {"graph": True, "graph_updates": False},
}


@pytest.fixture(autouse=True)
def _quiet() -> tp.Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _module(lib: tp.Any, share: bool = False) -> tp.Any:
    class M(lib.Module):
        def __init__(self) -> None:
            self.a = lib.Param(jnp.ones(2))
            if share:
                self.b = self.a

    return M()


def _value(v: tp.Any) -> np.ndarray:
    return np.asarray(v.get_value() if hasattr(v, "get_value") else v.value)


def _bump(m: tp.Any) -> None:
    m.a.set_value(m.a.get_value() + 1)


def _grad_of_a(grads: tp.Any) -> tp.Any:
    return grads["a"] if isinstance(grads, (fnnx.State, nnx_graph.State)) else grads.a


# each case: (lib, mode kwargs) -> a comparable result
CASES: dict[str, tp.Callable[[tp.Any, dict[str, tp.Any]], tp.Any]] = {
    "jit update": lambda lib, kw: (
        lib.jit(_bump, **kw)(m := _module(lib)),
        _value(m.a).tolist(),
    )[1],
    "jit shared attrs": lambda lib, kw: (
        lib.jit(_bump, **kw)(m := _module(lib, share=True)),
        _value(m.b).tolist(),
    )[1],
    "jit same module twice": lambda lib, kw: (
        lib.jit(lambda x, y: _bump(x), **kw)(m := _module(lib), m),
        _value(m.a).tolist(),
    )[1],
    "jit returns input": lambda lib, kw: type(lib.jit(lambda m: m, **kw)(_module(lib))).__name__,
    "jit returns input variable": lambda lib, kw: (
        type(lib.jit(lambda m: m.a, **kw)(_module(lib))).__name__
    ),
    "jit returns new module": lambda lib, kw: _value(
        lib.jit(lambda: _module(lib), **kw)().a
    ).tolist(),
    "jit returns new shared module": lambda lib, kw: (lambda r: r.a is r.b)(
        lib.jit(lambda: _module(lib, share=True), **kw)()
    ),
    "eval_shape shared input": lambda lib, kw: (
        lib.eval_shape(lambda m: m.a.get_value().sum(), _module(lib, share=True), **kw).shape
    ),
    "eval_shape returns input variable": lambda lib, kw: (
        type(lib.eval_shape(lambda m: m.a, _module(lib), **kw)).__name__
    ),
    "eval_shape new shared module": lambda lib, kw: (lambda r: r.a is r.b)(
        lib.eval_shape(lambda: _module(lib, share=True), **kw)
    ),
    "grad shared": lambda lib, kw: _value(
        _grad_of_a(lib.grad(lambda m: (m.a.get_value() ** 2).sum(), **kw)(_module(lib, True)))
    ).tolist(),
    "grad result type": lambda lib, kw: (
        type(lib.grad(lambda m: (m.a.get_value() ** 2).sum(), **kw)(_module(lib))).__name__
    ),
    "cond shared": lambda lib, kw: np.asarray(
        lib.cond(
            True,
            lambda m: m.a.get_value(),
            lambda m: m.a.get_value(),
            _module(lib, share=True),
            **kw,
        )
    ).tolist(),
    "checkify update": lambda lib, kw: (
        lib.checkify(_bump, **kw)(m := _module(lib)),
        _value(m.a).tolist(),
    )[1],
}


def _outcome(lib: tp.Any, case: str, kw: dict[str, tp.Any]) -> tuple[str, tp.Any]:
    try:
        return "ok", CASES[case](lib, kw)
    except ValueError:
        return "ValueError", None


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("case", list(CASES))
def test_same_outcome_as_flax(case: str, mode: str) -> None:
    kw = MODES[mode]
    expected = _outcome(fnnx, case, kw)
    got = _outcome(nnx_graph, case, kw)
    assert got == expected, f"{case} / {mode}: flax {expected}, nnx {got}"


@pytest.mark.parametrize("mode", ["graph=False", "graph_updates=False"])
def test_structural_change_deliberately_carried_back(mode: str) -> None:
    def grow(lib: tp.Any) -> tp.Callable[[tp.Any], None]:
        def f(m: tp.Any) -> None:
            m.c = lib.Param(jnp.zeros(1))
            _bump(m)

        return f

    outcome = {}
    for name, lib in LIBS.items():
        m = _module(lib)
        lib.jit(grow(lib), **MODES[mode])(m)
        outcome[name] = (hasattr(m, "c"), _value(m.a).tolist())
    # both propagate the value update; Flax drops the new attribute, nnx keeps it
    assert outcome["flax"] == (False, [2.0, 2.0])
    assert outcome["nnx"] == (True, [2.0, 2.0])


def test_compiled_stage_called_with_modules_like_flax() -> None:
    results = {}
    for name, lib in LIBS.items():
        m = _module(lib)

        def step(m: tp.Any, k: int, x: jax.Array) -> jax.Array:
            _bump(m)
            return x * k

        exe = lib.jit(step, static_argnums=1).lower(m, 3, jnp.ones(2)).compile()
        out = exe(m, jnp.ones(2))
        exe(m, jnp.ones(2))
        results[name] = (np.asarray(out).tolist(), _value(m.a).tolist(), type(exe).__name__)
    assert results["nnx"] == results["flax"]
