"""``Optimizer``: an optax transformation plus its state, held next to the model.

The optimizer is a graph node (``nnx_graph.Pytree``) whose data are the model it
trains (a shared reference, not a copy), the optax state as ``OptState`` Variables
and a step counter.  Because the model is one of its attributes, ``nnx.jit``,
``split``/``merge`` and checkpoints see the model's Variables once, and the
optimizer keeps pointing at the caller's model after any of them.
"""

from __future__ import annotations

import typing as tp
from collections.abc import Mapping

import jax
import jax.numpy as jnp

import nnx_graph
from nnx_optim._opt_state import (
    OptState,
    assign_opt_state,
    mapping_leaf_paths,
    subtree,
    to_graph_form,
    to_opt_state,
    to_optax_form,
)

if tp.TYPE_CHECKING:
    import optax

__all__ = ["ModelAndOptimizer", "Optimizer"]

M = tp.TypeVar("M")
Path = tuple[tp.Any, ...]
Filter = tp.Any  # anything nnx_graph accepts as a filter


def format_path(path: Path, root: str = "model") -> str:
    """``('blocks', 2, 'kernel')`` -> ``model.blocks[2].kernel``."""
    out = root
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and part.isidentifier():
            out += f".{part}"
        else:
            out += f"[{part!r}]"
    return out


def filter_repr(filter_: Filter) -> str:
    """A short rendering of a filter for messages: ``Param``, ``(Param, BatchStat)``."""
    if isinstance(filter_, type):
        return filter_.__name__
    if isinstance(filter_, tuple):
        return "(" + ", ".join(filter_repr(f) for f in filter_) + ")"
    return "..." if filter_ is Ellipsis else repr(filter_)


def safe_repr(node: nnx_graph.Pytree) -> str:
    """``Pytree.__repr__``, with a summary when it fails.

    Works around nnx_graph's text repr failing on an attribute holding a Variable
    *class* (a filter such as ``wrt=nnx.Param``): it reads the class's ``shape``
    property as if it were an array's.
    """
    try:
        return nnx_graph.Pytree.__repr__(node)
    except TypeError:
        parts = []
        for name, value in sorted(vars(node).items()):
            if name.startswith("_"):
                continue
            if isinstance(value, nnx_graph.Variable):
                text = repr(value)
            elif isinstance(value, type) or (
                isinstance(value, tuple) and all(isinstance(v, type) for v in value)
            ):
                text = filter_repr(value)
            elif _is_graph_node(value):
                text = f"{type(value).__name__}(...)"
            else:
                leaves = jax.tree.leaves(value)
                text = f"<{len(leaves)} leaves>" if leaves else repr(value)[:80]
            parts.append(f"  {name}={text},")
        return f"{type(node).__name__}(\n" + "\n".join(parts) + "\n)"


def _int_path(path: Path) -> Path:
    # checkpoint formats and pure dicts may spell integer keys as strings
    return tuple(int(k) if isinstance(k, str) and k.isdigit() else k for k in path)


def _is_graph_node(x: object) -> bool:
    return isinstance(x, (nnx_graph.Pytree, nnx_graph.List, nnx_graph.Dict))


def _raw(x: tp.Any) -> tp.Any:
    return x.raw_value if isinstance(x, nnx_graph.Variable) else x


