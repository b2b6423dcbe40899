"""Run by test_checkpoint_faults.py: a launcher that forks one process per save, so
that the test can SIGKILL real saves at many points without paying for a fresh
``import jax`` each time.

The launcher imports jax, orbax and safetensors but never initialises a JAX
backend (nnx_graph does at import, so the children import it), so forking it is
safe. Commands, one per line on stdin::

    save <format> <path> <version> <mode> <pause_at>

``format`` is ``orbax`` or ``safetensors``; ``mode`` is ``exchange`` (atomic
renameat2 swap) or ``fallback`` (two renames); ``pause_at`` is a save phase
(``staged``, ``exchanged``, ``moved-aside``, ``swapped``, ``trashed``) at which the
child stops and waits to be killed, or ``none``. Output lines: ``pid N``, then
from the child ``start``, ``phase NAME``, ``pause``, ``done``, then ``exit STATUS``.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

SHAPE = (1024, 1024)  # 8 of these: 32 MiB of float32
ARRAYS = 8


def arrays_for(version: int) -> dict[str, np.ndarray]:
    """The state saved as ``version``: distinct random data, different per version."""
    rng = np.random.default_rng(version)
    out = {f"w{i}": rng.random(SHAPE, dtype=np.float32) for i in range(ARRAYS)}
    out["version"] = np.asarray(version, dtype=np.int32)
    return out


def say(text: str) -> None:
    os.write(1, (text + "\n").encode())


def child(fmt: str, path: str, version: int, mode: str, pause_at: str) -> None:
    import jax.numpy as jnp

    import nnx_graph as nnx
    import nnx_optim
    from nnx_optim import _checkpoint_atomic as atomic

    atomic.use_exchange = mode == "exchange"

    def hook(name: str) -> None:
        say(f"phase {name}")
        if name == pause_at:
            say("pause")
            time.sleep(600)  # the test kills us here

    atomic.phase_hook = hook
    model = nnx.Dict({k: nnx.Param(jnp.asarray(v)) for k, v in arrays_for(version).items()})
    say("start")
    if fmt == "orbax":
        nnx_optim.save_checkpoint(path, model, overwrite=True)
    else:
        nnx_optim.save_safetensors(path, model)
    say("done")


def main() -> None:
    # imported once here, shared by every fork; none of these starts a JAX backend
    import jax  # noqa: F401
    import jaxlib.mlir.dialects.builtin  # what nnx_graph would load
    import jaxlib.mlir.dialects.mhlo  # noqa: F401
    import orbax.checkpoint  # noqa: F401
    import safetensors.numpy  # noqa: F401

    say("ready")
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "quit":
            break
        _, fmt, path, version, mode, pause_at = words
        pid = os.fork()
        if pid == 0:  # the child: save, then leave without running the launcher's exit
            status = 0
            try:
                child(fmt, path, int(version), mode, pause_at)
            except BaseException as error:  # report, so that the test can show it
                say(f"error {type(error).__name__}: {error}".replace("\n", " | "))
                status = 1
            os._exit(status)
        say(f"pid {pid}")
        _, status = os.waitpid(pid, 0)
        say(f"exit {status}")


if __name__ == "__main__":
    main()
