"""The default of ``nnx.checkify``'s ``errors=``: JAX's ``user_checks``, loaded lazily.

``jax.experimental.checkify`` takes tens of milliseconds to import, and ``import nnx``
must not pay that for a transform most programs never use. :data:`USER_CHECKS` stands
in for ``checkify.user_checks`` in the signature: it is an immutable set that loads
JAX's set on first use, reads, compares and hashes as it, and shows its repr, so
``inspect.signature(nnx.checkify)`` reads as Flax's.
"""

from __future__ import annotations

import collections.abc
import typing as tp

__all__ = ["USER_CHECKS", "resolve_errors"]


def _user_checks() -> frozenset[type[Exception]]:
    from jax._src import checkify as ck  # jax.experimental.checkify's own module

    return tp.cast("frozenset[type[Exception]]", ck.user_checks)


class _LazyUserChecks(collections.abc.Set[type[Exception]]):
    """JAX's ``checkify.user_checks``, imported on first use (see the module docstring).

    Example::

        >>> from jax.experimental import checkify as ck
        >>> from nnx_graph.transforms._checkify import USER_CHECKS
        >>> USER_CHECKS == ck.user_checks
        True
    """

    __slots__ = ()

    @property
    def value(self) -> frozenset[type[Exception]]:
        """JAX's set itself."""
        return _user_checks()

    @classmethod
    def _from_iterable(cls, it: tp.Iterable[tp.Any]) -> frozenset[tp.Any]:
        # results of ``|``, ``&``, ``-``, ``^`` are plain frozensets
        return frozenset(it)

    def __contains__(self, item: object) -> bool:
        return item in self.value

    def __iter__(self) -> tp.Iterator[type[Exception]]:
        return iter(self.value)

    def __len__(self) -> int:
        return len(self.value)

    def __eq__(self, other: object) -> bool:
        return self.value == (other.value if isinstance(other, _LazyUserChecks) else other)

    def __hash__(self) -> int:
        return hash(self.value)

    def __repr__(self) -> str:
        return repr(self.value)

    def __reduce__(self) -> str:
        return "USER_CHECKS"


USER_CHECKS: tp.Final[tp.Any] = _LazyUserChecks()


def resolve_errors(errors: tp.Any) -> tp.Any:
    """The error set to give ``jax.experimental.checkify.checkify``: JAX's own set for
    the default (or ``None``), ``errors`` otherwise."""
    if errors is None or isinstance(errors, _LazyUserChecks):
        return _user_checks()
    return errors
