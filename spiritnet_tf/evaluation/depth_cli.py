"""``spiritnet evaluate-depth FOLDER``: a model's inverse depth against real scenes' depth
(`spiritnet_tf.evaluation.depth`), beside three baselines."""

import json
import os

from spiritnet_tf.cli import add_command

__all__ = ["add_parser"]


def add_parser(subparsers):
    from spiritnet_tf.animation import DEFAULT_WORKING_SIDE

    p = add_command(subparsers, "evaluate-depth",
                    "For each scene folder FOLDER/<scene>/ (image.png and inverse_depth.npy, "
                    "NaN = no truth; configs/depth_eval_data.sh builds data/depth_eval), print "
                    "the Spearman correlation and the scale-and-shift-invariant error of the "
                    "model's inverse depth (the depth spiritnet animate uses, resized "
                    "bilinearly to the truth) and of three baselines: constant, lower is "
                    "nearer (row index), sharper is nearer (local Laplacian energy).")
    p.add_argument("folder", metavar="FOLDER", help="folder of depth scenes")
    p.add_argument("--weights", metavar="W",
                   help=".keras model or .weights.h5 file (default: the bundled weights)")
    p.add_argument("--working-side", type=int, default=DEFAULT_WORKING_SIDE,
                   help=f"long side the model runs at (default {DEFAULT_WORKING_SIDE})")
    p.add_argument("--baselines-only", action="store_true", help="score the baselines only")
    p.add_argument("--photos", nargs="+", metavar="PHOTO", default=[],
                   help="photos without truth: also print Spearman(z, gradient magnitude) for "
                        "each (is the depth an edge detector?), and their mean absolute value")
    p.add_argument("--json", metavar="OUT", help="also write the figures as JSON (never replaces a file)")
    p.add_argument("--picture", metavar="PNG",
                   help="also write photo | truth | prediction per scene as a PNG (never replaces a file)")
    p.set_defaults(func=_run)


def _run(args):
    from spiritnet_tf.evaluation.depth import depth_picture, depth_table, evaluate_depth, load_depth_scenes

    for path in (args.json, args.picture):
        if path and os.path.exists(path):
            raise ValueError(f"{path} exists; not replacing it")
    if (args.picture or args.photos) and args.baselines_only:
        raise ValueError("--picture and --photos need the model's prediction: drop --baselines-only")
    if args.photos:  # each checked from its header before any work, as `animate` does
        from spiritnet_tf.io import check_image

        for path in args.photos:
            check_image(path)
    scenes = load_depth_scenes(args.folder)
    predict = None
    if not args.baselines_only:
        from spiritnet_tf.animation import animate, load_model

        model = load_model(args.weights)

        def model_depth(image):  # the depth spiritnet animate uses (working size)
            return animate(image, num_frames=1, weights=model, working_side=args.working_side).depth

        predict = model_depth
    maps = {}
    result = evaluate_depth(scenes, predict, maps)
    print(depth_table(result))
    if args.photos:
        import numpy as np

        from spiritnet_tf.evaluation.depth import edge_spearman
        from spiritnet_tf.io import load_image

        edges = {}
        for path in args.photos:
            image = load_image(path)  # the one loader: a clear error naming a bad file
            edges[path] = edge_spearman(predict(image), image)
        print("\n| photo | model edge rho |\n|---|---|")
        for path, edge in edges.items():
            print(f"| {os.path.basename(path)} | {edge:+.3f} |")
        print(f"| **mean abs** | {float(np.mean(np.abs(list(edges.values())))):.3f} |")
        result["photos_edge_spearman"] = edges
    if args.picture:
        depth_picture(scenes, maps, args.picture)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0
