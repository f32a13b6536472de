"""Pre-trains a depth net on the depth-cue scenes with the relative-depth loss, in
resumable chunks, and saves a SpiritNet (small preset, "percentile" depth mapping, random
non-depth weights) whose inverse depth `spiritnet evaluate-depth --weights` scores.

    python configs/depth_pretrain_cues.py OUT [--chunks N] [--steps-per-chunk S]
        [--depth-width W] [--depth-side PX] [--sizes 96x128,64x128,...]
        [--init DEPTH_WEIGHTS] [--seed-base N] [--footage FOLDER [--footage-fraction F]]
        [--edge-weight W [--photos FOLDER [--photos-fraction F]]]

Each chunk renders fresh scenes (seed = --seed-base (1000) + chunk index) at the next size of --sizes
(cycled, so the net sees several aspect ratios) and trains S steps with one Adam whose
state carries over. OUT/depth.weights.h5, OUT/optimizer.npz and OUT/progress.json are
written after every chunk, and a rerun continues from them. --init starts a new run from
a depth net's weights (a `.weights.h5` of the depth net alone, as OUT/depth.weights.h5 or
the shipped spiritnet_tf/weights/depth/*.weights.h5) instead of a random one. The learning rate falls by
10x for the last fifth of the chunks. Needs data/textures (configs/depth_textures.sh).
--footage mixes pseudo-depth samples from footage (configs/depth_footage_data.sh) into
every chunk, --footage-fraction (0.5) of the samples. --edge-weight adds the
edge-following penalty (`spiritnet_tf.losses.edge_following`) to the loss; --photos mixes
real photos without depth (configs/depth_photos_data.sh) into every chunk for that
penalty alone, --photos-fraction (0.25) of the samples.
"""

import argparse
import json
import os

import numpy as np
import tensorflow as tf


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--steps-per-chunk", type=int, default=50)
    parser.add_argument("--scenes-per-chunk", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--textures", default="data/textures")
    parser.add_argument("--sizes", default="96x128", help="comma-separated HxW, cycled per chunk")
    parser.add_argument("--depth-width", type=float, default=0.125)
    parser.add_argument("--depth-side", type=int, default=None,
                        help="the model's depth_side (long side the depth net runs at)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--init", default=None, help="depth-net weights a new run starts from")
    parser.add_argument("--seed-base", type=int, default=1000)
    parser.add_argument("--footage", default=None,
                        help="folder of footage pseudo-depth samples mixed in (configs/depth_footage_data.sh)")
    parser.add_argument("--footage-fraction", type=float, default=0.5)
    parser.add_argument("--edge-weight", type=float, default=0.0,
                        help="weight of the edge-following penalty (spiritnet_tf.losses.edge_following)")
    parser.add_argument("--photos", default=None,
                        help="folder of real photos without depth for the edge penalty (configs/depth_photos_data.sh)")
    parser.add_argument("--photos-fraction", type=float, default=0.25)
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(2)

    import keras

    from spiritnet_tf.layers.cell import depth_net_for
    from spiritnet_tf.model import SpiritNet
    from spiritnet_tf.training.depth import DepthPretraining, pretrain_depth

    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    os.makedirs(args.out, exist_ok=True)
    overrides = dict(depth_mapping="percentile", depth_width=args.depth_width)
    if args.depth_side:
        overrides["depth_side"] = args.depth_side
    model = SpiritNet.from_preset("small", **overrides)
    model.build()
    net = depth_net_for(model.config)
    net.build((None, None, None, 3))
    optimizer = keras.optimizers.Adam(args.learning_rate, global_clipnorm=1.0)
    optimizer.build(net.trainable_variables)
    weights = os.path.join(args.out, "depth.weights.h5")
    state_path = os.path.join(args.out, "optimizer.npz")
    progress_path = os.path.join(args.out, "progress.json")
    progress = {"chunks": 0, "losses": [], "args": vars(args)}
    if os.path.isfile(progress_path) and os.path.isfile(weights):
        with open(progress_path) as f:
            progress = json.load(f)
        net.load_weights(weights)
        if os.path.isfile(state_path):
            saved = np.load(state_path)
            for i, variable in enumerate(optimizer.variables):
                variable.assign(saved[f"v{i}"])
    elif args.init:
        net.load_weights(args.init)
    for chunk in range(progress["chunks"], args.chunks):
        height, width = sizes[chunk % len(sizes)]
        rate = args.learning_rate * (0.1 if chunk >= 0.8 * args.chunks else 1.0)
        optimizer.learning_rate.assign(rate)
        options = DepthPretraining(steps=args.steps_per_chunk, batch_size=args.batch_size,
                                   learning_rate=rate, count=args.scenes_per_chunk, height=height,
                                   width=width, seed=args.seed_base + chunk, scenes="cues",
                                   textures=args.textures, loss="relative",
                                   footage=args.footage, footage_fraction=args.footage_fraction,
                                   edge_weight=args.edge_weight, photos=args.photos,
                                   photos_fraction=args.photos_fraction)
        losses = pretrain_depth(net, options, progress=False, optimizer=optimizer)
        net.save_weights(weights + ".partial.weights.h5")
        os.replace(weights + ".partial.weights.h5", weights)
        np.savez(state_path + ".partial.npz", **{f"v{i}": v.numpy() for i, v in enumerate(optimizer.variables)})
        os.replace(state_path + ".partial.npz", state_path)
        progress["chunks"] = chunk + 1
        progress["losses"].append(sum(losses) / len(losses))
        with open(progress_path, "w") as f:
            json.dump(progress, f)
        model.depth_net.set_weights(net.get_weights())
        model.save_weights(os.path.join(args.out, "spiritnet_depth_cues.weights.h5"))
        print(f"chunk {chunk + 1}/{args.chunks} {height}x{width}: mean loss {progress['losses'][-1]:.4f}",
              flush=True)


if __name__ == "__main__":
    main()