class Optimizer(nnx_graph.Pytree, tp.Generic[M]):
    """Trains the Variables of ``model`` selected by ``wrt`` with an optax
    transformation.

    The optimizer holds a reference to ``model``, so after
    ``optimizer = Optimizer(model, tx)`` both ``optimizer.update(grads)`` (the
    model it holds) and ``optimizer.update(model, grads)`` (Flax >= 0.11) update
    ``model`` in place, eagerly or inside ``nnx.jit``.

    Arguments:
        model: the Module (or any graph node) to train.
        tx: an ``optax.GradientTransformation`` (``GradientTransformationExtraArgs``
            too: extra keyword arguments of :meth:`update` reach ``tx.update``).
        wrt: a filter selecting the Variables to train (default ``Param``); the
            gradients passed to :meth:`update` must cover exactly those.

    Attributes:
        model: the model given at construction.
        step: an :class:`OptState` Variable counting updates (``uint32``).
        opt_state: the optax state; every array is an ``OptArray`` /
            ``OptVariable``, so it is state that transforms and checkpoints carry.
        tx: the optax transformation.
        wrt: the filter.

    Example::

        >>> import jax, jax.numpy as jnp, optax, nnx_graph as nnx, nnx_optim
        >>> class Model(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.ones(3))
        >>> model = Model()
        >>> optimizer = nnx_optim.Optimizer(model, optax.sgd(0.25))
        >>> grads = nnx.State({"w": jnp.ones(3)})
        >>> _ = optimizer.update(grads)
        >>> model.w.value.tolist(), int(optimizer.step.value)
        ([0.75, 0.75, 0.75], 1)
    """

    def __init__(
        self,
        model: M,
        tx: optax.GradientTransformation,
        *,
        wrt: Filter = nnx_graph.Param,
        graph: bool | None = None,
    ) -> None:
        # `graph` is accepted for Flax compatibility: graph semantics always apply.
        del graph
        if not _is_graph_node(model) and not isinstance(model, (tuple, list, dict)):
            raise TypeError(
                f"Optimizer expected a Module (or another graph node) as `model`, found "
                f"{type(model).__name__}.\nFix: nnx.Optimizer(model, tx, wrt=nnx.Param)."
            )
        if not (hasattr(tx, "init") and hasattr(tx, "update")):
            raise TypeError(
                f"Optimizer expected an optax GradientTransformation as `tx`, found "
                f"{type(tx).__name__}.\nFix: pass e.g. optax.adam(1e-3) (note the lower "
                "case: optax.Adam does not exist)."
            )
        self.model = model
        self.tx = tx
        self.wrt = wrt
        self.step = OptState(jnp.array(0, dtype=jnp.uint32))
        params = nnx_graph.state(model, wrt)
        opt_state, layout = to_graph_form(to_opt_state(tx.init(params)))
        self.opt_state = opt_state
        self._opt_state_layout = layout

    def __repr__(self) -> str:
        return safe_repr(self)

    # ------------------------------------------------------------------ update
    def update(self, *args: tp.Any, **kwargs: tp.Any) -> tp.Any:
        """Apply one optimisation step: ``update(grads)`` or ``update(model, grads)``.

        Arguments:
            model: optional; the model to update (default: the one given at
                construction, which is the same object in the usual case).
            grads: the gradients, as returned by ``nnx.grad`` (a State of
                Variables or of arrays, paths relative to the model). Entries for
                Variables outside ``wrt`` are ignored; every Variable in ``wrt``
                needs one.
            **kwargs: passed on to ``tx.update`` (e.g. ``value``, ``grad`` and
                ``value_fn`` for ``optax.scale_by_zoom_linesearch``); Variables in
                them are replaced by their values.

        Returns:
            The optax updates that were added to the parameters, a State of arrays.

        Example::

            >>> import jax.numpy as jnp, optax, nnx_graph as nnx, nnx_optim
            >>> class Model(nnx.Module):
            ...     def __init__(self):
            ...         self.w = nnx.Param(jnp.zeros(2))
            >>> model = Model()
            >>> optimizer = nnx_optim.Optimizer(model, optax.sgd(1.0))
            >>> updates = optimizer.update(model, nnx.State({"w": jnp.ones(2)}))
            >>> updates["w"].tolist(), model.w.value.tolist()
            ([-1.0, -1.0], [-1.0, -1.0])
        """
        import optax

        model, grads = self._parse_update_arguments(args, kwargs)
        params = list(nnx_graph.state(model, self.wrt).flat_state())
        param_arrays = nnx_graph.from_flat_state([(p, v.raw_value) for p, v in params])
        grad_arrays = _select_grads(params, grads, self.wrt)
        opt_state = to_optax_form(self.opt_state, self._opt_state_layout)
        extra = nnx_graph.pure(kwargs)
        try:
            updates, new_opt_state = self.tx.update(grad_arrays, opt_state, param_arrays, **extra)
            new_params: tp.Any = optax.apply_updates(param_arrays, updates)
        except (TypeError, ValueError) as error:
            problem = self._diagnose_structure([p for p, _ in params])
            if problem is None:
                raise
            raise nnx_graph.GraphStructureError(problem) from error
        for (_, variable), value in zip(params, nnx_graph.to_flat_state(new_params).leaves):
            variable.raw_value = value
        assign_opt_state(self.opt_state, new_opt_state)
        self.step.value = self.step.value + 1
        return updates

    def _parse_update_arguments(
        self, args: tuple[tp.Any, ...], kwargs: dict[str, tp.Any]
    ) -> tuple[tp.Any, tp.Any]:
        if "grads" in kwargs:
            if len(args) > 1:
                raise TypeError("Optimizer.update got `grads` both by position and keyword.")
            grads = kwargs.pop("grads")
            model = kwargs.pop("model", args[0] if args else self.model)
        elif len(args) == 2:
            model, grads = args
        elif len(args) == 1:
            (grads,) = args
            model = kwargs.pop("model", self.model)
            if _is_graph_node(grads) and "model" not in kwargs:
                raise TypeError(
                    f"Optimizer.update got a {type(grads).__name__} and no gradients.\n"
                    "Expected: optimizer.update(grads) or optimizer.update(model, grads), "
                    "with grads from nnx.grad.\nFix: grads = nnx.grad(loss_fn)(model); "
                    "optimizer.update(model, grads)."
                )
        else:
            raise TypeError(
                f"Optimizer.update takes (grads) or (model, grads); found {len(args)} "
                "positional arguments.\nFix: optimizer.update(model, grads)."
            )
        if not (_is_graph_node(model) or isinstance(model, (tuple, list, dict))):
            raise TypeError(
                f"Optimizer.update expected a Module as `model`, found "
                f"{type(model).__name__}.\nFix: optimizer.update(model, grads)."
            )
        return model, grads

    def _diagnose_structure(self, param_paths: list[Path]) -> str | None:
        """Explain an optax failure caused by a model that changed since ``__init__``."""
        current = set(param_paths)
        for layout_path in sorted(self._opt_state_layout, key=repr):
            saved = {_int_path(p) for p in mapping_leaf_paths(subtree(self.opt_state, layout_path))}
            if saved == current:
                continue
            lines = [
                f"  - {format_path(p)}: matches wrt={filter_repr(self.wrt)} but has no "
                "optimizer state (added after the Optimizer was created)"
                for p in sorted(current - saved, key=repr)
            ]
            lines += [
                f"  - {format_path(p)}: has optimizer state but is no longer in "
                f"the model's wrt={filter_repr(self.wrt)} Variables"
                for p in sorted(saved - current, key=repr)
            ]
            return (
                "Optimizer.update: the model's trainable Variables differ from those the "
                "optimizer state was created for:\n"
                + "\n".join(lines)
                + "\nFix: create the Optimizer after model surgery, e.g. "
                "`optimizer = nnx.Optimizer(model, tx, wrt=...)`."
            )
        return None


