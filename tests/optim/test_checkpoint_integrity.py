"""Damaged checkpoints are caught, on real files: flipped bytes (checksums), empty,
half-written and truncated folders and files (CheckpointError saying what, where and
what to do), checkpoints without checksums still load, and key collisions are
refused instead of silently merging two entries."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import typing as tp
import warnings
import zlib

import jax.numpy as jnp
import numpy as np
import pytest

import nnx_graph as nnx
import nnx_optim
from nnx_optim import CheckpointError


class Model(nnx.Module):
    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.w = nnx.Param(jnp.asarray(rng.standard_normal((128, 96), dtype=np.float32)))
        self.b = nnx.Param(jnp.asarray(rng.standard_normal((7,), dtype=np.float32)))


def values(model: Model) -> dict[str, bytes]:
    return {"w": np.asarray(model.w.value).tobytes(), "b": np.asarray(model.b.value).tobytes()}


def flip_byte(file: pathlib.Path, offset: int) -> None:
    with open(file, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0x01]))


def truncate(file: pathlib.Path, size: int) -> None:
    with open(file, "r+b") as handle:
        handle.truncate(size)


def largest_data_file(directory: pathlib.Path) -> pathlib.Path:
    files = [p for p in directory.rglob("*") if p.is_file() and p.parent.name == "d"]
    return max(files, key=lambda p: p.stat().st_size)


@pytest.fixture
def saved(tmp_path: pathlib.Path) -> tuple[pathlib.Path, Model]:
    model = Model(0)
    nnx_optim.save_checkpoint(tmp_path / "ckpt", model)
    return tmp_path / "ckpt", model


def restore_fails(path: pathlib.Path, **kwargs: tp.Any) -> str:
    """Restore into a fresh model; it must raise CheckpointError and change nothing."""
    target = Model(1)
    before = values(target)
    with pytest.raises(CheckpointError) as info:
        nnx_optim.restore_checkpoint(path, target, **kwargs)
    assert values(target) == before
    assert isinstance(info.value, ValueError)
    return str(info.value)


# ----------------------------------------------------------------------------- checksums
def test_orbax_records_a_crc32_per_array(saved: tuple[pathlib.Path, Model]) -> None:
    path, model = saved
    step = json.loads((path / "_CHECKPOINT_METADATA").read_text())
    record = step["custom_metadata"]["nnx_checksums"]
    assert record["algorithm"] == "crc32"
    for name, value in values(model).items():
        assert record["arrays"][name] == f"{zlib.crc32(value):08x}", name


def test_orbax_flipped_byte_names_the_array(saved: tuple[pathlib.Path, Model]) -> None:
    path, model = saved
    data = largest_data_file(path)
    flip_byte(data, data.stat().st_size // 2)
    message = restore_fails(path)
    # a flipped byte in compressed data either decodes to other values (caught by
    # the checksum) or fails to decode; either way the array is named
    assert "target.w (stored as 'w')" in message
    assert "target.b" not in message
    assert message.startswith(f"The checkpoint at {path} is damaged") or message.startswith(
        "Could not read 1 of the 2 arrays"
    )
    assert "Fix: restore an earlier checkpoint" in message
    if "crc32 recorded at save" in message:
        # the opt-out loads the damaged values anyway
        target = nnx_optim.restore_checkpoint(path, Model(1), verify=False)
        assert values(target)["b"] == values(model)["b"]
        assert values(target)["w"] != values(model)["w"]


def test_safetensors_flipped_byte_names_the_tensor(tmp_path: pathlib.Path) -> None:
    model = Model(0)
    file = tmp_path / "model.safetensors"
    nnx_optim.save_safetensors(file, model)
    raw = file.read_bytes()
    length = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + length])
    record = json.loads(header["__metadata__"]["nnx_checksums"])
    assert record["arrays"]["w"] == f"{zlib.crc32(values(model)['w']):08x}"
    begin, end = header["w"]["data_offsets"]
    flip_byte(file, 8 + length + (begin + end) // 2)
    target = Model(1)
    before = values(target)
    with pytest.raises(CheckpointError) as info:
        nnx_optim.load_safetensors(file, target)
    message = str(info.value)
    assert f"The safetensors file {file} is damaged: 1 array differs" in message
    assert "'w' (model.w): crc32 recorded at save" in message
    assert "'b'" not in message
    assert info.value.paths == ("'w' (model.w)",)
    assert values(target) == before
    loaded = nnx_optim.load_safetensors(file, Model(1), verify=False)
    assert values(loaded)["b"] == values(model)["b"] and values(loaded)["w"] != values(model)["w"]


def test_checkpoints_without_checksums_still_load(tmp_path: pathlib.Path) -> None:
    import orbax.checkpoint as ocp
    import safetensors.numpy

    model = Model(0)
    # plain orbax, as written by older nnx or by hand
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp_path / "plain", nnx.to_pure_dict(nnx.state(model)))
    checkpointer.wait_until_finished()
    checkpointer.close()
    assert values(nnx_optim.restore_checkpoint(tmp_path / "plain", Model(1))) == values(model)
    # a safetensors file from another tool
    tensors = {k: np.asarray(getattr(model, k).value) for k in ("w", "b")}
    safetensors.numpy.save_file(tensors, str(tmp_path / "plain.safetensors"))
    assert values(nnx_optim.load_safetensors(tmp_path / "plain.safetensors", Model(1))) == values(
        model
    )


# ----------------------------------------------------------------------------- damaged folders
def test_empty_folder(tmp_path: pathlib.Path) -> None:
    (tmp_path / "empty").mkdir()
    message = restore_fails(tmp_path / "empty")
    assert f"The checkpoint folder {tmp_path / 'empty'} is empty" in message
    assert "Fix: pass the folder given to save_checkpoint" in message


def test_missing_or_truncated_metadata(saved: tuple[pathlib.Path, Model]) -> None:
    path, _ = saved
    copy = path.with_name("copy")
    shutil.copytree(path, copy)
    truncate(copy / "_METADATA", (copy / "_METADATA").stat().st_size // 2)
    message = restore_fails(copy)
    assert f"The checkpoint's _METADATA {copy / '_METADATA'} is truncated or damaged" in message
    assert "not valid JSON" in message and "Fix: restore an earlier checkpoint" in message

    (copy / "_METADATA").unlink()
    message = restore_fails(copy)
    assert f"The checkpoint folder {copy} has no _METADATA" in message
    assert "it contains: _CHECKPOINT_METADATA" in message  # what is there instead


def test_missing_or_truncated_manifest(saved: tuple[pathlib.Path, Model]) -> None:
    path, model = saved
    manifest = path / "manifest.ocdbt"
    original = manifest.read_bytes()
    truncate(manifest, len(original) // 2)
    message = restore_fails(path)
    assert f"The checkpoint's manifest {manifest} is truncated or damaged" in message
    assert "Fix: restore an earlier checkpoint" in message
    manifest.unlink()
    message = restore_fails(path)
    assert f"The checkpoint's manifest {manifest} is missing" in message
    manifest.write_bytes(original)  # repaired: loads again, verified
    assert values(nnx_optim.restore_checkpoint(path, Model(1))) == values(model)


def test_truncated_or_missing_array_data(saved: tuple[pathlib.Path, Model]) -> None:
    path, _ = saved
    data = largest_data_file(path)
    truncate(data, data.stat().st_size // 2)
    message = restore_fails(path)
    assert f"Could not read 1 of the 2 arrays of the checkpoint at {path}" in message
    assert "target.w (stored as 'w'): " in message and "target.b" not in message
    data.unlink()
    message = restore_fails(path)
    assert "target.w (stored as 'w'): " in message


def test_damaged_step_metadata(saved: tuple[pathlib.Path, Model]) -> None:
    path, model = saved
    step = path / "_CHECKPOINT_METADATA"
    truncate(step, step.stat().st_size // 2)
    message = restore_fails(path)
    assert f"The checkpoint's _CHECKPOINT_METADATA {step} is truncated or damaged" in message
    # the arrays themselves are fine: without verification they load
    assert values(nnx_optim.restore_checkpoint(path, Model(1), verify=False)) == values(model)
    step.unlink()
    with pytest.warns(UserWarning, match="has no _CHECKPOINT_METADATA, so its contents cannot"):
        assert values(nnx_optim.restore_checkpoint(path, Model(1))) == values(model)


def test_half_written_folders_are_named(saved: tuple[pathlib.Path, Model]) -> None:
    path, model = saved
    # what orbax leaves when killed mid-write (same files, not renamed into place)
    half = path.with_name("ckpt.orbax-checkpoint-tmp-1234")
    shutil.copytree(path, half)
    (half / "_METADATA").unlink()
    message = restore_fails(half)
    assert f"{half} is a half-written temporary folder left by an interrupted save" in message
    assert "Fix: restore the checkpoint it was meant to become or replace" in message
    # beside an intact checkpoint: restored, and reported
    with pytest.warns(UserWarning, match="ignored leftovers of an interrupted save beside") as info:
        assert values(nnx_optim.restore_checkpoint(path, Model(1))) == values(model)
    assert "ckpt.orbax-checkpoint-tmp-1234 (half-written, incomplete)" in str(info[0].message)
    # the next save removes it
    with pytest.warns(UserWarning, match="removed leftovers of an interrupted save"):
        nnx_optim.save_checkpoint(path, Model(2), overwrite=True)
    assert sorted(p.name for p in path.parent.iterdir()) == ["ckpt"]
    # alone: no checkpoint, and restore says what it found
    shutil.copytree(path, half)
    shutil.rmtree(path)
    message = restore_fails(path)
    assert f"There is no checkpoint at {path}: only what an interrupted first save left" in message


def test_damaged_safetensors_files(tmp_path: pathlib.Path) -> None:
    file = tmp_path / "model.safetensors"
    nnx_optim.save_safetensors(file, Model(0))
    size = file.stat().st_size
    cases = {
        "tail": (size - 100, "is truncated: the data of 1 tensor ('w') lies beyond the end"),
        "header": (200, "is truncated or not a safetensors file: its header should be"),
        "length": (5, "is truncated: 5 bytes, shorter than the 8-byte header length"),
    }
    original = file.read_bytes()
    for name, (cut, expected) in cases.items():
        file.write_bytes(original[:cut])
        target = Model(1)
        with pytest.raises(CheckpointError, match="Fix: load an earlier copy") as info:
            nnx_optim.load_safetensors(file, target)
        assert f"The safetensors file {file} {expected}" in str(info.value), name
        assert values(target) == values(Model(1))
    length = int.from_bytes(original[:8], "little")
    file.write_bytes(original[:8] + b"{" * length + original[8 + length :])
    with pytest.raises(CheckpointError, match=r"header of the safetensors file .* is damaged"):
        nnx_optim.load_safetensors(file, Model(1))


# ----------------------------------------------------------------------------- key collisions
class Colliding(nnx.Module):
    def __init__(self) -> None:
        self.table = nnx.Dict({0: nnx.Param(jnp.ones(2)), "0": nnx.Param(jnp.zeros(2))})


def test_int_and_str_keys_are_refused_not_merged(tmp_path: pathlib.Path) -> None:
    with pytest.raises(CheckpointError) as info:
        nnx_optim.save_checkpoint(tmp_path / "ckpt", Colliding())
    message = str(info.value)
    assert "1 key collision (one entry would silently replace the other on disk)" in message
    assert "target.table[0] and target.table['0'] would both be stored as 'table.0'" in message
    assert not (tmp_path / "ckpt").exists() and not list(tmp_path.iterdir())
    with pytest.raises(CheckpointError) as info:
        nnx_optim.save_safetensors(tmp_path / "model.safetensors", Colliding())
    assert "model.table[0] and model.table['0'] would both be stored as 'table.0'" in str(
        info.value
    )
    assert not list(tmp_path.iterdir())


def test_dotted_keys_that_spell_another_path_are_refused(tmp_path: pathlib.Path) -> None:
    tricky = nnx.Dict(
        {"a.b": nnx.Param(jnp.ones(2)), "a": nnx.Dict({"b": nnx.Param(jnp.zeros(2))})}
    )
    with pytest.raises(CheckpointError, match=r"would both be stored as 'a\.b'") as info:
        nnx_optim.save_checkpoint(tmp_path / "ckpt", tricky)
    assert "target['a.b'] and target.a.b" in str(info.value) or (
        "target.a.b and target['a.b']" in str(info.value)
    )
    # a dotted key alone is fine in orbax, and round-trips
    alone = nnx.Dict({"a.b": nnx.Param(jnp.arange(2.0))})
    nnx_optim.save_checkpoint(tmp_path / "alone", alone)
    back = nnx_optim.restore_checkpoint(
        tmp_path / "alone", nnx.Dict({"a.b": nnx.Param(jnp.zeros(2))})
    )
    assert back["a.b"].value.tolist() == [0.0, 1.0]


def test_distinct_int_keys_round_trip(tmp_path: pathlib.Path) -> None:
    table = nnx.Dict({0: nnx.Param(jnp.ones(2)), 1: nnx.Param(jnp.full(2, 2.0))})
    nnx_optim.save_checkpoint(tmp_path / "ckpt", table)
    nnx_optim.save_safetensors(tmp_path / "t.safetensors", table)

    def fresh() -> tp.Any:
        return nnx.Dict({0: nnx.Param(jnp.zeros(2)), 1: nnx.Param(jnp.zeros(2))})

    for back in (
        nnx_optim.restore_checkpoint(tmp_path / "ckpt", fresh()),
        nnx_optim.load_safetensors(tmp_path / "t.safetensors", fresh()),
    ):
        assert back[0].value.tolist() == [1.0, 1.0] and back[1].value.tolist() == [2.0, 2.0]
    with pytest.raises(CheckpointError, match="cannot fill target"):
        nnx_optim.restore_checkpoint(tmp_path / "ckpt", Colliding())


def test_no_warnings_on_a_clean_round_trip(tmp_path: pathlib.Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nnx_optim.save_checkpoint(tmp_path / "ckpt", Model(0))
        nnx_optim.save_checkpoint(tmp_path / "ckpt", Model(3), overwrite=True)
        assert values(nnx_optim.restore_checkpoint(tmp_path / "ckpt", Model(1))) == values(Model(3))
    assert os.listdir(tmp_path) == ["ckpt"]


# ----------------------------------------------------------------------------- recovery
def dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_interrupted_first_save_is_read_but_not_resurrected(tmp_path: pathlib.Path) -> None:
    # what a save killed after writing, before renaming into place, leaves
    model = Model(0)
    nnx_optim.save_checkpoint(tmp_path / "done", model)
    path = tmp_path / "ckpt"
    os.rename(tmp_path / "done", tmp_path / f"ckpt.nnx-tmp-{dead_pid()}-0a0b0c0d")
    with pytest.warns(UserWarning, match="Restored the complete new checkpoint beside it"):
        assert values(nnx_optim.restore_checkpoint(path, Model(1))) == values(model)
    assert not path.exists()  # restores never change the disk
    # a save (without overwrite) discards it: that first save never returned
    with pytest.warns(UserWarning, match="removed leftovers of an interrupted first save"):
        nnx_optim.save_checkpoint(path, Model(5))
    assert values(nnx_optim.restore_checkpoint(path, Model(1))) == values(Model(5))
    assert sorted(os.listdir(tmp_path)) == ["ckpt"]


def test_checkpoint_moved_aside_is_put_back(tmp_path: pathlib.Path) -> None:
    # what the two-rename swap leaves when killed between its renames, if the new
    # checkpoint was lost too: only the previous one, moved aside
    model = Model(0)
    path = tmp_path / "ckpt"
    nnx_optim.save_checkpoint(path, model)
    os.rename(path, tmp_path / f"ckpt.nnx-old-{dead_pid()}-0a0b0c0d")
    with pytest.warns(UserWarning, match="Restored the complete previous checkpoint beside"):
        assert values(nnx_optim.restore_checkpoint(path, Model(1))) == values(model)
    # a save puts it back first, so the path is not silently overwritten
    with (
        pytest.warns(UserWarning, match="finished an interrupted save: moved the complete"),
        pytest.raises(FileExistsError, match="overwrite=True"),
    ):
        nnx_optim.save_checkpoint(path, Model(5))
    assert values(nnx_optim.restore_checkpoint(path, Model(1))) == values(model)
    assert sorted(os.listdir(tmp_path)) == ["ckpt"]


def test_numpy_float64_and_python_scalars_verify_and_round_trip(tmp_path: pathlib.Path) -> None:
    # without jax's x64 mode these used to come back as float32 (0.1 != 0.1), which
    # the checksums would now report as damage
    class Host(nnx.Module):
        def __init__(self, value: float) -> None:
            self.table = nnx.Variable(np.random.default_rng(0).standard_normal(5) * value)
            self.scale = nnx.Variable(value)
            self.count = nnx.Variable(7 if value else 0)

    nnx_optim.save_checkpoint(tmp_path / "ckpt", Host(0.1))
    back = nnx_optim.restore_checkpoint(tmp_path / "ckpt", Host(0.0))
    assert back.table.value.dtype == np.float64 and isinstance(back.table.value, np.ndarray)
    assert back.table.value.tobytes() == Host(0.1).table.value.tobytes()
    assert back.scale.value == 0.1 and type(back.scale.value) is float
    assert back.count.value == 7 and type(back.count.value) is int
