from __future__ import annotations

import numpy as np
import pytest

from core.data import Dataset, load_dataset
from core.presets import preset
from core.train import fit


@pytest.fixture(scope="session")
def mnist() -> Dataset:
    return load_dataset()


@pytest.fixture(scope="session")
def small_model_path(mnist, tmp_path_factory) -> str:
    """A model trained for a few seconds on 10,000 images (about 94 % accurate)."""
    cfg = preset("default").replace(train_size=10_000, epochs=3)
    result = fit(cfg, mnist)
    path = tmp_path_factory.mktemp("models") / "small.npz"
    result.model.save(path, meta={"config": cfg.to_dict(), "class_names": list("0123456789")})
    return str(path)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
