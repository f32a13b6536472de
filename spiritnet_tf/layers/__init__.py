"""The per-stage layers of SpiritNet (docs/design.md §3.2-3.8), one module per stage.

Data path of one recurrent step: context (`ContextExtractor`), kernels
(`KernelEstimator`), next flow (`DAFI`, then `FlowFillHole`), warp
(`spiritnet_tf.ops.adaptive_warp`), next frame (`FrameSynthesis`). `DAFR` makes the
first flow. All are Keras layers registered under the package name "spiritnet".
"""

from spiritnet_tf import require_tensorflow_backend

require_tensorflow_backend()

from spiritnet_tf.layers.common import ResidualBlock  # noqa: E402
from spiritnet_tf.layers.context import ContextExtractor  # noqa: E402
from spiritnet_tf.layers.dafi import DAFI  # noqa: E402
from spiritnet_tf.layers.dafr import DAFR, DAFRConfig, TopKGapThresholds  # noqa: E402
from spiritnet_tf.layers.fill_hole import FlowFillHole  # noqa: E402
from spiritnet_tf.layers.kernels import BILINEAR_KERNEL, KernelEstimator  # noqa: E402
from spiritnet_tf.layers.synthesis import FrameSynthesis  # noqa: E402
from spiritnet_tf.layers.cell import SpiritNetCell, SpiritNetRNN  # noqa: E402  (uses the above)

__all__ = [
    "BILINEAR_KERNEL",
    "ContextExtractor",
    "DAFI",
    "DAFR",
    "DAFRConfig",
    "FlowFillHole",
    "FrameSynthesis",
    "KernelEstimator",
    "ResidualBlock",
    "SpiritNetCell",
    "SpiritNetRNN",
    "TopKGapThresholds",
]
