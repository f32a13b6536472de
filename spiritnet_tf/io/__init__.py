"""Input and output: the one image loader, the one output writer and the weights rules
(`spiritnet_tf.io.weights`: the file check and every loading rule; docs/design.md §2, §7, §8).

The names below are their modules' own (`images.__all__` but its range check, two weights
names, the writers'); the weights and writers names load their module on first use."""

from spiritnet_tf.io.images import __all__ as _images_all
from spiritnet_tf.lazy import lazy_names

_OWNER = {
    **dict.fromkeys((n for n in _images_all if n not in ("UNIT_RANGE_TOLERANCE", "check_unit_range")),
                    f"{__name__}.images"),
    **dict.fromkeys(("WeightsFileError", "check_weights_file"), f"{__name__}.weights"),
    **dict.fromkeys(("LOOP_MODES", "SUPPORTED_OUTPUTS", "AnimationWriter", "apply_loop", "output_format",
                     "output_conflict", "check_output_parent", "default_mode", "to_uint8",
                     "write_animation", "write_image", "flow_to_rgb", "depth_to_rgb", "contact_sheet"),
                    f"{__name__}.writers"),
}

__all__ = list(_OWNER)

__getattr__, __dir__ = lazy_names(__name__, _OWNER)
