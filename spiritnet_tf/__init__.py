"""spiritnet-tf: turn one still photo into a short living animation (SpiritNet).

Contracts (flow direction, ranges, shapes) are written in docs/design.md of the
repository and in the docstrings of the functions that own them.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402

if keras.backend.backend() != "tensorflow":
    raise ImportError(
        "spiritnet_tf needs the TensorFlow Keras backend, but Keras is using "
        f"{keras.backend.backend()!r}. Set KERAS_BACKEND=tensorflow before importing keras "
        "(or in ~/.keras/keras.json)."
    )

from spiritnet_tf import depth, layers, ops  # noqa: E402
from spiritnet_tf.animation import Animation, animate  # noqa: E402
from spiritnet_tf.model import SpiritNet  # noqa: E402

__version__ = "0.1.0"
__all__ = ["SpiritNet", "animate", "Animation", "depth", "layers", "ops", "__version__"]
