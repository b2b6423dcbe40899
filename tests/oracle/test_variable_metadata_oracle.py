"""Oracle: every parameter of the built-in layers carries the same metadata as in
flax.nnx 0.12.8 (issue 12, "Linear, Conv and Einsum parameters carry the same
metadata as Flax's"), with and without ``*_metadata``/sharding annotations, and a
bare Variable of each built-in type has Flax's required metadata.

Each case builds the layer in both libraries with the same arguments and compares
``get_metadata()`` of every Variable at the same path (and the Variable's type).
Run with the oracle environment (flax installed): ``pytest tests/oracle -m oracle``.
"""

from __future__ import annotations

import typing as tp

import numpy as np
import pytest

flax = pytest.importorskip("flax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import nnx as fnnx  # noqa: E402

import nnx_graph  # noqa: E402
import nnx_nn  # noqa: E402

pytestmark = pytest.mark.oracle

Builder = tp.Callable[[tp.Any, tp.Any], tp.Any]  # (library namespace, rngs) -> layer


def _flat_metadata(node: tp.Any, lib: tp.Any) -> dict[tuple[tp.Any, ...], tuple[str, dict]]:
    state = lib.state(node)
    out = {}
    for path, var in state.flat_state():
        if not isinstance(var, lib.Variable):
            continue  # metadata lives on Variables (nnx also lists None-valued slots)
        metadata = dict(var.get_metadata())
        for key in ("on_get_value", "on_set_value", "on_create_value"):
            metadata.pop(key, None)  # hooks: functions, not comparable across libraries
        out[tuple(path)] = (type(var).__name__, metadata)
    return out


def _normalise(metadata: dict[str, tp.Any]) -> dict[str, tp.Any]:
    out = {}
    for key, value in metadata.items():
        if isinstance(value, list):
            value = tuple(value)
        if isinstance(value, jax.sharding.PartitionSpec):
            value = tuple(value)
        out[key] = value
    return out


SHARD = {"kernel": ("in", "out")}

CASES: dict[str, Builder] = {
    "Linear": lambda L, r: L.Linear(3, 4, rngs=r),
    "Linear+metadata": lambda L, r: L.Linear(
        3,
        4,
        kernel_metadata={"out_sharding": ("a", "b"), "tag": "k"},
        bias_metadata={"out_sharding": ("b",)},
        rngs=r,
    ),
    "Linear+with_partitioning": lambda L, r: L.Linear(
        3,
        4,
        kernel_init=L.with_partitioning(L.initializers.lecun_normal(), ("a", "b")),
        bias_init=L.with_partitioning(L.initializers.zeros_init(), ("b",)),
        rngs=r,
    ),
    "LinearGeneral": lambda L, r: L.LinearGeneral((2, 3), (4, 5), axis=(-2, -1), rngs=r),
    "LinearGeneral+metadata": lambda L, r: L.LinearGeneral(
        3, (4, 5), kernel_metadata={"out_sharding": (None, "a", "b")}, rngs=r
    ),
    "Conv": lambda L, r: L.Conv(3, 4, (3, 3), rngs=r),
    "Conv+metadata": lambda L, r: L.Conv(
        3, 4, 3, kernel_metadata={"out_sharding": (None, "a", "b")}, rngs=r
    ),
    "ConvTranspose": lambda L, r: L.ConvTranspose(3, 4, (3,), rngs=r),
    "ConvTranspose+metadata": lambda L, r: L.ConvTranspose(
        3, 4, (3,), kernel_metadata={"out_sharding": (None, "a", "b")}, rngs=r
    ),
    "Einsum": lambda L, r: L.Einsum("bd,dnh->bnh", (3, 2, 4), (2, 4), rngs=r),
    "Einsum+metadata": lambda L, r: L.Einsum(
        "bd,dnh->bnh",
        (3, 2, 4),
        (2, 4),
        kernel_metadata={"out_sharding": ("a", None, "b")},
        bias_metadata={"out_sharding": (None, "b")},
        rngs=r,
    ),
    "Embed": lambda L, r: L.Embed(10, 4, rngs=r),
    "Embed+metadata": lambda L, r: L.Embed(
        10, 4, embedding_metadata={"out_sharding": ("vocab", "embed")}, rngs=r
    ),
    "BatchNorm": lambda L, r: L.BatchNorm(4, rngs=r),
    "BatchNorm+metadata": lambda L, r: L.BatchNorm(
        4, scale_metadata={"out_sharding": ("f",)}, bias_metadata={"out_sharding": ("f",)}, rngs=r
    ),
    "LayerNorm": lambda L, r: L.LayerNorm(4, rngs=r),
    "LayerNorm+metadata": lambda L, r: L.LayerNorm(
        4, scale_metadata={"out_sharding": ("f",)}, bias_metadata={"out_sharding": ("f",)}, rngs=r
    ),
    "RMSNorm": lambda L, r: L.RMSNorm(4, rngs=r),
    "RMSNorm+metadata": lambda L, r: L.RMSNorm(4, scale_metadata={"out_sharding": ("f",)}, rngs=r),
    "MultiHeadAttention": lambda L, r: L.MultiHeadAttention(2, 8, 8, decode=False, rngs=r),
    "LoRA": lambda L, r: L.LoRA(3, 2, 4, rngs=r),
    "LoRA+metadata": lambda L, r: L.LoRA(
        3,
        2,
        4,
        a_metadata={"out_sharding": ("in", None)},
        b_metadata={"out_sharding": (None, "out")},
        rngs=r,
    ),
    "LoRALinear": lambda L, r: L.LoRALinear(3, 4, lora_rank=2, rngs=r),
}


def _pairs(name: str) -> tuple[tp.Any, tp.Any]:
    build = CASES[name]
    # No mesh is set: annotated Variables are built without eager placement in
    # both libraries (Flax would raise), so the annotation is what is compared.
    with fnnx.use_eager_sharding(False), nnx_graph.use_eager_sharding(False):
        theirs = build(fnnx, fnnx.Rngs(0))
        ours = build(_Ours, nnx_graph.Rngs(0))
    return theirs, ours


class _OursNamespace:
    """``nnx_nn`` layers plus the nnx_graph helpers the cases use, under Flax's names."""

    def __getattr__(self, name: str) -> tp.Any:
        if hasattr(nnx_nn, name):
            return getattr(nnx_nn, name)
        return getattr(nnx_graph, name)


_Ours = _OursNamespace()


@pytest.mark.parametrize("name", sorted(CASES))
def test_layer_parameter_metadata_matches_flax(name: str) -> None:
    theirs, ours = _pairs(name)
    flax_meta = _flat_metadata(theirs, fnnx)
    our_meta = _flat_metadata(ours, nnx_graph)
    assert sorted(our_meta) == sorted(flax_meta), name
    for path, (flax_type, flax_md) in flax_meta.items():
        our_type, our_md = our_meta[path]
        assert our_type == flax_type, (name, path)
        assert _normalise(our_md) == _normalise(flax_md), (name, path)


@pytest.mark.parametrize(
    "typ", ["Variable", "Param", "BatchStat", "Cache", "Intermediate", "Perturbation"]
)
def test_bare_variable_metadata_matches_flax(typ: str) -> None:
    value = np.ones(2, np.float32)
    theirs = getattr(fnnx, typ)(jnp.asarray(value))
    ours = getattr(nnx_graph, typ)(jnp.asarray(value))
    assert ours.get_metadata() == theirs.get_metadata()
    for kwargs in ({"ref": True}, {"eager_sharding": False}, {"tag": 1}):
        theirs = getattr(fnnx, typ)(jnp.asarray(value), **kwargs)
        ours = getattr(nnx_graph, typ)(jnp.asarray(value), **kwargs)
        assert ours.get_metadata() == theirs.get_metadata(), kwargs
        assert ours.get_metadata(exclude_required=True) == theirs.get_metadata(
            exclude_required=True
        )


def test_alias_spellings_are_stored_as_out_sharding_as_in_flax() -> None:
    for alias in ("sharding_names", "sharding"):
        kwargs = {alias: ("a",), "eager_sharding": False}
        theirs = fnnx.Param(jnp.ones(2), **kwargs)
        ours = nnx_graph.Param(jnp.ones(2), **kwargs)
        assert ours.get_metadata() == theirs.get_metadata()


@pytest.mark.parametrize("name", ["Linear+metadata", "Linear+with_partitioning", "Einsum+metadata"])
def test_metadata_matches_flax_when_placed_on_a_mesh(name: str) -> None:
    mesh = jax.make_mesh((1, 1), ("a", "b"))
    with jax.set_mesh(mesh):
        theirs = CASES[name](fnnx, fnnx.Rngs(0))
        ours = CASES[name](_Ours, nnx_graph.Rngs(0))
    flax_meta = _flat_metadata(theirs, fnnx)
    our_meta = _flat_metadata(ours, nnx_graph)
    assert {p: _normalise(m) for p, (_, m) in our_meta.items()} == {
        p: _normalise(m) for p, (_, m) in flax_meta.items()
    }
    # and both placed the kernel the same way
    assert ours.kernel.get_value().sharding.spec == theirs.kernel.get_value().sharding.spec
