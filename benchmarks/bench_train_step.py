"""A full train step, end to end: ``nnx.jit`` + ``nnx.value_and_grad`` +
``nnx.Optimizer(model, optax.adam(...), wrt=nnx.Param)`` on an MLP of
Linear+BatchNorm(+relu) blocks (``nnx.Linear``, ``nnx.BatchNorm``), against

* the floor: a hand-written ``jax.jit`` step with optax over the flat lists of
  arrays (kernels, biases, BatchNorm scales/biases and running statistics, adam
  state), starting from the same arrays; it returns the new arrays, which the
  loop feeds back in;
* the same code on ``flax.nnx`` (same classes, same arrays), when installed.

Reported: the per-step wall time (median over interleaved rounds, each round runs
every variant for a fixed number of steps and waits for the last result) and its
ratio to the floor (median of the per-round ratios); the first call (trace +
compile + one step) against flax's; the eager (un-jitted) forward against flax's.
Every variant is checked first: one step from the same arrays gives the floor's
loss and kernels.

    python benchmarks/bench_train_step.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import types
import typing as tp

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _common import NA, Settings, Table, fmt_ratio, fmt_us, optional

__all__ = ["DEPTHS", "FLAX", "FLOOR", "NNX", "run"]

DEPTHS = (10, 100)
WIDTH = 32
BATCH = 16
LR = 1e-3
MOMENTUM = 0.99
EPSILON = 1e-5
FLOOR = "jax.jit + optax, flat arrays (floor)"
NNX = "nnx.jit + nnx.value_and_grad + nnx.Optimizer"
FLAX = "flax.nnx, same code"


# ------------------------------------------------------------------ the model, per library
def model_classes(lib: types.ModuleType) -> tuple[type, type]:
    """``(Block, MLP)`` defined against ``lib`` (``nnx`` or ``flax.nnx``)."""

    class Block(lib.Module):  # type: ignore[name-defined,misc]
        def __init__(self, width: int, rngs: tp.Any) -> None:
            self.linear = lib.Linear(width, width, rngs=rngs)
            self.norm = lib.BatchNorm(width, momentum=MOMENTUM, epsilon=EPSILON, rngs=rngs)

        def __call__(self, x: jax.Array) -> jax.Array:
            return jax.nn.relu(self.norm(self.linear(x)))

    class MLP(lib.Module):  # type: ignore[name-defined,misc]
        def __init__(self, depth: int, width: int, rngs: tp.Any) -> None:
            self.blocks = lib.List([Block(width, rngs) for _ in range(depth)])

        def __call__(self, x: jax.Array) -> jax.Array:
            for block in self.blocks:
                x = block(x)
            return x

    return Block, MLP


def train_step_for(lib: types.ModuleType) -> tp.Callable[..., tp.Any]:
    """The user's train step, written once, jitted with ``lib.jit``."""

    def train_step(model: tp.Any, optimizer: tp.Any, x: jax.Array, y: jax.Array) -> jax.Array:
        def loss_fn(model: tp.Any) -> jax.Array:
            return ((model(x) - y) ** 2).mean()

        loss, grads = lib.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    return tp.cast(tp.Callable[..., tp.Any], lib.jit(train_step))


BLOCK_KEYS = ("kernel", "bias", "scale", "norm_bias")


def init_arrays(depth: int, seed: int = 0) -> tuple[list[dict[str, jax.Array]], list[tuple]]:
    """Parameters (per block: kernel, bias, BatchNorm scale and bias) and running
    statistics (mean, var) shared by every variant."""
    rng = np.random.default_rng(seed)
    params, stats = [], []
    for _ in range(depth):
        params.append(
            {
                "kernel": jnp.asarray(
                    rng.normal(size=(WIDTH, WIDTH)) / np.sqrt(WIDTH), jnp.float32
                ),
                "bias": jnp.asarray(rng.normal(size=(WIDTH,)) * 0.1, jnp.float32),
                "scale": jnp.ones((WIDTH,), jnp.float32),
                "norm_bias": jnp.zeros((WIDTH,), jnp.float32),
            }
        )
        stats.append((jnp.zeros((WIDTH,), jnp.float32), jnp.ones((WIDTH,), jnp.float32)))
    return params, stats


def build(lib: types.ModuleType, depth: int) -> tuple[tp.Any, tp.Any]:
    """``(model, optimizer)`` in ``lib`` holding the shared arrays."""
    _, mlp = model_classes(lib)
    model = mlp(depth, WIDTH, lib.Rngs(0))
    params, stats = init_arrays(depth)
    for block, p, (mean, var) in zip(model.blocks, params, stats):
        block.linear.kernel.value = p["kernel"]
        block.linear.bias.value = p["bias"]
        block.norm.scale.value = p["scale"]
        block.norm.bias.value = p["norm_bias"]
        block.norm.mean.value = mean
        block.norm.var.value = var
    optimizer = lib.Optimizer(model, optax.adam(LR), wrt=lib.Param)
    return model, optimizer


