"""nnx.tabulate against flax.nnx.tabulate: same rows, shapes, sizes and FLOP counts."""

from __future__ import annotations

import re

import pytest

flax = pytest.importorskip("flax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import nnx as fnnx  # noqa: E402

import nnx  # noqa: E402

pytestmark = pytest.mark.oracle


def _build(lib: object) -> object:
    class Block(lib.Module):  # type: ignore[attr-defined,name-defined,misc]
        def __init__(self, rngs: object) -> None:
            self.up = lib.Linear(2, 8, rngs=rngs)  # type: ignore[attr-defined]
            self.mid = lib.Linear(8, 8, use_bias=False, rngs=rngs)  # type: ignore[attr-defined]
            self.down = lib.Linear(8, 3, rngs=rngs)  # type: ignore[attr-defined]

        def __call__(self, x: jax.Array) -> jax.Array:
            return self.down(jax.nn.relu(self.mid(self.up(x))))

    return Block(lib.Rngs(0))  # type: ignore[attr-defined]


def _rows(table: str) -> dict[str, list[str]]:
    """Data rows keyed by path ('' for the root), cells stripped; multi-line cells of
    Flax's table (its Variable columns) are dropped."""
    rows: dict[str, list[str]] = {}
    for line in table.splitlines():
        if not line.startswith("│"):
            continue
        cells = [c.strip() for c in line[1:-1].split("│")]
        if cells[1] and cells[0] not in rows:
            rows[cells[0]] = cells
    return rows


def _int(cell: str) -> int:
    return int(re.sub(r"[^0-9]", "", cell))


def test_rows_shapes_and_flops_match_flax() -> None:
    x = jnp.ones((4, 2))
    kwargs = {"compute_flops": True, "compute_vjp_flops": True}
    theirs = _rows(
        fnnx.tabulate(
            _build(fnnx), x, console_kwargs={"force_terminal": False, "width": 400}, **kwargs
        )
    )
    ours = _rows(nnx.tabulate(_build(nnx), x, **kwargs))
    assert list(ours) == list(theirs) == ["", "up", "mid", "down"]
    for path in theirs:
        # type, inputs, outputs
        assert ours[path][1:4] == theirs[path][1:4], path
        # Forward FLOPs: XLA's cost analysis of the same computation (Linear layers
        # compute the same ops in both libraries; other layers may legitimately differ).
        assert _int(ours[path][4]) == _int(theirs[path][4]), path
        # Forward + backward: the same method; the graphs differ slightly in how
        # the layers are written, so allow a small relative difference.
        ours_vjp, theirs_vjp = _int(ours[path][5]), _int(theirs[path][5])
        assert abs(ours_vjp - theirs_vjp) <= 0.1 * theirs_vjp, (path, ours_vjp, theirs_vjp)


def _scanned(lib: object) -> object:
    class Block(lib.Module):  # type: ignore[attr-defined,name-defined,misc]
        def __init__(self, rngs: object) -> None:
            self.linear = lib.Linear(3, 3, rngs=rngs)  # type: ignore[attr-defined]

        def __call__(self, x: jax.Array) -> jax.Array:
            return jax.nn.relu(self.linear(x))

    class Stack(lib.Module):  # type: ignore[attr-defined,name-defined,misc]
        def __init__(self) -> None:
            make = lib.vmap(lambda key: Block(lib.Rngs(key)), in_axes=0)  # type: ignore[attr-defined]
            self.blocks = make(jax.random.split(jax.random.key(0), 4))
            self.head = lib.Linear(3, 1, rngs=lib.Rngs(1))  # type: ignore[attr-defined]

        def __call__(self, x: jax.Array) -> jax.Array:
            body = lib.scan(  # type: ignore[attr-defined]
                lambda block, x: block(x),
                in_axes=(0, lib.Carry),  # type: ignore[attr-defined]
                out_axes=lib.Carry,  # type: ignore[attr-defined]
            )
            return self.head(body(self.blocks, x))

    return Stack()


def test_submodules_called_inside_scan_are_listed_as_flax_lists_them() -> None:
    x = jnp.ones((2, 3))
    theirs = _rows(
        fnnx.tabulate(_scanned(fnnx), x, console_kwargs={"force_terminal": False, "width": 400})
    )
    ours = _rows(nnx.tabulate(_scanned(nnx), x))
    assert list(ours) == list(theirs) == ["", "blocks", "blocks/linear", "head"]
    for path in theirs:
        assert ours[path][1:4] == theirs[path][1:4], path
