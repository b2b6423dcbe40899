"""Deliberate differences between nnx and flax.nnx 0.12.8: the one commented table.

Every place where nnx knowingly does not follow Flax NNX 0.12.8 is one entry of
``DIFFERENCES`` below. The README's migration section lists exactly these entries.
A difference is allowed only where Flax

* silently loses data or gives a wrong result,
* needs Linen (``flax.linen``), or
* raises where nnx already does something correct and useful (plain lists of
  Modules, the seed-era API).

Table format (append an entry with a small, surgical edit; keep the table short)::

    Difference(
        path="update",  # dotted name relative to ``flax.nnx``: a module
        # ("bridge"), a name ("update"), a member
        # ("Optimizer.update") or a parameter
        # ("split_rngs(graph)"). A module path also covers
        # everything below it ("bridge" covers "bridge.X").
        aspect="behaviour",  # what differs (one of ASPECTS):
        #   "name"      - the name is absent from nnx;
        #   "kind"      - same name, other kind (class/function/...);
        #   "signature" - parameters differ (name, kind, default);
        #   "members"   - a class lacks/changes public members;
        #   "behaviour" - same API, other runtime behaviour.
        reason="...",  # one sentence: which allowed category and why.
        readme="...",  # the user-facing line for the README migration section.
    )

``tests/oracle/test_api_surface.py`` skips any check whose (path, aspect) is listed
here (see ``is_deliberate``); behaviour entries are documentation for the tests that
exercise them and for the README.
"""

from __future__ import annotations

import typing as tp

ASPECTS = ("name", "kind", "signature", "members", "behaviour")


class Difference(tp.NamedTuple):
    """One deliberate difference from flax.nnx 0.12.8 (see the module docstring)."""

    path: str
    aspect: str
    reason: str
    readme: str


