"""How the arguments of one ``nnx.jit`` call reach the inner function.

Two layouts, one interface (both hashable: part of the compiled-function key):

* :class:`GraphLayout`: positional arguments only, no static arguments, graph nodes
  passed directly (not inside containers). The cache key is the tuple of argument
  kinds (a node's id, or None), computed without flattening anything.
* :class:`TreeLayout`: everything else (keyword or static arguments, nodes inside
  tuples/dicts/States...); the arguments are flattened every call.

Outside, ``split`` turns a call's arguments into ``(dyn, donated_dyn, statics)`` and
``nodes`` finds its graph nodes; inside, ``rebuild`` turns the traced values back
into ``(args, kwargs)`` for the user function.
"""

from __future__ import annotations

import typing as tp

import jax

from nnx_graph.transforms._bridge import fill_tree, holes_of, is_hole, tree_names
from nnx_graph.transforms._shardings import check_sharding_aliasing, is_sharding, leaf_shardings

__all__ = ["GraphLayout", "Probe", "TreeLayout"]


class Probe(tp.NamedTuple):
    """A tree-layout call's arguments, flattened once (outside)."""

    nodes: list[tp.Any]
    dyn: list[tp.Any]
    treedef: tp.Any
    static_positions: tuple[int, ...]
    static_names: tuple[str, ...]


class GraphLayout(tp.NamedTuple):
    """Positional arguments, nodes passed directly."""

    nargs: int
    node_positions: tuple[int, ...]  # argument positions of graph nodes
    dyn_positions: tuple[int, ...]  # other arguments, not donated
    donated_positions: tuple[int, ...]  # other arguments, donated
    donated_roots: tuple[int, ...]  # graph nodes (in found order) whose leaves are donated

    @classmethod
    def make(cls, args: tp.Sequence[tp.Any], is_node: tp.Any, donate: tp.Any) -> GraphLayout:
        node_positions = tuple(i for i, a in enumerate(args) if is_node(a))
        others = [i for i in range(len(args)) if i not in node_positions]
        return cls(
            nargs=len(args),
            node_positions=node_positions,
            dyn_positions=tuple(i for i in others if i not in donate),
            donated_positions=tuple(i for i in others if i in donate),
            donated_roots=tuple(k for k, p in enumerate(node_positions) if p in donate),
        )

    @property
    def donates(self) -> bool:
        return bool(self.donated_roots or self.donated_positions)

    # ------------------------------------------------------------- outside
    def nodes(self, args: tp.Sequence[tp.Any], probe: Probe | None) -> list[tp.Any]:
        return [args[i] for i in self.node_positions]

    def split(
        self, args: tp.Sequence[tp.Any], kwargs: tp.Mapping[str, tp.Any], probe: Probe | None
    ) -> tuple[list[tp.Any], list[tp.Any], tp.Any]:
        return (
            [args[i] for i in self.dyn_positions],
            [args[i] for i in self.donated_positions],
            None,
        )

    # ------------------------------------------------------------- inside
    def rebuild(
        self,
        roots: tp.Sequence[tp.Any],
        dyn: tp.Sequence[tp.Any],
        donated_dyn: tp.Sequence[tp.Any],
        statics: tp.Any,
    ) -> tuple[list[tp.Any], dict[str, tp.Any]]:
        args: list[tp.Any] = [None] * self.nargs
        for p, r in zip(self.node_positions, roots):
            args[p] = r
        for p, d in zip(self.dyn_positions, dyn):
            args[p] = d
        for p, d in zip(self.donated_positions, donated_dyn):
            args[p] = d
        return args, {}

    # ------------------------------------------------------------- errors, shardings
    def root_names(self, params: tp.Sequence[str]) -> list[str]:
        return [params[p] if p < len(params) else f"args[{p}]" for p in self.node_positions]

    def in_shardings(
        self,
        specs: tp.Sequence[tp.Any],
        bridge: tp.Any,
        where: str,
        leaves: tp.Sequence[tp.Any] | None = None,
    ) -> tuple[list[tp.Any], list[tp.Any], list[tp.Any]]:
        """``(per graph leaf, per dyn argument, per donated argument)`` shardings
        from one spec per positional argument (``leaves``: for StateSharding specs);
        a Variable reached through two arguments must get one sharding."""
        node_specs = [specs[p] for p in self.node_positions]
        values = leaf_shardings(node_specs, bridge.paths, where, leaves)
        check_sharding_aliasing(bridge.graphdef, node_specs, values, where)
        return (
            values,
            [specs[p] for p in self.dyn_positions],
            [specs[p] for p in self.donated_positions],
        )


