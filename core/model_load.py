"""Loading a model file, which may come from anyone: everything is checked before use.

Every size is checked before it is allocated or inflated (no zip bomb inflates), the
spec must build within the limits a training config has, weights must be finite
floating-point arrays of exactly the shapes the spec gives, and nothing is unpickled.
"""

from __future__ import annotations

import json
import math
import os
import pickletools
import stat
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.lib import format as npy

from .config import byte_size
from .data import file_kind
from .model import (
    F32,
    INITS,
    INPUT_SHAPE,
    MAX_UNITS,
    N_CLASSES,
    PADDINGS,
    LayerPlan,
    Model,
    ModelFileError,
    plan_arrays,
    spec_plan,
)

MAX_MODEL_BYTES = 2 * 2**30  # a model file's arrays, uncompressed (512 million float32 weights)
MAX_TEXT_BYTES = 4 * 2**20  # its 'spec' and 'meta' texts, stored as UTF-32
MAX_LAYERS = 100  # a config's largest network has 66
_CHUNK = 16 * 2**20  # bytes inflated at a time while reading an array


Rule = Callable[[Any], str | None]  # a problem with a layer setting's value, or None


def _whole(low: int, high: int) -> Rule:
    def rule(value: Any) -> str | None:
        ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
        return None if ok else f"must be a whole number from {low} to {high}, got {value!r}"

    return rule


def _number(low: float, high: float, high_included: bool = True) -> Rule:
    def rule(value: Any) -> str | None:
        ok = (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and low <= value
            and (value <= high if high_included else value < high)
        )
        bracket = "]" if high_included else ")"
        return None if ok else f"must be a number in [{low}, {high}{bracket}, got {value!r}"

    return rule


def _one_of(options: tuple[str, ...]) -> Rule:
    def rule(value: Any) -> str | None:
        return None if value in options else f"must be one of {', '.join(options)}, got {value!r}"

    return rule


# The settings each layer type accepts in a model file, and their allowed values: the
# limits a config has too (core/model.py), so a file cannot ask for more than training can make.
LAYER_SETTINGS: dict[str, dict[str, Rule]] = {
    "dense": {"units": _whole(1, MAX_UNITS), "init": _one_of(INITS)},
    "conv2d": {
        "filters": _whole(1, MAX_UNITS),
        "kernel_size": _whole(1, INPUT_SHAPE[0]),
        "padding": _one_of(PADDINGS),
        "init": _one_of(INITS),
    },
    "maxpool2d": {"pool_size": _whole(1, INPUT_SHAPE[0])},
    "dropout": {"rate": _number(0, 1, high_included=False)},
    "batchnorm": {"momentum": _number(0, 1), "eps": _number(1e-12, 1)},
    "leaky_relu": {"alpha": _number(0, 1)},
    "relu": {},
    "tanh": {},
    "sigmoid": {},
    "flatten": {},
}


def check_spec(spec: Any) -> list[LayerPlan]:
    """The plan of an untrusted spec (from a file), or ValueError naming what is wrong.

    Beyond building, it must take 28x28x1 images, stay within a config's limits, hold at
    most MAX_MODEL_BYTES of weights and end in N_CLASSES outputs.
    """
    if not isinstance(spec, dict) or not isinstance(spec.get("layers"), list):
        raise ValueError("it must be a JSON object with a list of 'layers'")
    shape = spec.get("input_shape")
    # JSON's 28.0 and true compare equal to 28 and 1 but are not sizes.
    if shape != list(INPUT_SHAPE) or any(type(n) is not int for n in shape):
        raise ValueError(f"input_shape must be {list(INPUT_SHAPE)}, got {shape!r}")
    layers = spec["layers"]
    if not 1 <= len(layers) <= MAX_LAYERS:
        raise ValueError(f"it must have 1 to {MAX_LAYERS} layers, got {len(layers)}")
    for i, layer in enumerate(layers):
        kind = layer.get("type") if isinstance(layer, dict) else None
        if not isinstance(kind, str) or kind not in LAYER_SETTINGS:
            raise ValueError(f"layer {i} has an unknown type {kind!r}")
        for name, value in layer.items():
            if name == "type":
                continue
            if name not in LAYER_SETTINGS[kind]:
                raise ValueError(f"layer {i} ({kind}) has an unknown setting {name!r}")
            problem = LAYER_SETTINGS[kind][name](value)
            if problem:
                raise ValueError(f"layer {i} ({kind}): {name} {problem}")
    plan = spec_plan(spec)
    n_params = sum(math.prod(shape) for shape in plan_arrays(plan).values())
    if n_params * 4 > MAX_MODEL_BYTES:
        raise ValueError(
            f"it has {n_params:,} weights ({byte_size(n_params * 4)}), over the "
            f"{byte_size(MAX_MODEL_BYTES)} limit of a model file"
        )
    if plan[-1].output_shape != (N_CLASSES,):
        raise ValueError(
            f"its output layer gives {plan[-1].output_shape} values but a model here needs "
            f"({N_CLASSES},): one per class"
        )
    return plan


