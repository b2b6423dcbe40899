"""Oracle: Flax 0.12's Pytree/Module attribute rules and trace-level rule, run the same
way on flax.nnx and on nnx. Each scenario must raise the same exception type (nnx's
may subclass it) carrying Flax's key phrase, or succeed in both.

Scenarios where Flax raises and nnx deliberately keeps working (plain lists/dicts of
Modules or arrays, see ``deliberate_differences.py``) are checked separately.
"""

from __future__ import annotations

import typing as tp

import pytest

flax = pytest.importorskip("flax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import errors as flax_errors  # noqa: E402
from flax import nnx as fnnx  # noqa: E402

import nnx  # noqa: E402

pytestmark = pytest.mark.oracle


def _static_then_array(lib: tp.Any) -> None:
    class M(lib.Module):
        def __init__(self):
            self.a = 1

    M().a = jnp.ones(1)


def _none_then_variable(lib: tp.Any) -> None:
    class M(lib.Module):
        def __init__(self):
            self.a = None

    M().a = lib.Param(jnp.ones(1))


def _static_marker_with_array(lib: tp.Any) -> None:
    class M(lib.Module):
        def __init__(self):
            self.a = lib.static(jnp.ones(1))

    M()


def _data_then_int_then_array(lib: tp.Any) -> None:
    class M(lib.Module):
        def __init__(self):
            self.a = jnp.ones(1)

    m = M()
    m.a = 3
    m.a = jnp.zeros(1)
    assert jax.tree.leaves(m) == [m.a]


def _data_marker_then_variable(lib: tp.Any) -> None:
    class M(lib.Module):
        def __init__(self):
            self.a = lib.data(None)

    M().a = lib.Param(jnp.ones(1))


def _delete_then_array(lib: tp.Any) -> None:
    class M(lib.Module):
        def __init__(self):
            self.a = 1

    m = M()
    del m.a
    m.a = jnp.ones(1)


def _pytree_false(lib: tp.Any) -> None:
    class M(lib.Module, pytree=False):
        def __init__(self):
            self.a = 1

    M().a = jnp.ones(1)


def _mutate_in_jax_jit(lib: tp.Any) -> None:
    class M(lib.Module):
        def __init__(self):
            self.a = 1

    m = M()

    @jax.jit
    def f(x):
        m.a = 2
        return x

    f(1)


def _check_pytree_non_pytree(lib: tp.Any) -> None:
    lib.check_pytree(3)


SCENARIOS: dict[str, tuple[tp.Callable[[tp.Any], None], type[BaseException] | None, str]] = {
    "static_then_array": (_static_then_array, ValueError, "Cannot assign data value of type"),
    "none_then_variable": (_none_then_variable, ValueError, "to static attribute 'a'"),
    "static_marker_with_array": (
        _static_marker_with_array,
        ValueError,
        "annotated with nnx.static(...) when setting attribute 'a'",
    ),
    "data_then_int_then_array": (_data_then_int_then_array, None, ""),
    "data_marker_then_variable": (_data_marker_then_variable, None, ""),
    "delete_then_array": (_delete_then_array, None, ""),
    "pytree_false": (_pytree_false, None, ""),
    "mutate_in_jax_jit": (_mutate_in_jax_jit, None, "Cannot mutate 'M' from different trace"),
    "check_pytree_non_pytree": (_check_pytree_non_pytree, TypeError, "Expected a Pytree, got"),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_same_outcome_as_flax(name: str) -> None:
    scenario, error, phrase = SCENARIOS[name]
    if name == "mutate_in_jax_jit":  # each library has its own exception class
        with pytest.raises(flax_errors.TraceContextError, match=phrase):
            scenario(fnnx)
        with pytest.raises(nnx.TraceContextError, match=phrase):
            scenario(nnx)
        return
    if error is None:
        scenario(fnnx)
        scenario(nnx)
        return
    for lib in (fnnx, nnx):
        with pytest.raises(error) as info:
            scenario(lib)
        assert phrase in str(info.value), (lib.__name__, str(info.value))


def test_plain_list_of_modules_is_a_deliberate_difference() -> None:
    def build(lib: tp.Any) -> tp.Any:
        class M(lib.Module):
            def __init__(self):
                self.layers = [lib.Linear(1, 1, rngs=lib.Rngs(0))]

        return M()

    with pytest.raises(ValueError, match="Found data on value of type"):
        build(fnnx)
    assert isinstance(build(nnx).layers, nnx.List)


def _repr_model(lib: tp.Any) -> str:
    import re

    class Inner(lib.Module):
        def __init__(self):
            self.n = 3
            self.s = "hi"
            self.w = lib.Param(jnp.ones((2, 3)))

    class M(lib.Module):
        def __init__(self, rngs):
            self.lin = lib.Linear(2, 3, rngs=rngs)
            self.i, self.f, self.name, self.ints = 1, 0.5, "abc", [1, 2]
            self.arr = lib.data(jnp.zeros(3))
            self.scalar = lib.data(jnp.float32(2.0))
            self.v = lib.BatchStat(jnp.zeros(4))
            self.inner = Inner()
            self.layers = lib.List([Inner(), Inner()])
            self.d = lib.Dict(a=lib.Param(jnp.ones(1)))
            self.none = None
            self.empty = lib.List([])

    return re.sub(r"0x[0-9a-f]+", "0x", repr(M(lib.Rngs(0))))


def test_module_repr_layout_matches_flax() -> None:
    assert _repr_model(nnx) == _repr_model(fnnx)
