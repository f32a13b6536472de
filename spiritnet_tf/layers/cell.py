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

from typing import Any, NamedTuple

import keras
import tensorflow as tf

from spiritnet_tf.config import SpiritNetConfig
from spiritnet_tf.depth import MegaDepth, inverse_depth
from spiritnet_tf.layers.common import untracked_dict
from spiritnet_tf.layers.context import ContextExtractor
from spiritnet_tf.ops.flow import bilinear_warp, clamp_to_frame
from spiritnet_tf.layers.dafi import DAFI
from spiritnet_tf.layers.fill_hole import FlowFillHole
from spiritnet_tf.layers.kernels import KernelEstimator
from spiritnet_tf.layers.synthesis import FrameSynthesis
from spiritnet_tf.limits import MIN_INVERSE_DEPTH
from spiritnet_tf.ops import adaptive_warp

__all__ = ["SpiritNetCell", "SpiritNetRNN", "CellState", "STATE_CHANNELS", "OUTPUT_CHANNELS",
           "flow_change"]


class CellState(NamedTuple):
    """The recurrent state of `SpiritNetCell`: ``[B, H, W, c]`` float32 tensors, H and W
    multiples of 32 (`spiritnet_tf.model.MULTIPLE`). `SpiritNet.call` builds the first one,
    the cell reads and returns it each step.

    Fields (``c`` in `STATE_CHANNELS`):
      image: I_t (3), in [0, 1].
      flow: F_t (2), backward flow ``I_t(x) ~ I_{t-1}(x + F_t(x))`` in pixels; for t = 0
        flow0, the backward flow that the first step carries on (DAFR's or the caller's).
        With ``SpiritNetConfig.flow_history`` 4 channels: F_t, then its change over the
        last step ``F_t(x) - F_{t-1}(x + F_t(x))`` (for t = 0 from the model's
        "flow_before", else zero), which the fill-hole network sees.
      source: I_0 (3), the input image; never changes.
      source_flow: G_t (2), composed backward flow from frame t to the input in pixels
        (``G_0 = 0``; stays zero with ``resample_from="previous"``).
      mask: (1) static mask, 1 = static: those pixels keep I_0 and zero flow; never changes.
      depth_override: (1) inverse depth z in [1e-3, 1] that the next step uses instead of
        the depth net's estimate; zero everywhere = estimate. The step that reads it
        hands on zeros (the model sets it for frame 0 only), or, with
        ``SpiritNetConfig.depth_every_step`` False, z carried to the new frame (warped
        bilinearly by the step's flow, like the image): the depth net then runs once per
        sequence, on frame 0, and the model always sets z0.
      source_context: context features of I_0 (`ContextExtractor.output_channels`),
        computed once by the caller, with ``resample_from="input"`` only; None otherwise.

    Keras' RNN carries states as a flat list: `to_list` and `from_list` are the one
    place that maps the names to positions (both the model and the cell use them).
    """

    image: Any
    flow: Any
    source: Any
    source_flow: Any
    mask: Any
    depth_override: Any
    source_context: Any = None

    def to_list(self):
        """The flat list Keras' RNN carries, in field order (``source_context`` omitted
        when None)."""
        return list(self) if self.source_context is not None else list(self[:-1])

    @classmethod
    def from_list(cls, states):
        """Inverse of `to_list`: 6 tensors, or 7 with the source context."""
        states = list(states)
        if len(states) not in (6, 7):
            raise ValueError(f"SpiritNetCell: expected 6 or 7 state tensors, got {len(states)}")
        return cls(*states)


# Channels of each state tensor (the context's width is the cell's, filled in by it).
STATE_CHANNELS = CellState(image=3, flow=2, source=3, source_flow=2, mask=1, depth_override=1)
# I_{t+1} (3), F_{t+1} (2) and the synthesis residual (3: I_{t+1} minus the adaptively
# warped image, zero on static pixels), concatenated; the residual is what full-resolution
# output adds to the upsampled motion (docs/design.md §6).
OUTPUT_CHANNELS = 8


def flow_change(before, flow):
    """How a backward flow changed over one step: ``flow(x) - before(x + flow(x))``
    ``[B, H, W, 2]``, with ``before`` the previous frame's flow (sampled bilinearly where
    ``flow`` says the content was). Zero when the motion carries on unchanged (a steady
    pan); the fill-hole network's input with ``SpiritNetConfig.flow_history``."""
    return flow - bilinear_warp(before, flow)


