"""SpiritNet: one photo in, T generated frames and T backward flows out (docs/design.md §3.9).

    model = SpiritNet.from_preset("small")
    out = model({"image": images}, num_frames=6, seed=0)
    out["frames"]  # [B, 6, H, W, 3] in [0, 1], generated frames only (the input is not repeated)
    out["flows"]   # [B, 6, H, W, 2] backward flows F_{t+1 -> t} in pixels
    model.estimate_depth(images)         # [B, H, W, 1] inverse depth z0 of the first stage
    model.initial_flow(images, seed=0)   # [B, H, W, 2] DAFR's F0, the flow0 call draws

Training (`fit`) is free-running: after state0 the model feeds its own (image, flow)
to the next step; teacher flows appear only in state0 and in the loss.
"""

import dataclasses
import functools

import keras
import tensorflow as tf

from spiritnet_tf import losses
from spiritnet_tf.config import DEFAULT_WEIGHTS, LossConfig, SpiritNetConfig
from spiritnet_tf.io.images import check_unit_range
from spiritnet_tf.layers.cell import CellState, SpiritNetCell, SpiritNetRNN, flow_change
from spiritnet_tf.layers.common import untracked_dict
from spiritnet_tf.layers.dafr import DAFR
from spiritnet_tf.limits import MIN_INVERSE_DEPTH, MIN_SIDE
from spiritnet_tf.optimizers import Adam

__all__ = ["SpiritNet", "PRESETS", "DEFAULT_WEIGHTS", "MemberCountError", "check_member_count"]

PRESETS = {
    # The default, sized to train on a CPU: MegaDepth at 1/8 width and narrow
    # sub-networks (a profiling pass measured about 3x faster steps than 1/4 width with
    # 32-channel nets). Resamples the input: better held-out PSNR and sharpness than
    # "previous" in both measurements of docs/training.md.
    "small": SpiritNetConfig(
        depth_preset="small",
        depth_width=0.125,
        context_width=8,
        kernel_widths=(8, 16, 32, 64),
        fill_hole_width=16,
        fill_hole_blocks=2,
        synthesis_width=16,
        synthesis_blocks=2,
        resample_from="input",
    ),
    # Widths of the paper / DAIN (MegaDepth at full width).
    "paper": SpiritNetConfig(
        depth_preset="paper",
        context_width=64,
        kernel_widths=(16, 32, 64, 128, 256),
        fill_hole_width=64,
        synthesis_width=64,
    ),
}

# Logged loss terms (each a Keras metric; "loss" is their weighted sum).
LOSS_TERMS = ("loss", "flow", "path", "pixel", "psnr", "sharpness", "style", "tv", "depth")
MULTIPLE = 32  # H, W are padded to a multiple of this inside the model
# `SpiritNet.infer` with trace="auto" traces the step from the first call of a shape when
# it makes this many frames or more (the trace pays for itself: see infer's docstring).
TRACE_FIRST_FRAMES = 6
INPUT_KEYS = ("image", "flow0", "flow_before", "control", "depth", "mask")


def _padding(x):
    """(height, width, ph, pw) of ``x`` [B, H, W, C]: the rows and columns that padding
    below and to the right adds to reach multiples of `MULTIPLE`."""
    shape = tf.shape(x)
    height, width = shape[1], shape[2]
    return height, width, (-height) % MULTIPLE, (-width) % MULTIPLE


def _pad_reflect(x, ph, pw):
    return tf.pad(x, [[0, 0], [0, ph], [0, pw], [0, 0]], mode="REFLECT")


def _pad_edge(x, ph, pw):
    x = tf.concat([x, tf.repeat(x[:, -1:], ph, axis=1)], 1)
    return tf.concat([x, tf.repeat(x[:, :, -1:], pw, axis=2)], 2)


def _pad_inputs(inputs):
    """Checked inputs padded once to multiples of `MULTIPLE` (docs/design.md §2).

    Returns ``(padded, height, width)``: ``padded`` has the keys of ``inputs``; the
    image is reflect-padded, the flows, depth and mask edge-replicated, the mask made
    binary (> 0.5) and the depth clipped to [MIN_INVERSE_DEPTH, 1]; control is passed
    on as it is.
    """
    height, width, ph, pw = _padding(inputs["image"])
    padded = dict(inputs)
    padded["image"] = _pad_reflect(inputs["image"], ph, pw)
    if "mask" in inputs:
        padded["mask"] = tf.cast(_pad_edge(inputs["mask"], ph, pw) > 0.5, tf.float32)
    if "depth" in inputs:
        padded["depth"] = tf.clip_by_value(_pad_edge(inputs["depth"], ph, pw), MIN_INVERSE_DEPTH, 1.0)
    for key in ("flow0", "flow_before"):
        if key in inputs:
            padded[key] = _pad_edge(inputs[key], ph, pw)
    return padded, height, width


