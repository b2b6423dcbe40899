"""A small causal transformer language model, trained on the Zen of Python.

Shows how to build and run a decoder-only transformer with nnx:

- character-level tokens; the training text ships with Python (the ``this`` module
  holds the Zen of Python ROT13-encoded; ``codecs.decode(this.s, "rot13")``);
- ``nnx.Embed`` token and position embeddings, with the output layer tied to the token
  embedding (``embed.attend``);
- pre-norm blocks of ``nnx.LayerNorm`` + ``nnx.MultiHeadAttention`` + MLP, *stacked*:
  one ``Block`` is created per layer by ``nnx.vmap`` under ``nnx.split_rngs`` (every
  Param gets a leading layer axis, each layer its own init and dropout keys) and the
  stack is applied with ``nnx.scan`` over that axis (one compiled block, not one per
  layer);
- ``nnx.Optimizer(model, optax.adamw(...), wrt=nnx.Param)`` and an ``@nnx.jit`` train
  step; optional dropout (``--dropout 0.1``: each stacked layer draws from its own
  split key) switched by ``model.train()`` / ``model.eval()``;
- autoregressive generation with the attention *decode cache*: ``init_cache`` on every
  stacked layer (through ``nnx.vmap``), then one token per ``decode=True`` call; the
  example checks that cached decoding reproduces the full causal forward pass.

Full size (600 steps, about 70 s of CPU time; checks the loss is below 0.2 and that
greedy generation from the opening words continues the Zen as it is written)::

    python examples/transformer_lm.py

CI size (a few seconds; checks the loss went down and the cache matches)::

    python examples/transformer_lm.py --small
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import io
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import nnx


def zen_of_python() -> str:
    with contextlib.redirect_stdout(io.StringIO()):  # `import this` prints the Zen
        import this
    return codecs.decode(this.s, "rot13")


class Block(nnx.Module):
    """Pre-norm transformer block: ``x + attn(ln(x))``, then ``x + mlp(ln(x))``.

    Input and output ``(batch, length, features)``.
    """

    def __init__(self, features: int, num_heads: int, *, dropout: float, rngs: nnx.Rngs):
        self.attention_norm = nnx.LayerNorm(features, rngs=rngs)
        self.attention = nnx.MultiHeadAttention(
            num_heads, features, dropout_rate=dropout, decode=False, rngs=rngs
        )
        self.mlp_norm = nnx.LayerNorm(features, rngs=rngs)
        self.mlp_in = nnx.Linear(features, 4 * features, rngs=rngs)
        self.mlp_out = nnx.Linear(4 * features, features, rngs=rngs)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)

    def __call__(self, x: jax.Array, mask: jax.Array | None, decode: bool) -> jax.Array:
        x = x + self.dropout(self.attention(self.attention_norm(x), mask=mask, decode=decode))
        hidden = nnx.gelu(self.mlp_in(self.mlp_norm(x)))
        return x + self.dropout(self.mlp_out(hidden))


class TransformerLM(nnx.Module):
    """Decoder-only language model.

    ``model(tokens, positions)`` maps int tokens ``(batch, length)`` at positions
    ``(batch, length)`` to next-token logits ``(batch, length, vocab_size)``.
    """

    def __init__(
        self,
        vocab_size: int,
        features: int,
        num_heads: int,
        num_layers: int,
        max_length: int,
        *,
        dropout: float,
        rngs: nnx.Rngs,
    ):
        self.features, self.max_length = features, max_length
        self.token_embed = nnx.Embed(vocab_size, features, rngs=rngs)
        self.position_embed = nnx.Embed(max_length, features, rngs=rngs)

        # One Block per layer, stacked: split_rngs gives each layer its own keys, vmap
        # creates the layers in one go with a leading `num_layers` axis on every Variable.
        @nnx.split_rngs(splits=num_layers)
        @nnx.vmap(in_axes=(0,), out_axes=0)
        def create_blocks(rngs: nnx.Rngs) -> Block:
            return Block(features, num_heads, dropout=dropout, rngs=rngs)

        self.blocks = create_blocks(rngs)
        self.final_norm = nnx.LayerNorm(features, rngs=rngs)

    def __call__(
        self, tokens: jax.Array, positions: jax.Array, *, decode: bool = False
    ) -> jax.Array:
        x = self.token_embed(tokens) + self.position_embed(positions)
        # Training / full forward: causal mask. Decoding: the attention cache masks the
        # positions not yet written, so no mask is needed.
        mask = None if decode else nnx.make_causal_mask(tokens)

        # Apply the stacked blocks in sequence: scan over their leading layer axis.
        @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
        def apply_blocks(x: jax.Array, block: Block) -> jax.Array:
            return block(x, mask, decode)

        x = apply_blocks(x, self.blocks)
        return self.token_embed.attend(self.final_norm(x))  # output layer tied to the input

    def init_cache(self, batch_size: int) -> None:
        """Create (or reset) every layer's decode cache for ``max_length`` tokens."""

        @nnx.vmap(in_axes=(0,))  # one cache per stacked layer
        def init(block: Block) -> None:
            block.attention.init_cache((batch_size, self.max_length, self.features))

        init(self.blocks)


