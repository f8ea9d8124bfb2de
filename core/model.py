"""A sequential model built from a declarative spec, and its `.npz` file format.

A spec is plain JSON: {"input_shape": [28, 28, 1], "layers": [{"type": "dense",
"units": 128}, ...]}. The same spec and seed give the same weights, and a saved
model is the spec plus its arrays, so it is rebuilt exactly and loads without pickle.
"""

from __future__ import annotations

import json
import math
import os
import pickletools
import secrets
import stat
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.lib import format as npy

from . import layers as L
from .config import INITS, MAX_UNITS, PADDINGS, TrainConfig, byte_size
from .data import file_kind
from .losses import softmax, softmax_cross_entropy
from .optimizers import Param

F32 = np.float32
INPUT_SHAPE = (28, 28, 1)
N_CLASSES = 10  # every dataset here has ten classes, so every model has ten outputs
MAX_MODEL_BYTES = 2 * 2**30  # a model file's arrays, uncompressed (512 million float32 weights)
MAX_TEXT_BYTES = 4 * 2**20  # its 'spec' and 'meta' texts, stored as UTF-32
MAX_LAYERS = 100  # a config's largest network has 66
_CHUNK = 16 * 2**20  # bytes inflated at a time while reading an array


class ModelFileError(Exception):
    """A model file is missing, corrupt, or does not match its own architecture."""


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


def spec_from_config(cfg: TrainConfig, n_classes: int = 10) -> dict[str, Any]:
    """The layer list for a training config's architecture settings."""
    layers: list[dict[str, Any]] = []

    def activation() -> None:
        if cfg.batchnorm:
            layers.append({"type": "batchnorm"})
        layers.append({"type": cfg.activation})

    if cfg.arch == "cnn":
        for filters in cfg.conv:
            layers.append(
                {
                    "type": "conv2d",
                    "filters": filters,
                    "kernel_size": cfg.kernel_size,
                    "padding": cfg.padding,
                    "init": cfg.init,
                }
            )
            # Pooling straight after the convolution leaves batch norm and the activation
            # a quarter of the numbers. The activation commutes with max (every one here is
            # increasing); batch norm does not when γ < 0, so this normalizes the pooled
            # maxima, a common choice that trains as well (see the README's results).
            layers.append({"type": "maxpool2d", "pool_size": 2})
            activation()
    layers.append({"type": "flatten"})
    for units in cfg.hidden:
        layers.append({"type": "dense", "units": units, "init": cfg.init})
        activation()
        if cfg.dropout > 0:
            layers.append({"type": "dropout", "rate": cfg.dropout})
    layers.append({"type": "dense", "units": n_classes, "init": "lecun"})
    return {"input_shape": list(INPUT_SHAPE), "layers": layers}


