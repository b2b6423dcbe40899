"""The ``jax.random`` samplers and ``jax.nn.initializers`` offered as methods of
``Rngs`` and ``RngStream``: ``rngs.normal((2, 3))`` is ``jax.random.normal(rngs(), (2, 3))``
and ``rngs.lecun_normal()`` is a key-less initializer drawing from the stream.

Each sampler method carries the signature of its ``jax.random`` function (through
``__wrapped__``), so ``inspect.signature(nnx.Rngs.normal)`` lists ``key, shape, dtype``
and the bound ``inspect.signature(rngs.normal)`` lists ``shape, dtype``: the key is
always drawn from the stream, never passed.
"""

from __future__ import annotations

import functools
import typing as tp

import jax

__all__ = ["INITIALIZERS", "SAMPLERS", "attach_samplers"]

# jax.random samplers offered as ``stream.normal(shape)`` / ``rngs.normal(shape)``
SAMPLERS = (
    "ball", "bernoulli", "beta", "binomial", "bits", "categorical", "cauchy",
    "chisquare", "choice", "dirichlet", "double_sided_maxwell", "exponential", "f",
    "gamma", "generalized_normal", "geometric", "gumbel", "laplace", "loggamma",
    "logistic", "lognormal", "maxwell", "multinomial", "multivariate_normal", "normal",
    "orthogonal", "pareto", "permutation", "poisson", "rademacher", "randint",
    "rayleigh", "t", "triangular", "truncated_normal", "uniform", "wald", "weibull_min",
)  # fmt: skip
# initializers offered key-less: ``rngs.lecun_normal()(shape)`` (names that clash
# with a sampler, like ``normal``, stay samplers)
INITIALIZERS = (
    "delta_orthogonal", "glorot_normal", "glorot_uniform", "he_normal", "he_uniform",
    "kaiming_normal", "kaiming_uniform", "lecun_normal", "lecun_uniform",
    "variance_scaling", "xavier_normal", "xavier_uniform",
)  # fmt: skip


def _make_sampler(name: str) -> tp.Callable[..., jax.Array]:
    sampler = getattr(jax.random, name)

    @functools.wraps(sampler)
    def method(self: tp.Callable[[], jax.Array], *args: tp.Any, **kwargs: tp.Any) -> jax.Array:
        return tp.cast(jax.Array, sampler(self(), *args, **kwargs))

    method.__doc__ = (
        f"``jax.random.{name}`` with a fresh key drawn from this stream (``Rngs``: "
        f"its ``default`` stream); pass every argument except ``key``.\n\n"
        "Example::\n\n"
        "    >>> import nnx_graph as nnx\n"
        f"    >>> callable(nnx.Rngs(0).{name})\n"
        "    True\n"
    )
    return method


def _make_initializer(name: str) -> tp.Callable[..., tp.Callable[..., jax.Array]]:
    factory = getattr(jax.nn.initializers, name)

    def method(
        self: tp.Callable[[], jax.Array], *args: tp.Any, **kwargs: tp.Any
    ) -> tp.Callable[..., jax.Array]:
        init = factory(*args, **kwargs)

        def keyless(*init_args: tp.Any, **init_kwargs: tp.Any) -> jax.Array:
            return tp.cast(jax.Array, init(self(), *init_args, **init_kwargs))

        return keyless

    shape = (3, 3, 2, 2) if name == "delta_orthogonal" else (2, 2)
    method.__name__ = method.__qualname__ = name
    method.__doc__ = (
        f"``jax.nn.initializers.{name}(...)`` as a key-less initializer: calling it "
        "with ``(shape, dtype)`` draws a fresh key from this stream each time.\n\n"
        "Example::\n\n"
        "    >>> import nnx_graph as nnx\n"
        f"    >>> nnx.Rngs(0).{name}()({shape}).shape\n"
        f"    {shape}\n"
    )
    return method


def attach_samplers(*owners: type) -> None:
    """Give each class in ``owners`` the sampler and initializer methods; the
    classes must be callable with no arguments to produce a key."""
    for owner in owners:
        for name in SAMPLERS:
            if hasattr(jax.random, name):
                setattr(owner, name, _make_sampler(name))
        for name in INITIALIZERS:
            if hasattr(jax.nn.initializers, name):
                setattr(owner, name, _make_initializer(name))