@dataclass
class _Member:
    """One array of a model file as its .npy header declares it, before its data is read."""

    info: zipfile.ZipInfo
    shape: tuple[int, ...]
    fortran_order: bool
    dtype: np.dtype
    offset: int  # bytes of .npy header before the data


def _member_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> _Member:
    """Read and check one member's .npy header: only a few hundred bytes are inflated."""
    key = info.filename[:-4]
    with archive.open(info) as stream:
        try:
            version = npy.read_magic(stream)
            if version == (1, 0):
                shape, fortran_order, dtype = npy.read_array_header_1_0(stream)
            elif version == (2, 0):
                shape, fortran_order, dtype = npy.read_array_header_2_0(stream)
            else:
                raise ValueError(f"unsupported .npy version {version}")
        except (ValueError, TypeError) as exc:
            raise ModelFileError(f"{where}: {key} has no valid array header ({exc})") from exc
        offset = stream.tell()
    if dtype.hasobject:
        raise ModelFileError(
            f"{where} contains pickled Python objects ({key}); model files hold only arrays, "
            "so it was refused"
        )
    n_bytes = math.prod(shape) * dtype.itemsize
    if offset + n_bytes != info.file_size:
        raise ModelFileError(
            f"{where}: {key} declares shape {shape} of {dtype} ({byte_size(n_bytes)}) but holds "
            f"{byte_size(info.file_size - offset)}; the file is corrupt"
        )
    return _Member(info, shape, fortran_order, dtype, offset)


def _read_member(archive: zipfile.ZipFile, member: _Member, where: str) -> np.ndarray:
    """The array of a checked member, inflating exactly the bytes its header declared."""
    n_bytes = member.info.file_size - member.offset
    buffer = np.empty(n_bytes, np.uint8)
    view = memoryview(buffer)
    with archive.open(member.info) as stream:
        stream.read(member.offset)
        got = 0
        while got < n_bytes:
            chunk = stream.read(min(_CHUNK, n_bytes - got))
            if not chunk:
                break
            view[got : got + len(chunk)] = chunk
            got += len(chunk)
        if got < n_bytes or stream.read(1):  # reading to the end also checks the CRC
            raise ModelFileError(f"{where}: {member.info.filename[:-4]} is truncated or corrupt")
    if member.dtype.itemsize == 0:
        return np.zeros(member.shape, member.dtype)
    order = "F" if member.fortran_order else "C"
    return buffer.view(member.dtype).reshape(member.shape, order=order)


def _read_json(archive: zipfile.ZipFile, member: _Member, where: str) -> Any:
    """The JSON text of a 'spec' or 'meta' member, which must be one unicode string."""
    key = member.info.filename[:-4]
    if member.dtype.kind != "U" or member.shape != ():
        raise ModelFileError(
            f"{where}: '{key}' must be one text string, got an array of {member.dtype} "
            f"with shape {member.shape}"
        )
    if member.info.file_size > MAX_TEXT_BYTES:
        raise ModelFileError(
            f"{where}: '{key}' is {byte_size(member.info.file_size)}, over the "
            f"{byte_size(MAX_TEXT_BYTES)} limit"
        )
    try:
        return json.loads(str(_read_member(archive, member, where)[()]))
    except (ValueError, RecursionError) as exc:
        raise ModelFileError(f"{where}: '{key}' is not valid JSON ({exc})") from exc


def _not_a_zip(path: Path, stream: IO[bytes]) -> ModelFileError:
    """The error for a file that is not a zip archive, saying what it is when that is known."""
    stream.seek(0)
    head = stream.read(8)
    if head.startswith(b"\x80") and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        stream.seek(0)
        try:
            for _ in pickletools.genops(stream):  # parses opcodes, runs nothing
                pass
        except Exception:  # whatever genops trips on, the bytes are not one whole pickle
            pass
        else:
            return ModelFileError(
                f"{path} contains pickled Python objects; model files hold only arrays, "
                "so it was refused"
            )
    if head.startswith(b"\x93NUMPY"):
        return ModelFileError(f"{path} is a single NumPy array (.npy), not a model file (.npz)")
    return ModelFileError(f"{path} is not a model file (not an .npz archive)")