class TreeLayout(tp.NamedTuple):
    """Arguments flattened as the pytree ``(dynamic args, kwargs)`` with holes for
    graph nodes; static arguments travel as a static argument of the inner jit."""

    nargs: int
    treedef: tp.Any
    donated_leaves: tuple[int, ...]  # indices of donated non-graph leaves
    static_positions: tuple[int, ...]
    static_names: tuple[str, ...]
    donated_roots: tuple[int, ...]

    @classmethod
    def make(
        cls,
        probe: Probe,
        nargs: int,
        donate_argnums: tp.Collection[int],
        donate_argnames: tp.Collection[str],
    ) -> TreeLayout:
        dyn_positions = [i for i in range(nargs) if i not in probe.static_positions]
        donated_args = {q for q, p in enumerate(dyn_positions) if p in donate_argnums}

        def donated(path: tp.Any) -> bool:
            which, where = path[0], path[1]
            if which.idx == 0:  # positional: (args, kwargs)[0][q]
                return where.idx in donated_args
            return where.key in donate_argnames

        tree = jax.tree.unflatten(probe.treedef, probe.dyn)
        leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
        with_holes, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_hole)
        holes = [path for path, leaf in with_holes if is_hole(leaf)]
        return cls(
            nargs=nargs,
            treedef=probe.treedef,
            donated_leaves=tuple(i for i, (path, _) in enumerate(leaves) if donated(path)),
            static_positions=probe.static_positions,
            static_names=probe.static_names,
            donated_roots=tuple(k for k, path in enumerate(holes) if donated(path)),
        )

    @property
    def donates(self) -> bool:
        return bool(self.donated_roots or self.donated_leaves)

    # ------------------------------------------------------------- outside
    def nodes(self, args: tp.Sequence[tp.Any], probe: Probe | None) -> list[tp.Any]:
        assert probe is not None
        return probe.nodes

    def split(
        self, args: tp.Sequence[tp.Any], kwargs: tp.Mapping[str, tp.Any], probe: Probe | None
    ) -> tuple[list[tp.Any], list[tp.Any], tp.Any]:
        assert probe is not None
        dyn = probe.dyn
        donated_dyn: list[tp.Any] = []
        if self.donated_leaves:
            donated = set(self.donated_leaves)
            donated_dyn = [dyn[i] for i in self.donated_leaves]
            dyn = [v for i, v in enumerate(dyn) if i not in donated]
        statics = (
            tuple(args[p] for p in self.static_positions),
            tuple(kwargs[n] for n in self.static_names),
        )
        return dyn, donated_dyn, statics

    # ------------------------------------------------------------- inside
    def rebuild(
        self,
        roots: tp.Sequence[tp.Any],
        dyn: tp.Sequence[tp.Any],
        donated_dyn: tp.Sequence[tp.Any],
        statics: tp.Any,
    ) -> tuple[list[tp.Any], dict[str, tp.Any]]:
        leaves: list[tp.Any] = [None] * (len(dyn) + len(donated_dyn))
        for i, v in zip(self.donated_leaves, donated_dyn):
            leaves[i] = v
        rest = iter(dyn)
        donated = set(self.donated_leaves)
        for i in range(len(leaves)):
            if i not in donated:
                leaves[i] = next(rest)
        args_tree, kwargs_tree = fill_tree(jax.tree.unflatten(self.treedef, leaves), roots)
        args = list(args_tree)
        pos_values, kw_values = statics
        for pos, value in zip(self.static_positions, pos_values):
            args.insert(pos, value)
        kwargs = dict(kwargs_tree)
        kwargs.update(zip(self.static_names, kw_values))
        return args, kwargs

    # ------------------------------------------------------------- errors, shardings
    def _tree(self) -> tp.Any:
        return jax.tree.unflatten(self.treedef, [None] * self.treedef.num_leaves)

    def root_names(self, params: tp.Sequence[str]) -> list[str]:
        dyn_params = [n for i, n in enumerate(params) if i not in self.static_positions]
        return tree_names(self._tree(), dyn_params)[0]

    def in_shardings(
        self,
        specs: tp.Sequence[tp.Any],
        paths: tp.Sequence[tuple[tp.Any, ...]],
        where: str,
        describe_position: tp.Callable[[int], str] = str,
    ) -> tuple[list[tp.Any], list[tp.Any], list[tp.Any]]:
        args_tree, _ = self._tree()
        node_specs: list[tp.Any] = []
        leaf_specs: list[tp.Any] = []
        for q, arg in enumerate(args_tree):
            spec = specs[q]
            num_holes = len(holes_of(arg))
            num_leaves = len(jax.tree.leaves(arg))
            if (num_leaves or (num_holes and not is_hole(arg))) and not (
                spec is None or is_sharding(spec)
            ):
                raise TypeError(
                    f"{where}: with keyword or static arguments, or Modules inside "
                    "containers, an argument's sharding must be one Sharding (or None) "
                    f"for all its leaves; found {type(spec).__name__} for argument "
                    f"{describe_position(q)}. Fix: pass the Module as its own "
                    "positional argument to give it a State of shardings."
                )
            node_specs.extend([spec] * num_holes)
            leaf_specs.extend([spec] * num_leaves)
        # keyword arguments: unspecified
        num_roots = len(holes_of(self._tree()))
        node_specs.extend([None] * (num_roots - len(node_specs)))
        leaf_specs.extend([None] * (self.treedef.num_leaves - len(leaf_specs)))
        values = leaf_shardings(node_specs, paths, where)
        donated = set(self.donated_leaves)
        return (
            values,
            [s for i, s in enumerate(leaf_specs) if i not in donated],
            [leaf_specs[i] for i in self.donated_leaves],
        )
