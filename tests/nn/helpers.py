"""Shared helpers for the nnx_nn tests: gradients through split/merge and tolerant
comparisons. Gradients are jitted: one compilation is much cheaper than running
every primitive (and its transpose) eagerly."""

from __future__ import annotations

import functools
import typing as tp

import jax
import numpy as np

import nnx_graph

TOL = {"rtol": 1e-5, "atol": 1e-5}
Path = tuple[tp.Any, ...]


def param_grads(model: tp.Any, loss: tp.Callable[[tp.Any], jax.Array]) -> dict[Path, np.ndarray]:
    """d loss(model) / d Param, through nnx_graph.split/merge, as {path: array}."""
    graphdef, params, rest = nnx_graph.split(model, nnx_graph.Param, ...)

    def f(p: tp.Any) -> jax.Array:
        return loss(nnx_graph.merge(graphdef, p, rest, copy=True))

    grads = jax.jit(jax.grad(f))(params)
    return {path: np.asarray(v.value) for path, v in nnx_graph.to_flat_state(grads)}


def ref_grads(f: tp.Callable[..., jax.Array], *args: tp.Any) -> tuple[np.ndarray, ...]:
    """Gradients of a plain function w.r.t. all of its arguments."""
    grads = jax.jit(jax.grad(f, argnums=tuple(range(len(args)))))(*args)
    return tuple(np.asarray(g) for g in grads)


def assert_close(actual: tp.Any, expected: tp.Any, **tol: float) -> None:
    np.testing.assert_allclose(
        np.asarray(actual, np.float64), np.asarray(expected, np.float64), **{**TOL, **tol}
    )


def values(model: tp.Any) -> dict[Path, np.ndarray]:
    """Every Variable of ``model`` as {path: numpy array}."""
    return {
        path: np.asarray(v.value)
        for path, v in nnx_graph.to_flat_state(nnx_graph.state(model))
        if hasattr(v, "value") and not isinstance(v, nnx_graph.RngState)
    }


def np_init(scale: float = 1.0, seed: int = 0) -> tp.Callable[..., jax.Array]:
    """A random initializer drawing from numpy. The tests use it for Params whose
    distribution does not matter: it needs no XLA compilation, while each new
    shape of a ``jax.random`` initializer costs a compile of the PRNG (the bulk of
    this suite's run time otherwise)."""
    rng = np.random.default_rng(seed)

    def init(key: jax.Array, shape: tp.Sequence[int], dtype: tp.Any = np.float32) -> jax.Array:
        del key
        return jax.numpy.asarray(rng.normal(size=tuple(shape)) * scale, dtype)

    return init


def jit_call(model: tp.Any, *args: tp.Any, **kwargs: tp.Any) -> tp.Any:
    """``model(*args, **kwargs)`` compiled as one program (through split/merge), with
    the model's state updates written back. Non-array keyword arguments (flags such
    as ``decode=True``) are static. Calls with the same structure and shapes reuse
    the compiled program."""
    graphdef, state = nnx_graph.split(model)
    static = tuple(sorted((k, v) for k, v in kwargs.items() if not _is_array(v)))
    dynamic = {k: v for k, v in kwargs.items() if _is_array(v)}
    out, new_state = _run(graphdef, static, state, args, dynamic)
    nnx_graph.update(model, new_state)
    return out


def _is_array(x: tp.Any) -> bool:
    return isinstance(x, (jax.Array, np.ndarray))


@functools.partial(jax.jit, static_argnums=(0, 1))
def _run(graphdef: tp.Any, static: tp.Any, state: tp.Any, args: tp.Any, dynamic: tp.Any) -> tp.Any:
    module = nnx_graph.merge(graphdef, state, copy=True)
    out = module(*args, **dict(static), **dynamic)
    return out, nnx_graph.state(module)
