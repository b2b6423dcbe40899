"""Checking what is on disk: per-array checksums, and a diagnosis of damaged orbax
folders and safetensors files that says what is missing, where, and what to do.

Checksums are CRC-32 of each array's bytes (C order, as stored), written at save
time and compared after the arrays are read back. CRC-32 detects every single-bit
flip and every burst of up to 32 flipped bits; it is the cheapest of the stdlib
hashes here (zlib releases the GIL, so several arrays are hashed in parallel).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import typing as tp
import zlib
from collections.abc import Mapping

import numpy as np

from nnx_optim._checkpoint_tree import CheckpointError, bullet_list

ALGORITHM = "crc32"
# key of the checksums in orbax's custom metadata / the safetensors __metadata__
METADATA_KEY = "nnx_checksums"
K = tp.TypeVar("K")

_PARALLEL_BYTES = 8 << 20  # below this, threads cost more than they save


# ----------------------------------------------------------------------------- checksums
def checksum(array: tp.Any) -> str | None:
    """CRC-32 of the array's bytes as 8 hex digits; ``None`` for an array this
    process cannot read whole (sharded over several hosts)."""
    if not getattr(array, "is_fully_addressable", True):
        return None
    host = np.ascontiguousarray(np.asarray(array))
    return f"{zlib.crc32(host.reshape(-1).view(np.uint8).data):08x}"


def checksums(arrays: Mapping[K, tp.Any]) -> dict[K, str | None]:
    """:func:`checksum` of every array, in parallel threads for large totals."""
    keys = list(arrays)
    total = sum(int(getattr(arrays[k], "nbytes", 0)) for k in keys)
    if len(keys) < 2 or total < _PARALLEL_BYTES:
        return {k: checksum(arrays[k]) for k in keys}
    workers = min(len(keys), os.cpu_count() or 1, 8)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return dict(zip(keys, pool.map(lambda k: checksum(arrays[k]), keys)))


def checksum_record(sums: Mapping[str, str | None]) -> dict[str, tp.Any]:
    """The JSON-able record stored with a checkpoint."""
    return {"algorithm": ALGORITHM, "arrays": {k: v for k, v in sums.items() if v is not None}}


def parse_record(record: tp.Any, where: str) -> dict[str, str]:
    """The per-array checksums of a stored record (``{}`` if there is none)."""
    if record is None:
        return {}
    if isinstance(record, str):
        try:
            record = json.loads(record)
        except ValueError as error:
            raise CheckpointError(
                f"The checksums recorded in {where} are damaged (not valid JSON: {error}).\n"
                "Fix: restore an earlier checkpoint, or pass verify=False to load it "
                "without checking its contents.",
                directory=where,
            ) from error
    if not isinstance(record, Mapping) or not isinstance(record.get("arrays"), Mapping):
        raise CheckpointError(
            f"The checksums recorded in {where} are damaged (expected a mapping with "
            f"'algorithm' and 'arrays', found {type(record).__name__}).\nFix: restore an "
            "earlier checkpoint, or pass verify=False to load it without checking its "
            "contents.",
            directory=where,
        )
    algorithm = record.get("algorithm")
    if algorithm != ALGORITHM:
        raise CheckpointError(
            f"{where} records checksums made with {algorithm!r}, which this version of "
            f"nnx cannot check (it uses {ALGORITHM!r}).\nFix: upgrade nnx, or pass "
            "verify=False.",
            directory=where,
        )
    return {str(k): str(v) for k, v in record["arrays"].items()}


def damaged(
    arrays: Mapping[str, tp.Any], expected: Mapping[str, str], render: tp.Callable[[str], str]
) -> list[str]:
    """One line per array whose checksum differs from the recorded one."""
    wanted = {k: arrays[k] for k in expected if k in arrays}
    found = checksums(wanted)
    return [
        f"{render(k)}: {ALGORITHM} recorded at save {expected[k]}, found {found[k]}"
        for k in wanted
        if found[k] is not None and found[k] != expected[k]
    ]


def raise_damaged(where: str, problems: list[str], source: str) -> tp.NoReturn:
    raise CheckpointError(
        f"{where} is damaged: {len(problems)} "
        f"{'arrays differ' if len(problems) != 1 else 'array differs'} from the checksums "
        "recorded when it was saved:"
        + bullet_list(problems)
        + f"\nNothing was modified. The {source} changed after it was written (disk or "
        "copy error, or an edit). Fix: restore an earlier checkpoint; pass verify=False "
        "only to load the damaged values anyway.",
        directory=where,
        paths=[p.split(f": {ALGORITHM} ")[0] for p in problems],
    )


# ----------------------------------------------------------------------------- orbax folders
_WHAT_TO_DO = (
    "Fix: restore an earlier checkpoint (or save this one again); this folder cannot "
    "be restored as it is."
)


def _listing(directory: str) -> str:
    names = sorted(os.listdir(directory))
    shown = ", ".join(names[:12]) + (f", ... ({len(names)} entries)" if len(names) > 12 else "")
    return f"it contains: {shown}"


def _read_json(file: str, what: str, directory: str) -> tp.Any:
    try:
        with open(file, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise CheckpointError(
            f"Cannot read {what} {file}: {error}.\n{_WHAT_TO_DO}", directory=directory
        ) from error
    try:
        return json.loads(data)
    except ValueError as error:
        raise CheckpointError(
            f"{what} {file} is truncated or damaged ({len(data)} bytes, not valid JSON: "
            f"{error}).\n{_WHAT_TO_DO}",
            directory=directory,
        ) from error


def diagnose_orbax(directory: str, verify: bool) -> tuple[dict[str, str] | None, list[str]]:
    """Check that ``directory`` holds a complete orbax checkpoint before reading it.

    Returns the recorded checksums (``None`` when the checkpoint has none, e.g.
    written by plain orbax or an older nnx, or when ``verify`` is false) and notes
    for the user. Raises :class:`CheckpointError` for an empty folder, or a
    missing or truncated ``_METADATA`` or ``manifest.ocdbt``.
    """
    if not os.listdir(directory):
        raise CheckpointError(
            f"The checkpoint folder {directory} is empty: it has none of orbax's files "
            "(_METADATA, _CHECKPOINT_METADATA, manifest.ocdbt, array data). It is not a "
            "checkpoint, or the save into it stopped before writing anything.\n"
            "Fix: pass the folder given to save_checkpoint, or restore an earlier "
            "checkpoint.",
            directory=directory,
        )
    metadata_file = os.path.join(directory, "_METADATA")
    if not os.path.isfile(metadata_file):
        raise CheckpointError(
            f"The checkpoint folder {directory} has no _METADATA (orbax's list of the "
            f"saved arrays, written last); {_listing(directory)}. A save into it did not "
            f"finish, or the file was deleted.\n{_WHAT_TO_DO}",
            directory=directory,
        )
    metadata = _read_json(metadata_file, "The checkpoint's _METADATA", directory)
    tree = metadata.get("tree_metadata") if isinstance(metadata, dict) else None
    if not isinstance(tree, dict):
        raise CheckpointError(
            f"The checkpoint's _METADATA {metadata_file} is damaged: it has no "
            f"'tree_metadata' mapping (found {type(tree).__name__}).\n{_WHAT_TO_DO}",
            directory=directory,
        )
    # Older orbax (0.11) does not record `use_ocdbt`; its OCDBT layout shows in the
    # per-process folders instead.
    ocdbt = metadata.get("use_ocdbt") or any(
        name.startswith("ocdbt.process_") for name in os.listdir(directory)
    )
    if ocdbt:
        manifest = os.path.join(directory, "manifest.ocdbt")
        if not os.path.isfile(manifest) or os.path.getsize(manifest) == 0:
            state = "is empty" if os.path.isfile(manifest) else "is missing"
            raise CheckpointError(
                f"The checkpoint's manifest {manifest} {state}: it is the index of the "
                f"array data, without it no array can be found; {_listing(directory)}."
                f"\n{_WHAT_TO_DO}",
                directory=directory,
            )
    notes: list[str] = []
    if not verify:
        return None, notes
    step_file = os.path.join(directory, "_CHECKPOINT_METADATA")
    if not os.path.isfile(step_file):
        notes.append(
            f"{directory} has no _CHECKPOINT_METADATA, so its contents cannot be checked "
            "against checksums (restored unverified)"
        )
        return None, notes
    step = _read_json(step_file, "The checkpoint's _CHECKPOINT_METADATA", directory)
    custom = step.get("custom_metadata") if isinstance(step, dict) else None
    record = custom.get(METADATA_KEY) if isinstance(custom, dict) else None
    if record is None:
        return None, notes  # plain orbax or an older nnx: nothing to verify
    return parse_record(record, step_file), notes


def explain_read_failure(directory: str, error: BaseException) -> str | None:
    """A sentence about a damaged manifest, if the error from reading says so."""
    text = f"{error} {error.__cause__ or ''}"
    if "Error decoding manifest" in text:
        return (
            f"The checkpoint's manifest {os.path.join(directory, 'manifest.ocdbt')} is "
            "truncated or damaged (it is the index of the array data): " + first_line(error)
        )
    return None


def first_line(error: BaseException) -> str:
    """The informative line of an error from orbax/tensorstore, shortened."""
    cause = error.__cause__
    source = cause if cause is not None and "TensorStore details" in str(error) else error
    lines = str(source).strip().splitlines()
    line = lines[0] if lines else type(source).__name__
    return line.split(". See full TensorStore")[0][:300]


# ----------------------------------------------------------------------------- safetensors
def check_safetensors_file(file: str) -> dict[str, str]:
    """Validate a safetensors file's header and sizes before loading it, and return
    its ``__metadata__``. Raises :class:`CheckpointError` naming what is wrong."""
    fix = "Fix: load an earlier copy of the file (or save it again)."
    size = os.path.getsize(file)
    with open(file, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise CheckpointError(
                f"The safetensors file {file} is truncated: {size} bytes, shorter than the "
                f"8-byte header length that starts every safetensors file.\n{fix}",
                directory=file,
            )
        length = int.from_bytes(prefix, "little")
        if 8 + length > size:
            raise CheckpointError(
                f"The safetensors file {file} is truncated or not a safetensors file: its "
                f"header should be {length} bytes but the file has {size - 8} after the "
                f"length.\n{fix}",
                directory=file,
            )
        raw_header = handle.read(length)
    try:
        header = json.loads(raw_header)
        if not isinstance(header, dict):
            raise ValueError(f"expected a JSON object, found {type(header).__name__}")
    except ValueError as error:
        raise CheckpointError(
            f"The header of the safetensors file {file} is damaged (not a valid JSON "
            f"object: {error}).\n{fix}",
            directory=file,
        ) from error
    metadata = header.pop("__metadata__", None) or {}
    data_size = size - 8 - length
    beyond = []
    for name, info in header.items():
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2):
            raise CheckpointError(
                f"The header of the safetensors file {file} is damaged: tensor {name!r} "
                f"has no valid 'data_offsets' (found {offsets!r}).\n{fix}",
                directory=file,
            )
        if int(offsets[1]) > data_size:
            beyond.append(name)
    if beyond:
        shown = ", ".join(repr(n) for n in sorted(beyond)[:20])
        raise CheckpointError(
            f"The safetensors file {file} is truncated: the data of {len(beyond)} "
            f"tensor{'s' if len(beyond) != 1 else ''} ({shown}) lies beyond the end of the "
            f"file ({data_size} bytes of data).\n{fix}",
            directory=file,
            paths=sorted(beyond),
        )
    return {str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, dict) else {}
