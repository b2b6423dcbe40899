"""Crash safety of checkpoint saves, tested the way it breaks: real processes saving
a 32 MiB model to real files are killed with SIGKILL at every phase of the swap and
at spread-out moments while orbax writes. Afterwards the path always restores to
the old state or the new one, bit for bit, and the next save cleans up.

The saves run in processes forked from one launcher (checkpoint_faults_worker.py)
that has already imported jax, so each kill costs a save, not a Python start-up.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import select
import signal
import subprocess
import sys
import time
import typing as tp
import warnings
from collections.abc import Iterator

import jax.numpy as jnp
import numpy as np
import pytest
from checkpoint_faults_worker import ARRAYS, SHAPE, arrays_for

import nnx_graph as nnx
import nnx_optim

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        sys.platform == "win32" or not hasattr(os, "fork"), reason="needs fork and SIGKILL"
    ),
]

HERE = pathlib.Path(__file__).parent
RANDOM_KILLS = int(os.environ.get("NNX_CHECKPOINT_RANDOM_KILLS", "6"))
SAVE_SECONDS: dict[str, float] = {}  # duration of one clean save, per format


@dataclasses.dataclass
class Outcome:
    status: int | None = None
    phases: list[str] = dataclasses.field(default_factory=list)
    killed: bool = False
    done: bool = False
    error: str | None = None
    seconds: float = 0.0


class Launcher:
    def __init__(self, log: pathlib.Path) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
            "OPENBLAS_NUM_THREADS": "1",
            "JAX_PLATFORMS": "cpu",  # the children must not grab a GPU the test holds
        }
        self.log = log
        self.stderr = open(log, "wb")  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "checkpoint_faults_worker.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=env,
        )
        self.buffer = b""
        assert self.line(120) == "ready", self.log.read_text()[-3000:]

    def line(self, timeout: float) -> str | None:
        """The next output line, or None if none arrives within ``timeout``."""
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(f"launcher died:\n{self.log.read_text()[-3000:]}")
            self.buffer += chunk
        text, self.buffer = self.buffer.split(b"\n", 1)
        return text.decode()

    def save(
        self,
        fmt: str,
        path: pathlib.Path,
        version: int,
        *,
        mode: str = "exchange",
        pause_at: str = "none",
        kill_after: float | None = None,
    ) -> Outcome:
        """One save in a fresh child; killed when it pauses at ``pause_at``, or
        ``kill_after`` seconds after it starts saving."""
        assert self.process.stdin is not None
        self.process.stdin.write(f"save {fmt} {path} {version} {mode} {pause_at}\n".encode())
        self.process.stdin.flush()
        out = Outcome()
        pid = None
        started = None
        paused = False
        while True:
            wait = 120.0
            if kill_after is not None and started is not None and not out.killed:
                wait = max(0.0, started + kill_after - time.monotonic())
            text = self.line(wait)
            if text is None:
                if kill_after is not None and started is not None and not out.killed:
                    assert pid is not None
                    os.kill(pid, signal.SIGKILL)  # a zombie until reaped: no pid reuse
                    out.killed = True
                    continue
                raise AssertionError(f"save timed out:\n{self.log.read_text()[-3000:]}")
            word, _, rest = text.partition(" ")
            if word == "pid":
                pid = int(rest)
            elif word == "start":
                started = time.monotonic()
            elif word == "phase":
                out.phases.append(rest)
            elif word == "pause":
                paused = True
            elif word == "done":
                out.done = True
                out.seconds = time.monotonic() - (started or 0.0)
            elif word == "error":
                out.error = rest
            elif word == "exit":
                out.status = int(rest)
                return out
            if paused and pid is not None and not out.killed:
                os.kill(pid, signal.SIGKILL)
                out.killed = True

    def close(self) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(b"quit\n")
            self.process.stdin.close()
            self.process.wait(30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            assert self.process.stdout is not None
            self.process.stdout.close()
            self.stderr.close()


@pytest.fixture(scope="module")
def launcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launcher]:
    started = Launcher(tmp_path_factory.mktemp("launcher") / "stderr.txt")
    yield started
    started.close()


def _target() -> tp.Any:
    def make() -> tp.Any:
        values = {f"w{i}": nnx.Param(jnp.zeros(SHAPE, jnp.float32)) for i in range(ARRAYS)}
        return nnx.Dict({**values, "version": nnx.Param(jnp.asarray(0, jnp.int32))})

    return nnx.eval_shape(make)


def restored(fmt: str, path: pathlib.Path) -> tuple[int, list[str]]:
    """Restore ``path`` and check it is exactly one saved version; return it and the
    warnings the restore gave."""
    target = _target()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if fmt == "orbax":
            nnx_optim.restore_checkpoint(path, target)
        else:
            nnx_optim.load_safetensors(path, target)
    version = int(target["version"].value)
    for name, expected in arrays_for(version).items():
        value = np.asarray(target[name].value)
        assert value.dtype == expected.dtype and value.shape == expected.shape, name
        found, wanted = value.reshape(-1).view(np.uint8), expected.reshape(-1).view(np.uint8)
        same = np.array_equal(found, wanted)
        assert same, f"{name} is not version {version}'s"
    return version, [str(w.message) for w in caught]


def leftovers(path: pathlib.Path) -> list[str]:
    """What interrupted saves left beside ``path`` (``path.nnx-tmp-...`` and such)."""
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(path.name + "."))


def checked_save(launcher: Launcher, fmt: str, path: pathlib.Path, version: int) -> Outcome:
    out = launcher.save(fmt, path, version)
    assert out.status == 0 and out.done, out
    assert restored(fmt, path)[0] == version
    SAVE_SECONDS.setdefault(fmt, out.seconds)
    return out


# ----------------------------------------------------------------------------- orbax
EXPECTED_AFTER_PAUSE = {  # which state the path holds when killed at each phase
    ("exchange", "staged"): "old",
    ("exchange", "exchanged"): "new",
    ("exchange", "trashed"): "new",
    ("fallback", "staged"): "old",
    ("fallback", "moved-aside"): "new",  # nothing at the path: read beside it
    ("fallback", "swapped"): "new",
    ("fallback", "trashed"): "new",
}


def test_overwrite_killed_at_every_phase_of_the_swap(
    launcher: Launcher, tmp_path: pathlib.Path
) -> None:
    path = tmp_path / "ckpt"
    checked_save(launcher, "orbax", path, 0)
    old = 0
    for version, ((mode, phase), which) in enumerate(EXPECTED_AFTER_PAUSE.items(), start=1):
        out = launcher.save("orbax", path, version, mode=mode, pause_at=phase)
        assert out.killed and out.status == signal.SIGKILL, (mode, phase, out)
        assert out.phases[-1] == phase
        got, notes = restored("orbax", path)
        assert got == (version if which == "new" else old), (mode, phase, got)
        if (mode, phase) == ("fallback", "moved-aside"):
            assert not path.exists()  # the window two renames leave: explained
            assert any("there is no checkpoint at" in n and "interrupted" in n for n in notes)
            assert any("Restored the complete new checkpoint beside it" in n for n in notes)
        elif leftovers(path):
            assert any("ignored leftovers of an interrupted save" in n for n in notes), notes
        old = got
    # the next save finishes the job and removes every leftover
    assert leftovers(path)
    checked_save(launcher, "orbax", path, 100)
    assert leftovers(path) == []


def test_overwrite_killed_while_orbax_writes(launcher: Launcher, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "ckpt"
    duration = checked_save(launcher, "orbax", path, 0).seconds
    old = 0
    landed: list[str] = []
    rng = np.random.default_rng(0)
    for i in range(RANDOM_KILLS):
        # kill moments spread over the whole save, with jitter, for both swap modes
        delay = duration * (i + rng.uniform(0.1, 0.9)) / RANDOM_KILLS
        mode = "exchange" if i % 2 == 0 else "fallback"
        version = i + 1
        out = launcher.save("orbax", path, version, mode=mode, kill_after=delay)
        landed.append(out.phases[-1] if out.phases else "writing")
        got, _ = restored("orbax", path)
        assert got in (old, version), (i, delay, out, got)
        if out.done:
            assert got == version
        old = got
    assert "writing" in landed, landed  # some kills hit orbax's write itself
    checked_save(launcher, "orbax", path, 100)
    assert leftovers(path) == []


def test_first_save_killed(launcher: Launcher, tmp_path: pathlib.Path) -> None:
    # killed after the checkpoint is complete but before it is renamed into place
    path = tmp_path / "first"
    out = launcher.save("orbax", path, 7, pause_at="staged")
    assert out.killed and not path.exists()
    got, notes = restored("orbax", path)
    assert got == 7
    assert any("Restored the complete new checkpoint beside it" in n for n in notes), notes
    checked_save(launcher, "orbax", path, 8)  # moves it into place, then replaces it
    assert leftovers(path) == []

    # killed while writing: nothing complete exists, and restore says why
    if "orbax" not in SAVE_SECONDS:  # run alone: time one save first
        checked_save(launcher, "orbax", tmp_path / "timing", 1)
    duration = SAVE_SECONDS["orbax"]
    path = tmp_path / "second"
    out = launcher.save("orbax", path, 9, kill_after=duration * 0.3)
    assert out.killed and not path.exists()
    if leftovers(path):
        with pytest.raises(nnx_optim.CheckpointError) as info:
            restored("orbax", path)
        message = str(info.value)
        assert f"There is no checkpoint at {path}" in message
        assert "interrupted first save" in message and "half-written" in message
        assert "Fix: restore an earlier checkpoint, or save again" in message
        # the half-written folder itself is not a checkpoint either, and says so
        half = path.parent / leftovers(path)[0]
        with pytest.raises(nnx_optim.CheckpointError, match="half-written temporary folder"):
            restored("orbax", half)
    else:  # killed before orbax created its folder
        with pytest.raises(FileNotFoundError, match="no checkpoint directory"):
            restored("orbax", path)
    checked_save(launcher, "orbax", path, 10)
    assert leftovers(path) == []


# ----------------------------------------------------------------------------- safetensors
def test_safetensors_overwrite_killed(launcher: Launcher, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "model.safetensors"
    duration = checked_save(launcher, "safetensors", path, 0).seconds
    out = launcher.save("safetensors", path, 1, pause_at="staged")
    assert out.killed
    got, notes = restored("safetensors", path)
    assert got == 0
    assert any("ignored leftovers of an interrupted save_safetensors" in n for n in notes)
    old = 0
    for i in range(2):
        version = i + 2
        out = launcher.save("safetensors", path, version, kill_after=duration * (i + 0.5) / 2)
        got, _ = restored("safetensors", path)
        assert got in (old, version), (i, out, got)
        old = got
    checked_save(launcher, "safetensors", path, 100)
    assert leftovers(path) == []
