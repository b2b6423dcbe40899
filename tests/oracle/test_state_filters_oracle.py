"""State, FlatState and filters give the same results as flax.nnx 0.12.8 on the same
programs (paths selected, pure dicts, error types)."""

from __future__ import annotations

import typing as tp
import warnings

import jax.numpy as jnp
import numpy as np
import pytest

pytestmark = pytest.mark.oracle

flax_nnx = pytest.importorskip("flax.nnx")
import nnx  # noqa: E402

warnings.filterwarnings("ignore", category=DeprecationWarning)

LIBS = {"flax": flax_nnx, "nnx": nnx}


def build(lib: tp.Any) -> tp.Any:
    class Block(lib.Module):
        def __init__(self) -> None:
            self.kernel = lib.Param(jnp.ones(2))
            self.mean = lib.BatchStat(jnp.zeros(2), tag="stats")
            self.tagged = lib.Param(jnp.zeros(1), tag="params")
            self.cache = lib.Cache(jnp.zeros(1))

    class Net(lib.Module):
        def __init__(self) -> None:
            self.encoder = Block()
            self.layers = lib.List([Block() for _ in range(11)])
            self.rngs = lib.Rngs(params=0, dropout=1)

    return Net()


def selected(lib: tp.Any, *filters: tp.Any) -> list[tuple[tp.Any, ...]]:
    state = lib.state(build(lib), *filters)
    return list(lib.to_flat_state(state).paths)


FILTERS: list[tp.Any] = [
    "params",
    "dropout",
    "stats",
    "batch_stats",
    "cache",
    ("stats", "dropout"),
    "PathContains(1, exact=False)",
    "PathContains('enc', exact=False)",
    "PathContains(10)",
    "Not('params')",
    "All(Param, 'params')",
]


def _resolve(lib: tp.Any, spec: tp.Any) -> tp.Any:
    if isinstance(spec, str) and "(" in spec:
        namespace = {
            "PathContains": lib.PathContains,
            "Not": lib.Not,
            "All": lib.All,
            "Param": lib.Param,
        }
        return eval(spec, namespace)
    return spec


@pytest.mark.parametrize("spec", FILTERS, ids=str)
def test_filter_selects_the_same_paths(spec: tp.Any) -> None:
    results = {name: selected(lib, _resolve(lib, spec)) for name, lib in LIBS.items()}
    assert results["nnx"] == results["flax"]


def test_trailing_ellipses_and_misplaced_ellipsis() -> None:
    for lib in LIBS.values():
        _, params, rest, empty = lib.split(build(lib), lib.Param, ..., True)
        assert len(lib.to_flat_state(empty)) == 0
        assert len(lib.to_flat_state(params)) == 24 and len(lib.to_flat_state(rest)) == 28
    for lib in LIBS.values():
        with pytest.raises(ValueError, match="can only be used as the last filters"):
            lib.split(build(lib), ..., lib.Param)
        with pytest.raises(ValueError, match="Non-exhaustive filters"):
            lib.split(build(lib), lib.Cache)


def state_of(lib: tp.Any) -> tp.Any:
    return lib.State(
        {"a": {"w": lib.Param(jnp.ones(1)), "m": lib.BatchStat(jnp.zeros(1))}, "b": lib.Param(2)}
    )


def test_state_methods_agree() -> None:
    out: dict[str, dict[str, tp.Any]] = {}
    for name, lib in LIBS.items():
        s = state_of(lib)
        params, rest = s.split(lib.Param, ...)
        flat = s.flat_state()
        merged = type(flat).merge(*flat.split(lib.Param, ...))
        sorted_kv = type(flat).from_sorted_keys_values((("a",), ("b",)), [1, 2])
        out[name] = {
            "pure": s.to_pure_dict(lambda v: np.asarray(v.get_value()).tolist()),
            "split": [list(lib.to_flat_state(x).paths) for x in (params, rest)],
            "sub": list((s - params).flat_state().paths),
            "or": list((params | rest).flat_state().paths),
            "merged": list(merged.paths),
            "sorted_kv": list(sorted_kv),
            "from_flat_path": lib.State.from_flat_path({("x", 0): 1}).to_pure_dict(),
            "map": s.map(f=lambda path, v: len(path)).to_pure_dict(),
            "flat_filter": list(flat.filter(lib.BatchStat).paths),
        }
    assert out["nnx"] == out["flax"]


def test_state_copy_false_wraps_the_dict() -> None:
    for lib in LIBS.values():
        d = {"x": {"y": 1}}
        s = lib.State(d, _copy=False)
        s["x"]["z"] = 2
        assert d == {"x": {"y": 1, "z": 2}}
        with pytest.raises(ValueError, match="Expected a dictionary when `_copy=False`"):
            lib.State([("a", 1)], _copy=False)


def test_replace_by_pure_dict_leaves_the_model_until_update() -> None:
    seen = {}
    for name, lib in LIBS.items():
        model = lib.Linear(2, 3, rngs=lib.Rngs(0))
        state = lib.state(model)
        state.replace_by_pure_dict({"bias": jnp.ones(3)})
        before = np.asarray(model.bias.get_value()).tolist()
        lib.update(model, state)
        after = np.asarray(model.bias.get_value()).tolist()
        with pytest.raises(ValueError, match="key in pure_dict not available in state"):
            state.replace_by_pure_dict({"nope": jnp.ones(3)})
        seen[name] = (before, after)
    assert seen["nnx"] == seen["flax"] == ([0.0] * 3, [1.0] * 3)