class Model:
    """Layers applied in order; the last one's outputs are the logits of a softmax."""

    def __init__(self, spec: dict[str, Any], seed: int = 0) -> None:
        self.spec = json.loads(json.dumps(spec))  # a private, JSON-clean copy
        rng = np.random.default_rng(seed)
        self.layers = [L.from_config(s) for s in self.spec["layers"]]
        shape = tuple(self.spec["input_shape"])
        self.shapes = [shape]
        for layer in self.layers:
            shape = layer.build(shape, rng)
            self.shapes.append(shape)
        self._collect_params()
        # Layers up to the first one with parameters need no input gradient.
        with_params = [i for i, layer in enumerate(self.layers) if layer.params]
        self._first_trainable = with_params[0] if with_params else len(self.layers)

    def _collect_params(self) -> None:
        """Move all parameters into two flat buffers (with and without weight decay).

        Each layer keeps views into them, so an optimizer updates the whole model in one
        vectorized pass per buffer instead of one small pass per array.
        """
        groups: dict[bool, list[tuple[L.Layer, str]]] = {True: [], False: []}
        for layer in self.layers:
            for name in layer.params:
                groups[name in layer.decayed].append((layer, name))
        self.params = []
        for decay, members in groups.items():
            if not members:
                continue
            values = np.concatenate([layer.params[name].ravel() for layer, name in members])
            grads = np.zeros_like(values)
            offset = 0
            for layer, name in members:
                shape, size = layer.params[name].shape, layer.params[name].size
                layer.params[name] = values[offset : offset + size].reshape(shape)
                layer.grads[name] = grads[offset : offset + size].reshape(shape)
                offset += size
            self.params.append(Param(values, grads, decay))

    def astype(self, dtype: type) -> Model:
        """Convert every array to `dtype` in place (float64 serves the gradient checks)."""
        for layer in self.layers:
            for arrays in (layer.params, layer.grads, layer.state):
                for name, value in arrays.items():
                    arrays[name] = value.astype(dtype)
        self._collect_params()
        return self

    @property
    def n_classes(self) -> int:
        return self.shapes[-1][0]

    @property
    def n_params(self) -> int:
        return sum(p.value.size for p in self.params)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    def backward(self, dlogits: np.ndarray) -> None:
        """Fill every layer's `grads` from dLoss/dlogits."""
        dy = dlogits
        for i in range(len(self.layers) - 1, self._first_trainable - 1, -1):
            dy = self.layers[i].backward(dy, need_dx=i > self._first_trainable)

    def loss_and_grads(self, x: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
        """One training forward and backward pass; returns the mean loss and the logits."""
        logits = self.forward(x, training=True)
        loss, dlogits = softmax_cross_entropy(logits, labels)
        self.backward(dlogits)
        return loss, logits

    def predict_proba(self, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
        """Class probabilities for float32 inputs (N, 28, 28, 1), in evaluation mode."""
        return (
            np.concatenate(
                [softmax(self.forward(x[i : i + batch_size])) for i in range(0, len(x), batch_size)]
            )
            if len(x)
            else np.zeros((0, self.n_classes), F32)
        )

    def activations(self, x: np.ndarray) -> list[np.ndarray]:
        """Every layer's output for inputs `x` in evaluation mode (the last is the logits)."""
        outs = []
        for layer in self.layers:
            x = layer.forward(x, training=False)
            outs.append(x)
        return outs

    def get_weights(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and state array, keyed as in the saved file."""
        return {key: value.copy() for key, value in self._arrays().items()}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Load arrays from `get_weights()` or a file into the layers, checking every shape."""
        expected = self._arrays()
        missing = sorted(set(expected) - set(weights))
        extra = sorted(set(weights) - set(expected))
        if missing or extra:
            raise ModelFileError(
                f"the weights do not fit this architecture (missing: {missing[:3]}, "
                f"unexpected: {extra[:3]})"
            )
        for key, target in expected.items():
            value = weights[key]
            if value.shape != target.shape:
                raise ModelFileError(
                    f"{key} has shape {value.shape} but the architecture needs {target.shape}"
                )
            target[...] = value

    def _arrays(self) -> dict[str, np.ndarray]:
        out = {}
        for i, layer in enumerate(self.layers):
            for group, arrays in (("param", layer.params), ("state", layer.state)):
                for name, value in arrays.items():
                    out[f"{group}.{i}.{name}"] = value
        return out

    def save(self, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
        """Write spec, metadata and weights to one `.npz`, atomically (temp file, then rename).

        It only ever replaces a regular file: anything else at `path` (a folder, a device, a
        FIFO, a link) raises OutputPathError, checked before writing and again before renaming.
        """
        path = Path(path)
        _refuse_non_regular(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {
            "spec": np.array(json.dumps(self.spec)),
            "meta": np.array(json.dumps(meta or {})),
            **self._arrays(),
        }
        fd, tmp = _create_temp(path)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            # Something else may have appeared at `path` while the file was written.
            _refuse_non_regular(path)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return path


@dataclass
class LayerPlan:
    """One layer of a spec: its shapes and the arrays `build` would give it, none allocated."""

    layer: L.Layer
    input_shape: L.Shape
    output_shape: L.Shape
    params: dict[str, L.Shape]
    state: dict[str, L.Shape]


def spec_plan(spec: dict[str, Any]) -> list[LayerPlan]:
    """Every layer of `spec` with its shapes, from a pure shape pass that allocates nothing.

    Raises ValueError (or KeyError / TypeError for a malformed layer) if the spec does not build.
    """
    shape = tuple(spec["input_shape"])
    plan = []
    for config in spec["layers"]:
        layer = L.from_config(config)
        out = layer.output_shape(shape)
        plan.append(LayerPlan(layer, shape, out, layer.param_shapes(shape),
                              layer.state_shapes(shape)))  # fmt: skip
        shape = out
    return plan


def plan_arrays(plan: list[LayerPlan]) -> dict[str, L.Shape]:
    """The shape of every array a model of this plan saves, keyed as in its file."""
    out = {}
    for i, step in enumerate(plan):
        for group, shapes in (("param", step.params), ("state", step.state)):
            for name, shape in shapes.items():
                out[f"{group}.{i}.{name}"] = shape
    return out


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
# limits a config has (core/config.py), so a file cannot ask for more than training can make.
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
