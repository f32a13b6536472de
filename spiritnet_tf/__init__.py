"""spiritnet-tf: turn one still photo into a short living animation (SpiritNet).

Contracts (flow direction, ranges, shapes) are written in docs/design.md of the repository
and in the docstrings of the functions that own them.

Importing the package is cheap: TensorFlow and Keras are imported on first use of
`SpiritNet`, `animate`, `Animation`, `depth`, `layers` or `ops` (PEP 562 module
``__getattr__``), so ``spiritnet --help`` answers without loading them. The Keras
backend is checked at that first use (`require_tensorflow_backend`).
"""

import importlib
import os

# Before anything imports keras: this package is written for the TensorFlow backend.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"
__all__ = ["SpiritNet", "animate", "Animation", "depth", "layers", "ops", "__version__",
           "require_tensorflow_backend"]

# name -> (module, attribute or None for the module itself)
_LAZY = {
    "SpiritNet": ("spiritnet_tf.model", "SpiritNet"),
    "animate": ("spiritnet_tf.animation", "animate"),
    "Animation": ("spiritnet_tf.animation", "Animation"),
    "depth": ("spiritnet_tf.depth", None),
    "layers": ("spiritnet_tf.layers", None),
    "ops": ("spiritnet_tf.ops", None),
}


def require_tensorflow_backend():
    """Imports Keras and raises ImportError unless it runs on the TensorFlow backend.

    Called on first use of the package's Keras parts (the lazy attributes above, and
    `spiritnet_tf.layers` / `spiritnet_tf.depth` when they are imported).
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ImportError(
            "spiritnet_tf needs the TensorFlow Keras backend, but Keras is using "
            f"{keras.backend.backend()!r}. Set KERAS_BACKEND=tensorflow before importing keras "
            "(or in ~/.keras/keras.json)."
        )
    _cache_keras_skipsets()


def _cache_keras_skipsets():
    """Makes Keras' saving remember the attribute skip-set of each object type.

    Keras 3.15's ``saving_lib.get_attr_skipset`` stores its result under the key
    ``saving_attr_skipset_<type>`` but looks it up under ``saving_attr_skiplist_<type>``,
    so it never finds it: each of the ~400 objects that ``load_weights`` and
    ``save_weights`` visit in a SpiritNet builds a throwaway ``Layer()`` (a third of
    ``load_weights``' time for the bundled weights). The set depends on the type alone,
    so a cache of the function is what Keras meant; a no-op where the function is gone."""
    import functools

    from keras.src.saving import saving_lib

    skipset = getattr(saving_lib, "get_attr_skipset", None)
    if skipset is not None and not hasattr(skipset, "cache_info"):
        saving_lib.get_attr_skipset = functools.cache(skipset)


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'spiritnet_tf' has no attribute {name!r}")
    require_tensorflow_backend()
    module_name, attribute = _LAZY[name]
    value = importlib.import_module(module_name)
    if attribute is not None:
        value = getattr(value, attribute)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
