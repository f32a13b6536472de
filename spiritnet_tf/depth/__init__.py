"""Depth for SpiritNet: the MegaDepth hourglass (Keras port), inverse depth, converter.

``MegaDepth`` predicts log depth from RGB; ``inverse_depth`` turns it into z (docs/design.md §2);
``spiritnet_tf.depth.convert`` loads the official PyTorch checkpoint's state dict.
"""

from spiritnet_tf import require_tensorflow_backend

require_tensorflow_backend()

from spiritnet_tf.depth.megadepth import (  # noqa: E402
    DEPTH_MAPPINGS,
    DEPTH_RANGE_FLOOR,
    PRESETS,
    HourglassLevel,
    InceptionBlock,
    MegaDepth,
    inverse_depth,
)

__all__ = ["MegaDepth", "InceptionBlock", "HourglassLevel", "inverse_depth", "PRESETS",
           "DEPTH_MAPPINGS", "DEPTH_RANGE_FLOOR"]
