"""The model structures every benchmark uses, built the same way in each library.

An MLP of ``depth`` blocks; a block is a Linear (``Param`` kernel and bias) followed
by a BatchNorm's running statistics (``BatchStat`` mean and var).  An
"optimizer-like" object holds the model (a shared reference, as ``nnx.Optimizer``
does), a step counter and a momentum copy of the parameters.  Leaves:
``6 * depth + 1`` (31 at depth 5, 601 at depth 100).

* nnx: built from ``nnx_graph`` primitives only (Module, Pytree, List, Param,
  BatchStat, Variable), so the benchmark does not depend on ``nnx_nn``/``nnx_optim``.
* flax.nnx: the *same class definitions*, created against ``flax.nnx`` (the two share
  the programming model, so :func:`graph_models` defines the classes once for either
  library).  Flax's tree mode and ``jit_partial(graph=False)`` reject shared
  Variables, so those variants use ``Optimizer(model, hold_model=False)``: the same
  leaves without the shared model reference.
* equinox: ``eqx.Module`` pytrees.  Equinox has no shared references, so its
  optimizer state does not hold the model either (same leaves); update steps return
  new pytrees.
* floor: a flat list of arrays, ``[step, (kernel, bias, mean, var, m_kernel,
  m_bias) * depth]``, for plain ``jax.jit``.

Variables are read and written with ``get_value()``/``set_value()``, which both
libraries support.  (In flax 0.12.8, ``v[...] = x`` inside a trace checks
``x.sharding`` on the tracer, which makes jax build an error message by walking the
whole trace, so tracing a step that writes n Variables costs O(n²): about 20 s for
the depth-100 update step; ``set_value`` has no such check.)

All variants start from the same arrays (:func:`init_arrays`), and the update step
does the same arithmetic everywhere, so results can be checked against each other.
"""

from __future__ import annotations

import functools
import importlib
import types
import typing as tp

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "LR",
    "MOMENTUM",
    "BlockArrays",
    "eqx_models",
    "flat_empty",
    "flat_leaves",
    "flat_update",
    "graph_models",
    "hand_forward",
    "init_arrays",
]

LR = 0.01
MOMENTUM = 0.9


class BlockArrays(tp.NamedTuple):
    kernel: jax.Array
    bias: jax.Array
    mean: jax.Array
    var: jax.Array


def init_arrays(depth: int, width: int, seed: int = 0) -> list[BlockArrays]:
    """Initial values of every block, shared by all the implementations."""
    rng = np.random.default_rng(seed)
    blocks = []
    for _ in range(depth):
        kernel = rng.normal(size=(width, width)).astype(np.float32) / np.sqrt(width)
        blocks.append(
            BlockArrays(
                jnp.asarray(kernel),
                jnp.asarray(rng.normal(size=(width,)).astype(np.float32) * 0.1),
                jnp.zeros((width,), jnp.float32),
                jnp.ones((width,), jnp.float32),
            )
        )
    return blocks


# ----------------------------------------------------------------- graph libraries
@functools.cache
def graph_models(lib: types.ModuleType) -> types.SimpleNamespace:
    """Block/MLP/Optimizer classes and step functions for ``nnx_graph`` or ``flax.nnx``.

    Both libraries share the Flax NNX programming model, so one definition serves
    both and the structures are identical by construction.
    """

    class Block(lib.Module):  # type: ignore[name-defined, misc]
        def __init__(self, arrays: BlockArrays) -> None:
            self.kernel = lib.Param(arrays.kernel)
            self.bias = lib.Param(arrays.bias)
            self.mean = lib.BatchStat(arrays.mean)
            self.var = lib.BatchStat(arrays.var)

        def __call__(self, x: jax.Array) -> jax.Array:
            y = x @ self.kernel.get_value() + self.bias.get_value()
            mean = y.mean(0)
            var = y.var(0)
            self.mean.set_value(MOMENTUM * self.mean.get_value() + (1 - MOMENTUM) * mean)
            self.var.set_value(MOMENTUM * self.var.get_value() + (1 - MOMENTUM) * var)
            return jax.nn.relu((y - mean) * jax.lax.rsqrt(var + 1e-5))

    class MLP(lib.Module):  # type: ignore[name-defined, misc]
        def __init__(self, blocks: tp.Sequence[BlockArrays]) -> None:
            self.blocks = lib.List([Block(a) for a in blocks])

        def __call__(self, x: jax.Array) -> jax.Array:
            for block in self.blocks:
                x = block(x)
            return x

    class Momentum(lib.Variable):  # type: ignore[name-defined, misc]
        pass

    class BlockMomentum(lib.Pytree):  # type: ignore[name-defined, misc]
        def __init__(self, block: Block) -> None:
            self.kernel = Momentum(jnp.zeros_like(block.kernel.get_value()))
            self.bias = Momentum(jnp.zeros_like(block.bias.get_value()))

    class Optimizer(lib.Pytree):  # type: ignore[name-defined, misc]
        def __init__(self, model: MLP, *, hold_model: bool = True) -> None:
            if hold_model:
                self.model = model
            self.step = lib.Variable(jnp.array(0, jnp.int32))
            self.momentum = lib.List([BlockMomentum(b) for b in model.blocks])

    def build(depth: int, width: int, *, hold_model: bool = True) -> tuple[tp.Any, tp.Any]:
        model = MLP(init_arrays(depth, width))
        return model, Optimizer(model, hold_model=hold_model)

    return types.SimpleNamespace(
        lib=lib,
        Block=Block,
        MLP=MLP,
        Optimizer=Optimizer,
        build=build,
        empty_step=_empty_step,
        update_step=_update_step,
    )


