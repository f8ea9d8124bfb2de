"""Model files beyond the README's list: bombs, huge shapes, wrong types, bad numbers.

Every bad file is refused by `load_model` with a ModelFileError naming what is wrong, before
anything big is allocated or inflated, and the CLI says so in one line with exit status 2.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import threading
import time
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from numpy.lib import format as npy
from PIL import Image

from core.architecture import spec_from_config
from core.config import TrainConfig
from core.model import Model, ModelFileError
from core.model_load import load_model
from tests.test_cli import assert_no_traceback, cli

MIB = 2**20
DIGITS = list("0123456789")


def good_model(path: Path) -> Path:
    """A real (small, untrained) model file as the CLI saves it."""
    return Model(spec_from_config(TrainConfig())).save(path, meta={"class_names": DIGITS})


def arrays_of(path: Path) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as z:
        return {name[:-4]: np.load(z.open(name)) for name in z.namelist()}


def altered(path: Path, **changes: np.ndarray) -> Path:
    """Rewrite the model file at `path` with some of its arrays replaced."""
    np.savez(path, **{**arrays_of(path), **changes})
    return path


def npy_header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    header = io.BytesIO()
    npy.write_array_header_1_0(header, {"descr": descr, "fortran_order": False, "shape": shape})
    return header.getvalue()


def write_zip(path: Path, members: list[tuple[str, bytes, int, int, int]]) -> Path:
    """A zip archive written by hand, so a member can declare any size: each member is
    (name, data as stored, method (0 stored, 8 deflated), CRC-32, uncompressed size)."""
    out, central = bytearray(), bytearray()
    for name, data, method, crc, size in members:
        offset = len(out)
        encoded = name.encode()
        # Local file header, then the data; version 20, no flags, no time stamp.
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 0, crc, len(data),
                           size, len(encoded), 0) + encoded + data  # fmt: skip
        # Its central directory entry.
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, method, 0, 0, crc,
                               len(data), size, len(encoded), 0, 0, 0, 0, 0, offset)  # fmt: skip
        central += encoded
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members), len(central),
                      len(out), 0)  # fmt: skip
    path.write_bytes(bytes(out + central + end))
    return path


def stored(name: str, array: np.ndarray) -> tuple[str, bytes, int, int, int]:
    buffer = io.BytesIO()
    np.save(buffer, array)
    data = buffer.getvalue()
    return name, data, 0, zlib.crc32(data), len(data)


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    """A 4 MB model file whose first weight array inflates to 4 GiB (4095 MiB) of zeros.

    Deflate restarts after a full flush, so each further MiB of zeros compresses to the same
    1 KB block: the file is made by repeating it, without compressing 4 GiB.
    """
    mebibytes = 4095  # under 4 GiB, so the archive needs no ZIP64 records
    header = npy_header(((mebibytes * MIB - 128) // 4,))
    assert len(header) == 128
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw deflate, as zip stores it
    first = deflate.compress(header + bytes(MIB - 128)) + deflate.flush(zlib.Z_FULL_FLUSH)
    block = deflate.compress(bytes(MIB)) + deflate.flush(zlib.Z_FULL_FLUSH)
    assert block == deflate.compress(bytes(MIB)) + deflate.flush(zlib.Z_FULL_FLUSH)
    data = first + block * (mebibytes - 1) + deflate.flush()
    crc = zlib.crc32(bytes(MIB - 128), zlib.crc32(header))
    zeros = bytes(MIB)
    for _ in range(mebibytes - 1):
        crc = zlib.crc32(zeros, crc)
    folder = tmp_path_factory.mktemp("bomb")
    arrays = arrays_of(good_model(folder / "good.npz"))
    members = [stored(f"{key}.npy", value) for key, value in arrays.items() if key != "param.1.W"]
    path = write_zip(
        folder / "bomb.npz", [("param.1.W.npy", data, 8, crc, mebibytes * MIB), *members]
    )
    assert path.stat().st_size < 5 * MIB
    return path


def test_a_deflate_bomb_is_refused_at_once_without_inflating(bomb):
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ModelFileError, match=r"param\.1\.W\.npy alone declares 4\.0 GiB"):
            load_model(bomb)
    finally:
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert seconds < 1.0 and peak < 16 * MIB, (seconds, peak)


def test_an_array_header_declaring_a_huge_shape_is_refused_before_allocating(tmp_path):
    path = good_model(tmp_path / "m.npz")
    arrays = arrays_of(path)
    del arrays["param.1.W"]
    huge = npy_header((10**12,)) + bytes(64)  # declares 4 TB, holds 64 bytes
    members = [("param.1.W.npy", huge, 0, zlib.crc32(huge), len(huge))]
    members += [stored(f"{key}.npy", value) for key, value in arrays.items()]
    write_zip(path, members)
    with pytest.raises(ModelFileError, match=r"param\.1\.W declares shape \(1000000000000,\)"):
        load_model(path)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {
                "input_shape": [28, 28, 1],
                "layers": [{"type": "flatten"}, {"type": "dense", "units": 10**9}],
            },
            r"layer 1 \(dense\): units must be a whole number from 1 to 8192, got 1000000000",
        ),
        (
            spec_from_config(TrainConfig(arch="cnn", conv=[8192], hidden=[8192])),
            r"weights \(49\.0 GiB\), over the 2\.0 GiB limit of a model file",
        ),
        (
            {"input_shape": [10**6, 10**6, 1], "layers": [{"type": "flatten"}]},
            r"input_shape must be \[28, 28, 1\]",
        ),
    ],
    ids=[
        "a billion units",
        "within each layer's limits, 13 billion weights in all",
        "a huge input",
    ],
)
def test_a_spec_declaring_huge_layers_is_refused_before_building(tmp_path, spec, message):
    path = altered(good_model(tmp_path / "m.npz"), spec=np.array(json.dumps(spec)))
    with pytest.raises(ModelFileError, match=message):
        load_model(path)


@pytest.mark.parametrize(
    "value",
    [np.array(["a", "b"]), np.zeros((784, 128), np.int64), np.zeros((784, 128), np.complex64)],
    ids=["strings", "integers", "complex"],
)
def test_weights_that_are_not_real_floating_point_numbers_are_refused(tmp_path, value):
    path = altered(good_model(tmp_path / "m.npz"), **{"param.1.W": value})
    with pytest.raises(ModelFileError, match=rf"param\.1\.W holds {value.dtype} values; weights"):
        load_model(path)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "spec",
            np.array([json.dumps(spec_from_config(TrainConfig()))] * 2),
            "'spec' must be one text string, got an array of <U",
        ),
        ("spec", np.array(5.0), "'spec' must be one text string, got an array of float64"),
        ("meta", np.array(json.dumps([1, 2])), "'meta' must be a JSON object, got list"),
        (
            "meta",
            np.array(json.dumps({"class_names": "0123456789"})),
            "'meta' class_names must list 10 names",
        ),
        (
            "meta",
            np.array(json.dumps({"class_names": DIGITS[:9]})),
            "'meta' class_names must list 10 names",
        ),
        ("meta", np.array(json.dumps({"config": [1]})), "'meta' config must be a JSON object"),
        ("meta", np.array([1, 2]), "'meta' must be one text string"),
    ],
    ids=[
        "spec of two strings",
        "spec a number",
        "meta a list",
        "class names a string",
        "nine class names",
        "config a list",
        "meta numbers",
    ],
)
def test_spec_and_meta_of_the_wrong_type_are_refused(tmp_path, name, value, message):
    path = altered(good_model(tmp_path / "m.npz"), **{name: value})
    with pytest.raises(ModelFileError, match=message):
        load_model(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e300])
def test_weights_that_are_not_finite_are_refused(tmp_path, bad):
    path = good_model(tmp_path / "m.npz")
    weights = arrays_of(path)["param.3.W"].astype(np.float64)
    weights[0, :3] = bad  # 1e300 is finite in float64 but infinite as float32
    altered(path, **{"param.3.W": weights})
    with pytest.raises(ModelFileError, match=r"param\.3\.W holds 3 NaN or infinite value"):
        load_model(path)


def test_an_output_layer_that_is_not_ten_classes_is_refused(tmp_path):
    three = Model(spec_from_config(TrainConfig(), n_classes=3)).save(tmp_path / "m.npz")
    with pytest.raises(ModelFileError, match=r"output layer gives \(3,\) values .* \(10,\)"):
        load_model(three)


def test_only_a_pickle_is_called_one(tmp_path):
    noise = tmp_path / "noise.npz"
    noise.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(ModelFileError, match=r"noise\.npz is not a model file \(not an \.npz"):
        load_model(noise)
    single = tmp_path / "single.npz"
    np.save(single.with_suffix(".npy"), np.zeros(3))
    single.with_suffix(".npy").rename(single)
    with pytest.raises(ModelFileError, match=r"single NumPy array \(\.npy\), not a model file"):
        load_model(single)
    pickled = tmp_path / "pickled.npz"
    pickled.write_bytes(pickle.dumps({"weights": [1, 2, 3]}, protocol=4))
    with pytest.raises(ModelFileError, match="contains pickled Python objects"):
        load_model(pickled)


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    os.mkfifo(tmp_path / "pipe.npz")
    outcome: list[BaseException] = []

    def load() -> None:
        try:
            load_model(tmp_path / "pipe.npz")
        except BaseException as exc:
            outcome.append(exc)

    reader = threading.Thread(target=load, daemon=True)  # opening a FIFO would block it forever
    reader.start()
    reader.join(timeout=5)
    assert outcome, "load_model was still waiting on the FIFO after 5 s"
    assert isinstance(outcome[0], ModelFileError)
    assert "is a FIFO (named pipe), not a model file" in str(outcome[0])


def test_a_good_file_still_loads_with_its_metadata(tmp_path):
    model, meta = load_model(good_model(tmp_path / "m.npz"))
    assert model.n_classes == 10 and meta == {"class_names": DIGITS}


def list_meta(folder: Path) -> Path:
    return altered(good_model(folder / "m.npz"), meta=np.array("[1, 2]"))


def nan_weights(folder: Path) -> Path:
    return altered(good_model(folder / "m.npz"), **{"param.1.b": np.full(128, np.nan, "f4")})


def three_outputs(folder: Path) -> Path:
    return Model(spec_from_config(TrainConfig(), n_classes=3)).save(folder / "m.npz")


def string_weights(folder: Path) -> Path:
    return altered(good_model(folder / "m.npz"), **{"param.1.W": np.array("x")})


def random_bytes(folder: Path) -> Path:
    path = folder / "m.npz"
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    return path


def huge_spec(folder: Path) -> Path:
    spec = spec_from_config(TrainConfig(hidden=[10**9]))
    return altered(good_model(folder / "m.npz"), spec=np.array(json.dumps(spec)))


# Each bad file's maker, and what the CLI's one line must say about it.
BAD_FILES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "list meta": (list_meta, "'meta' must be a JSON object, got list"),
    "NaN weights": (nan_weights, "param.1.b holds 128 NaN or infinite value(s)"),
    "three outputs": (three_outputs, "its output layer gives (3,) values"),
    "string weights": (string_weights, "param.1.W holds <U1 values; weights must be"),
    "random bytes": (random_bytes, "is not a model file (not an .npz archive)"),
    "huge spec": (huge_spec, "units must be a whole number from 1 to 8192, got 1000000000"),
}


@pytest.mark.parametrize("command", ["predict", "evaluate"])
@pytest.mark.parametrize("bad", list(BAD_FILES))
def test_the_cli_refuses_each_bad_model_in_one_line(tmp_path, bad, command):
    make, message = BAD_FILES[bad]
    path = make(tmp_path)
    image = tmp_path / "digit.png"
    Image.new("L", (28, 28), 255).save(image)
    args = [command, str(path)] + ([str(image)] if command == "predict" else [])
    result = cli(*args)
    assert result.returncode == 2, result
    assert_no_traceback(result)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"python -m core {command}: error: "), lines
    assert str(path) in lines[0] and message in lines[0] and result.stdout == ""


def test_the_cli_refuses_the_bomb_in_one_line_at_once(bomb):
    start = time.monotonic()
    result = cli("evaluate", str(bomb))
    assert result.returncode == 2 and "alone declares 4.0 GiB" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert time.monotonic() - start < 10  # Python's start-up included; inflating took 28 s