# ------------------------------------------------------------------ the floor
def floor_forward(
    params: list[dict[str, jax.Array]], stats: list[tuple], x: jax.Array
) -> tuple[jax.Array, list[tuple]]:
    new_stats = []
    for p, (ra_mean, ra_var) in zip(params, stats):
        h = x @ p["kernel"] + p["bias"]
        mean = h.mean(axis=0)
        var = jnp.maximum((h * h).mean(axis=0) - mean * mean, 0.0)
        h = (h - mean) * jax.lax.rsqrt(var + EPSILON) * p["scale"] + p["norm_bias"]
        x = jax.nn.relu(h)
        new_stats.append(
            (MOMENTUM * ra_mean + (1 - MOMENTUM) * mean, MOMENTUM * ra_var + (1 - MOMENTUM) * var)
        )
    return x, new_stats


def make_floor(depth: int) -> tuple[tp.Callable[..., tp.Any], list[tp.Any]]:
    """The hand-written step and its initial state ``[params, stats, opt_state]``."""
    tx = optax.adam(LR)
    params, stats = init_arrays(depth)

    @jax.jit
    def step(
        params: tp.Any, stats: tp.Any, opt_state: tp.Any, x: jax.Array, y: jax.Array
    ) -> tp.Any:
        def loss_fn(params: tp.Any) -> tuple[jax.Array, tp.Any]:
            out, new_stats = floor_forward(params, stats, x)
            return ((out - y) ** 2).mean(), new_stats

        (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), new_stats, opt_state, loss

    return step, [params, stats, tx.init(params)]


# ------------------------------------------------------------------ variants
class Variant(tp.NamedTuple):
    run: tp.Callable[[int], None]  # n steps, then wait for the last result
    first_call: float  # seconds: trace + compile + the first step
    loss: float  # the first step's loss
    kernel: np.ndarray  # the first kernel after the first step


def _batch() -> tuple[jax.Array, jax.Array]:
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(BATCH, WIDTH)), jnp.float32)
    y = jnp.asarray(rng.normal(size=(BATCH, WIDTH)), jnp.float32)
    return x, y


def floor_variant(depth: int) -> Variant:
    step, state = make_floor(depth)
    x, y = _batch()
    start = time.perf_counter()
    state[0], state[1], state[2], loss = step(state[0], state[1], state[2], x, y)
    jax.block_until_ready(loss)
    first = time.perf_counter() - start

    def run(n: int) -> None:
        loss = None
        for _ in range(n):
            state[0], state[1], state[2], loss = step(state[0], state[1], state[2], x, y)
        jax.block_until_ready(loss)

    return Variant(run, first, float(loss), np.asarray(state[0][0]["kernel"]))


def graph_variant(lib: types.ModuleType, depth: int) -> Variant:
    """A fresh model, optimizer and jitted step; the first call is timed."""
    model, optimizer = build(lib, depth)
    step = train_step_for(lib)
    x, y = _batch()
    start = time.perf_counter()
    loss = jax.block_until_ready(step(model, optimizer, x, y))
    first = time.perf_counter() - start

    def run(n: int) -> None:
        loss = None
        for _ in range(n):
            loss = step(model, optimizer, x, y)
        jax.block_until_ready(loss)

    kernel = np.asarray(model.blocks[0].linear.kernel.get_value())
    return Variant(run, first, float(loss), kernel)


def _progress(message: str) -> None:
    print(f"[bench_train_step] {message}", file=sys.stderr, flush=True)


def eager_forward(libs: dict[str, types.ModuleType], depth: int, rounds: int) -> dict[str, float]:
    """Median wall time (µs) of an un-jitted forward pass, interleaved."""
    x, _ = _batch()
    models = {name: build(lib, depth)[0] for name, lib in libs.items()}
    times: dict[str, list[float]] = {name: [] for name in libs}
    for model in models.values():
        jax.block_until_ready(model(x))  # warm up the op caches
    for r in range(rounds):
        for name in list(models)[r % len(models) :] + list(models)[: r % len(models)]:
            start = time.perf_counter()
            jax.block_until_ready(models[name](x))
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) * 1e6 for name, t in times.items()}


def _timed(run: tp.Callable[[int], None], n: int) -> float:
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        run(n)
        return (time.perf_counter() - start) / n
    finally:
        if enabled:
            gc.enable()


