"""Converter from the official MegaDepth checkpoint to our Keras ``MegaDepth``.

The official weights (``best_generalization_net_G.pth`` from zhengqili/MegaDepth) are a
PyTorch state dict of the ``nn.Sequential`` in ``pytorch_DIW_scratch.py`` wrapped in
``DataParallel``, so every key starts with ``module.`` and names a numeric module path
(``module.0.weight`` is the stem conv, ``module.3.0.0.1.0.0.weight`` the first conv of
the first inception block of the hourglass). The full ordered list of keys and shapes
that a current PyTorch ``state_dict()`` of that definition has (779 entries, one
``num_batches_tracked`` per batch norm) is kept in ``official_keys.txt`` next to this
file; ``python -m spiritnet_tf.depth.keylist`` regenerates it (and documents how).

Mapping: conv ``weight`` (O, I, kh, kw) -> Keras kernel (kh, kw, I, O); conv ``bias`` ->
bias; batch norm ``running_mean`` / ``running_var`` -> ``moving_mean`` /
``moving_variance`` and, for the stem's affine batch norm only, ``weight`` / ``bias`` ->
``gamma`` / ``beta``. ``num_batches_tracked`` is optional (the 2018 checkpoint predates it)
and ignored.

Usage::

    python -m spiritnet_tf.depth.convert best_generalization_net_G.pth megadepth.weights.h5
    depth = MegaDepth.from_preset("paper", weights="megadepth.weights.h5")

A ``.pth`` needs PyTorch (imported only then); a ``.npz`` of the same keys does not.
"""

import argparse
import os

import keras
import numpy as np

__all__ = ["official_keys", "state_dict_layout", "load_state_dict", "read_state_dict", "convert"]

KEY_LIST_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "official_keys.txt")
PREFIX = "module."


def official_keys():
    """The official state dict's keys and shapes, in order: a list of (key, shape tuple)."""
    keys = []
    with open(KEY_LIST_PATH) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                key, shape = line.rstrip("\n").split("\t")
                keys.append((key, tuple(int(d) for d in shape.split(",") if d)))
    return keys


def _conv_to_keras(weight):
    return np.transpose(weight, (2, 3, 1, 0))


def state_dict_layout(model):
    """Yields ``(official key, PyTorch shape, Keras variable or None, to_keras or None)``
    for ``model`` (a MegaDepth), in the order of the official state dict. The variable is
    None for ``num_batches_tracked``; ``to_keras`` is None where no transform is needed."""
    if not model.built:
        model.build((None, None, None, 3))
    for path, layer in model.torch_layout():
        p = f"{PREFIX}{path}."
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            yield p + "weight", (cout, cin, kh, kw), layer.kernel, _conv_to_keras
            yield p + "bias", (cout,), layer.bias, None
        elif isinstance(layer, keras.layers.BatchNormalization):
            channels = (layer.moving_mean.shape[0],)
            if layer.scale:
                yield p + "weight", channels, layer.gamma, None
            if layer.center:
                yield p + "bias", channels, layer.beta, None
            yield p + "running_mean", channels, layer.moving_mean, None
            yield p + "running_var", channels, layer.moving_variance, None
            yield p + "num_batches_tracked", (), None, None
        else:
            raise TypeError(f"unexpected layer in the MegaDepth layout: {layer!r}")


def read_state_dict(path):
    """Reads a state dict from ``.npz`` (NumPy only) or ``.pth``/``.pt`` (needs PyTorch)
    and returns a dict of NumPy arrays."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no state-dict file at {path!r}")
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    if path.endswith((".pth", ".pt")):
        try:
            import torch
        except ImportError as e:
            raise ImportError(
                f"reading {path!r} needs PyTorch, which is not installed. Install it "
                "(e.g. `pip install torch`, CPU is enough) or convert the checkpoint to .npz "
                "elsewhere with `np.savez(out, **{k: v.numpy() for k, v in "
                "torch.load(path, map_location='cpu').items()})`."
            ) from e
        state = torch.load(path, map_location="cpu", weights_only=True)
        return {k: v.detach().cpu().numpy() for k, v in state.items()}
    raise ValueError(f"unknown state-dict format {path!r}: expected .npz, .pth or .pt")


def _list_keys(keys, limit=8):
    keys = sorted(keys)
    more = f" ... and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def load_state_dict(model, state_dict):
    """Loads the official MegaDepth weights into ``model`` (a paper-size MegaDepth).

    Args:
      model: ``MegaDepth`` with width multiplier 1.0 (built here if needed).
      state_dict: a mapping from official key to array (NumPy arrays or CPU torch
        tensors), with or without the ``module.`` prefix and with or without
        ``num_batches_tracked``; or a path accepted by ``read_state_dict``.

    Raises:
      ValueError naming the missing keys, unexpected keys or the first key whose shape
      differs from the official definition, or if ``model`` is not the paper size.
    Returns the model.
    """
    if isinstance(state_dict, (str, os.PathLike)):
        state_dict = read_state_dict(os.fspath(state_dict))
    state = dict(state_dict)
    if state and not any(k.startswith(PREFIX) for k in state):
        state = {PREFIX + k: v for k, v in state.items()}  # saved without DataParallel
    expected = dict(official_keys())
    optional = {k for k in expected if k.endswith(".num_batches_tracked")}
    missing = set(expected) - optional - set(state)
    unexpected = set(state) - set(expected)
    if missing or unexpected:
        raise ValueError(
            "state dict does not match the official MegaDepth definition: "
            + (f"{len(missing)} missing key(s): {_list_keys(missing)}. " if missing else "")
            + (f"{len(unexpected)} unexpected key(s): {_list_keys(unexpected)}." if unexpected else "")
        )
    arrays = {}
    for key, value in state.items():
        array = np.asarray(value)
        if array.shape != expected[key]:
            raise ValueError(
                f"state dict entry {key!r} has shape {array.shape}, but the official MegaDepth "
                f"definition has {expected[key]}"
            )
        arrays[key] = array
    layout = list(state_dict_layout(model))
    if [(k, s) for k, s, _, _ in layout] != list(expected.items()):
        raise ValueError(
            "the official weights fit only the paper configuration: got a MegaDepth with "
            f"width_multiplier={model.width_multiplier}, levels={model.levels} "
            "(use MegaDepth.from_preset('paper'))"
        )
    for key, _, variable, to_keras in layout:
        if variable is not None:
            value = arrays[key] if to_keras is None else to_keras(arrays[key])
            variable.assign(value.astype(np.float32))
    return model


def convert(in_path, out_path):
    """Converts an official checkpoint (``.pth``/``.pt``/``.npz``) to a Keras
    ``.weights.h5`` file for ``MegaDepth.from_preset("paper")``."""
    if not out_path.endswith(".weights.h5"):
        raise ValueError(f"output path must end with .weights.h5, got {out_path!r}")
    from spiritnet_tf.depth.megadepth import MegaDepth

    model = load_state_dict(MegaDepth.from_preset("paper"), in_path)
    model.save_weights(out_path)
    return out_path


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m spiritnet_tf.depth.convert",
        description="Convert the official MegaDepth checkpoint (best_generalization_net_G.pth, "
        "or an .npz of its state dict) to Keras weights for MegaDepth.from_preset('paper').",
    )
    parser.add_argument("input", help="official state dict: .pth/.pt (needs PyTorch) or .npz")
    parser.add_argument("output", help="Keras weights file, ending in .weights.h5")
    args = parser.parse_args(argv)
    print(convert(args.input, args.output))


if __name__ == "__main__":
    main()
