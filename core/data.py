"""MNIST-format data: IDX files, checksums, a stratified split and mini-batches.

Images stay uint8 in memory (47 MB for MNIST) and are converted to float32 in
[0, 1] one batch at a time, so training never holds a float copy of the set.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import stat
import struct
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TypeVar

import numpy as np

from .config import byte_size

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parent.parent
MNIST_DIR = REPO_ROOT / "data" / "mnist"

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
CHECKSUM_FILE = "SHA256SUMS"

DIGIT_NAMES = tuple(str(d) for d in range(10))
FASHION_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

_IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
_IDX_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
IMAGE_SIDE = 28  # the network's input is 28x28, MNIST's size
MAX_IDX_BYTES = 512 * 2**20  # one file's data, decompressed (MNIST's largest holds 47 MB)
MAX_FILE_BYTES = MAX_IDX_BYTES + 2**20  # one file on disk: its data, header and gzip framing
MAX_CHECKSUMS_BYTES = 2**20
_CHUNK = 16 * 2**20  # bytes inflated at a time


class DataError(Exception):
    """A data file is missing, corrupt or inconsistent; the message names the file and the fix."""


@dataclass(frozen=True)
class Dataset:
    """The four arrays of an MNIST-format set, uint8 images and uint8 labels."""

    train_images: np.ndarray  # (60000, 28, 28) uint8
    train_labels: np.ndarray  # (60000,) uint8
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...]
    name: str

    @property
    def image_shape(self) -> tuple[int, int]:
        return self.train_images.shape[1], self.train_images.shape[2]


def file_kind(mode: int) -> str:
    """What a file with this st_mode is, in words, e.g. 'a folder' or 'a FIFO (named pipe)'."""
    kinds = [
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISREG, "a regular file"),
    ]
    return next((words for test, words in kinds if test(mode)), "not a regular file")


def _regular_file(path: Path, limit: int) -> os.stat_result:
    """Stat `path` (never open it) and refuse anything but a regular file of at most `limit` bytes.

    Opening a FIFO waits forever for a writer, and a device can be endless.
    """
    try:
        info = path.stat()
    except OSError as exc:
        raise DataError(
            f"{path} cannot be read ({exc.strerror}); replace it with a good copy."
        ) from exc
    if not stat.S_ISREG(info.st_mode):
        raise DataError(
            f"{path} is {file_kind(info.st_mode)}, not a regular file; put the file itself "
            f"there (for the bundled MNIST: `git checkout -- data/mnist`)."
        )
    if info.st_size > limit:
        raise DataError(
            f"{path} is {byte_size(info.st_size)}, more than the {byte_size(limit)} this loads "
            "from one file; is it the right file?"
        )
    return info


def _find(directory: Path, stem: str) -> Path:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.exists() or candidate.is_symlink():
            _regular_file(candidate, MAX_FILE_BYTES)
            return candidate
    raise DataError(
        f"{directory / (stem + '.gz')} is missing. "
        f"Restore it (for the bundled MNIST: `git checkout -- data/mnist`) "
        f"or point --data-dir at a folder holding the four IDX files."
    )


def _read_checksums(directory: Path) -> dict[str, str]:
    path = directory / CHECKSUM_FILE
    if not (path.exists() or path.is_symlink()):
        return {}
    _regular_file(path, MAX_CHECKSUMS_BYTES)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} cannot be read ({exc}); restore or delete it.") from exc
    sums = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            sums[parts[1].lstrip("*")] = parts[0].lower()
    return sums


def _read_bytes(path: Path) -> bytes:
    """The bytes of a data file that passed `_regular_file`, never more than MAX_FILE_BYTES."""
    try:
        with open(path, "rb") as f:
            # read(n) reserves n bytes up front, so ask for the size the file has (+ 1 to see
            # one that grew since it was checked), never for the limit.
            raw = f.read(min(os.fstat(f.fileno()).st_size, MAX_FILE_BYTES) + 1)
    except OSError as exc:
        raise DataError(f"{path} cannot be read ({exc}); replace it with a good copy.") from exc
    if len(raw) > MAX_FILE_BYTES:
        raise DataError(f"{path} grew beyond {byte_size(MAX_FILE_BYTES)} while it was read.")
    return raw


class _Idx:
    """One IDX file being read: its header first, checked, then exactly the data it declares.

    Gzip is inflated as it is read, so a file is never inflated beyond its declared size.
    """

    def __init__(self, path: Path, raw: bytes, expected_magic: int) -> None:
        self.path = path
        compressed = raw[:2] == b"\x1f\x8b"
        self.stream = gzip.GzipFile(fileobj=io.BytesIO(raw)) if compressed else io.BytesIO(raw)
        ndim = expected_magic & 0xFF
        header = self._read(4 + 4 * ndim)
        if len(header) < 4 + 4 * ndim:
            raise DataError(f"{path} is too short to be an IDX file; replace it with a good copy.")
        (magic,) = struct.unpack(">I", header[:4])
        if magic != expected_magic:
            raise DataError(
                f"{path} has magic number {magic:#010x}, expected {expected_magic:#010x} "
                f"(an IDX file of {ndim} dimension(s)); is it the right file?"
            )
        self.shape = struct.unpack(f">{ndim}I", header[4:])
        self.size = math.prod(self.shape)
        if self.size > MAX_IDX_BYTES:
            raise DataError(
                f"{path} declares shape {self.shape}, {byte_size(self.size)} of data: more than "
                f"the {byte_size(MAX_IDX_BYTES)} this loads from one file; is it the right file?"
            )
        side = IMAGE_SIDE
        if ndim == 3 and self.shape[1:] != (side, side):
            raise DataError(
                f"{path} holds {self.shape[1]}x{self.shape[2]} images, but the network reads "
                f"{side}x{side} images (MNIST's size); resize them to {side}x{side} or choose "
                f"a folder of {side}x{side} IDX files."
            )

    def _read(self, n: int) -> bytes:
        try:
            return self.stream.read(n)
        except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
            raise DataError(
                f"{self.path} cannot be read ({exc}); replace it with a good copy."
            ) from exc

    def data(self) -> np.ndarray:
        """The declared data as a read-only uint8 array of the declared shape."""
        out = np.empty(self.size, np.uint8)
        view = memoryview(out)
        got = 0
        while got < self.size:
            chunk = self._read(min(_CHUNK, self.size - got))
            if not chunk:
                raise DataError(
                    f"{self.path} declares shape {self.shape} ({self.size} bytes) but holds "
                    f"{got} bytes of data; the file is truncated or corrupt."
                )
            view[got : got + len(chunk)] = chunk
            got += len(chunk)
        if self._read(1):
            raise DataError(
                f"{self.path} holds more data than its shape {self.shape} declares "
                f"({self.size} bytes); the file is corrupt. Replace it with a good copy."
            )
        out.flags.writeable = False  # one loaded dataset is shared by every dashboard session
        return out.reshape(self.shape)


def read_idx(path: Path, expected_magic: int) -> np.ndarray:
    """Read one IDX file (optionally gzip-compressed) into a uint8 array, checking its header."""
    _regular_file(path, MAX_FILE_BYTES)
    return _Idx(path, _read_bytes(path), expected_magic).data()


def load_dataset(directory: str | Path | None = None, name: str | None = None) -> Dataset:
    """Load the four IDX files in `directory` (default: the bundled MNIST), verifying checksums.

    A SHA256SUMS file beside the data, when present, is checked for every file it lists.
    Everything that can be checked is checked before any data is inflated: that each file
    is a regular file within the size limits, the checksums, and each header's shape.
    """
    directory = Path(directory) if directory is not None else MNIST_DIR
    if not directory.is_dir():
        raise DataError(f"{directory} is not a folder; --data-dir needs a folder of IDX files.")
    paths = {key: _find(directory, stem) for key, stem in FILES.items()}
    sums = _read_checksums(directory)
    files = {}
    for key, path in paths.items():
        raw = _read_bytes(path)
        expected = sums.get(path.name)
        if expected is not None:
            digest = hashlib.sha256(raw).hexdigest()
            if digest != expected:
                raise DataError(
                    f"{path} does not match its checksum in {CHECKSUM_FILE} "
                    f"(got {digest[:12]}…, expected {expected[:12]}…): the file is corrupt. "
                    f"Restore it (for the bundled MNIST: `git checkout -- data/mnist`)."
                )
        magic = _IDX_IMAGES_MAGIC if key.endswith("images") else _IDX_LABELS_MAGIC
        files[key] = _Idx(path, raw, magic)
    for part in ("train", "test"):
        images, labels = files[f"{part}_images"], files[f"{part}_labels"]
        if images.shape[0] != labels.shape[0]:
            raise DataError(
                f"{directory}: {FILES[part + '_images']} holds {images.shape[0]} images but "
                f"{FILES[part + '_labels']} holds {labels.shape[0]} labels; they must match."
            )
        if images.shape[0] == 0:
            raise DataError(
                f"{images.path} holds no images; the training and the test set each need at "
                "least one. Choose a folder with both sets."
            )
    arrays = {key: idx.data() for key, idx in files.items()}
    for part in ("train", "test"):
        labels = arrays[f"{part}_labels"]
        if labels.max() > 9:
            raise DataError(f"{directory}: {FILES[part + '_labels']} has labels above 9.")
    if name is None:
        name = (
            "Fashion-MNIST"
            if "fashion" in str(directory).lower()
            else ("MNIST" if directory == MNIST_DIR else directory.name)
        )
    class_names = FASHION_NAMES if name == "Fashion-MNIST" else DIGIT_NAMES
    return Dataset(class_names=class_names, name=name, **arrays)


def stratified_split(labels: np.ndarray, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (train, validation) with each class in proportion, reproducibly."""
    n = len(labels)
    if not 0 <= val_size < n:
        raise ValueError(f"val_size must be between 0 and {n - 1}, got {val_size}")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    # Largest-remainder rounding so the class shares add up to exactly val_size.
    exact = counts * (val_size / n)
    take = np.floor(exact).astype(int)
    short = val_size - take.sum()
    take[np.argsort(-(exact - take), kind="stable")[:short]] += 1
    val = []
    for cls, k in zip(classes, take, strict=True):
        members = np.flatnonzero(labels == cls)
        val.append(rng.permutation(members)[:k])
    val_idx = np.sort(np.concatenate(val))
    mask = np.ones(n, dtype=bool)
    mask[val_idx] = False
    return np.flatnonzero(mask), val_idx


