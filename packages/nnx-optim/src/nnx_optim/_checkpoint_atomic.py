"""Crash-safe replacement of checkpoints: write beside, swap in, then delete.

A checkpoint ``P`` is always written to a sibling ``P.nnx-tmp-<pid>-<token>``
first (orbax itself writes that through its own ``*.orbax-checkpoint-tmp``
folder and renames it when complete). Then it takes ``P``'s place:

* ``P`` absent: ``rename(staging, P)``.
* ``P`` present, Linux: ``renameat2(RENAME_EXCHANGE)`` swaps the two folders in
  one atomic step; the old one, now at the staging name, is renamed to
  ``P.nnx-trash-...`` and deleted.
* ``P`` present, elsewhere: ``rename(P, P.nnx-old-...)``, ``rename(staging, P)``,
  then the old one is trashed and deleted.

Everything deleted is first renamed to a ``.nnx-trash-`` name, so these
invariants hold at every instant, whatever kills the process:

* ``P``, ``P.nnx-tmp-X`` and ``P.nnx-old-X`` are complete checkpoints;
* ``*.orbax-checkpoint-tmp*`` and ``P.nnx-trash-X`` are incomplete;
* if ``P`` is absent after a crash, a complete ``P.nnx-tmp-X`` (the new state) or
  ``P.nnx-old-X`` (the old state) exists beside it, unless this was the first save.

:func:`recover` reads these names: the next save finishes an interrupted swap and
deletes the leftovers; a restore reads from the complete sibling and says so.
Safetensors files are written to ``F.nnx-tmp-X`` and ``os.replace``\\ d onto ``F``.
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import os
import re
import secrets
import shutil
import sys
import typing as tp
import warnings

TMP = ".nnx-tmp-"
OLD = ".nnx-old-"
TRASH = ".nnx-trash-"
ORBAX_TMP = ".orbax-checkpoint-tmp"

# Test hooks: called with the name of each phase of a save ("cleaned",
# "staged", "exchanged", "moved-aside", "swapped", "trashed"); and a switch to use the
# two-rename swap even where renameat2 exists.
phase_hook: tp.Callable[[str], None] | None = None
use_exchange = True

_in_progress: set[str] = set()  # staging paths being written by this process


def warn(notes: list[str], stacklevel: int = 3) -> None:
    """Tell the user what was found on disk (``stacklevel`` points at their call)."""
    for note in notes:
        warnings.warn(f"nnx checkpoint: {note}", UserWarning, stacklevel=stacklevel)


def phase(name: str) -> None:
    if phase_hook is not None:
        phase_hook(name)


def new_suffix() -> str:
    return f"{os.getpid()}-{secrets.token_hex(4)}"


def staging_path(final: str) -> str:
    path = f"{final}{TMP}{new_suffix()}"
    _in_progress.add(path)
    return path


def done_staging(path: str) -> None:
    _in_progress.discard(path)


# ----------------------------------------------------------------------------- leftovers
@dataclasses.dataclass(frozen=True)
class Leftover:
    path: str
    kind: str  # "new" | "old" (complete), "partial" | "trash" (incomplete)
    pid: int | None

    @property
    def complete(self) -> bool:
        return self.kind in ("new", "old")

    def describe(self) -> str:
        what = {
            "new": "complete new checkpoint, not yet swapped in",
            "old": "complete previous checkpoint, moved aside during the swap",
            "partial": "half-written, incomplete",
            "trash": "being deleted, incomplete",
        }[self.kind]
        return f"{os.path.basename(self.path)} ({what})"


def _alive(pid: int | None, path: str) -> bool:
    """Whether the process that made a leftover may still be writing it."""
    if pid is None:
        return False
    if pid == os.getpid():
        return any(path.startswith(p) for p in _in_progress)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_leftovers(final: str) -> list[Leftover]:
    """The siblings of ``final`` left by saves that did not finish (or are still
    running in another live process, which are skipped)."""
    parent, name = os.path.split(final)
    pattern = re.compile(
        re.escape(name)
        + r"(?:\.nnx-(?P<kind>tmp|old|trash)-(?P<pid>\d+)-[0-9a-f]+)?"
        + r"(?P<orbax>\.orbax-checkpoint-tmp.*)?$"
    )
    try:
        names = os.listdir(parent or ".")
    except FileNotFoundError:
        return []
    out = []
    for entry in sorted(names):
        match = pattern.fullmatch(entry)
        if match is None or (match["kind"] is None and match["orbax"] is None):
            continue
        path = os.path.join(parent, entry)
        pid = int(match["pid"]) if match["pid"] else None
        if _alive(pid, path):
            continue
        if match["orbax"] is not None:
            kind = "partial"
        else:
            kind = {"tmp": "new", "old": "old", "trash": "trash"}[match["kind"]]
        out.append(Leftover(path, kind, pid))
    return out


def trash(path: str, phase_name: str = "cleaned") -> None:
    """Delete a file or folder, renaming it to a ``.nnx-trash-`` name first so
    that a crash halfway never leaves a partial folder under a complete name."""
    if not os.path.lexists(path):
        return
    parent, name = os.path.split(path)
    name = re.sub(r"\.nnx-(tmp|old|trash)-\d+-[0-9a-f]+.*$", "", name).split(ORBAX_TMP)[0]
    target = os.path.join(parent, f"{name}{TRASH}{new_suffix()}")
    os.rename(path, target)
    phase(phase_name)
    if os.path.isdir(target) and not os.path.islink(target):
        shutil.rmtree(target, ignore_errors=True)
    else:
        os.remove(target)


@dataclasses.dataclass
class Recovery:
    source: str | None  # where the checkpoint is (``final``, a sibling, or none)
    notes: list[str]
    incomplete: list[Leftover]


def recover(final: str, *, repair: bool) -> Recovery:
    """Make sense of ``final`` and its leftovers after a possible crash.

    With ``repair`` (before a save), an interrupted swap is finished (a complete
    sibling is moved to ``final``) and the leftovers are deleted. Without it
    (before a restore), nothing on disk changes: the source to read is returned
    with notes explaining what was found.
    """
    leftovers = find_leftovers(final)
    notes: list[str] = []
    source = final if os.path.exists(final) else None
    rest = list(leftovers)
    if source is None:
        # newest complete state first: a finished new checkpoint, else the old one
        ranked = sorted(
            (item for item in leftovers if item.complete),
            key=lambda item: (item.kind == "new", os.path.getmtime(item.path)),
            reverse=True,
        )
        # Before a save, a complete checkpoint from an interrupted *first* save (no
        # previous one moved aside) is discarded: that save never returned, and a
        # new one is about to be written. A restore still reads it.
        moved_aside = any(item.kind == "old" for item in leftovers)
        if ranked and (moved_aside or not repair):
            pick = ranked[0]
            rest.remove(pick)
            which = "new" if pick.kind == "new" else "previous"
            if repair:
                os.rename(pick.path, final)
                fsync_directory(os.path.dirname(final))
                source = final
                notes.append(
                    f"finished an interrupted save: moved the complete {which} checkpoint "
                    f"{os.path.basename(pick.path)} to {final}"
                )
            else:
                source = pick.path
                notes.append(
                    f"there is no checkpoint at {final}: a save_checkpoint was interrupted "
                    f"while swapping it in. Restored the complete {which} checkpoint beside "
                    f"it, {os.path.basename(pick.path)} (the next save_checkpoint to this "
                    "path moves it into place; or rename it yourself)"
                )
    if rest:
        listed = ", ".join(item.describe() for item in rest)
        if repair and source is not None:
            for item in rest:
                trash(item.path)
            notes.append(f"removed leftovers of an interrupted save beside {final}: {listed}")
        elif repair:
            for item in rest:
                trash(item.path)
            notes.append(f"removed leftovers of an interrupted first save to {final}: {listed}")
        elif source is not None:
            notes.append(
                f"ignored leftovers of an interrupted save beside {final}: {listed} (the "
                "next save_checkpoint to this path deletes them; or delete them yourself)"
            )
    return Recovery(source, notes, [item for item in rest if not item.complete])


# ----------------------------------------------------------------------------- swapping
def _renameat2_exchange(a: str, b: str) -> bool:
    """Atomically exchange two paths (Linux >= 3.15); False where unsupported."""
    if sys.platform != "linux":
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.renameat2
    except (OSError, AttributeError):
        return False
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
    function.argtypes += [ctypes.c_uint]
    function.restype = ctypes.c_int
    at_fdcwd, rename_exchange = -100, 2
    if function(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), a, None, b)


def fsync_directory(directory: str) -> None:
    """Make renames in ``directory`` durable (no-op where directories can't be opened)."""
    try:
        fd = os.open(directory or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def swap_in(staging: str, final: str) -> None:
    """Put the complete checkpoint ``staging`` at ``final``, replacing what is there,
    such that a complete checkpoint is at or beside ``final`` at every instant."""
    parent = os.path.dirname(final)
    if not os.path.lexists(final):
        os.rename(staging, final)
    elif use_exchange and _renameat2_exchange(staging, final):
        phase("exchanged")
        trash(staging, "trashed")  # now the previous checkpoint
    else:
        old = f"{final}{OLD}{new_suffix()}"
        os.rename(final, old)
        phase("moved-aside")
        os.rename(staging, final)
        phase("swapped")
        trash(old, "trashed")
    fsync_directory(parent)
