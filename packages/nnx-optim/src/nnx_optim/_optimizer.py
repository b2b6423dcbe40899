"""``Optimizer``: an optax transformation plus its state.

The optimizer is a graph node (``nnx_graph.Pytree``, hence also a JAX pytree)
whose data are a step counter and the optax state as ``OptState`` Variables, laid
out as in Flax NNX 0.12 (``step``, ``opt_state`` with optax's field names).  Built
the seed-era way (no ``wrt``) or as ``ModelAndOptimizer`` it also holds the model it
trains (a shared reference, not a copy), so ``update(grads)`` finds it, and
``nnx.jit``, ``split``/``merge`` and checkpoints see the model's Variables once.
"""

from __future__ import annotations

import typing as tp
from collections.abc import Mapping

import jax
import jax.numpy as jnp

import nnx_graph
from nnx_graph.internal import format_path, is_graph_node, node_repr
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

__all__ = ["MISSING", "GradientShapeError", "ModelAndOptimizer", "Optimizer"]

M = tp.TypeVar("M")
Path = tuple[tp.Any, ...]
Filter = tp.Any  # anything nnx_graph accepts as a filter


def filter_repr(filter_: Filter) -> str:
    """A short rendering of a filter for messages: ``Param``, ``(Param, BatchStat)``."""
    if isinstance(filter_, type):
        return filter_.__name__
    if isinstance(filter_, tuple):
        return "(" + ", ".join(filter_repr(f) for f in filter_) + ")"
    return "..." if filter_ is Ellipsis else repr(filter_)


def _int_path(path: Path) -> Path:
    # checkpoint formats and pure dicts may spell integer keys as strings
    return tuple(int(k) if isinstance(k, str) and k.isdigit() else k for k in path)


_is_graph_node = is_graph_node


def _raw(x: tp.Any) -> tp.Any:
    """The array behind a Variable, a ``jax.Ref`` or a plain array leaf (no hooks)."""
    if isinstance(x, nnx_graph.Variable):
        x = x.raw_value
    return x[...] if isinstance(x, jax.Ref) else x


def _store(leaf: tp.Any, path: Path, value: tp.Any, pending: list[tuple[Path, tp.Any]]) -> None:
    """Write an updated parameter back: into its Variable (through its reference
    when ``ref=True``), into a ``jax.Ref`` leaf, or, for a plain array attribute,
    into ``pending`` for one ``nnx.update`` of the model."""
    raw = leaf.raw_value if isinstance(leaf, nnx_graph.Variable) else leaf
    if isinstance(raw, jax.Ref):
        raw[...] = value
    elif isinstance(leaf, nnx_graph.Variable):
        leaf.raw_value = value
    else:
        pending.append((path, value))