DIFFERENCES: tuple[Difference, ...] = (
    # ----------------------------------------------------------- needs Linen
    Difference(
        path="bridge",
        aspect="name",
        reason="needs Linen: nnx.bridge converts between flax.linen and NNX modules.",
        readme="`nnx.bridge` (Linen interop) is not provided: nnx does not depend on Flax.",
    ),
    Difference(
        path="wrappers",
        aspect="name",
        reason="needs Linen: nnx.wrappers wraps flax.linen modules.",
        readme="`nnx.wrappers` (Linen wrappers) is not provided: nnx does not depend on Flax.",
    ),
    # ---------------------------------------- Flax raises, nnx does something useful
    Difference(
        path="Module.__setattr__",
        aspect="behaviour",
        reason=(
            "Flax raises on a plain list/dict holding Modules or arrays; nnx stores it "
            "as nnx.List/nnx.Dict so the contents are tracked (seed-era programs)."
        ),
        readme=(
            "Plain Python lists/dicts holding Modules or arrays may be assigned to "
            "attributes (Flax 0.12 raises); they are stored as `nnx.List`/`nnx.Dict`."
        ),
    ),
    Difference(
        path="List",
        aspect="behaviour",
        reason=(
            "nnx.List is a Module (as in Flax) that is also a `list` subclass (seed-era "
            "code relies on list behaviour). Its graph/pytree content is its items, so "
            "setting a public attribute on it raises AttributeError (as on a plain list) "
            "instead of storing a value split/merge would have to carry besides the "
            "items; items marked nnx.data/nnx.static keep their kind when later items "
            "are inserted or removed (Flax keeps kinds per index, so an insert can "
            "silently turn a data item static)."
        ),
        readme=(
            "`nnx.List` is also a real `list`; like a plain list it takes no attributes "
            "(`layers.scale = 2` raises AttributeError)."
        ),
    ),
    Difference(
        path="view",
        aspect="behaviour",
        reason=(
            "Flax's nnx.view only calls `set_view` and raises 'Unused keys found in "
            "nnx.view' for a keyword that only a Module without `set_view` has as an "
            "attribute; nnx sets that attribute directly (as with_attributes does), so "
            "user Modules with a `deterministic` flag switch without writing set_view. "
            "Modules that define set_view are handled exactly as in Flax."
        ),
        readme=(
            "`nnx.view(model, deterministic=True)` also sets the flag on user Modules that "
            "have it as an attribute but define no `set_view` (Flax 0.12 raises)."
        ),
    ),
    Difference(
        path="Variable",
        aspect="behaviour",
        reason=(
            "seed-era API: `.value`, in-place arithmetic on Variables and "
            "`optimizer.update(grads)` keep working next to Flax 0.12's API."
        ),
        readme=(
            "The earlier API (`.value`, `variable += 1`, `optimizer.update(grads)`) "
            "works next to Flax 0.12's."
        ),
    ),
    Difference(
        path="Optimizer",
        aspect="signature",
        reason=(
            "seed-era API: Flax raises TypeError when `wrt` is missing; nnx's "
            "`Optimizer(model, tx)` trains nnx.Param and holds the model so the seed's "
            "`optimizer.update(grads)` works (hence `wrt=MISSING` and optional "
            "`update(model, grads)` arguments). With `wrt=` the state is Flax's."
        ),
        readme=(
            "`nnx.Optimizer(model, tx)` without `wrt` (Flax 0.12 raises) is the seed-era "
            "form: it trains `nnx.Param`, holds the model (its state has a `model` "
            "subtree, like `ModelAndOptimizer`) and accepts `optimizer.update(grads)`. "
            "Pass `wrt=` for Flax 0.12's layout (`step` + `opt_state` only)."
        ),
    ),
    Difference(
        path="MultiMetric",
        aspect="behaviour",
        reason=(
            "Flax silently accepts a metric named `reset`/`update`/`compute`/`split`, "
            "which then shadows the method; nnx raises ValueError at construction."
        ),
        readme=(
            "`nnx.MultiMetric` rejects metric names that would shadow its methods "
            "(`reset`, `update`, `compute`, `split`) with a ValueError."
        ),
    ),
    Difference(
        path="Param",
        aspect="behaviour",
        reason=(
            "Flax raises ValueError when a Variable with a sharding annotation is created "
            "with eager sharding on and no mesh; nnx keeps the annotation and places the "
            "value later (get_named_sharding, jit), so the same model code runs on one device."
        ),
        readme=(
            "An annotated Variable (`out_sharding`/`sharding_names`/`sharding`) created "
            "without any mesh keeps its annotation instead of raising; pass "
            "`eager_sharding=True` to get Flax's error."
        ),
    ),
    Difference(
        path="Dropout",
        aspect="behaviour",
        reason=(
            "Flax accepts a rate outside [0, 1] and silently returns wrong values (all "
            "zeros, or unscaled inputs); nnx raises ValueError at construction."
        ),
        readme="`nnx.Dropout(rate)` with a rate outside [0, 1] raises a ValueError.",
    ),
    Difference(
        path="MultiHeadAttention.set_view",
        aspect="behaviour",
        reason=(
            "Flax accepts batch_size/max_length and silently ignores them; nnx creates "
            "the decode cache when decoding is on and both are given."
        ),
        readme=(
            "`MultiHeadAttention.set_view(decode=True, batch_size=B, max_length=L)` (and "
            "`nnx.view`) creates the decode cache; Flax ignores the two sizes."
        ),
    ),
    Difference(
        path="EMA.update",
        aspect="behaviour",
        reason=(
            "Flax's default `only=...` averages integer Variables with truncation (a "
            "counter stays near its first value: a silent wrong result) and raises "
            "TypeError on RNG keys; nnx averages floating-point Variables and copies "
            "the current value into integer, boolean and key Variables."
        ),
        readme=(
            "`nnx.EMA(...).update` averages floating-point Variables only; integer "
            "counters and RNG keys take the model's current value (Flax truncates "
            "integer averages and raises on keys)."
        ),
    ),
    Difference(
        path="replace_by_pure_dict",
        aspect="behaviour",
        reason=(
            "Flax silently stores a value of another shape (a checkpoint of a different "
            "model): a bias of shape (1,) then broadcasts and gives wrong results with no "
            "error; nnx raises naming every mismatched path (a replace_fn skips the check)."
        ),
        readme=(
            "`replace_by_pure_dict` (and `State.replace_by_pure_dict`) raise a `ValueError` "
            "naming each path whose value has a different shape from the State's, instead "
            "of storing it; pass a `replace_fn` to store values of any shape."
        ),
    ),
    Difference(
        path="update",
        aspect="behaviour",
        reason=(
            "Flax silently stores a value whose shape differs from the Variable's (a "
            "State of a different model), which then broadcasts into wrong results; nnx "
            "raises naming every mismatched path and changes nothing. Paths the object "
            "lacks are added as in Flax."
        ),
        readme=(
            "`nnx.update` raises a `ValueError` naming each path whose value has another "
            "shape than the Variable it would replace (nothing is changed); new paths "
            "whose parent exists are added, as in Flax."
        ),
    ),
    Difference(
        path="with_rngs",
        aspect="behaviour",
        reason=(
            "Flax raises NotImplementedError with graph=True and graph_updates=True (its "
            "defaults); nnx applies the split/fork/broadcast in place and returns a "
            "SplitBackups handle, like split_rngs, so `with nnx.with_rngs(rngs, split=n):` "
            "(the seed-era form) keeps working. With graph=False or graph_updates=False "
            "it returns a copy, as Flax does."
        ),
        readme=(
            "`nnx.with_rngs(node, ...)` with the default `graph`/`graph_updates` (Flax "
            "raises) changes the streams in place and returns a handle that restores "
            "them (`with nnx.with_rngs(rngs, split=4): ...`); pass `graph=False` for "
            "Flax's copy."
        ),
    ),
    Difference(
        path="Rngs.split",
        aspect="behaviour",
        reason=(
            "Flax rebuilds a stream that no filter changes from its key with the count "
            "reset to zero, so the new Rngs silently repeats keys the original already "
            "drew (correlated randomness); nnx shares that stream object unchanged. "
            "Same for Rngs.broadcast."
        ),
        readme=(
            "`Rngs.split({...})`/`Rngs.broadcast({...})` share the streams no filter "
            "selects with the original Rngs instead of restarting them at count 0 "
            "(which would repeat keys already drawn)."
        ),
    ),
    Difference(
        path="fork_rngs",
        aspect="behaviour",
        reason=(
            "With a split mapping where a stream matches several filters, Flax forks it "
            "once per match and restoring then leaves the stream at an intermediate "
            "(split) key, a silent wrong result; nnx applies the first matching filter "
            "only, like Rngs.split and with_rngs."
        ),
        readme=(
            "`fork_rngs(node, split={...})` applies the first matching filter to each "
            "stream (Flax applies every match, and its restore can leave keys split)."
        ),
    ),
    Difference(
        path="Rngs",
        aspect="behaviour",
        reason=(
            "Flax raises ValueError for an integer array seed (jnp.array(0), np.int64); "
            "nnx treats any integer scalar as a seed, as the seed-era API did."
        ),
        readme="`nnx.Rngs(jnp.array(0))` (an integer scalar array) is accepted as a seed.",
    ),
    Difference(
        path="make_jaxpr",
        aspect="behaviour",
        reason=(
            "Flax raises ValueError ('does not support graph_updates=True') in the default "
            "mode; nnx traces graph-node arguments there as every other transform does "
            "(updated Variables become outputs), and applies Flax's aliasing checks with "
            "graph=False/graph_updates=False."
        ),
        readme="`nnx.make_jaxpr` also works in the default mode (Flax needs graph_updates=False).",
    ),
    # ---------------------------------------------- Flax silently loses data
    Difference(
        path="jit(graph_updates)",
        aspect="behaviour",
        reason=(
            "silent data loss: with graph_updates=False or graph=False, Flax's transforms "
            "(jit, grad, vmap, ...) drop structural changes made inside (a new attribute, "
            "a replaced Variable, the flag .eval() sets) without a word, while Variable "
            "updates do propagate; nnx carries both back, as in the default mode, and keeps "
            "Flax's aliasing errors for these modes."
        ),
        readme=(
            "With `graph=False` / `graph_updates=False`, attributes added, deleted or "
            "replaced inside a transform are written back to the caller's objects (Flax "
            "drops them silently); Flax's Variable-aliasing `ValueError`s are kept."
        ),
    ),
    Difference(
        path="scan",
        aspect="behaviour",
        reason=(
            "silent data loss: when a scan step returns the carried Variables in another "
            "arrangement (e.g. a tuple (a, b) returned as (b, a)), Flax returns new Variable "
            "objects and leaves the caller's a and b at their old values, breaking reference "
            "semantics without a word; nnx raises its 'Carry references must be the same "
            "between iterations' ValueError instead."
        ),
        readme=(
            "`nnx.scan` raises when a step returns the carried Variables rearranged (Flax "
            "returns fresh copies and leaves the caller's Variables stale)."
        ),
    ),
    Difference(
        path="scan(in_axes)",
        aspect="behaviour",
        reason=(
            "silent data loss: state passed to nnx.scan with in_axes=None (broadcast) may be "
            "changed by the body, but Flax drops those changes without a word: every step "
            "sees the original values, and an Rngs broadcast into the scan draws the same "
            "key at every step and on every call (its count never advances); nnx threads "
            "the updates through the steps and writes them back."
        ),
        readme=(
            "State broadcast into `nnx.scan` (`in_axes=None`) keeps the body's updates: a "
            "broadcast `Rngs` draws a new key at every step (Flax repeats one key and drops "
            "the count); use `nnx.split_rngs`/`with_rngs(broadcast=...)` for the same keys "
            "on purpose."
        ),
    ),
    # ------------------------------------- Flax raises, nnx does something useful
    Difference(
        path="vmap(out_axes)",
        aspect="behaviour",
        reason=(
            "Flax raises for a State of axes (nnx.prefix) in out_axes in the default graph "
            "mode; nnx accepts it per output node in every mode (pmap and scan too), as it "
            "already accepts one in in_axes."
        ),
        readme=(
            "`out_axes` of `vmap`/`pmap`/`scan` accepts `nnx.prefix(...)` trees in every "
            "mode, like `in_axes` (Flax: only with `graph_updates=False`)."
        ),
    ),
    Difference(
        path="Variable.__init__(out_sharding)",
        aspect="behaviour",
        reason=(
            "Flax silently drops `out_sharding=` when `sharding_names=`/`sharding=` is "
            "given too (the alias overwrites it); nnx keeps `out_sharding`."
        ),
        readme=(
            "When both `out_sharding=` and an alias (`sharding_names=`, `sharding=`) are "
            "given, `out_sharding` wins (Flax keeps the alias)."
        ),
    ),
    Difference(
        path="jit(in_shardings)",
        aspect="behaviour",
        reason=(
            "Flax raises where nnx does something correct and useful: a State of specs "
            "(jax.tree.map over nnx.state, nnx.get_named_sharding) holds them in "
            "Variables, which Flax refuses as 'Variables prefixes'; nnx applies them per "
            "Variable (in_shardings/out_shardings of jit, in_axes/out_axes of vmap/scan)."
        ),
        readme=(
            "A State of shardings/axes (e.g. `jax.tree.map(lambda _: s, nnx.state(m))`) is "
            "accepted as a per-Variable prefix; a bare Variable as a prefix raises as in Flax."
        ),
    ),
    Difference(
        path="grad(graph)",
        aspect="behaviour",
        reason=(
            "Flax raises where nnx does something correct and useful: with graph=False or "
            "graph_updates=False Flax differentiates every array of a Module, so any Module "
            "holding an RNG stream (Dropout) or an integer Variable fails with JAX's "
            "'grad requires real- or complex-valued inputs'; nnx differentiates every float "
            "Variable (as Flax) and leaves integer and key Variables out (allow_int=True "
            "includes the integer ones)."
        ),
        readme=(
            "`nnx.grad(..., graph=False)` / `graph_updates=False` differentiate every float "
            "Variable of a Module as in Flax, but skip RNG keys/counts and integer Variables "
            "instead of raising JAX's integer-input error."
        ),
    ),
    # ---------------------------------------------------- Flax internals (out of scope)
    Difference(
        path="GraphDef",
        aspect="behaviour",
        reason=(
            "Flax internals: Flax's flat view of a Module/List/Dict lists its own "
            "bookkeeping entries (`_pytree__state`, `_pytree__nodes`, List `_length`) and "
            "keeps a Module's declared data/static map in a `_pytree__nodes` Static "
            "attribute; nnx objects have no such attributes, so a NodeDef counts only "
            "real attributes and its `metadata` holds the declared map (the type when "
            "nothing is declared). Plain containers, Variables, references and static "
            "values match Flax entry by entry (tests/oracle/test_records_oracle.py)."
        ),
        readme=(
            "`GraphDef.nodes`/`.attributes` follow Flax's flat layout and "
            "`GraphDef(nodes, attributes, num_leaves)` rebuilds any GraphDef from them, but "
            "a Module's entries are only its own attributes (no `_pytree__state`, "
            "`_pytree__nodes` or `_length` entries); `VariableDef(array_refdef=...)` must "
            "be None."
        ),
    ),
    Difference(
        path="variablelib.HijaxVariable",
        aspect="behaviour",
        reason=(
            "not one of the usual categories (lead to confirm): a hijax Variable keeps "
            "its collection class (type(v) is Param, so type-based filters, GraphDefs and "
            "every isinstance(x, Variable) hot path are unchanged) instead of becoming a "
            "separate HijaxVariable class; isinstance(v, HijaxVariable) still tells it apart."
        ),
        readme=(
            "`Variable(..., hijax=True)` keeps its class: `type(v)` is `Param` (not "
            "`HijaxVariable`); use `v.hijax` or `isinstance(v, nnx.variablelib.HijaxVariable)`."
        ),
    ),
)


def _covers(entry_path: str, path: str) -> bool:
    if entry_path == path:
        return True
    # A module/class entry covers everything below it.
    return path.startswith(entry_path + ".") or path.startswith(entry_path + "(")


def is_deliberate(path: str, aspect: str) -> bool:
    """Whether the check ``aspect`` of ``path`` (relative to flax.nnx) is a listed difference.

    A ``"name"`` entry (the name is absent from nnx) covers every aspect of the name
    and of everything under it.
    """
    for d in DIFFERENCES:
        if not _covers(d.path, path):
            continue
        if d.aspect in (aspect, "name"):
            return True
    return False


def lookup(path: str) -> list[Difference]:
    """All entries that cover ``path``."""
    return [d for d in DIFFERENCES if _covers(d.path, path)]