def _mean(outputs):
    """The mean of the cells' outputs (an ensemble's, `SpiritNetConfig.members`); one
    cell's output as it is."""
    return outputs[0] if len(outputs) == 1 else tf.add_n(outputs) / float(len(outputs))


def _results(out, height, width, return_residuals):
    """``call``'s result dict from the stacked cell outputs [B, T, H', W', 8] (padded)."""
    out = out[:, :, :height, :width]
    result = {"frames": out[..., :3], "flows": out[..., 3:5]}
    if return_residuals:
        result["residuals"] = out[..., 5:]
    return result


class MemberCountError(ValueError):
    """A count of ensemble members outside 1..the model's (`check_member_count`)."""


def check_member_count(count, members):
    """Raises `MemberCountError` unless ``count`` is a whole number from 1 to ``members``
    (an ensemble's `SpiritNetConfig.members`): `SpiritNet.first_members` and
    `spiritnet_tf.io.weights.load_model` (``members=``)."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= members:
        raise MemberCountError(f"members must be a whole number from 1 to {members} (the "
                               f"model's), got {count!r}")


@keras.saving.register_keras_serializable(package="spiritnet")
class SpiritNet(keras.Model):
    """The SpiritNet model: DAFR for the first flow, then a `SpiritNetCell` per frame.

    Args:
      config: `SpiritNetConfig` (or its dict); see `PRESETS` and `from_preset`.

    Call ``model(inputs, num_frames=6, seed=0, direction=None, magnitude=1.0)``:
      inputs: dict with
        "image": ``[B, H, W, 3]`` float in [0, 1] (uint8 is scaled by 1/255),
          H, W >= 32 (padded once to a multiple of 32 inside, cropped back);
        optional "flow0": ``[B, H, W, 2]`` backward flow of state0 (pixels); without
          it DAFR draws one from the inverse depth with ``seed``;
        optional "flow_before": ``[B, H, W, 2]``, with "flow0" and only for a model
          with ``config.flow_history``: the backward flow of the frame before state0's
          (F_{2->1} when state0 is (im3, F_{3->2})); without it the first step sees no
          change of the flow;
        optional "control": ``[B, C]`` or ``[B, T, C]`` per-step control vectors
          (C = ``config.control_dim``; zeros by default);
        optional "depth": ``[B, H, W, 1]`` inverse depth z (docs/design.md §2) replacing the
          depth net's estimate for the first frame;
        optional "mask": ``[B, H, W, 1]``, 1 = static: those pixels keep the input
          image and zero flow in every frame.
      num_frames: T >= 1 (int or int32 scalar tensor).
      seed: int64 seed of DAFR (same seed, same animation).
      direction, magnitude: DAFR controls (degrees of motion, docs/design.md §2; scale of f0).
      return_residuals: also return "residuals" ``[B, T, H, W, 3]``: each frame minus
        the adaptively warped image it was synthesised from (the synthesis residual,
        zero on static pixels), which full-resolution output adds (docs/design.md §6).

    Returns:
      {"frames": ``[B, T, H, W, 3]`` in [0, 1], "flows": ``[B, T, H, W, 2]``}; for an
      ensemble (``config.members`` > 1) the mean of its members' (and of their residuals),
      each member running its own recurrence from the one state0.

    Raises:
      ValueError: unknown keys, wrong rank/channels/sizes, non-float images;
        `spiritnet_tf.io.ImageInputError` (a ValueError) for a concrete float image
        outside [0, 1], with the message `animate` gives (`check_unit_range`, which
        allows 1/255 of rounding); inside ``tf.function`` (``fit``, ``predict``, the
        exports) the range is not checked.
      tf.errors.InvalidArgumentError: NaN or inf in image, flow0, depth or control.
    """

    def __init__(self, config=None, **kwargs):
        super().__init__(**kwargs)
        self.config = config = SpiritNetConfig.coerce(config)
        self.dafr = DAFR(dict(config.dafr) or None)
        self.cell = SpiritNetCell(config, name="cell")
        self.rnn = SpiritNetRNN(self.cell, return_sequences=True, name="rnn")
        # An ensemble's other members (config.members): cells sharing the first one's depth net.
        self.member_cells = [SpiritNetCell(config, depth_net=self.cell.depth_net, name=f"cell_{k}")
                             for k in range(1, config.members)]
        self.member_rnns = [SpiritNetRNN(cell, return_sequences=True, name=f"rnn_{k}")
                            for k, cell in enumerate(self.member_cells, 1)]
        self.loss_config = LossConfig()
        self._trackers = {
            name: keras.metrics.Mean(name=name) for name in LOSS_TERMS
        }

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_preset(cls, name="small", weights=None, **overrides):
        """Model of preset ``name`` ("small" or "paper") with optional config overrides.

        ``weights``: None (random initialisation), the path of a ``.weights.h5`` file
        saved from the same configuration, or ``"default"``: the bundled weights of the
        "small" preset (`DEFAULT_WEIGHTS`, with ``MANIFEST.json`` beside them;
        FileNotFoundError when an installation lacks them). The bundled weights (by
        "default" or by their path) keep the config their gate measured
        (`spiritnet_tf.io.weights.bundled_overrides`: resample_from, depth mapping, DAFR
        rule) unless ``overrides`` say otherwise. The rules are
        `spiritnet_tf.io.weights.configure_preset`'s.
        """
        from spiritnet_tf.io.weights import configure_preset  # the loading rules' owner

        config, weights = configure_preset(name, weights, **overrides)
        model = cls(config)
        if weights is not None:
            model.build()
            model.load_weights(weights)
        return model

    def build(self, inputs_shape=None):
        """Creates every weight (they do not depend on H, W) from the channel counts of
        the layers' inputs (`SpiritNetCell.build`), without a forward pass."""
        if self.built:
            return
        # In the order of a forward pass, so that variables keep its paths: the depth net
        # (the first frame's z) and, resampling from the input, the context extractor (the
        # source's features) at the model's level, then the rest inside the cell.
        image = (None, None, None, 3)
        if not self.depth_net.built:  # (e.g. weights loaded into it first)
            self.depth_net.build(image)
        for cell, rnn in zip(self.cells, self.rnns):
            if self.config.resample_from == "input" and not cell.context.built:
                cell.context.build(image)
            rnn.build((None, None, self.config.control_dim))  # builds the cell
        self.built = True

    def build_from_config(self, config):
        self.build()

    def with_config(self, **overrides):
        """A new, uncompiled model with this one's weights and config fields overridden.

        E.g. ``model.with_config(resample_from="input")``; only fields that do not change
        the weights (``resample_from``, DAFR options, learning rates) make sense here.
        """
        self.build()
        copy = type(self)(dataclasses.replace(self.config, **overrides))
        copy.build()
        copy.set_weights(self.get_weights())
        return copy

    def first_members(self, count):
        """This model keeping its first ``count`` members (`SpiritNetConfig.members`): the
        model itself when ``count`` is all of them, else a new one (``count`` 1: a plain
        model with the first member's weights). Fewer members run faster (each costs about
        one cell's time) but are not what an ensemble's gate measured.

        Raises `MemberCountError` (a ValueError) unless 1 <= ``count`` <= ``config.members``."""
        check_member_count(count, self.config.members)
        if count == self.config.members:
            return self
        self.build()
        return self.with_member_cells(self.cells[:count])

    def with_member_cells(self, cells):
        """A new model of this one's configuration with ``len(cells)`` members, member k
        carrying the weights of ``cells[k]`` (`SpiritNetCell` s of this architecture, built),
        the depth net and DAFR this model's (`spiritnet_tf.training.ensemble.join_models`,
        `first_members`)."""
        self.build()
        model = type(self)(dataclasses.replace(self.config, members=len(cells)))
        model.build()
        model.dafr.set_weights(self.dafr.get_weights())
        model.depth_net.set_weights(self.depth_net.get_weights())
        shared = {id(v) for v in model.depth_net.weights}
        for cell, source_cell in zip(model.cells, cells):
            # Same architecture, same build order: the variables pair up one to one.
            for target, source in zip(cell.weights, source_cell.weights):
                if id(target) not in shared:
                    target.assign(source)
        return model

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "config": self.config.to_dict()}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("config"), dict):  # a saved model: its fields as made
            config["config"] = SpiritNetConfig.from_recorded(config["config"])
        return cls(**config)

    @property
    def depth_net(self):
        return self.cell.depth_net

    @property
    def cells(self):
        """The cells of the recurrences the model averages: ``[cell]``, or an ensemble's
        ``config.members`` cells (one depth net between them)."""
        return [self.cell, *self.member_cells]

    @property
    def rnns(self):
        """The RNN of each of `cells`."""
        return [self.rnn, *self.member_rnns]

    # ------------------------------------------------------------------ inference
    def _check_inputs(self, inputs):
        if not isinstance(inputs, dict):
            inputs = {"image": inputs}
        unknown = sorted(set(inputs) - set(INPUT_KEYS))
        if unknown:
            raise ValueError(f"SpiritNet: unknown input(s) {unknown}; known: {list(INPUT_KEYS)}")
        if "image" not in inputs:
            raise ValueError("SpiritNet: the inputs need an 'image' [B,H,W,3]")
        image = tf.convert_to_tensor(inputs["image"])
        if image.dtype == tf.uint8:
            image = tf.cast(image, tf.float32) / 255.0
        if not image.dtype.is_floating:
            raise ValueError(f"SpiritNet: 'image' must be float in [0, 1] or uint8, got {image.dtype.name}")
        if image.shape.rank != 4 or image.shape[-1] != 3:
            raise ValueError(f"SpiritNet: 'image' must be [B,H,W,3] RGB, got shape {image.shape}")
        for axis, what in ((1, "height"), (2, "width")):
            if image.shape[axis] is not None and image.shape[axis] < MIN_SIDE:
                raise ValueError(
                    f"SpiritNet: image {what} {image.shape[axis]} is below the minimum {MIN_SIDE}"
                )
        image = tf.cast(image, tf.float32)
        if tf.executing_eagerly() and hasattr(image, "numpy"):
            # Concrete values only: a range assert inside traced graphs would end up in
            # the exports (and break the builtins-only TFLite file).
            check_unit_range(image.numpy(), "SpiritNet: 'image'")
        checked = {"image": tf.debugging.assert_all_finite(image, "SpiritNet: 'image' has NaN or inf")}
        if inputs.get("flow_before") is not None:
            if not self.config.flow_history:
                raise ValueError("SpiritNet: 'flow_before' is read only by a model with "
                                 "flow_history (config.flow_history is False)")
            if inputs.get("flow0") is None:
                raise ValueError("SpiritNet: 'flow_before' needs 'flow0' (the flow it came before)")
        for key, channels in (("flow0", 2), ("flow_before", 2), ("depth", 1), ("mask", 1)):
            if inputs.get(key) is None:
                continue
            x = tf.cast(tf.convert_to_tensor(inputs[key]), tf.float32)
            if x.shape.rank != 4 or x.shape[-1] != channels:
                raise ValueError(
                    f"SpiritNet: {key!r} must be [B,H,W,{channels}], got shape {x.shape}"
                )
            if x.shape[1:3].is_fully_defined() and image.shape[1:3].is_fully_defined():
                if x.shape[1:3] != image.shape[1:3]:
                    raise ValueError(
                        f"SpiritNet: {key!r} is {x.shape[1]}x{x.shape[2]} but the image is "
                        f"{image.shape[1]}x{image.shape[2]}"
                    )
            checked[key] = tf.debugging.assert_all_finite(x, f"SpiritNet: {key!r} has NaN or inf")
        if inputs.get("control") is not None:
            c = tf.cast(tf.convert_to_tensor(inputs["control"]), tf.float32)
            if c.shape.rank not in (2, 3) or c.shape[-1] != self.config.control_dim:
                raise ValueError(
                    f"SpiritNet: 'control' must be [B,{self.config.control_dim}] or "
                    f"[B,T,{self.config.control_dim}], got shape {c.shape}"
                )
            checked["control"] = tf.debugging.assert_all_finite(c, "SpiritNet: 'control' has NaN or inf")
        return checked

    def _traced(self, key, trace, first=False):
        """The traced functions {"depth", "step"} (`infer`) if calls with shapes ``key``
        should use them under ``trace`` (True, False or "auto": from the second call with
        the same key, or from the first with ``first``), else None. "step" is
        `_member_step`, one trace for every member. Kept with the model in an
        `untracked_dict`."""
        if trace not in (True, False, "auto"):
            raise ValueError(f"SpiritNet: trace must be True, False or 'auto', got {trace!r}")
        traced = untracked_dict(self, "_traced_functions")
        if not traced:
            traced.update(seen={}, depth=tf.function(self.cell.estimate_depth, autograph=False),
                          step=tf.function(self._member_step, autograph=False))
        seen = traced["seen"].get(key, 0)
        traced["seen"][key] = seen + 1
        if trace is False or (trace == "auto" and not seen and not first):
            return None
        return traced

    def _step_variables(self, cell):
        """The variables ``cell``'s step reads: all of its own but the shared depth net's,
        in build order (the same order in every member: one architecture)."""
        shared = {id(v) for v in self.depth_net.weights}
        return [v for v in cell.weights if id(v) not in shared]

    def _member_step(self, control, states, z, weights):
        """`SpiritNetCell.step` of the member whose `_step_variables` hold ``weights``: the
        first cell's step with its variables read as ``weights`` (`keras.StatelessScope`),
        so that one trace serves every member of an ensemble (six traces of a cell cost
        more than one eager run of the six)."""
        mapping = list(zip(self._step_variables(self.cell), weights, strict=True))
        with keras.StatelessScope(state_mapping=mapping):
            return self.cell.step(control, states, z)

    def estimate_depth(self, image, training=False, trace=False):
        """Inverse depth z of ``image`` from the model's depth net, at the image's size.

        Args:
          image: ``[B, H, W, 3]`` float in [0, 1] or uint8 (scaled by 1/255), H, W >= 32;
            checked like ``call``'s "image".
          training: run the depth net in training mode (never for a pretrained depth net).

        Returns:
          ``[B, H, W, 1]`` float32 z in [1e-3, 1] (1 = nearest, docs/design.md §2), mapped by
          ``config.depth_mapping``. The image is reflect-padded below and to the right to
          a multiple of `MULTIPLE` (32) and z cropped back: the estimate ``call`` makes for
          the first frame, and the map `animate` passes to the model as its "depth".
          ``trace`` (eager inference only): as `infer`'s, the depth net traced once per
          shape (False: eager).
        """
        padded, height, width = _pad_inputs(self._check_inputs({"image": image}))
        traced = None
        if tf.executing_eagerly() and not training:
            traced = self._traced(("depth", tuple(padded["image"].shape)), trace)
        estimate = traced["depth"] if traced else self.cell.estimate_depth
        return estimate(padded["image"], training=training)[:, :height, :width]

    def initial_flow(self, image, seed, direction=None, magnitude=1.0, mask=None):
        """DAFR's initial flow F0 for ``image``: the flow0 ``call`` draws without a "flow0" input.

        Args:
          image: ``[B, H, W, 3]`` float in [0, 1] or uint8, H, W >= 32 (as for ``call``).
          seed: int64 seed of DAFR's random choices (same seed, same flow).
          direction: degrees of motion in image axes (0 = content moving right, 90 = down)
            or None for DAFR's own choice; magnitude: scale of the flow (docs/design.md §2).
          mask: optional ``[B, H, W, 1]``, 1 (> 0.5) = static: zero flow there.

        Returns:
          ``[B, H, W, 2]`` float32 backward flow in pixels (dx, dy): the motion of content is
          ``M = -F0``. Depth and DAFR run on the image padded to a multiple of `MULTIPLE`
          (reflect; the mask edge-replicated), the flow is cropped back to H x W.
        """
        padded, height, width = _pad_inputs(self._check_inputs({"image": image, "mask": mask}))
        flow0, _ = self._dafr_flow(padded, seed, direction, magnitude, training=False)
        return flow0[:, :height, :width]

    def _dafr_flow(self, padded, seed, direction, magnitude, training):
        """``(flow0, z0)`` on padded inputs: DAFR on the "depth" input if given, else on the
        depth net's estimate (returned as z0 so that the first step does not recompute it)."""
        z0 = padded.get("depth")
        if z0 is None:
            z0 = self.cell.estimate_depth(padded["image"], training=training)
        flow0 = self.dafr(z0, tf.cast(seed, tf.int64), direction=direction, magnitude=magnitude,
                          mask=padded.get("mask"))
        return flow0, z0

    def _initial_states(self, padded, seed, direction, magnitude, training):
        """The first `CellState` of each of `cells` from padded inputs (`_pad_inputs`): one
        state0 (depth, DAFR's flow0), with each cell's own context of the source in
        "input" mode."""
        state = self._initial_state(padded, seed, direction, magnitude, training)
        if state.source_context is None:
            return [state] * len(self.cells)
        return [state] + [state._replace(source_context=cell.context(state.source))
                          for cell in self.member_cells]

    def _initial_state(self, padded, seed, direction, magnitude, training):
        """The first `CellState` (of the first cell) from padded inputs (`_pad_inputs`)."""
        image = padded["image"]
        z0 = padded.get("depth")
        flow0 = padded.get("flow0")
        if flow0 is None:
            flow0, z0 = self._dafr_flow(padded, seed, direction, magnitude, training)
        elif z0 is None and not self.config.depth_every_step:  # the cell carries z0 on
            z0 = self.cell.estimate_depth(image, training=training)
        zeros1 = tf.zeros_like(image[..., :1])
        mask = padded.get("mask", zeros1)
        flow = flow0
        if self.config.flow_history:  # flow0 and its change since the flow before (or zero)
            before = padded.get("flow_before")
            change = tf.zeros_like(flow0) if before is None else flow_change(before, flow0)
            flow = tf.concat([flow0, change], -1)
        return CellState(
            image=image,
            flow=flow * (1.0 - mask),
            source=image,
            source_flow=tf.zeros_like(flow0),
            mask=mask,
            depth_override=zeros1 if z0 is None else z0,
            # Warped every step in "input" mode, computed once.
            source_context=self.cell.context(image) if self.config.resample_from == "input" else None,
        )

    def call(self, inputs, num_frames=6, seed=0, direction=None, magnitude=1.0, training=False,
             return_residuals=False):
        inputs = self._check_inputs(inputs)
        if isinstance(num_frames, int) and num_frames < 1:
            raise ValueError(f"SpiritNet: num_frames must be >= 1, got {num_frames}")
        padded, height, width = _pad_inputs(inputs)
        states = self._initial_states(padded, seed, direction, magnitude, training)
        control = self._controls(inputs, num_frames)
        out = _mean([rnn(control, initial_state=state.to_list(), training=training)
                     for rnn, state in zip(self.rnns, states)])
        return _results(out, height, width, return_residuals)

    def _controls(self, inputs, num_frames):
        """The per-step controls [B, T, C] of checked ``inputs`` (zeros by default)."""
        control = inputs.get("control")
        if control is None:
            batch = tf.shape(inputs["image"])[0]
            control = tf.zeros(tf.stack([batch, num_frames, self.config.control_dim]))
        elif control.shape.rank == 2:
            control = tf.repeat(control[:, None], num_frames, axis=1)
        return control

    def infer(self, inputs, num_frames=6, seed=0, direction=None, magnitude=1.0,
              return_residuals=False, trace="auto", progress=None):
        """``call`` for inference (``training=False``) from eager code, with the recurrence
        traced once per input shape and kept: what `spiritnet_tf.animate` runs.

        Same arguments and results as ``call`` (to float rounding: the traced graphs fuse
        some operations); ``num_frames`` must be a Python int. The T steps run as a
        Python loop over two ``tf.function`` s traced once per shape and kept with the
        model, the depth net (`SpiritNetCell.estimate_depth`) and the rest of the step
        (`SpiritNetCell.step`, run by `_member_step` for each member), so eager dispatch
        is paid once per operation of the graph instead of once per operation per step;
        the first step takes the given or DAFR's depth without running the depth net
        (`SpiritNetCell.step_depth`).

        ``trace``: True (trace now), False (eager: exactly ``call``'s operations) or
        "auto" (the default): a shape's first call runs eagerly and later calls with the
        same shapes run traced, since tracing costs more than a short eager run (for the
        small depth net at 256x448 a first compiled call took about 1.7 s, an eager
        pass 0.24-0.29 s, a compiled one 0.07-0.12 s: docs/benchmarks.md), so a
        one-photo command line does not pay for it; a second photo of the same working
        size, or a server, does. Two kinds of first call are traced at once: an
        ensemble's (``config.members`` > 1: one trace serves every member,
        `_member_step`, and the members' eager steps cost more than that trace; six
        members at 448x320, 6 frames, 2 cores: 18.9-20.5 s eager, 11.9-13.1 s traced on
        the first call, 10.5-10.9 s later) and one of `TRACE_FIRST_FRAMES` frames or
        more (the trace of a step, about 0.5 s, is paid back by the eager dispatch it
        saves at every step: one model, 6 frames, first call, 2 cores: 0.89-0.95 s
        traced against 0.97-1.07 s eager at 128x85, 1.47 against 1.56-1.72 s at 256x171,
        3.23-3.55 against 3.50-4.22 s at 448x299; with 3 frames or fewer eager was as fast or
        faster). Inside a ``tf.function`` this is ``call``.

        ``progress``: None, or a callable called as ``progress(t, num_frames)`` after
        the t-th generated frame (t = 1..num_frames) is made, e.g. to move a progress bar.
        """
        if not tf.executing_eagerly():
            return self(inputs, num_frames=num_frames, seed=seed, direction=direction,
                        magnitude=magnitude, return_residuals=return_residuals)
        if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
            raise ValueError(f"SpiritNet.infer: num_frames must be an int >= 1, got {num_frames!r}")
        self.build()
        inputs = self._check_inputs(inputs)
        padded, height, width = _pad_inputs(inputs)
        states = self._initial_states(padded, seed, direction, magnitude, training=False)
        control = self._controls(inputs, num_frames)
        key = tuple(tuple(x.shape) for x in states[0].to_list()) + (tuple(control.shape[::2]),)
        traced = self._traced(key, trace, first=len(self.cells) > 1 or num_frames >= TRACE_FIRST_FRAMES)
        if traced:
            estimate = traced["depth"]
            steps = [functools.partial(traced["step"],
                                       weights=[v.value for v in self._step_variables(cell)])
                     for cell in self.cells]
        else:
            estimate, steps = None, [cell.step for cell in self.cells]
        outputs = []
        for t in range(num_frames):
            step_outputs = []
            for k, (cell, step) in enumerate(zip(self.cells, steps)):
                z = cell.step_depth(states[k], estimate=estimate)
                output, new_states = step(control[:, t], states[k].to_list(), z)
                states[k] = CellState.from_list(new_states)
                step_outputs.append(output)
            outputs.append(_mean(step_outputs))
            if progress is not None:
                progress(t + 1, num_frames)
        return _results(tf.stack(outputs, axis=1), height, width, return_residuals)

    # ------------------------------------------------------------------ training
    def compile(self, optimizer=None, depth_optimizer=None, loss_config=None, *,
                learning_rate=None, **kwargs):
        """Sets the two optimizers and the loss configuration; call it inside the strategy scope.

        Args:
          optimizer: for everything but the depth net (default `spiritnet_tf.optimizers.Adam`,
            Keras's Adam with fused updates, at ``config.learning_rate``, 1e-4; with a
            moving average of the weights when ``config.ema_momentum`` is set).
          depth_optimizer: for the depth net (default `spiritnet_tf.optimizers.Adam` at
            ``config.depth_learning_rate`` (1e-7) when ``config.pretrained_depth``,
            else at ``config.learning_rate``).
          loss_config: `LossConfig` or its dict (weights, VGG layers, VGG weights path).
          learning_rate: the default main optimizer's rate, a float or a
            `keras.optimizers.schedules.LearningRateSchedule` (default
            ``config.learning_rate``; `TrainConfig.learning_rate_schedule` gives a decay).
          **kwargs: passed to `keras.Model.compile` (e.g. ``jit_compile``, ``steps_per_execution``).

        Both optimizers are built here (docs/design.md §9: a lazily built second optimizer
        fails under MirroredStrategy), so the model is built here too.

        Raises:
          ValueError for an ensemble (``config.members`` > 1): its members are trained
            one at a time and joined (`spiritnet_tf.training.ensemble`).
        """
        if self.config.members > 1:
            raise ValueError(
                f"SpiritNet: an ensemble of {self.config.members} members is not trained as a "
                "whole; train each member alone (members=1) and join their weights with "
                "`python -m spiritnet_tf.training.ensemble`")
        if optimizer is None:
            average = ({} if self.config.ema_momentum is None else
                       {"use_ema": True, "ema_momentum": self.config.ema_momentum})
            optimizer = Adam(
                self.config.learning_rate if learning_rate is None else learning_rate,
                global_clipnorm=self.config.clipnorm,
                **average,
            )
        if depth_optimizer is None:
            rate = (
                self.config.depth_learning_rate
                if self.config.pretrained_depth
                else self.config.learning_rate
            )
            depth_optimizer = Adam(rate, global_clipnorm=self.config.clipnorm)
        kwargs.pop("loss", None)
        super().compile(optimizer=optimizer, **kwargs)
        if isinstance(loss_config, dict):
            loss_config = LossConfig.from_dict(loss_config)
        self.loss_config = loss_config or LossConfig()
        self._style_loss = (
            losses.StyleLoss(self.loss_config.style_layers, self.loss_config.vgg_weights)
            if self.loss_config.style_weight
            else None
        )
        self.build()
        self.depth_optimizer = depth_optimizer
        self.optimizer.build(self._main_variables())
        self.depth_optimizer.build(self.depth_net.trainable_variables)

    def get_compile_config(self):
        if not self.compiled:
            return None
        return {
            "optimizer": keras.optimizers.serialize(self.optimizer),
            "depth_optimizer": keras.optimizers.serialize(self.depth_optimizer),
            "loss_config": self.loss_config.to_dict(),
        }

    def compile_from_config(self, config):
        self.compile(
            optimizer=keras.optimizers.deserialize(config["optimizer"]),
            depth_optimizer=keras.optimizers.deserialize(config["depth_optimizer"]),
            loss_config=config["loss_config"],
        )

    def _main_variables(self):
        depth_ids = {id(v) for v in self.depth_net.trainable_variables}
        return [v for v in self.trainable_variables if id(v) not in depth_ids]

    @property
    def metrics(self):
        return list(self._trackers.values())

    def _compute_losses(self, x, y, out, training):
        """Weighted loss terms {"flow", "path", "pixel", "psnr", "sharpness", "style", "tv", "depth"} and
        their sum "loss"."""
        cfg = self.loss_config
        steps = losses.step_weights(tf.shape(out["flows"])[1], cfg.late_step_weight)
        terms = {
            "flow": losses.step_weighted_l1(out["flows"], y["flows"], steps),
            "path": losses.path_l1(out["flows"], y["flows"], steps),
            "pixel": losses.step_weighted_l1(out["frames"], y["frames"], steps,
                                             squared=cfg.pixel_norm == "l2"),
            "psnr": losses.psnr_loss(out["frames"], y["frames"]),
            "sharpness": losses.sharpness_gap(out["frames"], y["frames"]),
            "tv": losses.total_variation(out["frames"]),
            "style": tf.constant(0.0),
            "depth": tf.constant(0.0),
        }
        if self._style_loss is not None:
            terms["style"] = self._style_loss(out["frames"], y["frames"])
        total = cfg.flow_weight * terms["flow"] + cfg.style_weight * terms["style"]
        total += cfg.tv_weight * terms["tv"] + cfg.pixel_weight * terms["pixel"]
        total += cfg.sharpness_weight * terms["sharpness"] + cfg.path_weight * terms["path"]
        total += cfg.psnr_weight * terms["psnr"]
        # Supervised depth: the depth net on the real frames that carry ground truth. At
        # weight 0 it is not computed (logged as 0, as style is at weight 0): that pass
        # over every frame was 23 % of the op time of a profiled motion-recipe step.
        supervised = cfg.depth_weight > 0
        images, targets = [], []
        if supervised and x.get("depth") is not None:
            images.append(x["image"])
            targets.append(x["depth"])
        if supervised and y.get("depth") is not None:
            frames = y["frames"]
            images.append(tf.reshape(frames, tf.concat([[-1], tf.shape(frames)[2:]], 0)))
            targets.append(tf.reshape(y["depth"], tf.concat([[-1], tf.shape(y["depth"])[2:]], 0)))
        if images:
            images, targets = tf.concat(images, 0), tf.concat(targets, 0)
            height, width, ph, pw = _padding(images)
            # On the raw output: the normalised, floored z can lose every gradient.
            log_depth = self.cell.log_depth(_pad_reflect(images, ph, pw), training=training)
            log_depth = log_depth[:, :height, :width]
            if self.config.depth_mapping == "percentile":  # relative inverse depth d = -output
                terms["depth"] = losses.relative_depth(-log_depth, targets)
            else:
                terms["depth"] = losses.scale_invariant_log_depth(
                    None, targets, predicted_log_depth=log_depth)
            total += cfg.depth_weight * terms["depth"]
        terms["loss"] = total
        return terms

    def _forward(self, x, y, training):
        steps = y["frames"].shape[1] or tf.shape(y["frames"])[1]
        inputs = {k: x[k] for k in ("image", "flow0", "flow_before") if k in x}
        return self(inputs, num_frames=steps, training=training)

    def _record(self, terms, batch):
        for name, value in terms.items():
            self._trackers[name].update_state(value, sample_weight=batch)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        """One free-running step on ``data`` = (inputs, targets):

        inputs: {"image" [B,H,W,3], "flow0" [B,H,W,2], optional "depth" [B,H,W,1] (z of
        the image), optional "flow_before" [B,H,W,2] (``config.flow_history``)}; targets:
        {"frames" [B,T,H,W,3], "flows" [B,T,H,W,2], optional "depth" [B,T,H,W,1]}. T
        comes from targets["frames"]. Ground-truth depth supervises the depth net on the
        real frames; it is not fed to the recurrence.
        """
        x, y = data[0], data[1]
        # A pretrained depth net at rate 0 is frozen: no gradient is taken for it at all
        # (with depth_every_step off its whole backward pass is then skipped).
        frozen = self.config.pretrained_depth and self.config.depth_learning_rate == 0
        depth_vars = [] if frozen else self.depth_net.trainable_variables
        main_vars = self._main_variables()
        depth_only = self.config.depth_loss_only and not frozen
        with tf.GradientTape(persistent=depth_only) as tape:
            out = self._forward(x, y, training=True)
            terms = self._compute_losses(x, y, out, training=True)
            # Replica gradients are summed: each replica contributes loss / replicas.
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            scaled = terms["loss"] / replicas
            if depth_only:
                depth_loss = self.loss_config.depth_weight * terms["depth"] / replicas
        if depth_only:
            main_grads = tape.gradient(scaled, main_vars)
            depth_grads = [tf.zeros(v.shape, v.dtype) if g is None else g
                           for g, v in zip(tape.gradient(depth_loss, depth_vars), depth_vars)]
            del tape
        else:
            grads = tape.gradient(scaled, main_vars + depth_vars)
            main_grads, depth_grads = grads[:len(main_vars)], grads[len(main_vars):]
        self.optimizer.apply_gradients(zip(main_grads, main_vars))
        if depth_vars:
            self.depth_optimizer.apply_gradients(zip(depth_grads, depth_vars))
        return self._record(terms, tf.shape(x["image"])[0])

    def test_step(self, data):
        x, y = data[0], data[1]
        out = self._forward(x, y, training=False)
        terms = self._compute_losses(x, y, out, training=False)
        return self._record(terms, tf.shape(x["image"])[0])