class ModelAndOptimizer(Optimizer[M]):
    """An :class:`Optimizer` whose ``update(grads)`` always trains ``self.model``.

    This is Flax 0.11's name for the seed-era behaviour; :class:`Optimizer` here
    already holds the model, so the two differ only in :meth:`update`'s signature.

    Example::

        >>> import jax.numpy as jnp, optax, nnx_graph as nnx, nnx_optim
        >>> class Model(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.zeros(2))
        >>> state = nnx_optim.ModelAndOptimizer(Model(), optax.sgd(1.0))
        >>> _ = state.update(nnx.State({"w": jnp.ones(2)}))
        >>> state.model.w.value.tolist()
        [-1.0, -1.0]
    """

    def update(self, grads: tp.Any, /, **kwargs: tp.Any) -> tp.Any:
        """Apply one step to ``self.model``; see :meth:`Optimizer.update`."""
        if "model" in kwargs:
            return super().update(grads, **kwargs)
        return super().update(self.model, grads, **kwargs)


def _select_grads(params: list[tuple[Path, tp.Any]], grads: tp.Any, wrt: Filter) -> tp.Any:
    """The gradients for exactly ``params`` (a State of arrays with their paths)."""
    if _is_graph_node(grads):
        flat = list(nnx_graph.state(grads).flat_state())
    elif isinstance(grads, Mapping):
        flat = list(nnx_graph.to_flat_state(grads))
    else:
        raise TypeError(
            f"Optimizer.update expected gradients as a State (from nnx.grad), found "
            f"{type(grads).__name__}.\nFix: grads = nnx.grad(loss_fn)(model)."
        )
    lookup = dict(flat)
    if len(lookup) != len(params) or any(p not in lookup for p, _ in params):
        lookup.update((_int_path(p), g) for p, g in flat)
    missing = [p for p, _ in params if p not in lookup]
    if missing:
        shown = "\n".join(f"  - {format_path(p)}" for p in missing[:20])
        more = f"\n  ... and {len(missing) - 20} more" if len(missing) > 20 else ""
        raise nnx_graph.GraphStructureError(
            f"Optimizer.update: no gradient for {len(missing)} Variable(s) matching "
            f"wrt={filter_repr(wrt)}:\n{shown}{more}\nExpected: gradients for every Variable the "
            f"optimizer trains; found gradients for {len(flat)} path(s).\nFix: "
            "differentiate with respect to the same Variables, e.g. "
            "`nnx.grad(loss_fn, argnums=nnx.DiffState(0, wrt))`, or create the "
            "Optimizer with the `wrt` used by nnx.grad."
        )
    return nnx_graph.from_flat_state([(p, _raw(lookup[p])) for p, _ in params])
