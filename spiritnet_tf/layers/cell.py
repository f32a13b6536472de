"""SpiritNetCell: one recurrent step of SpiritNet, and the RNN that runs it (docs/design.md §3.9).

One step maps (I_t, F_t) to (I_{t+1}, F_{t+1}):

    z_t = depth(I_t)          context C_t = context(I_t)      kernel K_t = kernels(I_t, z_t)
    F_init, holes = DAFI(F_t, z_t)
    F_{t+1} = fill_hole(F_init, holes, I_t, C_t, z_t) (+ control offset)
    I_{t+1} = synthesis(warp(I_t, F_{t+1}, K_t), warp(C_t, F_{t+1}, K_t), F_{t+1}, z_t)

Flows are backward (docs/design.md §2): ``I_{t+1}(x) ~ I_t(x + F_{t+1}(x))``. With
``resample_from="input"`` the cell instead composes ``G_{t+1} = F_{t+1} + G_t(x + F_{t+1}(x))``
(``G_t`` = flow from frame t back to the input, ``G_0 = 0``) and warps the *input* image
and its context with ``G_{t+1}``, so each frame is one resampling of the input.
"""

import keras
import tensorflow as tf

from spiritnet_tf.config import SpiritNetConfig
from spiritnet_tf.depth import MegaDepth, inverse_depth
from spiritnet_tf.layers.context import ContextExtractor
from spiritnet_tf.ops.flow import BILINEAR_KERNEL
from spiritnet_tf.layers.dafi import DAFI
from spiritnet_tf.layers.fill_hole import FlowFillHole
from spiritnet_tf.layers.kernels import KernelEstimator
from spiritnet_tf.layers.synthesis import FrameSynthesis
from spiritnet_tf.limits import MIN_INVERSE_DEPTH
from spiritnet_tf.ops import adaptive_warp

__all__ = ["SpiritNetCell", "SpiritNetRNN", "STATE_CHANNELS", "bilinear_kernel"]

# State tensors [B, H, W, c] in order: image I_t (3), flow F_t (2), source = input
# image I_0 (3), flow G_t back to the input (2; zeros with resample_from="previous"),
# aux (2): channel 0 = static mask (1 = static), channel 1 = inverse-depth override
# for this step (z in (0, 1]; 0 everywhere = estimate with the depth net). The
# override is consumed by the step that sees it (the model uses it for frame 0).
# With resample_from="input" a sixth state holds the context features of the input
# image (`ContextExtractor.output_channels`), computed once by the caller.
STATE_CHANNELS = (3, 2, 3, 2, 2)
# I_{t+1} (3), F_{t+1} (2) and the synthesis residual (3: I_{t+1} minus the adaptively
# warped image, zero on static pixels), concatenated; the residual is what full-resolution
# output adds to the upsampled motion (docs/design.md §6).
OUTPUT_CHANNELS = 8


def bilinear_kernel(like):
    """``[B, H, W, 16]`` kernel that makes `adaptive_warp` exact bilinear sampling."""
    taps = tf.constant(BILINEAR_KERNEL, like.dtype)
    return tf.zeros_like(like[..., :1]) + taps


@keras.saving.register_keras_serializable(package="spiritnet")
def depth_net_for(config):
    """A new, unbuilt depth net of a `SpiritNetConfig` (preset and width)."""
    options = {} if config.depth_width is None else {"width_multiplier": config.depth_width}
    return MegaDepth.from_preset(config.depth_preset, **options)