class _Missing:
    """The type of :data:`MISSING`."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: tp.Any = _Missing()
"""Default of ``Optimizer(wrt=...)``: not given, i.e. the seed-era form."""


class Optimizer(nnx_graph.Pytree, tp.Generic[M]):
    """Trains the Variables of a model selected by ``wrt`` with an optax
    transformation.

    Two forms, told apart by whether ``wrt`` is given:

    * ``Optimizer(model, tx, wrt=nnx.Param)`` -- Flax 0.12's form. The optimizer's
      state is only ``step`` and ``opt_state`` (optax's own field names: ``count``,
      ``mu``, ``nu``, ...), exactly Flax's layout, so ``nnx.state(optimizer)``
      checkpoints move between Flax and nnx. Call ``update(model, grads)``.
    * ``Optimizer(model, tx)`` -- the seed-era form (Flax raises here): trains
      ``nnx.Param`` and also holds ``model`` (a shared reference, so its state has a
      ``model`` subtree, as Flax's :class:`ModelAndOptimizer`), and both
      ``update(grads)`` and ``update(model, grads)`` work, eagerly or in ``nnx.jit``.

    Arguments:
        model: the Module (or any graph node) to train.
        tx: an ``optax.GradientTransformation`` (``GradientTransformationExtraArgs``
            too: extra keyword arguments of :meth:`update` reach ``tx.update``).
        wrt: a filter selecting the Variables to train. Gradients for other
            Variables are ignored by :meth:`update`.
        graph: accepted for Flax compatibility; graph semantics always apply.

    Attributes:
        step: an :class:`OptState` Variable counting updates (``uint32``).
        opt_state: the optax state; arrays are ``OptArray``/``OptVariable``
            Variables and NamedTuples are :class:`OptNamedTuple` nodes.
        tx: the optax transformation.
        wrt: the filter.
        model: the model (seed-era form and :class:`ModelAndOptimizer` only).

    Example::

        >>> import jax, jax.numpy as jnp, optax, nnx_graph as nnx, nnx_optim
        >>> class Model(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.ones(3))
        >>> model = Model()
        >>> optimizer = nnx_optim.Optimizer(model, optax.adam(0.1), wrt=nnx.Param)
        >>> sorted(nnx.state(optimizer).flat_state().paths)[:2]
        [('opt_state', 0, 'count'), ('opt_state', 0, 'mu', 'w')]
        >>> _ = optimizer.update(model, nnx.State({"w": jnp.ones(3)}))
        >>> int(optimizer.step.value)
        1
    """

    def __init__(
        self,
        model: M,
        tx: optax.GradientTransformation,
        *,
        wrt: Filter = MISSING,
        graph: bool | None = None,
    ) -> None:
        del graph
        holds_model = isinstance(wrt, _Missing)
        if holds_model:
            wrt = nnx_graph.Param
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
        if holds_model:
            self.model = model
        self.tx = tx
        self.wrt = wrt
        self.step = OptState(jnp.array(0, dtype=jnp.uint32))
        params = nnx_graph.state(model, wrt)
        if any(getattr(v, "hijax", False) for v in params.flat_state().leaves):
            params = nnx_graph.vars_as(params, hijax=False)  # optax sees plain values
        opt_state, layout = to_graph_form(to_opt_state(tx.init(params)))
        self.opt_state = opt_state
        self._opt_state_layout = layout

    def __repr__(self) -> str:
        return node_repr(self)

    # ------------------------------------------------------------------ update
    def update(
        self, model: tp.Any = MISSING, grads: tp.Any = MISSING, /, **kwargs: tp.Any
    ) -> tp.Any:
        """Apply one optimisation step: ``update(model, grads)`` (or ``update(grads)``
        when the optimizer holds its model: the seed-era form).

        Arguments:
            model: the model to update (the one the optimizer was built for, or a
                copy of it, e.g. inside ``nnx.jit``).
            grads: the gradients, as returned by ``nnx.grad`` (a State of
                Variables or of arrays, or a pure dict; paths relative to the model).
                Entries for Variables outside ``wrt`` are ignored; every Variable in
                ``wrt`` needs one, with the Variable's shape.
            **kwargs: passed on to ``tx.update`` (e.g. ``value``, ``grad`` and
                ``value_fn`` for ``optax.scale_by_zoom_linesearch``); Variables in
                them are replaced by their values.

        Returns:
            The optax updates that were added to the parameters, a State of arrays.

        Raises:
            GradientShapeError: (a ``ValueError``) a gradient's shape differs from
                its Variable's, e.g. grads of another model; names every path.

        Example::

            >>> import jax.numpy as jnp, optax, nnx_graph as nnx, nnx_optim
            >>> class Model(nnx.Module):
            ...     def __init__(self):
            ...         self.w = nnx.Param(jnp.zeros(2))
            >>> model = Model()
            >>> optimizer = nnx_optim.Optimizer(model, optax.sgd(1.0), wrt=nnx.Param)
            >>> updates = optimizer.update(model, nnx.State({"w": jnp.ones(2)}))
            >>> updates["w"].tolist(), model.w.value.tolist()
            ([-1.0, -1.0], [-1.0, -1.0])
        """
        import optax

        args = tuple(a for a in (model, grads) if not isinstance(a, _Missing))
        model, grads = self._parse_update_arguments(args, kwargs)
        params = list(nnx_graph.state(model, self.wrt).flat_state())
        param_arrays = nnx_graph.from_flat_state([(p, _raw(v)) for p, v in params])
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
        pending: list[tuple[Path, tp.Any]] = []
        for (path, leaf), value in zip(params, nnx_graph.to_flat_state(new_params).leaves):
            _store(leaf, path, value, pending)
        if pending:  # parameters held as plain arrays on the model
            nnx_graph.update(model, nnx_graph.from_flat_state(pending))
        assign_opt_state(self.opt_state, new_opt_state)
        self.step.value = self.step.value + 1
        return updates

    def _parse_update_arguments(
        self, args: tuple[tp.Any, ...], kwargs: dict[str, tp.Any]
    ) -> tuple[tp.Any, tp.Any]:
        held = self.__dict__.get("model")
        if "grads" in kwargs:
            if len(args) > 1:
                raise TypeError("Optimizer.update got `grads` both by position and keyword.")
            grads = kwargs.pop("grads")
            model = kwargs.pop("model", args[0] if args else held)
        elif len(args) == 2:
            model, grads = args
        elif len(args) == 1:
            (grads,) = args
            model = kwargs.pop("model", held)
            if _is_graph_node(grads) and model is held:
                raise TypeError(
                    f"Optimizer.update got a {type(grads).__name__} and no gradients "
                    "(Missing required argument `grads`).\n"
                    "Expected: optimizer.update(model, grads), with grads from nnx.grad."
                    "\nFix: grads = nnx.grad(loss_fn)(model); optimizer.update(model, grads)."
                )
        else:
            raise TypeError(
                f"Optimizer.update takes (model, grads) (or (grads) when the optimizer "
                f"holds its model); found {len(args)} positional arguments.\n"
                "Fix: optimizer.update(model, grads)."
            )
        if model is None:
            raise TypeError(
                "Missing required argument `grads`: Optimizer.update needs (model, grads) "
                f"for an Optimizer created with wrt= (wrt={filter_repr(self.wrt)}); it "
                "does not hold the model (Flax 0.12's layout: only step and opt_state).\n"
                "Fix: optimizer.update(model, grads); or create it as "
                "nnx.ModelAndOptimizer(model, tx, wrt=...) (or nnx.Optimizer(model, tx) "
                "without wrt) to call optimizer.update(grads)."
            )
        if not (_is_graph_node(model) or isinstance(model, (tuple, list, dict, nnx_graph.State))):
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
    """An :class:`Optimizer` that holds its model: ``update(grads)`` trains
    ``self.model`` (Flax's name for the seed-era behaviour). Its state has the
    ``model`` subtree next to ``step`` and ``opt_state``.

    Example::

        >>> import jax.numpy as jnp, optax, nnx_graph as nnx, nnx_optim
        >>> class Model(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.zeros(2))
        >>> tx = optax.sgd(1.0, momentum=0.9)
        >>> state = nnx_optim.ModelAndOptimizer(Model(), tx, wrt=nnx.Param)
        >>> _ = state.update(nnx.State({"w": jnp.ones(2)}))
        >>> state.model.w.value.tolist(), sorted(nnx.state(state))
        ([-1.0, -1.0], ['model', 'opt_state', 'step'])
    """

    def __init__(
        self,
        model: M,
        tx: optax.GradientTransformation,
        *,
        wrt: Filter = nnx_graph.Param,
    ) -> None:
        super().__init__(model, tx, wrt=wrt)
        self.model = model

    def update(self, grads: tp.Any, /, **kwargs: tp.Any) -> tp.Any:  # type: ignore[override]
        """Apply one step to ``self.model``; see :meth:`Optimizer.update`."""
        if "model" in kwargs:
            return super().update(grads, **kwargs)
        return super().update(self.model, grads, **kwargs)


class GradientShapeError(ValueError):
    """Gradients whose shapes differ from the Variables they are for (e.g. grads of
    a differently-shaped model); the message names every such path.

    Example::

        >>> import jax.numpy as jnp, optax, nnx_graph as nnx, nnx_optim
        >>> class Model(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.zeros(2))
        >>> model = Model()
        >>> optimizer = nnx_optim.Optimizer(model, optax.sgd(1.0), wrt=nnx.Param)
        >>> try:
        ...     optimizer.update(model, {"w": jnp.ones(3)})
        ... except nnx_optim.GradientShapeError as error:
        ...     print(str(error).splitlines()[1])
          - model.w: expected shape (2,), found (3,)
    """


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
    selected = [(p, _raw(lookup[p])) for p, _ in params]
    wrong = [
        (p, tuple(jnp.shape(_raw(v))), tuple(jnp.shape(g)))
        for (p, v), (_, g) in zip(params, selected)
        if hasattr(g, "shape") and tuple(jnp.shape(g)) != tuple(jnp.shape(_raw(v)))
    ]
    if wrong:
        shown = "\n".join(
            f"  - {format_path(p)}: expected shape {want}, found {got}"
            for p, want, got in wrong[:20]
        )
        more = f"\n  ... and {len(wrong) - 20} more" if len(wrong) > 20 else ""
        raise GradientShapeError(
            f"Optimizer.update: {len(wrong)} gradient(s) do not have the shape of the "
            f"Variable they update (incompatible shapes):\n{shown}{more}\nExpected: "
            "gradients of this model, e.g. from nnx.grad(loss_fn)(model).\nFix: "
            "differentiate the model the optimizer was created for (grads of another "
            "or a differently-shaped model cannot be applied)."
        )
    return nnx_graph.from_flat_state(selected)
