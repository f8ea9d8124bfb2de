"""The network's layers: each owns its parameters and implements `forward` and `backward`.

    base.py       the Layer interface, the in-place gradient contract, `from_config`, and
                  Share / Exchange, for the parts of a batch Model splits across threads
    dense.py      Dense, ReLU, LeakyReLU, Tanh, Sigmoid, Flatten, Dropout
    batchnorm.py  BatchNorm
    conv.py       Conv2D and MaxPool2D, each splitting a batch over two cores

One rule binds them all (base.py says why): `backward` writes every gradient into
`grads[name]` in place and never rebinds it, because after a model is built those arrays
are views into its flat gradient buffers, the ones the optimizer reads.
"""

from .base import F32, Exchange, Layer, Shape, Share, from_config
from .batchnorm import BatchNorm
from .conv import Conv2D, MaxPool2D
from .dense import Dense, Dropout, Flatten, LeakyReLU, ReLU, Sigmoid, Tanh

__all__ = [
    "F32",
    "BatchNorm",
    "Conv2D",
    "Dense",
    "Dropout",
    "Exchange",
    "Flatten",
    "Layer",
    "LeakyReLU",
    "MaxPool2D",
    "ReLU",
    "Shape",
    "Share",
    "Sigmoid",
    "Tanh",
    "from_config",
]
