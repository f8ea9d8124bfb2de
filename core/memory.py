"""How much memory a training run needs, estimated from its config before it starts.

Validation (core/config.py) refuses a config whose estimate is beyond the memory the
machine has free, naming the setting most to blame.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .architecture import spec_from_config
from .model import INPUT_SHAPE, LayerPlan, spec_plan

# Only a type here: core/config.py imports this module to check a config's memory.
if TYPE_CHECKING:
    from .config import TrainConfig

EVAL_BATCH = 1000  # images per forward pass when predicting or evaluating (core/metrics.py)
PREFETCHED = 7  # training batches alive at once: 4 prefetched, 2 being made, 1 training


def available_memory() -> int | None:
    """Bytes of memory a new allocation can get without swapping (Linux's MemAvailable).

    None where /proc/meminfo does not say, e.g. on macOS: the memory check is then skipped.
    """
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _optimizer_buffers(cfg: TrainConfig) -> int:
    """Arrays the size of the weights that the optimizer keeps (core/optimizers.py)."""
    slots = {"sgd": 1 if cfg.momentum > 0 else 0, "adam": 2, "rmsprop": 1, "adagrad": 1}
    scratch, decayed_gradient = 1, 1 if cfg.weight_decay > 0 else 0
    return slots[cfg.optimizer] + scratch + decayed_gradient


def _held_per_image(step: LayerPlan, training: bool) -> float:
    """Floats per image a layer's forward pass allocates and keeps until its next one."""
    layer, kind = step.layer, step.layer.kind
    n_in, n_out = math.prod(step.input_shape), math.prod(step.output_shape)
    if kind == "conv2d":
        k, (out_h, out_w, _), channels = layer.kernel_size, step.output_shape, step.input_shape[-1]
        return n_out + out_h * out_w * (k * k * channels + 1)  # output and im2col columns
    if kind == "maxpool2d":
        return 1.25 * n_out + n_in / layer.pool_size / 4  # output and uint8 winners
    if kind == "batchnorm":
        return 2 * n_out  # centred inputs and output
    if kind == "dropout":
        return 2.25 * n_out if training and layer.rate > 0 else 0  # mask, bool, output
    if kind == "leaky_relu":
        return 1.25 * n_out
    if kind == "flatten":
        return 0  # a view
    return n_out  # dense and the other activations


def _transient_per_image(step: LayerPlan) -> float:
    """Floats per image a layer needs only briefly, in its forward or its backward pass."""
    n_in, n_out = math.prod(step.input_shape), math.prod(step.output_shape)
    if step.layer.kind == "conv2d":
        k = step.layer.kernel_size
        h, w, c = step.input_shape
        padded = (h + k - 1) * (w + k - 1) * c
        return n_out + 2 * padded  # its output gradient, the input gradient and one offset's
    return 2 * (n_in + n_out)  # output and input gradients and a temporary


def memory_parts(cfg: TrainConfig, train_pool: int) -> dict[str, int]:
    """What a training run of `cfg` needs at its peak, in bytes, in three parts; `peak` adds them.

    'weights': the weights with their gradients, two best-epoch copies and the optimizer's
    buffers. 'training': every layer's activations and what it keeps for backward (im2col
    columns, masks, batch-norm values) at the batch size, with the largest layer's
    gradients and the prefetched (and augmented) batches. 'evaluation': the forward pass
    over an evaluation batch of 1000 images (predict_proba, evaluate) while the training
    batch's arrays are still held. `train_pool` is the number of images in the training file.
    """
    plan = spec_plan(spec_from_config(cfg))
    n_params = sum(math.prod(shape) for step in plan for shape in step.params.values())
    # Values and gradients, the best epoch's copy and the next best's while it replaces it.
    weights = 4 * n_params * (4 + _optimizer_buffers(cfg))
    held_train = [_held_per_image(step, training=True) for step in plan]
    held_eval = [_held_per_image(step, training=False) for step in plan]
    transient = max(_transient_per_image(step) for step in plan)
    pixels = math.prod(INPUT_SHAPE)
    batch = cfg.batch_size
    per_epoch = math.ceil((cfg.train_size or train_pool - cfg.val_size) / batch)
    # Each of the two threads making batches holds about eight image-sized arrays (core/augment.py).
    making = min(2, per_epoch) * 8 * batch * pixels if cfg.augments else 0
    batches = min(PREFETCHED, per_epoch) * batch * pixels + making
    training = batch * (sum(held_train) + transient) + batches
    # An evaluation pass replaces each layer's training arrays only as it reaches that layer.
    evaluation = EVAL_BATCH * (pixels + transient) + max(
        EVAL_BATCH * sum(held_eval[: i + 1]) + batch * sum(held_train[i + 1 :])
        for i in range(len(plan))
    )
    return {"weights": weights, "training": 4 * int(training), "evaluation": 4 * int(evaluation)}


def peak(parts: dict[str, int]) -> int:
    """Training and evaluation take turns; the weights are there throughout."""
    return parts["weights"] + max(parts["training"], parts["evaluation"])
