"""What do checkpoint integrity checks cost?

For models of several sizes (float32 weights of random data, 8 arrays):

* restore: ``nnx.restore_checkpoint(..., verify=True)`` (a CRC-32 per array, the
  default) against ``verify=False``;
* load: ``nnx.load_safetensors(..., verify=True)`` against ``verify=False``;
* save: ``nnx.save_checkpoint(..., overwrite=True)`` (checksums + writing beside
  and swapping in) against plain orbax (``ocp.Checkpointer.save(force=True)``,
  which deletes the old checkpoint first), on the same tree;
* the CRC-32 alone, in GB/s.

Variants are interleaved and each figure is the minimum over repeats, timed with
the wall clock (I/O) and the process CPU time; only ratios against a baseline
measured in the same run are meaningful.

Run: ``python benchmarks/bench_checkpoint.py [--quick]``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import typing as tp
import zlib

import jax.numpy as jnp
import numpy as np
from _common import Table

import nnx_graph as nnx
import nnx_optim

Timer = tp.Callable[[], None]


def model(megabytes: int, seed: int) -> tp.Any:
    rng = np.random.default_rng(seed)
    rows = megabytes * (1 << 20) // (8 * 4 * 1024)
    return nnx.Dict(
        {f"w{i}": nnx.Param(jnp.asarray(rng.random((rows, 1024), np.float32))) for i in range(8)}
    )


def best(variants: dict[str, Timer], repeats: int) -> dict[str, tuple[float, float]]:
    """Min over ``repeats`` interleaved runs of (wall, cpu) seconds per variant."""
    out = {name: (float("inf"), float("inf")) for name in variants}
    names = list(variants)
    for round_ in range(repeats):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            wall, cpu = time.perf_counter(), time.process_time()
            variants[name]()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            out[name] = (min(out[name][0], wall), min(out[name][1], cpu))
    return out


def measure_size(size: int, root: str, repeats: int, table: Table) -> None:
    """Add the rows for a model of ``size`` MiB to ``table``."""
    import orbax.checkpoint as ocp

    source = model(size, 0)
    ckpt = os.path.join(root, f"ckpt{size}")
    plain = os.path.join(root, f"plain{size}")
    file = os.path.join(root, f"m{size}.safetensors")
    nnx_optim.save_checkpoint(ckpt, source)
    nnx_optim.save_safetensors(file, source)
    target = model(size, 1)
    pure = nnx.to_pure_dict(nnx.state(source))
    checkpointer = ocp.Checkpointer(ocp.StandardCheckpointHandler())
    checkpointer.save(plain, args=ocp.args.StandardSave(pure))
    rows: dict[str, dict[str, Timer]] = {
        "restore_checkpoint": {
            "verify=False": lambda: nnx_optim.restore_checkpoint(ckpt, target, verify=False),
            "verify=True": lambda: nnx_optim.restore_checkpoint(ckpt, target),
        },
        "load_safetensors": {
            "verify=False": lambda: nnx_optim.load_safetensors(file, target, verify=False),
            "verify=True": lambda: nnx_optim.load_safetensors(file, target),
        },
        "save (overwrite)": {
            "plain orbax force=True": lambda: checkpointer.save(
                plain, args=ocp.args.StandardSave(pure), force=True
            ),
            "nnx atomic + checksums": lambda: nnx_optim.save_checkpoint(
                ckpt, source, overwrite=True
            ),
        },
    }
    for operation, variants in rows.items():
        variants[next(iter(variants))]()  # warm-up
        timing = best(variants, repeats)
        (base_wall, base_cpu), (wall, cpu) = timing.values()
        table.add(
            f"{size} MiB",
            operation,
            f"{base_wall * 1e3:.0f}",
            f"{wall * 1e3:.0f}",
            f"{wall / base_wall:.2f}x",
            f"{cpu / base_cpu:.2f}x",
        )
    checkpointer.close()
    arrays = [np.asarray(leaf.value) for _, leaf in nnx.state(source).flat_state()]
    start = time.perf_counter()
    for array in arrays:
        zlib.crc32(array.reshape(-1).view(np.uint8).data)
    seconds = time.perf_counter() - start
    table.add(
        f"{size} MiB",
        "crc32 alone",
        "",
        f"{seconds * 1e3:.0f}",
        f"{size / 1024 / seconds:.2f} GiB/s",
        "",
    )


def run(quick: bool) -> str:
    sizes = [32, 128] if quick else [32, 256]
    repeats = 3 if quick else 7
    table = Table(
        "Checkpoint integrity cost (baseline: unchecked restore/load, plain orbax save)",
        ["model", "operation", "baseline (ms)", "checked (ms)", "ratio wall", "ratio cpu"],
        note="min over interleaved repeats; ratio = checked / baseline, same run",
    )
    root = tempfile.mkdtemp(prefix="bench_checkpoint_")
    try:
        for size in sizes:
            measure_size(size, root, repeats, table)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return table.text() + "\n\n" + table.markdown()


if __name__ == "__main__":
    print(run("--quick" in sys.argv))
