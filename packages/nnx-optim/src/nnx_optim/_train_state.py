"""``TrainState``: an immutable pytree of params, optimizer state and step (compat).

For code written against ``flax.training.train_state.TrainState`` or Flax NNX's
``TrainState`` helper.  Subclasses add fields with plain annotations.
"""

from __future__ import annotations

import dataclasses
import typing as tp

import jax
import jax.numpy as jnp

import nnx_graph

if tp.TYPE_CHECKING:
    import optax

__all__ = ["TrainState"]

T = tp.TypeVar("T", bound="TrainState")


def _register(cls: type[tp.Any], *, make_dataclass: bool = True) -> None:
    if make_dataclass:
        dataclasses.dataclass(frozen=True)(cls)
    fields = dataclasses.fields(cls)
    jax.tree_util.register_dataclass(
        cls,
        data_fields=[f.name for f in fields if not f.metadata.get("static", False)],
        meta_fields=[f.name for f in fields if f.metadata.get("static", False)],
    )


@tp.dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field,))
@dataclasses.dataclass(frozen=True)
class TrainState:
    """Params, optimizer state and step count in one immutable pytree.

    The constructor takes Flax's fields in Flax's order,
    ``TrainState(graphdef, params, opt_state, step, tx)``, plus a keyword-only
    ``apply_fn`` (default ``None``) for ``flax.training``-style code. ``graphdef``,
    ``tx`` and ``apply_fn`` are static; ``params``, ``opt_state`` and ``step`` are
    pytree children. Subclasses declare extra fields with annotations; they follow
    ``tx`` in the constructor, as in Flax.

    Example::

        >>> import jax, jax.numpy as jnp, optax, nnx_optim
        >>> params = {"w": jnp.ones(2)}
        >>> state = nnx_optim.TrainState.create(
        ...     apply_fn=lambda p, x: x @ p["w"], params=params, tx=optax.sgd(0.5))
        >>> grads = jax.grad(lambda p: state.apply_fn(p, jnp.ones(2)))(state.params)
        >>> state = state.apply_gradients(grads=grads)
        >>> state.params["w"].tolist(), int(state.step)
        ([0.5, 0.5], 1)
    """

    graphdef: nnx_graph.GraphDef[tp.Any] | None = dataclasses.field(metadata={"static": True})
    params: tp.Any
    opt_state: tp.Any
    step: tp.Any
    tx: optax.GradientTransformation = dataclasses.field(metadata={"static": True})
    apply_fn: tp.Callable[..., tp.Any] | None = dataclasses.field(
        default=None, kw_only=True, metadata={"static": True}
    )

    def __init_subclass__(cls, **kwargs: tp.Any) -> None:
        super().__init_subclass__(**kwargs)
        _register(cls)

    @classmethod
    def create(
        cls: type[T],
        graphdef: nnx_graph.GraphDef[tp.Any] | None = None,
        *,
        params: tp.Any,
        tx: optax.GradientTransformation,
        apply_fn: tp.Callable[..., tp.Any] | None = None,
        step: int = 0,
        **kwargs: tp.Any,
    ) -> T:
        """A new state with ``opt_state = tx.init(params)`` and the given step."""
        return cls(
            graphdef=graphdef,
            params=params,
            opt_state=tx.init(params),
            step=jnp.asarray(step),
            tx=tx,
            apply_fn=apply_fn,
            **kwargs,
        )

    def replace(self: T, **changes: tp.Any) -> T:
        """A copy with some fields replaced."""
        return dataclasses.replace(self, **changes)

    def apply_gradients(self: T, grads: tp.Any, **kwargs: tp.Any) -> T:
        """One optax step: new params, opt_state and ``step + 1``; ``kwargs``
        replace other fields."""
        import optax

        updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
        params = optax.apply_updates(self.params, updates)
        return self.replace(params=params, opt_state=opt_state, step=self.step + 1, **kwargs)

    def apply(self, state: tp.Any, *states: tp.Any) -> tp.Any:
        """Functional call through ``graphdef``: ``state.apply('params')(x)`` returns
        ``(out, (graphdef, state))``. Strings name fields of this TrainState."""
        if self.graphdef is None:
            raise ValueError(
                "TrainState.apply needs a graphdef. Fix: TrainState.create(graphdef, "
                "params=..., tx=...)."
            )
        resolved = [getattr(self, s) if isinstance(s, str) else s for s in (state, *states)]
        return self.graphdef.apply(*resolved)


_register(TrainState, make_dataclass=False)
