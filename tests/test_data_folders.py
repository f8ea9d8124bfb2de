"""Data folders that load but cannot train, or cannot be read safely: each is refused with a
DataError naming the file and the fix, before any training, without hanging or inflating a
bomb. The bad folders are copies of the bundled MNIST, altered."""

from __future__ import annotations

import gzip
import os
import shutil
import stat
import struct
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from core.data import MNIST_DIR, DataError, Dataset, load_dataset
from tests.test_cli import assert_no_traceback, cli

MIB = 2**20


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A writable copy of the bundled MNIST."""
    target = tmp_path / "mnist"
    shutil.copytree(MNIST_DIR, target)
    for f in target.iterdir():
        f.chmod(0o644)
    return target


def without_checksums(directory: Path) -> Path:
    (directory / "SHA256SUMS").unlink()
    return directory


def idx(magic: int, shape: tuple[int, ...], payload: bytes | None = None) -> bytes:
    header = struct.pack(f">I{len(shape)}I", magic, *shape)
    return header + (bytes(int(np.prod(shape))) if payload is None else payload)


def load_within(directory: Path, seconds: float = 5) -> Dataset | BaseException:
    """load_dataset's result or exception, from a thread that must finish within `seconds`."""
    outcome: list[Dataset | BaseException] = []

    def load() -> None:
        try:
            outcome.append(load_dataset(directory))
        except BaseException as exc:
            outcome.append(exc)

    reader = threading.Thread(target=load, daemon=True)  # a hung read cannot be interrupted
    reader.start()
    reader.join(timeout=seconds)
    assert outcome, f"load_dataset was still busy after {seconds} s"
    return outcome[0]


def refused(directory: Path, message: str) -> str:
    outcome = load_within(directory)
    assert isinstance(outcome, DataError), outcome
    assert message in str(outcome), str(outcome)
    return str(outcome)


def device_node(path: Path) -> None:
    """A character device like /dev/null (1, 3), made by the test: never a system one."""
    os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))


@pytest.mark.parametrize(
    ("name", "make", "kind"),
    [
        ("t10k-labels-idx1-ubyte.gz", os.mkfifo, "a FIFO (named pipe)"),
        ("SHA256SUMS", os.mkfifo, "a FIFO (named pipe)"),
        ("train-images-idx3-ubyte.gz", lambda p: p.mkdir(), "a folder"),
        ("t10k-images-idx3-ubyte.gz", device_node, "a character device"),
    ],
    ids=["FIFO for a data file", "FIFO for the checksums", "folder", "device node"],
)
def test_anything_but_a_regular_file_is_refused_without_opening_it(folder, name, make, kind):
    (folder / name).unlink()
    make(folder / name)
    line = refused(folder, f"{folder / name} is {kind}, not a regular file")
    assert "git checkout -- data/mnist" in line


def test_images_of_another_size_are_refused_before_training(folder):
    for stem, count in (("train", 60), ("t10k", 10)):
        (folder / f"{stem}-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(idx(0x803, (count, 32, 32)))
        )
        (folder / f"{stem}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx(0x801, (count,))))
    refused(
        without_checksums(folder),
        "train-images-idx3-ubyte.gz holds 32x32 images, but the network reads 28x28 images",
    )


@pytest.mark.parametrize("part", ["train", "t10k"])
def test_an_empty_training_or_test_set_is_refused(folder, part):
    (folder / f"{part}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx(0x803, (0, 28, 28))))
    (folder / f"{part}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx(0x801, (0,))))
    refused(
        without_checksums(folder),
        f"{part}-images-idx3-ubyte.gz holds no images; the training and the test set each need",
    )


def gzip_bomb(header_shape: tuple[int, ...], honest_images: int) -> bytes:
    """About 4 MB of gzip that inflates to 4 GiB: an IDX header declaring `header_shape`, the
    data of `honest_images` images, then 4096 gzip members of 1 MiB of zeros each (a gzip
    file may hold many members, and Python reads them all as one stream)."""
    head = gzip.compress(idx(0x803, header_shape, bytes(honest_images * 28 * 28)))
    return head + gzip.compress(bytes(MIB)) * 4096


@pytest.mark.parametrize(
    ("shape", "images", "message"),
    [
        ((100, 28, 28), 100, "holds more data than its shape (100, 28, 28) declares"),
        ((5_000_000, 28, 28), 0, "declares shape (5000000, 28, 28), 3.7 GiB of data: more than"),
    ],
    ids=["honest header, 4 GiB behind it", "header declaring 3.7 GiB"],
)
def test_a_gzip_bomb_is_refused_without_inflating_it(folder, shape, images, message):
    path = folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip_bomb(shape, images))
    assert path.stat().st_size < 5 * MIB
    labels = gzip.compress(idx(0x801, shape[:1], b"") + bytes(shape[0]))  # as many as declared
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(labels)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        refused(without_checksums(folder), message)
    finally:
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert seconds < 2 and peak < 64 * MIB, (seconds, peak)


def test_an_uncompressed_file_too_large_to_be_idx_is_refused_unread(folder):
    (folder / "train-images-idx3-ubyte.gz").unlink()
    big = folder / "train-images-idx3-ubyte"
    with big.open("wb") as f:
        f.write(idx(0x803, (60_000, 28, 28), b""))
        f.truncate(2**30)  # a sparse 1 GiB file: nothing is written to disk
    tracemalloc.start()
    try:
        refused(without_checksums(folder), f"{big} is 1.0 GiB, more than the 513.0 MiB")
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 64 * MIB, peak


def larger_images(directory: Path) -> None:
    """Both sets 32x32: consistent with each other, wrong for the network."""
    for stem, count in (("train", 60_000), ("t10k", 10_000)):
        (directory / f"{stem}-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(idx(0x803, (count, 32, 32)))
        )


def fifo_for_test_labels(directory: Path) -> None:
    (directory / "t10k-labels-idx1-ubyte.gz").unlink()
    os.mkfifo(directory / "t10k-labels-idx1-ubyte.gz")


BAD_FOLDERS: dict[str, Callable[[Path], None]] = {
    "32x32 images": larger_images,
    "a FIFO": fifo_for_test_labels,
}


@pytest.mark.parametrize("bad", list(BAD_FOLDERS))
def test_the_cli_refuses_a_bad_data_folder_in_one_line(folder, tmp_path, bad):
    BAD_FOLDERS[bad](without_checksums(folder))
    start = time.monotonic()
    result = cli("train", "--data-dir", str(folder), "--no-store", "--out",
                 str(tmp_path / "m.npz"))  # fmt: skip
    assert result.returncode == 2, result
    assert_no_traceback(result)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m core train: error: "), lines
    assert str(folder) in lines[0] and "Training" not in result.stdout
    assert time.monotonic() - start < 60
