"""Loading MNIST-format files, their checks, the split and the batches."""

from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from core.data import (
    FILES,
    MNIST_DIR,
    DataError,
    batch_jobs,
    load_dataset,
    stratified_split,
    subset,
)

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_bundled_mnist_matches_the_published_set(mnist):
    assert mnist.train_images.shape == (60_000, 28, 28)
    assert mnist.test_images.shape == (10_000, 28, 28)
    assert mnist.train_images.dtype == np.uint8 and mnist.train_labels.dtype == np.uint8
    assert np.bincount(mnist.train_labels).tolist() == TRAIN_COUNTS
    assert np.bincount(mnist.test_labels).tolist() == TEST_COUNTS
    assert mnist.train_labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert mnist.test_labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert mnist.name == "MNIST" and mnist.class_names[3] == "3"


@pytest.fixture
def data_copy(tmp_path: Path) -> Path:
    target = tmp_path / "mnist"
    shutil.copytree(MNIST_DIR, target)
    for f in target.iterdir():
        f.chmod(0o644)
    return target


def test_missing_file_names_it_and_the_fix(data_copy):
    (data_copy / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz is missing.*git checkout"):
        load_dataset(data_copy)


def test_altered_file_fails_its_checksum(data_copy):
    path = data_copy / "train-labels-idx1-ubyte.gz"
    raw = bytearray(path.read_bytes())
    raw[100] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz does not match its checksum"):
        load_dataset(data_copy)


def _write_idx(path: Path, magic: int, shape: tuple[int, ...], payload: bytes) -> None:
    header = struct.pack(f">I{len(shape)}I", magic, *shape)
    path.write_bytes(gzip.compress(header + payload))


def _without_checksums(directory: Path) -> Path:
    (directory / "SHA256SUMS").unlink()
    return directory


def test_truncated_file_is_reported(data_copy):
    path = data_copy / "t10k-images-idx3-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz declares shape .* truncated"):
        load_dataset(_without_checksums(data_copy))


def test_truncated_gzip_stream_is_reported(data_copy):
    path = data_copy / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-50])
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz cannot be read"):
        load_dataset(_without_checksums(data_copy))


def test_wrong_magic_number_is_reported(data_copy):
    _write_idx(data_copy / "t10k-labels-idx1-ubyte.gz", 0x00000803, (10, 1, 1), bytes(10))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz has magic number 0x00000803"):
        load_dataset(_without_checksums(data_copy))


def test_images_and_labels_of_different_lengths(data_copy):
    _write_idx(data_copy / "t10k-labels-idx1-ubyte.gz", 0x00000801, (9_999,), bytes(9_999))
    with pytest.raises(DataError, match=r"10000 images but .* 9999 labels"):
        load_dataset(_without_checksums(data_copy))


def test_a_folder_without_checksums_and_uncompressed_files_loads(tmp_path, mnist):
    """Any folder in the same layout works, e.g. Fashion-MNIST from Debian."""
    for key, stem in FILES.items():
        array = getattr(mnist, key)[:50]
        magic = 0x00000803 if key.endswith("images") else 0x00000801
        header = struct.pack(f">I{array.ndim}I", magic, *array.shape)
        (tmp_path / stem).write_bytes(header + array.tobytes())
    data = load_dataset(tmp_path)
    assert data.train_images.shape == (50, 28, 28)
    np.testing.assert_array_equal(data.test_labels, mnist.test_labels[:50])
    assert data.name == tmp_path.name


def test_not_a_folder(tmp_path):
    with pytest.raises(DataError, match="is not a folder"):
        load_dataset(tmp_path / "nowhere")


FASHION = Path("/usr/share/datasets/fashion-mnist")


def test_fashion_mnist_from_debian_loads_with_its_class_names():
    if not FASHION.is_dir():
        pytest.fail(
            f"{FASHION} is missing: install it with `apt-get install dataset-fashion-mnist` "
            "(.ci/run does this)"
        )
    data = load_dataset(FASHION)
    assert data.name == "Fashion-MNIST"
    assert data.class_names[9] == "Ankle boot"
    assert data.train_images.shape == (60_000, 28, 28)
    assert np.bincount(data.test_labels).tolist() == [1000] * 10


def test_stratified_split_is_disjoint_proportional_and_seeded(mnist):
    labels = mnist.train_labels
    train, val = stratified_split(labels, 5000, seed=0)
    assert len(train) == 55_000 and len(val) == 5000
    assert len(np.intersect1d(train, val)) == 0
    assert len(np.union1d(train, val)) == 60_000
    expected = np.array(TRAIN_COUNTS) * 5000 / 60_000
    assert np.all(np.abs(np.bincount(labels[val]) - expected) <= 1)
    again, _ = stratified_split(labels, 5000, seed=0)
    other, _ = stratified_split(labels, 5000, seed=1)
    np.testing.assert_array_equal(train, again)
    assert not np.array_equal(train, other)


def test_subset_is_stratified_and_inside_the_pool(mnist):
    train, _ = stratified_split(mnist.train_labels, 5000, seed=0)
    small = subset(train, mnist.train_labels, 1000, seed=0)
    assert len(small) == 1000 and np.all(np.isin(small, train))
    assert np.all(np.abs(np.bincount(mnist.train_labels[small]) - 100) <= 15)
    assert subset(train, mnist.train_labels, 10**6, seed=0) is train


def test_batches_convert_each_batch_and_cover_every_index_once(mnist):
    indices = np.arange(1000)
    seen = []
    jobs = batch_jobs(
        mnist.train_images, mnist.train_labels, indices, 128, np.random.default_rng(0)
    )
    for make in jobs:
        x, y = make()
        assert x.dtype == np.float32 and x.shape[1:] == (28, 28, 1)
        assert x.min() >= 0.0 and x.max() <= 1.0
        assert len(x) == len(y) <= 128
        seen.append(y)
    assert [len(y) for y in seen] == [128] * 7 + [104]
    assert (
        np.bincount(np.concatenate(seen)).tolist()
        == np.bincount(mnist.train_labels[:1000]).tolist()
    )
    x, _ = batch_jobs(mnist.train_images, mnist.train_labels, indices, 5)[0]()
    np.testing.assert_allclose(x[..., 0], mnist.train_images[:5] / 255, atol=1e-7)
