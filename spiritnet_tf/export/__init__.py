"""Export for production (docs/design.md §6): `savedmodel` (TF Serving: a versioned
SavedModel with ``serving_default``, ``encoded`` and ``animate_tensor``) and `mobile`
(fixed-size TFLite and ONNX files). The scripts in the repository's ``export/`` folder
are thin command-line callers. The names below load their module (and TensorFlow) on
first use."""

from spiritnet_tf.lazy import lazy_names

_OWNER = {
    **dict.fromkeys(("SpiritNetServable", "export_savedmodel"), f"{__name__}.savedmodel"),
    **dict.fromkeys(("export_tflite", "export_onnx", "mobile_function", "initial_flow",
                     "tflite_operators"), f"{__name__}.mobile"),
}

__all__ = sorted(_OWNER)

__getattr__, __dir__ = lazy_names(__name__, _OWNER)