def loss_fn(model: TransformerLM, tokens: jax.Array) -> jax.Array:
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    positions = jnp.broadcast_to(jnp.arange(inputs.shape[1]), inputs.shape)
    logits = model(inputs, positions)
    return optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()


@nnx.jit
def train_step(model: TransformerLM, optimizer: nnx.Optimizer, tokens: jax.Array) -> jax.Array:
    loss, grads = nnx.value_and_grad(loss_fn)(model, tokens)
    optimizer.update(model, grads)
    return loss


@nnx.jit
def decode_step(model: TransformerLM, token: jax.Array, position: jax.Array) -> jax.Array:
    """One token ``(batch, 1)`` in, next-token logits ``(batch, vocab)`` out; advances
    the cache."""
    positions = jnp.broadcast_to(position, token.shape)
    return model(token, positions, decode=True)[:, -1]


def generate(model: TransformerLM, prompt: jax.Array, length: int, temperature: float, key):
    """Feed ``prompt`` ``(batch, p)`` through the cache, then generate ``length`` more
    tokens (greedy when ``temperature == 0``). Returns ``(batch, p + length)``."""
    model.eval()
    model.init_cache(prompt.shape[0])
    tokens = [prompt[:, i] for i in range(prompt.shape[1])]
    logits = None
    for i in range(prompt.shape[1]):  # prefill, one token at a time
        logits = decode_step(model, prompt[:, i : i + 1], jnp.int32(i))
    for i in range(prompt.shape[1], prompt.shape[1] + length):
        if temperature == 0:
            next_token = jnp.argmax(logits, axis=-1)
        else:
            key, subkey = jax.random.split(key)
            next_token = jax.random.categorical(subkey, logits / temperature, axis=-1)
        tokens.append(next_token)
        if i + 1 < prompt.shape[1] + length:
            logits = decode_step(model, next_token[:, None], jnp.int32(i))
    return jnp.stack(tokens, axis=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="reduced size for CI")
    parser.add_argument("--steps", type=int, default=None, help="default 600 (60 --small)")
    parser.add_argument("--features", type=int, default=None, help="default 64 (32 --small)")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--context", type=int, default=None, help="default 64 (32 --small)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-loss", type=float, default=0.2, help="full-size check")
    args = parser.parse_args(argv)
    steps = args.steps or (60 if args.small else 600)
    features = args.features or (32 if args.small else 64)
    layers = args.layers
    context = args.context or (32 if args.small else 64)
    start = time.perf_counter()

    text = zen_of_python()
    vocab = sorted(set(text))
    char_to_id = {c: i for i, c in enumerate(vocab)}
    data = np.array([char_to_id[c] for c in text], dtype=np.int32)
    decode_text = lambda ids: "".join(vocab[int(i)] for i in ids)
    print(f"corpus: the Zen of Python, {len(text)} characters, vocabulary {len(vocab)}")

    model = TransformerLM(
        len(vocab),
        features,
        args.heads,
        layers,
        context,
        dropout=args.dropout,
        rngs=nnx.Rngs(params=args.seed, dropout=args.seed + 1),
    )
    schedule = optax.warmup_cosine_decay_schedule(0.0, args.lr, min(100, steps // 10), steps)
    optimizer = nnx.Optimizer(
        model, optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule)), wrt=nnx.Param
    )
    params = nnx.state(model, nnx.Param)
    num_params = sum(p.size for p in jax.tree.leaves(params))
    kernel_shape = model.blocks.attention.query.kernel.value.shape
    print(
        f"model: {layers} stacked blocks (query kernel {kernel_shape}), {features} features, "
        f"{args.heads} heads, context {context}, {num_params:,} parameters"
    )

    # Random training windows of context + 1 characters (inputs and shifted targets).
    sampler = np.random.default_rng(args.seed)
    model.train()
    losses = []
    for step in range(1, steps + 1):
        offsets = sampler.integers(0, len(data) - context - 1, size=args.batch_size)
        batch = np.stack([data[o : o + context + 1] for o in offsets])
        losses.append(float(train_step(model, optimizer, batch)))
        if step == 1 or step % max(1, steps // 10) == 0:
            recent = np.mean(losses[-max(1, steps // 10) :])
            print(
                f"step {step:5d}/{steps}  loss {recent:.4f}  ({time.perf_counter() - start:.1f} s)"
            )
    first_loss = losses[0]
    final_loss = float(np.mean(losses[-max(1, steps // 20) :]))

    # The decode cache must reproduce the full causal forward pass, token by token.
    model.eval()
    probe = jnp.asarray(data[None, :context])
    full_logits = model(probe, jnp.arange(context)[None])
    model.init_cache(1)
    cached_logits = jnp.stack(
        [decode_step(model, probe[:, i : i + 1], jnp.int32(i)) for i in range(context)], axis=1
    )
    cache_error = float(jnp.max(jnp.abs(cached_logits - full_logits)))
    print(f"decode cache vs full forward: max |logit difference| = {cache_error:.2e}")

    prompt_text = "Beautiful is better"
    prompt = jnp.asarray([[char_to_id[c] for c in prompt_text]])
    generated = generate(
        model, prompt, context - prompt.shape[1], args.temperature, jax.random.key(args.seed)
    )
    sample = decode_text(generated[0])
    print("generated (" + ("greedy" if args.temperature == 0 else "sampled") + "):")
    print("    " + sample.replace("\n", "\n    "))
    # How far does the generation follow the corpus from where the prompt occurs?
    reference = text[text.index(prompt_text) :][: len(sample)]
    matching = next((i for i, (a, b) in enumerate(zip(sample, reference)) if a != b), len(sample))
    print(f"generation matches the Zen for {matching} of {len(sample)} characters")
    print(f"total time {time.perf_counter() - start:.1f} s")

    failures = []
    if cache_error > 1e-3:
        failures.append(f"decode cache differs from the full forward by {cache_error:.2e}")
    if len(sample) != context:
        failures.append(f"generated {len(sample)} characters, expected {context}")
    if not final_loss < first_loss:
        failures.append(f"loss did not decrease ({first_loss:.4f} -> {final_loss:.4f})")
    if not args.small:
        if final_loss > args.max_loss:
            failures.append(f"final loss {final_loss:.4f} > {args.max_loss}")
        if args.temperature == 0 and matching < context // 2:
            failures.append(f"greedy generation left the Zen after {matching} characters")
    for failure in failures:
        print(f"FAILED: {failure}")
    if failures:
        return 1
    print(
        f"OK: loss {first_loss:.4f} -> {final_loss:.4f}, decode cache matches the full "
        f"forward, generated {len(sample)} characters"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
