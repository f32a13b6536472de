"""Shared test set-up: quiet TensorFlow logs, the compiled op library, GPU marker."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402


def pytest_collection_modifyitems(config, items):
    if tf.config.list_physical_devices("GPU"):
        return
    skip = pytest.mark.skip(
        reason="no GPU visible to TensorFlow (no machine of this project can run TF on a GPU)"
    )
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def warp_library():
    """The compiled adaptive-warp op module. `make test` builds it, so it must load."""
    from spiritnet_tf.ops import warp as aw

    library = aw.load_library()
    assert library is not None, f"compiled op missing: {aw._load_error}. Run `make ops`."
    return library
