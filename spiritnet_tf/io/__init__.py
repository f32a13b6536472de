"""Input and output: the one image loader, the one output writer and the weights rules
(`spiritnet_tf.io.weights`: the file check and every loading rule; docs/design.md §2, §7, §8)."""

from spiritnet_tf.io.images import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_SIDE,
    ImageInputError,
    load_depth_map,
    load_image,
    load_mask,
    PHOTO_EXTENSIONS,
    check_image,
    resize_to_working_side,
    working_size,
)
from spiritnet_tf.io.weights import WeightsFileError, check_weights_file
from spiritnet_tf.io.writers import (
    LOOP_MODES,
    SUPPORTED_OUTPUTS,
    AnimationWriter,
    apply_loop,
    depth_to_rgb,
    flow_to_rgb,
    check_output_parent,
    default_mode,
    output_conflict,
    output_format,
    to_uint8,
    write_animation,
    write_image,
)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MIN_SIDE",
    "ImageInputError",
    "load_image",
    "load_depth_map",
    "load_mask",
    "working_size",
    "resize_to_working_side",
    "PHOTO_EXTENSIONS",
    "check_image",
    "WeightsFileError",
    "check_weights_file",
    "LOOP_MODES",
    "SUPPORTED_OUTPUTS",
    "AnimationWriter",
    "apply_loop",
    "output_format",
    "output_conflict",
    "check_output_parent",
    "default_mode",
    "to_uint8",
    "write_animation",
    "write_image",
    "flow_to_rgb",
    "depth_to_rgb",
]
