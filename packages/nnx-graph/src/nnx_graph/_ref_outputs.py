"""Mutable array references (``jax.new_ref``) in the results of a traced call.

``jax.jit`` refuses to return a reference. A function transformed by ``nnx.jit``
may still return one (or a ref-mode Variable holding one), as with Flax NNX:

* a reference that was passed in (directly, or as a ref-mode Variable's value) is
  returned as a marker naming the input it came from, and the caller gets that very
  reference back (it was updated in place);
* a reference created inside is returned as its current value and wrapped in a new
  ``jax.new_ref`` outside.

:func:`freeze_refs` runs at trace time only, and returns its argument unchanged
when the result holds no reference; :func:`thaw_refs` costs one class check per
call when the result held none.
"""

from __future__ import annotations

import typing as tp

import jax

from nnx_graph._values import is_array_ref

__all__ = ["RefOutputs", "freeze_refs", "thaw_refs"]


class _InputRef:
    """Stands for the ``k``-th input leaf, a reference returned as it was given."""

    __slots__ = ("k",)

    def __init__(self, k: int) -> None:
        self.k = k

    def __repr__(self) -> str:
        return f"<input ref {self.k}>"


class _NewRef:
    """The value of a reference created inside the call (made a reference outside)."""

    __slots__ = ("value",)

    def __init__(self, value: tp.Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"<new ref {self.value!r}>"


class RefOutputs:
    """A traced call's result in which references were replaced by markers."""

    __slots__ = ("result",)

    def __init__(self, result: tp.Any) -> None:
        self.result = result


jax.tree_util.register_pytree_node(_InputRef, lambda m: ((), m.k), lambda k, _: _InputRef(k))
jax.tree_util.register_pytree_node(
    _NewRef, lambda m: ((m.value,), None), lambda _, children: _NewRef(*children)
)
jax.tree_util.register_pytree_node(
    RefOutputs, lambda r: ((r.result,), None), lambda _, children: RefOutputs(*children)
)


def _is_marker(x: object) -> bool:
    return isinstance(x, (_InputRef, _NewRef))


def freeze_refs(exit: tp.Any, *inputs: tp.Any) -> tp.Any:
    """Inside the trace: the result ``(out_tree, updates)`` of a bridge's ``Exit``
    with every reference replaced by a marker (wrapped in :class:`RefOutputs`), or
    as it is when it holds none. ``inputs`` are the traced function's arguments,
    in the order the caller gives them to :func:`thaw_refs`."""
    result = (exit.out_tree, exit.updates())
    if not any(is_array_ref(x) for x in jax.tree.leaves(result)):
        return result
    given = {id(x): k for k, x in enumerate(jax.tree.leaves(inputs)) if is_array_ref(x)}

    def mark(x: tp.Any) -> tp.Any:
        if not is_array_ref(x):
            return x
        k = given.get(id(x))
        return _InputRef(k) if k is not None else _NewRef(x[...])

    return RefOutputs(jax.tree.map(mark, result))


def thaw_refs(result: tp.Any, *inputs: tp.Any, abstract: bool = False) -> tp.Any:
    """Outside: the result with its markers replaced by the caller's references
    (from ``inputs``, the arguments given to the traced function, in order) and by
    new ones. With ``abstract=True`` (``eval_shape``) a new reference stays its
    shape."""
    if result.__class__ is not RefOutputs:
        return result
    flat_inputs = jax.tree.leaves(inputs)

    def thaw(x: tp.Any) -> tp.Any:
        if isinstance(x, _InputRef):
            return flat_inputs[x.k]
        if isinstance(x, _NewRef):
            return x.value if abstract else jax.new_ref(x.value)
        return x

    return jax.tree.map(thaw, result.result, is_leaf=_is_marker)
