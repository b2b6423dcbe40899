"""Regenerate docs/images/display.png: the seed's MLP, after LoRA surgery, as
``nnx_viz.save_html`` shows it in a browser.

    python3 docs/make_screenshot.py [output.png]

Needs the playwright Python package and Debian's Chromium (/usr/bin/chromium, or set
NNX_CHROMIUM); Playwright's own browser download is not used. Uses nnx_nn's layers
when they exist, otherwise small stand-ins written with nnx_graph.
"""

from __future__ import annotations

import os
import pathlib
import sys
import tempfile
import typing as tp

import jax
import jax.numpy as jnp

import nnx_graph as nnx
import nnx_viz

OUTPUT = pathlib.Path(__file__).parent / "images" / "display.png"
CHROMIUM = os.environ.get("NNX_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _layers() -> tuple[tp.Any, tp.Any, tp.Any, tp.Callable[[jax.Array], jax.Array]]:
    """(Linear, Dropout, BatchNorm, gelu): nnx_nn's when available."""
    try:
        import nnx_nn

        return nnx_nn.Linear, nnx_nn.Dropout, nnx_nn.BatchNorm, nnx_nn.gelu
    except (ImportError, AttributeError):
        pass

    class Linear(nnx.Module):
        def __init__(self, din: int, dout: int, *, rngs: nnx.Rngs) -> None:
            self.kernel = nnx.Param(jax.random.uniform(rngs.params(), (din, dout)))
            self.bias = nnx.Param(jnp.zeros(dout))
            self.in_features, self.out_features = din, dout

        def __call__(self, x: jax.Array) -> jax.Array:
            return x @ self.kernel + self.bias

    class Dropout(nnx.Module):
        def __init__(self, rate: float, *, rngs: nnx.Rngs) -> None:
            self.rate, self.deterministic, self.rngs = rate, False, rngs.dropout.fork()

        def __call__(self, x: jax.Array) -> jax.Array:
            keep = jax.random.bernoulli(self.rngs(), 1 - self.rate, x.shape)
            return jnp.where(keep | self.deterministic, x, 0)

    class BatchNorm(nnx.Module):
        def __init__(self, features: int, *, rngs: nnx.Rngs) -> None:
            self.mean = nnx.BatchStat(jnp.zeros(features))
            self.var = nnx.BatchStat(jnp.ones(features))
            self.scale = nnx.Param(jnp.ones(features))
            self.bias = nnx.Param(jnp.zeros(features))

        def __call__(self, x: jax.Array) -> jax.Array:
            return (x - self.mean) / jnp.sqrt(self.var + 1e-5) * self.scale + self.bias

    return Linear, Dropout, BatchNorm, jax.nn.gelu


def seed_model() -> nnx.Module:
    """The seed overview's MLP with both Linear layers wrapped by LoRA adapters."""
    Linear, Dropout, BatchNorm, gelu = _layers()

    class MLP(nnx.Module):
        def __init__(self, din: int, hidden: int, dout: int, *, rngs: nnx.Rngs) -> None:
            self.linear1 = Linear(din, hidden, rngs=rngs)
            self.dropout = Dropout(0.1, rngs=rngs)
            self.bn = BatchNorm(hidden, rngs=rngs)
            self.linear2 = Linear(hidden, dout, rngs=rngs)

        def __call__(self, x: jax.Array) -> jax.Array:
            return self.linear2(gelu(self.dropout(self.bn(self.linear1(x)))))

    class LoraParam(nnx.Param[jax.Array]):
        pass

    class LoraLinear(nnx.Module):
        def __init__(self, linear: tp.Any, rank: int, *, rngs: nnx.Rngs) -> None:
            self.linear = linear
            self.A = LoraParam(jax.random.normal(rngs(), (linear.in_features, rank)))
            self.B = LoraParam(jax.random.normal(rngs(), (rank, linear.out_features)))

        def __call__(self, x: jax.Array) -> jax.Array:
            return self.linear(x) + x @ self.A @ self.B

    rngs = nnx.Rngs(0)
    model = MLP(2, 32, 5, rngs=rngs)
    model.linear1 = LoraLinear(model.linear1, 4, rngs=rngs)
    model.linear2 = LoraLinear(model.linear2, 4, rngs=rngs)
    model(jnp.ones((3, 2)))
    return model


def screenshot(obj: tp.Any, output: pathlib.Path) -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        page_path = nnx_viz.save_html(obj, pathlib.Path(tmp) / "display.html")
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 800}, device_scale_factor=1)
            page.goto(page_path.as_uri())
            page.wait_for_function(
                "() => document.querySelector('treescope-container')?.shadowRoot"
                "?.textContent.includes('MLP(')"
            )
            output.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(output), full_page=True)
        finally:
            browser.close()


def main() -> None:
    output = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else OUTPUT
    screenshot(seed_model(), output)
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
