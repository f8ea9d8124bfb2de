"""Where a model is saved: `train --out` is checked before any work, and a save only ever
replaces a regular file, leaving it with a normal file's permissions."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest

from core.architecture import spec_from_config
from core.config import TrainConfig
from core.model import Model
from core.model_save import OutputPathError, check_output_path
from tests.test_cli import assert_no_traceback, cli

TRAIN = ("train", "--no-store", "--train-size", "500", "--epochs", "1", "--quiet")


def refused(out: str, cwd: Path, *extra: str) -> str:
    """Run `train --out out`; assert it is refused in one line, untrained; return that line."""
    result = cli(*TRAIN, "--out", out, *extra, cwd=cwd)
    assert result.returncode == 2, result
    assert_no_traceback(result)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m core train: error: "), lines
    assert "Training" not in result.stdout + result.stderr
    return lines[0]


def device_node(path: Path) -> Path:
    """A character device like /dev/null (1, 3), made by the test: never a system one."""
    os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    return path


@pytest.fixture
def unwritable(tmp_path):
    """A folder no one can create files in. Root ignores permission bits but not the
    immutable attribute, so as root the folder is made immutable (chattr +i) as well."""
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    as_root = os.geteuid() == 0
    if as_root:
        subprocess.run(["chattr", "+i", str(folder)], check=True)
    try:
        with pytest.raises(PermissionError):  # the premise: it really is unwritable
            (folder / "probe").touch()
        yield folder
    finally:
        if as_root:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


def test_a_device_node_is_refused_before_training_and_left_as_it_was(tmp_path):
    node = device_node(tmp_path / "dev")
    line = refused("dev", tmp_path)
    assert "dev is a character device, not a regular file" in line
    info = os.lstat(node)
    assert stat.S_ISCHR(info.st_mode) and info.st_rdev == os.makedev(1, 3)


def test_a_fifo_is_refused_before_training_and_left_as_it_was(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    line = refused("pipe", tmp_path)
    assert "pipe is a FIFO (named pipe), not a regular file" in line
    assert stat.S_ISFIFO(os.lstat(tmp_path / "pipe").st_mode)


@pytest.mark.parametrize(
    ("make", "out", "message"),
    [
        (
            lambda d: (d / "folder").mkdir(),
            "folder",
            "folder is a folder; give a file name inside it, e.g. folder/model.npz",
        ),
        (lambda d: None, "", "the output path is empty"),
        (lambda d: None, "new/", "new/ names a folder; give a file name inside it"),
        (
            lambda d: (d / "notes.txt").write_text("x"),
            "notes.txt/model.npz",
            "notes.txt is not a folder, so notes.txt/model.npz cannot be created in it",
        ),
        (
            lambda d: (d / "notes.txt").write_text("x"),
            "notes.txt/deeper/model.npz",
            "notes.txt is not a folder",
        ),
        (lambda d: device_node(d / "dev"), "dev", "dev is a character device"),
    ],
    ids=[
        "existing folder",
        "empty string",
        "trailing slash",
        "parent is a file",
        "grandparent is a file",
        "device node",
    ],
)
def test_a_bad_out_is_refused_before_the_data_is_even_loaded(tmp_path, make, out, message):
    make(tmp_path)
    # A data folder that does not exist: had the data been loaded first, that would be the error.
    line = refused(out, tmp_path, "--data-dir", str(tmp_path / "no-data"))
    assert message in line


def test_an_unwritable_folder_is_refused(tmp_path, unwritable):
    line = refused(str(unwritable / "model.npz"), tmp_path)
    assert f"cannot create files in {unwritable}" in line
    assert "choose a folder you can write to" in line
    assert list(unwritable.iterdir()) == []


def test_a_good_out_still_trains_and_saves_in_a_new_folder(tmp_path):
    result = cli(*TRAIN, "--out", "sub/dir/model.npz", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "sub" / "dir" / "model.npz").is_file()
    assert [p.name for p in (tmp_path / "sub" / "dir").iterdir()] == ["model.npz"]


def test_a_link_is_followed_to_the_file_it_names(tmp_path):
    (tmp_path / "real.npz").write_bytes(b"old")
    (tmp_path / "link.npz").symlink_to("real.npz")
    assert check_output_path(tmp_path / "link.npz") == tmp_path / "real.npz"
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "to-pipe.npz").symlink_to("pipe")
    with pytest.raises(OutputPathError, match="is a FIFO"):
        check_output_path(tmp_path / "to-pipe.npz")


def small_model() -> Model:
    return Model(spec_from_config(TrainConfig(hidden=[8])))


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_save_refuses_anything_but_a_regular_file(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "folder").mkdir()
    device_node(tmp_path / "dev")
    for name in ("pipe", "folder", "dev"):
        with pytest.raises(OutputPathError, match=f"{name} is a "):
            small_model().save(tmp_path / name)
    assert stat.S_ISFIFO(os.lstat(tmp_path / "pipe").st_mode)
    assert stat.S_ISCHR(os.lstat(tmp_path / "dev").st_mode)
    assert list((tmp_path / "folder").iterdir()) == []
    assert leftovers(tmp_path) == []


def test_save_refuses_what_appears_at_the_path_while_it_writes(tmp_path, monkeypatch):
    """The final rename is checked too: here a FIFO appears while the arrays are written."""
    target = tmp_path / "model.npz"
    real_savez = np.savez

    def savez_then_a_fifo_appears(*args, **kwargs):
        real_savez(*args, **kwargs)
        os.mkfifo(target)

    monkeypatch.setattr(np, "savez", savez_then_a_fifo_appears)
    with pytest.raises(OutputPathError, match="is a FIFO"):
        small_model().save(target)
    assert stat.S_ISFIFO(os.lstat(target).st_mode)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_saved_models_get_a_normal_files_permissions(tmp_path, umask):
    old = os.umask(umask)
    try:
        path = small_model().save(tmp_path / "model.npz")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
