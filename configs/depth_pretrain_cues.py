"""Pre-trains the small preset's depth net on the depth-cue scenes with the relative-depth
loss, in resumable chunks, and saves a SpiritNet (small preset, "percentile" depth mapping,
random non-depth weights) whose inverse depth `spiritnet evaluate-depth --weights` scores.

    python configs/depth_pretrain_cues.py OUT [--chunks N] [--steps-per-chunk S]

Each chunk renders fresh scenes (seed = chunk index) and trains S steps; OUT/depth.weights.h5
and OUT/progress.json are written after every chunk, and a rerun continues from them. Needs
data/textures (configs/depth_textures.sh). Run it niced with one thread (OMP_NUM_THREADS=1).
"""

import argparse
import json
import os

import tensorflow as tf


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--steps-per-chunk", type=int, default=50)
    parser.add_argument("--textures", default="data/textures")
    parser.add_argument("--height", type=int, default=96)
    parser.add_argument("--width", type=int, default=128)
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)

    from spiritnet_tf.layers.cell import depth_net_for
    from spiritnet_tf.model import SpiritNet
    from spiritnet_tf.training.depth import DepthPretraining, pretrain_depth

    os.makedirs(args.out, exist_ok=True)
    model = SpiritNet.from_preset("small", depth_mapping="percentile")
    model.build()
    net = depth_net_for(model.config)
    net.build((None, None, None, 3))
    weights = os.path.join(args.out, "depth.weights.h5")
    progress_path = os.path.join(args.out, "progress.json")
    progress = {"chunks": 0, "losses": []}
    if os.path.isfile(progress_path) and os.path.isfile(weights):
        with open(progress_path) as f:
            progress = json.load(f)
        net.load_weights(weights)
    for chunk in range(progress["chunks"], args.chunks):
        options = DepthPretraining(steps=args.steps_per_chunk, batch_size=8, learning_rate=1e-3,
                                   count=64, height=args.height, width=args.width, seed=1000 + chunk,
                                   scenes="cues", textures=args.textures, loss="relative")
        losses = pretrain_depth(net, options, progress=False)
        net.save_weights(weights + ".partial.weights.h5")
        os.replace(weights + ".partial.weights.h5", weights)
        progress["chunks"] = chunk + 1
        progress["losses"].append(sum(losses) / len(losses))
        with open(progress_path, "w") as f:
            json.dump(progress, f)
        model.depth_net.set_weights(net.get_weights())
        model.save_weights(os.path.join(args.out, "spiritnet_depth_cues.weights.h5"))
        print(f"chunk {chunk + 1}/{args.chunks}: mean loss {progress['losses'][-1]:.4f}", flush=True)


if __name__ == "__main__":
    main()