def _empty_step(model: tp.Any, optimizer: tp.Any) -> None:
    return None


def _update_step(model: tp.Any, optimizer: tp.Any) -> None:
    """Write a new value into every Variable of (model, optimizer)."""
    optimizer.step.set_value(optimizer.step.get_value() + 1)
    for block, mom in zip(model.blocks, optimizer.momentum):
        mom.kernel.set_value(MOMENTUM * mom.kernel.get_value() + block.kernel.get_value())
        mom.bias.set_value(MOMENTUM * mom.bias.get_value() + block.bias.get_value())
        block.kernel.set_value(block.kernel.get_value() - LR * mom.kernel.get_value())
        block.bias.set_value(block.bias.get_value() - LR * mom.bias.get_value())
        block.mean.set_value(MOMENTUM * block.mean.get_value())
        block.var.set_value(MOMENTUM * block.var.get_value() + (1 - MOMENTUM))


# ------------------------------------------------------------------------ floor
def flat_leaves(depth: int, width: int) -> list[jax.Array]:
    leaves = [jnp.array(0, jnp.int32)]
    for a in init_arrays(depth, width):
        leaves += [a.kernel, a.bias, a.mean, a.var]
        leaves += [jnp.zeros_like(a.kernel), jnp.zeros_like(a.bias)]
    return leaves


def flat_empty(leaves: list[jax.Array]) -> None:
    return None


def flat_update(leaves: list[jax.Array]) -> list[jax.Array]:
    """The update step by hand on the flat leaf list (same arithmetic)."""
    out = [leaves[0] + 1]
    for i in range(1, len(leaves), 6):
        kernel, bias, mean, var, m_kernel, m_bias = leaves[i : i + 6]
        m_kernel = MOMENTUM * m_kernel + kernel
        m_bias = MOMENTUM * m_bias + bias
        out += [
            kernel - LR * m_kernel,
            bias - LR * m_bias,
            MOMENTUM * mean,
            MOMENTUM * var + (1 - MOMENTUM),
            m_kernel,
            m_bias,
        ]
    return out


def hand_forward(
    params: list[dict[str, jax.Array]], stats: list[dict[str, jax.Array]], x: jax.Array
) -> tuple[jax.Array, list[dict[str, jax.Array]]]:
    """``MLP.__call__`` written as a pure function: returns (y, new batch stats)."""
    new_stats = []
    for p, s in zip(params, stats):
        y = x @ p["kernel"] + p["bias"]
        mean = y.mean(0)
        var = y.var(0)
        new_stats.append(
            {
                "mean": MOMENTUM * s["mean"] + (1 - MOMENTUM) * mean,
                "var": MOMENTUM * s["var"] + (1 - MOMENTUM) * var,
            }
        )
        x = jax.nn.relu((y - mean) * jax.lax.rsqrt(var + 1e-5))
    return x, new_stats


# ---------------------------------------------------------------------- equinox
@functools.cache
def eqx_models() -> types.SimpleNamespace:
    """Equinox versions (requires equinox): model and optimizer state as pytrees."""
    eqx: tp.Any = importlib.import_module("equinox")  # optional: not needed to type-check

    class EqxBlock(eqx.Module):  # type: ignore[misc]
        kernel: jax.Array
        bias: jax.Array
        mean: jax.Array
        var: jax.Array

    class EqxMLP(eqx.Module):  # type: ignore[misc]
        blocks: tuple[EqxBlock, ...]

    class EqxMomentum(eqx.Module):  # type: ignore[misc]
        kernel: jax.Array
        bias: jax.Array

    class EqxOptimizer(eqx.Module):  # type: ignore[misc]
        step: jax.Array
        momentum: tuple[EqxMomentum, ...]

    def build(depth: int, width: int) -> tuple[EqxMLP, EqxOptimizer]:
        blocks = tuple(EqxBlock(*a) for a in init_arrays(depth, width))
        momentum = tuple(
            EqxMomentum(jnp.zeros_like(b.kernel), jnp.zeros_like(b.bias)) for b in blocks
        )
        return EqxMLP(blocks), EqxOptimizer(jnp.array(0, jnp.int32), momentum)

    def update_step(model: EqxMLP, opt: EqxOptimizer) -> tuple[EqxMLP, EqxOptimizer]:
        blocks = []
        momentum = []
        for b, m in zip(model.blocks, opt.momentum):
            mk = MOMENTUM * m.kernel + b.kernel
            mb = MOMENTUM * m.bias + b.bias
            momentum.append(EqxMomentum(mk, mb))
            blocks.append(
                EqxBlock(
                    b.kernel - LR * mk,
                    b.bias - LR * mb,
                    MOMENTUM * b.mean,
                    MOMENTUM * b.var + (1 - MOMENTUM),
                )
            )
        return EqxMLP(tuple(blocks)), EqxOptimizer(opt.step + 1, tuple(momentum))

    return types.SimpleNamespace(build=build, empty_step=_empty_step, update_step=update_step)