@keras.saving.register_keras_serializable(package="spiritnet")
def depth_net_for(config):
    """A new, unbuilt depth net of a `SpiritNetConfig` (preset, width and levels)."""
    options = {} if config.depth_width is None else {"width_multiplier": config.depth_width}
    return MegaDepth.from_preset(config.depth_preset, levels=config.depth_levels, **options)


class SpiritNetCell(keras.layers.Layer):
    """One SpiritNet step on a `CellState` (image, flow, source, source_flow, mask,
    depth_override, and source_context when ``resample_from="input"``).

    Args:
      config: `spiritnet_tf.config.SpiritNetConfig` (or its dict); architecture,
        ``resample_from`` and ``pretrained_depth`` (depth net then always runs in
        inference mode with its batch norms frozen: statistics and parameters fixed).
      depth_net: the depth net to use, shared with another cell (the members of an
        ensemble, ``SpiritNetConfig.members``); None (default): a new one of ``config``.

    Call:
      inputs: ``[B, control_dim]`` control vector of this step (zeros by default).
        It is mapped by a zero-initialised dense layer to a global flow offset
        (pixels) added to the predicted flow: the slot for the paper's
        "semantics state" future work; with zero controls it has no effect.
      states: a `CellState`, or its flat list as Keras' RNN passes it
        (`CellState.to_list`, ``state_size``): 6 tensors ``[B, H, W, c]`` with ``c`` in
        `STATE_CHANNELS`, a seventh = ``context(source)`` in "input" mode; images in
        [0, 1], flows backward in pixels; H, W multiples of 32.

    Returns:
      ``(output, new_states)``: output ``[B, H, W, 8]`` (`OUTPUT_CHANNELS`) = concat(I_{t+1}
      (3), F_{t+1} (2), synthesis residual (3): I_{t+1} minus the adaptively warped image);
      ``new_states`` the next `CellState` as a flat list (`CellState.to_list`).
      Static-mask pixels keep the input image and zero flow (and zero residual).
    """

    def __init__(self, config=None, depth_net=None, **kwargs):
        super().__init__(**kwargs)
        self.config = config = SpiritNetConfig.coerce(config)
        self.output_size = (None, None, OUTPUT_CHANNELS)
        self.depth_net = depth_net_for(config) if depth_net is None else depth_net
        if config.pretrained_depth:
            self.depth_net.freeze_batch_norm()
        self.context = ContextExtractor(width=config.context_width)
        self.kernels = KernelEstimator(widths=config.kernel_widths)
        self.dafi = DAFI(holes=config.dafi_holes)
        self.fill_hole = FlowFillHole(
            width=config.fill_hole_width,
            num_blocks=config.fill_hole_blocks,
            iterations=config.fill_hole_iterations,
            global_context=config.fill_hole_global,
            global_gain=config.fill_hole_gain,
        )
        self.synthesis = FrameSynthesis(
            width=config.synthesis_width, num_blocks=config.synthesis_blocks
        )
        self.control = keras.layers.Dense(
            2, use_bias=False, kernel_initializer="zeros", name="control_to_flow"
        )
        channels = STATE_CHANNELS
        if config.flow_history:
            channels = channels._replace(flow=2 * STATE_CHANNELS.flow)
        if config.resample_from == "input":
            channels = channels._replace(source_context=self.context.output_channels)
        self.state_size = [(None, None, c) for c in channels.to_list()]

    def build(self, input_shape=None):
        # Weights do not depend on H, W: every sub-layer is built from the channel counts
        # of its inputs in a step, without running one (an eager tiny step cost about a
        # second of the model's construction, most of it in the depth net's ops).
        image, flow, z = ((None, None, None, c) for c in (
            STATE_CHANNELS.image, STATE_CHANNELS.flow, STATE_CHANNELS.depth_override))
        context = self.context.compute_output_shape(image)
        _, holes = self.dafi.compute_output_shape(flow, z)
        fill_context = context[:-1] + (context[-1] + self._history_channels,)
        synthesis_context = context[:-1] + (
            context[-1] + (self._history_channels if self.config.synthesis_history else 0),)
        for layer, shapes in ((self.depth_net, [image]), (self.context, [image]),
                              (self.kernels, [image, z]),
                              (self.fill_hole, [flow, holes, image, fill_context, z]),
                              (self.synthesis, [image, synthesis_context, flow, z]),
                              (self.control, [(None, self.config.control_dim)])):
            if not layer.built:  # `SpiritNet.build` builds the depth net (and context) first
                layer.build(*shapes)
        self.built = True

    @property
    def _history_channels(self):
        """Channels of the flow's change that the fill-hole network sees beside the
        context (``config.flow_history``), else 0."""
        return STATE_CHANNELS.flow if self.config.flow_history else 0

    def log_depth(self, image, training=False):
        """The depth net's raw log depth ``[B, H, W, 1]`` of ``image`` (a pretrained depth
        net always runs in inference mode). With ``config.depth_side`` the net runs on the
        image resized to that long side (sides multiples of 32) and its output is resized
        back to the image's size."""
        net_training = bool(training) and not self.config.pretrained_depth
        net = lambda x: self.depth_net(x, training=net_training)  # noqa: E731
        if training:
            net = self._training_function(("depth", net_training), net)
        side = self.config.depth_side
        if not side:
            return net(image)
        size = tf.cast(tf.shape(image)[1:3], tf.float32)
        scaled = size * (float(side) / tf.reduce_max(size))
        inner = tf.cast(tf.maximum(tf.round(scaled / 32.0), 1.0) * 32.0, tf.int32)
        small = tf.image.resize(image, inner)
        return tf.image.resize(net(small), tf.shape(image)[1:3])

    def _training_function(self, key, fn):
        """``fn`` itself when executing eagerly; while a training graph is being built
        (``model.fit``'s train step), a ``tf.function`` of it kept per ``key``, so that the
        depth net and the step, called once per frame, are traced by Python once per input
        shape instead of once per call, their gradients built once too (the runtime inlines
        the calls again before it runs them, so the steps run as before). The tiny test
        model's first ``fit`` step (tracing and starting its 63k-op graph): 61-62 s of CPU
        before, 45-46 s with this (2 cores). Inference and export graphs (``training``
        false) are built as before. Kept in an `untracked_dict`."""
        if tf.executing_eagerly():
            return fn
        functions = untracked_dict(self, "_training_functions")
        if key not in functions:
            functions[key] = tf.function(fn, autograph=False)
        return functions[key]

    def estimate_depth(self, image, training=False):
        """Inverse depth z ``[B, H, W, 1]`` in [1e-3, 1] of ``image`` with the depth net,
        mapped by ``config.depth_mapping`` (`spiritnet_tf.depth.inverse_depth`)."""
        return inverse_depth(self.log_depth(image, training=training), self.config.depth_mapping)

    def call(self, inputs, states, training=False):
        state = states if isinstance(states, CellState) else CellState.from_list(states)
        z = self.step_depth(state, training=training)
        if training:
            step = self._training_function(("step",), lambda i, s, z: self.step(i, s, z, training=True))
            return step(inputs, state, z)
        return self.step(inputs, state, z, training=training)

    def step_depth(self, state, training=False, estimate=None):
        """Inverse depth z [B, H, W, 1] for the step on ``state`` (a `CellState`): its
        ``depth_override`` (floored at `MIN_INVERSE_DEPTH`) where set, else the depth net's
        estimate of its image; ``estimate(image)`` replaces `estimate_depth` (a traced copy).
        Eager calls skip the depth net when every item has an override (its estimate would
        be discarded: the first step after DAFR (z0 given) or a user depth map)."""
        z_override = state.depth_override
        has_override = tf.reduce_max(z_override, axis=[1, 2, 3], keepdims=True) > 0
        overridden = tf.maximum(z_override, MIN_INVERSE_DEPTH)
        if not self.config.depth_every_step:
            return overridden  # z0 from the model, then z carried from step to step
        if tf.executing_eagerly() and bool(tf.reduce_all(has_override)):
            return overridden
        if estimate is None:
            estimate = lambda image: self.estimate_depth(image, training=training)  # noqa: E731
        return tf.where(has_override, overridden, estimate(state.image))

    def step(self, inputs, states, z, training=False):
        """The step of ``call`` with its inverse depth ``z`` [B, H, W, 1] (of ``image``, or
        the override) given: everything after the depth net. ``call`` is
        ``step(inputs, states, z)`` with z the override where it is set, else the depth
        net's estimate; `spiritnet_tf.model.SpiritNet.infer` traces it once per shape.
        Returns ``(output, new_states)`` as ``call``."""
        state = states if isinstance(states, CellState) else CellState.from_list(states)
        image, flow, source, source_flow = state.image, state.flow, state.source, state.source_flow
        mask, z_override = state.mask, state.depth_override
        keep = 1.0 - mask
        change = None
        if self.config.flow_history:
            flow, change = flow[..., :STATE_CHANNELS.flow], flow[..., STATE_CHANNELS.flow:]

        context = self.context(image)
        kernel = self.kernels(image, z)
        flow_init, holes = self.dafi(flow, z)
        fill_context = context if change is None else tf.concat([context, change], -1)
        new_flow = self.fill_hole(flow_init, holes, image, fill_context, z)
        new_flow = new_flow + self.control(inputs)[:, None, None, :]
        new_flow = new_flow * keep

        if self.config.resample_from == "previous":
            warp_source, warp_context, warp_flow = image, context, new_flow
            new_source_flow = source_flow
        else:
            carried = bilinear_warp(source_flow, new_flow)
            new_source_flow = (new_flow + carried) * keep
            warp_source, warp_context, warp_flow = source, state.source_context, new_source_flow
        render_flow = clamp_to_frame(warp_flow) if self.config.warp_outside == "clamp" else warp_flow
        warped = adaptive_warp(warp_source, render_flow, kernel)
        warped_context = adaptive_warp(warp_context, render_flow, kernel)
        if self.config.synthesis_history:  # the change seen this step, on the new frame
            warped_context = tf.concat([warped_context, bilinear_warp(change, new_flow)], -1)
        new_image = self.synthesis(warped, warped_context, warp_flow, z)
        new_image = mask * source + keep * new_image
        residual = keep * (new_image - warped)

        output = tf.concat([new_image, new_flow, residual], -1)
        if self.config.depth_every_step:
            next_z = tf.zeros_like(z_override)
        else:  # z of the new frame: z moved like the image, I_{t+1}(x) ~ I_t(x + F(x))
            next_z = tf.maximum(bilinear_warp(z, new_flow), MIN_INVERSE_DEPTH)
        new_state_flow = new_flow
        if change is not None:
            new_state_flow = tf.concat([new_flow, keep * flow_change(flow, new_flow)], -1)
        new_state = state._replace(image=new_image, flow=new_state_flow, source_flow=new_source_flow,
                                   depth_override=next_z)
        return output, new_state.to_list()

    def get_config(self):
        return {**super().get_config(), "config": self.config.to_dict()}