def load_model(path: str | Path) -> tuple[Model, dict[str, Any]]:
    """Read a model written by `Model.save`; returns (model, metadata). Never unpickles.

    Every size is checked before it is allocated or inflated, so no file can make it use
    more than about MAX_MODEL_BYTES; any fault raises ModelFileError with a one-line message.
    """
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ModelFileError(f"{path} does not exist") from None
    except OSError as exc:
        raise ModelFileError(f"{path} cannot be read ({exc.strerror})") from exc
    if not stat.S_ISREG(info.st_mode):  # opening a FIFO would wait forever
        raise ModelFileError(f"{path} is {file_kind(info.st_mode)}, not a model file")
    if info.st_size > MAX_MODEL_BYTES + MAX_TEXT_BYTES:
        raise ModelFileError(f"{path} is {byte_size(info.st_size)}, too large to be a model file")
    try:
        with open(path, "rb") as stream:
            if not stream.read(2) == b"PK":  # every zip archive starts so, even a broken one
                raise _not_a_zip(path, stream)
            stream.seek(0)
            with zipfile.ZipFile(stream) as archive:
                return _load_archive(archive, path)
    except (OSError, EOFError, zipfile.BadZipFile, NotImplementedError, RuntimeError) as exc:
        # RuntimeError and NotImplementedError: zipfile's words for encryption and for an
        # unknown compression method.
        raise ModelFileError(f"{path} is not a readable model file ({exc})") from exc


def _load_archive(archive: zipfile.ZipFile, path: Path) -> tuple[Model, dict[str, Any]]:
    members: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in archive.infolist():
        key = info.filename[:-4]
        if not info.filename.endswith(".npy") or key in members:
            raise ModelFileError(
                f"{path} is not a model file: it holds {info.filename!r}, which is not an "
                "array or is there twice"
            )
        if info.flag_bits & 0x1:
            raise ModelFileError(f"{path} is encrypted; model files are not")
        total += info.file_size
        if total > MAX_MODEL_BYTES + MAX_TEXT_BYTES:
            raise ModelFileError(
                f"{path} would inflate to more than {byte_size(MAX_MODEL_BYTES)} "
                f"({info.filename} alone declares {byte_size(info.file_size)}); it was refused"
            )
        members[key] = info
    if "spec" not in members:
        raise ModelFileError(f"{path} has no architecture ('spec'); is it a model file?")
    spec = _read_json(archive, _member_header(archive, members.pop("spec"), str(path)), str(path))
    try:
        plan = check_spec(spec)
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelFileError(f"{path} has an invalid architecture ({exc})") from exc
    meta: Any = {}
    if "meta" in members:
        header = _member_header(archive, members.pop("meta"), str(path))
        meta = _read_json(archive, header, str(path))
    _check_meta(meta, path)

    expected = plan_arrays(plan)
    missing, extra = sorted(set(expected) - set(members)), sorted(set(members) - set(expected))
    if missing or extra:
        raise ModelFileError(
            f"{path}: the weights do not fit this architecture (missing: {missing[:3]}, "
            f"unexpected: {extra[:3]})"
        )
    headers = {key: _member_header(archive, info, str(path)) for key, info in members.items()}
    for key, header in headers.items():
        if header.dtype.kind != "f":
            raise ModelFileError(
                f"{path}: {key} holds {header.dtype} values; weights must be floating-point"
            )
        if header.shape != expected[key]:
            raise ModelFileError(
                f"{path}: {key} has shape {header.shape} but the architecture needs {expected[key]}"
            )
    weights = {}
    for key, header in headers.items():
        with np.errstate(over="ignore"):  # a float64 beyond float32's range becomes inf: refused
            weights[key] = _read_member(archive, header, str(path)).astype(F32)
        bad = weights[key].size - np.count_nonzero(np.isfinite(weights[key]))
        if bad:
            raise ModelFileError(
                f"{path}: {key} holds {bad:,} NaN or infinite value(s); the file is corrupt"
            )
    model = Model(spec)
    model.set_weights(weights)
    return model, meta


def _check_meta(meta: Any, path: Path) -> None:
    """ModelFileError unless the metadata is an object whose known keys have usable values."""
    if not isinstance(meta, dict):
        raise ModelFileError(f"{path}: 'meta' must be a JSON object, got {type(meta).__name__}")
    names = meta.get("class_names")
    if names is not None and (
        not isinstance(names, list)
        or len(names) != N_CLASSES
        or not all(isinstance(name, str) for name in names)
    ):
        raise ModelFileError(
            f"{path}: 'meta' class_names must list {N_CLASSES} names, one per output, "
            f"got {str(names)[:80]}"
        )
    if not isinstance(meta.get("config", {}), dict):
        raise ModelFileError(f"{path}: 'meta' config must be a JSON object")
