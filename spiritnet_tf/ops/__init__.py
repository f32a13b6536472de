"""Low-level TensorFlow ops of SpiritNet (the adaptive warp and its loader)."""

from spiritnet_tf.ops.warp import (
    adaptive_warp,
    adaptive_warp_composite,
    cpu_vector_path,
    lanczos_warp,
    load_library,
    use_backend,
    warp_backend,
)

__all__ = ["adaptive_warp", "adaptive_warp_composite", "cpu_vector_path", "lanczos_warp",
           "load_library", "use_backend", "warp_backend"]