def subset(indices: np.ndarray, labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """A stratified random subset of `indices` of the given size (all of them if size >= len)."""
    if size >= len(indices):
        return indices
    keep, _ = stratified_split(labels[indices], len(indices) - size, seed)
    return indices[keep]


def to_float(images: np.ndarray) -> np.ndarray:
    """uint8 images (N, H, W) -> float32 (N, H, W, 1) in [0, 1], the network's input."""
    out = images.astype(np.float32)
    out *= np.float32(1 / 255)
    return out.reshape(*images.shape, 1)


Batch = tuple[np.ndarray, np.ndarray]  # float32 images (N, H, W, 1) and their labels


def batch_jobs(
    images: np.ndarray,
    labels: np.ndarray,
    indices: np.ndarray,
    batch_size: int,
    rng: np.random.Generator | None = None,
    transform: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
) -> list[Callable[[], Batch]]:
    """One function per batch over `indices` (shuffled when an rng is given) that makes it.

    `transform`, if set, maps a float32 (N, H, W) batch to an augmented one; each batch gets
    its own generator, seeded here in order, so batches made in any order or on any thread
    come out the same.
    """
    order = rng.permutation(indices) if rng is not None else indices
    starts = range(0, len(order), batch_size)
    seeds = rng.integers(2**63, size=len(starts)) if rng is not None and transform else None

    def job(k: int, chunk: np.ndarray) -> Callable[[], Batch]:
        def make() -> Batch:
            x = to_float(images[chunk])
            if transform is not None:
                batch_rng = np.random.default_rng(seeds[k] if seeds is not None else k)
                x = transform(x[..., 0], batch_rng).reshape(x.shape)
            return x, labels[chunk]

        return make

    return [job(k, order[start : start + batch_size]) for k, start in enumerate(starts)]


def prefetch(jobs: Sequence[Callable[[], T]], workers: int = 2, depth: int = 4) -> Iterator[T]:
    """Yield the results of `jobs` in order, made by `workers` threads up to `depth` ahead.

    NumPy releases the GIL inside its loops, so converting and augmenting the next batches
    runs beside training, on whichever core it leaves free. Errors in a job are raised
    here; leaving the loop early cancels what is pending.
    """
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="prefetch")
    pending: deque[Future[T]] = deque()
    upcoming = iter(jobs)
    try:
        for job in islice(upcoming, depth):
            pending.append(pool.submit(job))
        while pending:
            result = pending.popleft().result()
            job = next(upcoming, None)
            if job is not None:
                pending.append(pool.submit(job))
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
