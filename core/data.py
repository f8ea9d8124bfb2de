"""MNIST-format data: IDX files, checksums, a stratified split and mini-batches.

Images stay uint8 in memory (47 MB for MNIST) and are converted to float32 in
[0, 1] one batch at a time, so training never holds a float copy of the set.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TypeVar

import numpy as np

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
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip

_IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
_IDX_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension


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


def _find(directory: Path, stem: str) -> Path:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.exists():
            return candidate
    raise DataError(
        f"{directory / (stem + '.gz')} is missing. "
        f"Restore it (for the bundled MNIST: `git checkout -- data/mnist`) "
        f"or point --data-dir at a folder holding the four IDX files."
    )


def _read_checksums(directory: Path) -> dict[str, str]:
    path = directory / CHECKSUM_FILE
    if not path.exists():
        return {}
    sums = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            sums[parts[1].lstrip("*")] = parts[0].lower()
    return sums


def read_idx(path: Path, expected_magic: int) -> np.ndarray:
    """Read one IDX file (optionally gzip-compressed) into a uint8 array, checking its header."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path} cannot be read ({exc}); replace it with a good copy.") from exc
    ndim = expected_magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is too short to be an IDX file; replace it with a good copy.")
    (magic,) = struct.unpack(">I", raw[:4])
    if magic != expected_magic:
        raise DataError(
            f"{path} has magic number {magic:#010x}, expected {expected_magic:#010x} "
            f"(an IDX file of {ndim} dimension(s)); is it the right file?"
        )
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    if len(raw) - header != int(np.prod(shape)):
        raise DataError(
            f"{path} declares shape {shape} ({int(np.prod(shape))} bytes) but holds "
            f"{len(raw) - header} bytes of data; the file is truncated or corrupt."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def load_dataset(directory: str | Path | None = None, name: str | None = None) -> Dataset:
    """Load the four IDX files in `directory` (default: the bundled MNIST), verifying checksums.

    A SHA256SUMS file beside the data, when present, is checked for every file it lists.
    """
    directory = Path(directory) if directory is not None else MNIST_DIR
    if not directory.is_dir():
        raise DataError(f"{directory} is not a folder; --data-dir needs a folder of IDX files.")
    sums = _read_checksums(directory)
    arrays = {}
    for key, stem in FILES.items():
        path = _find(directory, stem)
        expected = sums.get(path.name)
        if expected is not None:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest != expected:
                raise DataError(
                    f"{path} does not match its checksum in {CHECKSUM_FILE} "
                    f"(got {digest[:12]}…, expected {expected[:12]}…): the file is corrupt. "
                    f"Restore it (for the bundled MNIST: `git checkout -- data/mnist`)."
                )
        magic = _IDX_IMAGES_MAGIC if key.endswith("images") else _IDX_LABELS_MAGIC
        arrays[key] = read_idx(path, magic)
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if len(images) != len(labels):
            raise DataError(
                f"{directory}: {FILES[part + '_images']} holds {len(images)} images but "
                f"{FILES[part + '_labels']} holds {len(labels)} labels; they must match."
            )
        if labels.size and labels.max() > 9:
            raise DataError(f"{directory}: {FILES[part + '_labels']} has labels above 9.")
    if arrays["train_images"].shape[1:] != arrays["test_images"].shape[1:]:
        raise DataError(f"{directory}: training and test images have different sizes.")
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


def batches(
    images: np.ndarray,
    labels: np.ndarray,
    indices: np.ndarray,
    batch_size: int,
    rng: np.random.Generator | None = None,
    transform: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
) -> Iterator[Batch]:
    """Yield (float32 images, labels) batches over `indices`, made one after another."""
    for make in batch_jobs(images, labels, indices, batch_size, rng, transform):
        yield make()


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