def measure_steps(
    variants: dict[str, Variant], rounds: int, target_s: float
) -> tuple[dict[str, float], dict[str, float]]:
    """``(median µs per step, median ratio to the floor over rounds)`` per variant."""
    number = {}
    for name, variant in variants.items():
        variant.run(3)  # compiled and warm
        per_step = _timed(variant.run, 3)
        number[name] = max(2, round(target_s / max(per_step, 1e-6)))
    per_round: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            per_round[name].append(_timed(variants[name].run, number[name]))
    medians = {name: statistics.median(t) * 1e6 for name, t in per_round.items()}
    floor = per_round[FLOOR]
    ratios = {
        name: statistics.median(a / b for a, b in zip(t, floor)) for name, t in per_round.items()
    }
    return medians, ratios


# ------------------------------------------------------------------ the report
def run(settings: Settings) -> tuple[list[Table], dict[tp.Any, float]]:
    import nnx

    flax_nnx = optional("flax.nnx")
    libs: dict[str, types.ModuleType] = {NNX: nnx}
    if flax_nnx is not None:
        libs[FLAX] = flax_nnx
    rounds = 5 if settings.quick else 11
    target_s = 0.05 if settings.quick else 0.15
    results: dict[tp.Any, float] = {}
    steps = Table(
        "Train step (nnx.jit + nnx.value_and_grad + nnx.Optimizer adam, Linear+BatchNorm MLP)",
        ["implementation", *(f"depth {d}: {c}" for d in DEPTHS for c in ("ratio", "time"))],
        note=(
            f"Wall-clock time per step (width {WIDTH}, batch {BATCH}), median over {rounds} "
            "interleaved rounds; ratio = median over rounds of time / floor time in the same "
            "round. The machine is shared and noisy: compare ratios, not times. Each variant "
            "is checked first: one step from the same arrays gives the floor's loss and kernel."
        ),
    )
    other = Table(
        "Train step: first call and eager forward (nnx vs flax.nnx)",
        ["depth", "measurement", "nnx", "flax.nnx", "flax / nnx"],
        note=(
            "First call: a fresh model, optimizer and jitted step; trace + compile + one step, "
            "wall clock, one run each. Eager forward: un-jitted model(x), median wall time over "
            f"{rounds * 3} interleaved calls."
        ),
    )
    cells: dict[str, list[str]] = {name: [] for name in (FLOOR, NNX, FLAX)}
    for depth in DEPTHS:
        variants = {FLOOR: floor_variant(depth)}
        variants.update({name: graph_variant(lib, depth) for name, lib in libs.items()})
        floor = variants[FLOOR]
        for name, variant in variants.items():
            same_loss = np.isclose(variant.loss, floor.loss, rtol=1e-4)
            if not (same_loss and np.allclose(variant.kernel, floor.kernel, atol=1e-5)):
                raise AssertionError(
                    f"{name} at depth {depth} disagrees with the floor after one step: loss "
                    f"{variant.loss} vs {floor.loss}"
                )
        _progress(f"depth {depth}: built, compiled and checked; timing steps")
        medians, ratios = measure_steps(variants, rounds, target_s)
        for name in cells:
            if name in medians:
                cells[name] += [fmt_ratio(ratios[name]), fmt_us(medians[name])]
                results[("step", depth, name)] = medians[name]
                results[("ratio", depth, name)] = ratios[name]
            else:
                cells[name] += [NA, NA]
        firsts = {name: variants[name].first_call for name in libs}
        results[("first call", depth, FLOOR)] = floor.first_call
        _progress(f"depth {depth}: eager forward")
        eager = eager_forward(libs, depth, rounds * 3)
        for what, values, unit in (("first call", firsts, "s"), ("eager forward", eager, "µs")):
            nnx_v = values[NNX]
            flax_v = values.get(FLAX)
            show = (lambda v: f"{v:.2f} s") if unit == "s" else fmt_us
            other.add(
                depth,
                what,
                show(nnx_v),
                NA if flax_v is None else show(flax_v),
                NA if flax_v is None else fmt_ratio(flax_v / nnx_v),
            )
            results[(what, depth, NNX)] = nnx_v
            if flax_v is not None:
                results[(what, depth, FLAX)] = flax_v
    for name, row in cells.items():
        steps.add(name, *row)
    floor_firsts = ", ".join(
        f"depth {d}: {results[('first call', d, FLOOR)]:.2f} s" for d in DEPTHS
    )
    other.note += f" The floor's first call, for scale: {floor_firsts}."
    return [steps, other], results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    tables, _ = run(Settings(quick=args.quick, clock="wall"))
    for table in tables:
        print(table.text() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