class SpiritNetCell(keras.layers.Layer):
    """One SpiritNet step, state ``[image, flow, source, source_flow, aux]`` (see `STATE_CHANNELS`),
    plus ``source_context`` (the input's context features) when ``resample_from="input"``.

    Args:
      config: `spiritnet_tf.config.SpiritNetConfig` (or its dict); architecture,
        ``resample_from`` and ``pretrained_depth`` (depth net then always runs in
        inference mode with its batch norms frozen: statistics and parameters fixed).

    Call:
      inputs: ``[B, control_dim]`` control vector of this step (zeros by default).
        It is mapped by a zero-initialised dense layer to a global flow offset
        (pixels) added to the predicted flow: the slot for the paper's
        "semantics state" future work; with zero controls it has no effect.
      states: list of tensors ``[B, H, W, c]`` (``state_size``): 5 with ``c`` =
        `STATE_CHANNELS`, a sixth = ``context(source)`` in "input" mode; images in
        [0, 1], flows backward in pixels; H, W multiples of 32.

    Returns:
      ``(output, new_states)``: output ``[B, H, W, 8]`` = concat(I_{t+1}, F_{t+1}, synthesis
      residual) (`OUTPUT_CHANNELS`).
      Static-mask pixels keep the input image and zero flow.
    """

    def __init__(self, config=None, **kwargs):
        super().__init__(**kwargs)
        self.config = config = SpiritNetConfig.coerce(config)
        self.output_size = (None, None, OUTPUT_CHANNELS)
        self.depth_net = depth_net_for(config)
        if config.pretrained_depth:
            self.depth_net.freeze_batch_norm()
        self.context = ContextExtractor(width=config.context_width)
        self.kernels = KernelEstimator(widths=config.kernel_widths)
        self.dafi = DAFI()
        self.fill_hole = FlowFillHole(
            width=config.fill_hole_width,
            num_blocks=config.fill_hole_blocks,
            iterations=config.fill_hole_iterations,
        )
        self.synthesis = FrameSynthesis(
            width=config.synthesis_width, num_blocks=config.synthesis_blocks
        )
        self.control = keras.layers.Dense(
            2, use_bias=False, kernel_initializer="zeros", name="control_to_flow"
        )
        channels = list(STATE_CHANNELS)
        if config.resample_from == "input":
            channels.append(self.context.output_channels)
        self.state_size = [(None, None, c) for c in channels]

    def build(self, input_shape=None):
        # Weights do not depend on H, W: build every sub-layer with one tiny step.
        size = 32
        states = [tf.zeros([1, size, size, s[-1]]) for s in self.state_size]
        self.call(tf.zeros([1, self.config.control_dim]), states)
        self.built = True

    def log_depth(self, image, training=False):
        """The depth net's raw log depth ``[B, H, W, 1]`` of ``image`` (a pretrained depth
        net always runs in inference mode)."""
        return self.depth_net(image, training=bool(training) and not self.config.pretrained_depth)

    def estimate_depth(self, image, training=False):
        """Inverse depth z ``[B, H, W, 1]`` in [1e-3, 1] of ``image`` with the depth net,
        mapped by ``config.depth_mapping`` (`spiritnet_tf.depth.inverse_depth`)."""
        return inverse_depth(self.log_depth(image, training=training), self.config.depth_mapping)

    def call(self, inputs, states, training=False):
        image, flow, source, source_flow, aux = states[:5]
        mask, z_override = aux[..., :1], aux[..., 1:]
        keep = 1.0 - mask

        z_estimate = self.estimate_depth(image, training=training)
        has_override = tf.reduce_max(z_override, axis=[1, 2, 3], keepdims=True) > 0
        z = tf.where(has_override, tf.maximum(z_override, MIN_INVERSE_DEPTH), z_estimate)

        context = self.context(image)
        kernel = self.kernels(image, z)
        flow_init, holes = self.dafi(flow, z)
        new_flow = self.fill_hole(flow_init, holes, image, context, z)
        new_flow = new_flow + self.control(inputs)[:, None, None, :]
        new_flow = new_flow * keep

        if self.config.resample_from == "previous":
            warp_source, warp_context, warp_flow = image, context, new_flow
            new_source_flow = source_flow
        else:
            carried = adaptive_warp(source_flow, new_flow, bilinear_kernel(new_flow))
            new_source_flow = (new_flow + carried) * keep
            warp_source, warp_context, warp_flow = source, states[5], new_source_flow
        warped = adaptive_warp(warp_source, warp_flow, kernel)
        warped_context = adaptive_warp(warp_context, warp_flow, kernel)
        new_image = self.synthesis(warped, warped_context, warp_flow, z)
        new_image = mask * source + keep * new_image
        residual = keep * (new_image - warped)

        new_aux = tf.concat([mask, tf.zeros_like(z_override)], -1)
        output = tf.concat([new_image, new_flow, residual], -1)
        return output, [new_image, new_flow, source, new_source_flow, new_aux, *states[5:]]

    def get_config(self):
        return {**super().get_config(), "config": self.config.to_dict()}


@keras.saving.register_keras_serializable(package="spiritnet")
class SpiritNetRNN(keras.layers.RNN):
    """`keras.layers.RNN` for cells with image-shaped states and outputs.

    Keras' RNN insists on an integer ``output_size``; like Keras' ConvLSTM this
    subclass infers ``(batch, steps) + cell.output_size`` instead (docs/design.md §9).
    When the number of steps is static (a Python int) the loop is unrolled: the
    gradient of a ``tf.while_loop`` over this large cell is much slower to trace
    and run; a dynamic number of steps (e.g. a serving input) uses the while loop.
    """

    def call(self, sequences, initial_state=None, mask=None, training=False):
        unroll = self.unroll
        self.unroll = unroll or sequences.shape[1] is not None
        try:
            return super().call(sequences, initial_state=initial_state, mask=mask, training=training)
        finally:
            self.unroll = unroll

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        batch, steps = sequences_shape[0], sequences_shape[1]
        output = (batch, steps) + tuple(self.cell.output_size)
        if not self.return_sequences:
            output = (batch,) + tuple(self.cell.output_size)
        if self.return_state:
            return output, *[(batch,) + tuple(s) for s in self.cell.state_size]
        return output
