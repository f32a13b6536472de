"""Training callbacks: image summaries and animated previews of generated sequences."""

import os

import keras
import numpy as np
import tensorflow as tf

from spiritnet_tf.io import flow_to_rgb, write_animation

__all__ = ["PreviewCallback"]


def _image_summary_metadata():
    from tensorboard.plugins.image import metadata

    return metadata.create_summary_metadata(
        display_name="animation", description="generated sequence (animated GIF: input first)")


class PreviewCallback(keras.callbacks.Callback):
    """After every epoch, runs the model on fixed samples and logs what it generates.

    Writes to the TensorBoard folder ``log_dir`` (step = epoch number, 1-based):

    * ``preview/frames``: per sample, a strip of the input and the T generated frames
      (top row) above the input and the T real frames (bottom row);
    * ``preview/flows``: the predicted backward flows (top) above the teacher's
      (bottom), coloured with `spiritnet_tf.io.flow_to_rgb` on one shared scale;
    * ``preview/animation``: an animated GIF (input + generated frames) of the first
      sample, as an image summary (TensorBoard's image dashboard shows it animated);
      the same GIF is kept as ``gif_dir/epoch-NNN.gif``.

    Args:
      samples: one batch ``(inputs, targets)`` in the training format (NumPy or tensors).
      log_dir: TensorBoard folder for the summaries.
      gif_dir: folder for the GIF files (None: no files).
    """

    def __init__(self, samples, log_dir, gif_dir=None):
        super().__init__()
        inputs, targets = samples
        self.image = np.asarray(inputs["image"], np.float32)
        self.flow0 = np.asarray(inputs["flow0"], np.float32)
        self.frames = np.asarray(targets["frames"], np.float32)
        self.flows = np.asarray(targets["flows"], np.float32)
        self.gif_dir = gif_dir
        self.writer = tf.summary.create_file_writer(log_dir)

    def on_epoch_end(self, epoch, logs=None):
        steps = self.frames.shape[1]
        out = self.model({"image": self.image, "flow0": self.flow0}, num_frames=steps)
        generated = np.clip(np.asarray(out["frames"]), 0, 1)
        flows = np.asarray(out["flows"])

        def strip(first, sequence):  # [B,H,W,C], [B,T,H,W,C] -> [B,H,(T+1)W,C]
            seq = np.concatenate([first[:, None], sequence], 1)
            return np.concatenate(list(np.moveaxis(seq, 1, 0)), axis=2)

        frames = np.concatenate([strip(self.image, generated), strip(self.image, self.frames)], 1)
        scale = max(float(np.abs(self.flows).max()), float(np.abs(flows).max()), 1e-6)
        colours = flow_to_rgb(np.concatenate([flows, self.flows], 0), max_magnitude=scale)
        blank = np.ones_like(colours[:, 0])
        batch = len(self.image)
        flow_strip = np.concatenate([strip(blank[:batch], colours[:batch]),
                                     strip(blank[batch:], colours[batch:])], 1)
        step = epoch + 1
        with self.writer.as_default(step=step):
            tf.summary.image("preview/frames", frames, max_outputs=batch)
            tf.summary.image("preview/flows", flow_strip, max_outputs=batch)
            if self.gif_dir is not None:
                path = os.path.join(self.gif_dir, f"epoch-{step:03d}.gif")
                write_animation([self.image[0], *generated[0]], path, overwrite=True)
                with open(path, "rb") as f:
                    gif = f.read()
                height, width = self.image.shape[1:3]
                tf.summary.write("preview/animation",
                                 tf.constant([str(width), str(height), gif]),
                                 metadata=_image_summary_metadata())
        self.writer.flush()

    def on_train_end(self, logs=None):
        self.writer.close()
