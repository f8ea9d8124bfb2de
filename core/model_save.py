"""Saving a model: one `.npz` of its spec, metadata and weights, written atomically.

A save only ever replaces a regular file, with the permissions any new file gets;
`check_output_path` says before any work whether a path can take a model.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from pathlib import Path
from typing import Any

import numpy as np

from .data import file_kind
from .model import Model, ModelFileError


class OutputPathError(ModelFileError):
    """A model cannot be saved at this path (a folder, a special file, an unwritable place)."""


def check_output_path(path: str | Path) -> Path:
    """The file a model saved as `path` will be written to, or OutputPathError saying why not.

    `path` must name a regular file, existing or not, in a folder this process can create
    files in (tried by creating and removing an empty file there); a symbolic link is
    followed to the file it names.
    """
    text = str(path)
    if not text.strip():
        raise OutputPathError("the output path is empty; give a file name such as model.npz")
    if text.endswith("/"):  # Path() would drop the slash and save a file named like the folder
        raise OutputPathError(
            f"{text} names a folder; give a file name inside it, e.g. {text}model.npz"
        )
    target = Path(os.path.realpath(text)) if os.path.islink(text) else Path(text)
    folder = target.parent
    while not folder.exists() and folder != folder.parent:  # folders that save() will create
        folder = folder.parent
    if not folder.is_dir():
        raise OutputPathError(f"{folder} is not a folder, so {text} cannot be created in it")
    try:
        mode = os.lstat(target).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise OutputPathError(f"{text} cannot be used as an output file ({exc.strerror})") from exc
    if mode is not None:
        if stat.S_ISDIR(mode):
            raise OutputPathError(
                f"{text} is a folder; give a file name inside it, e.g. {Path(text) / 'model.npz'}"
            )
        if not stat.S_ISREG(mode):
            raise OutputPathError(
                f"{text} is {file_kind(mode)}, not a regular file; a model is only saved as a "
                "new file or over an old one"
            )
    try:
        fd, probe = _create_temp(folder / target.name)
    except OSError as exc:
        raise OutputPathError(
            f"cannot create files in {folder} ({exc.strerror}); choose a folder you can write to"
        ) from exc
    os.close(fd)
    probe.unlink()
    return target


def _refuse_non_regular(path: Path) -> None:
    """OutputPathError if something other than a regular file is at `path`."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        raise OutputPathError(f"{path} is {file_kind(mode)}; a model only replaces a regular file")


def _create_temp(path: Path) -> tuple[int, Path]:
    """A new, empty, hidden file beside `path`, opened for writing.

    It is created with mode 0o666 less the umask, as any new file is: tempfile.mkstemp's
    0o600 would leave the saved model readable by its owner only.
    """
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:  # 1 in 4 billion: draw another name
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


def save_model(model: Model, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Write spec, metadata and weights to one `.npz`, atomically (temp file, then rename).

    It only ever replaces a regular file: anything else at `path` (a folder, a device, a
    FIFO, a link) raises OutputPathError, checked before writing and again before renaming.
    """
    arrays = {
        "spec": np.array(json.dumps(model.spec)),
        "meta": np.array(json.dumps(meta or {})),
        **model.arrays(),
    }
    return save_arrays(path, arrays)


def save_arrays(path: str | Path, arrays: dict[str, np.ndarray], sync: bool = True) -> Path:
    """Write named arrays to one `.npz` atomically, replacing only a regular file.

    `sync=False` skips the fsync, for files rewritten every second that nobody needs to
    survive a power cut (the live view).
    """
    path = Path(path)
    _refuse_non_regular(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        # Something else may have appeared at `path` while the file was written.
        _refuse_non_regular(path)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