@keras.saving.register_keras_serializable(package="spiritnet")
class SpiritNetRNN(keras.layers.RNN):
    """`keras.layers.RNN` for cells with image-shaped states and outputs.

    Keras' RNN insists on an integer ``output_size``; like Keras' ConvLSTM this
    subclass infers ``(batch, steps) + cell.output_size`` instead (docs/design.md §9).
    When the number of steps is static (a Python int) the loop is unrolled: the
    gradient of a ``tf.while_loop`` over this large cell is much slower to trace
    and run; a dynamic number of steps (e.g. a serving input) uses the while loop,
    written here (`_while_loop`) rather than Keras': Keras runs the cell once more before
    its loop to learn the output's shape and discards the result, but the asserts inside
    the warp of a graph with unknown sizes are stateful, so TensorFlow computed that
    discarded step too (one step in T + 1 wasted; benchmarks/export.py).
    """

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if (self.unroll or mask is not None or self.go_backwards or not self.return_sequences
                or not isinstance(initial_state, (list, tuple))):
            return super().inner_loop(sequences, initial_state, mask, training=training)
        return self._while_loop(sequences, list(initial_state), training)

    def _while_loop(self, sequences, states, training):
        """``(last_output, outputs [B, T, ...], final states)`` as Keras' ``backend.rnn``
        returns them, from a ``tf.while_loop`` over the T steps of ``sequences`` [B, T, C]."""
        steps = tf.shape(sequences)[1]
        inputs = tf.TensorArray(sequences.dtype, size=steps).unstack(
            tf.transpose(sequences, [1, 0, 2]))
        outputs = tf.TensorArray(self.compute_dtype, size=steps)

        def body(t, outputs, *states):
            output, new_states = self.cell(inputs.read(t), list(states), training=training)
            return (t + 1, outputs.write(t, output), *new_states)

        final = tf.while_loop(lambda t, *_: t < steps, body, (0, outputs, *states),
                              maximum_iterations=steps)
        stacked = final[1].stack()  # [T, B, ...]
        rank = len(self.cell.output_size) + 2
        return stacked[-1], tf.transpose(stacked, [1, 0, *range(2, rank)]), list(final[2:])

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
