"""``spiritnet train`` (one experiment file) and ``spiritnet evaluate`` (docs/design.md §5)."""

import os

from spiritnet_tf.cli import add_command

__all__ = ["add_parser", "parse_size"]


def parse_size(text):
    """``HEIGHTxWIDTH`` (e.g. ``256x448``) -> (height, width); ValueError naming the text."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"expected HEIGHTxWIDTH, e.g. 256x448, got {text!r}") from None
    return height, width


def add_parser(subparsers):
    from spiritnet_tf.config import RESAMPLE_MODES
    from spiritnet_tf.training.config import STRATEGIES

    p = add_command(subparsers, "train",
                    "Train SpiritNet as one experiment file (JSON or TOML) says. Rerun with the "
                    "same config and --out to resume an interrupted run from its last epoch.")
    p.add_argument("--config", required=True, help="experiment file (.json or .toml)")
    p.add_argument("--out", default=None,
                   help="run directory (default runs/<config file name>)")
    p.add_argument("--strategy", choices=STRATEGIES, default="default",
                   help="tf.distribute strategy: default (one device), mirrored (all local "
                        "GPUs), multiworker (cluster from TF_CONFIG)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a finished run (or a run of another config) in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_train)

    p = add_command(subparsers, "evaluate",
                    "Per-step PSNR/SSIM, flow EPE, |flow| ratio, sharpness ratio and temporal "
                    "consistency of the model and the copy-frame, constant-velocity and oracle "
                    "baselines, written as JSON, Markdown and a PNG plot (docs/design.md §5).")
    p.add_argument("--data", required=True,
                   help="synthetic:N, vimeo:DATA_DIR, a .tfrecord file / folder / glob, or a "
                        "folder of videos")
    p.add_argument("--mode", choices=("prediction", "generation"), default="prediction",
                   help="prediction: start from (im2, teacher flow F2->1); generation: start "
                        "from im1 with the model's DAFR flow, the baselines from the same flow")
    p.add_argument("--weights", default="default",
                   help="a .keras file, a .weights.h5 file (architecture from the manifest "
                        "beside it, else --preset), a run directory, 'default' (the bundled "
                        "weights) or 'none' (random initialisation)")
    p.add_argument("--preset", default="small", help="model preset for .weights.h5 / none")
    p.add_argument("--resample-from", choices=RESAMPLE_MODES, action="append",
                   help="evaluate the model with this resampling mode (repeat for both; "
                        "default: the model's own)")
    p.add_argument("--out", default="evaluation", help="report folder (default ./evaluation)")
    p.add_argument("--size", type=parse_size, default=(256, 448),
                   help="synthetic render / video cut size HxW (default 256x448)")
    p.add_argument("--crop", type=parse_size, default=None, help="evaluate on HxW crops")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of synthetic scenes, crops and the DAFR draw (default 0)")
    p.add_argument("--split", default="test", help="Vimeo-90K split (default test)")
    p.add_argument("--cache-dir", default=None, help="TFRecord cache of a video folder")
    p.add_argument("--take", type=int, default=None, help="use the first N septuplets only")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--max-batches", type=int, default=None)
    p.add_argument("--overwrite", action="store_true", help="replace existing reports in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_evaluate)


def _train(args):
    from spiritnet_tf.training.config import load_config
    from spiritnet_tf.training.run import train

    config = load_config(args.config)
    out = args.out or os.path.join("runs", os.path.splitext(os.path.basename(args.config))[0])
    manifest = train(config, out, strategy=args.strategy, overwrite=args.overwrite,
                     progress=not args.quiet)
    losses = ", ".join(f"{k} {v:.4g}" for k, v in sorted(manifest["final_losses"].items()))
    print(f"trained {manifest['steps']} steps; final {losses}")
    print(f"run directory: {out} (model.weights.h5, model.keras, manifest.json)")
    return 0


def _evaluate(args):
    from spiritnet_tf.evaluation import markdown_table
    from spiritnet_tf.training.run import evaluate_weights

    result, paths = evaluate_weights(
        args.weights, args.data, args.out, mode=args.mode, preset=args.preset,
        resample_from=args.resample_from, size=args.size, crop=args.crop, seed=args.seed,
        split=args.split, cache_dir=args.cache_dir, take=args.take, batch_size=args.batch_size,
        max_batches=args.max_batches, overwrite=args.overwrite, progress=not args.quiet)
    print(markdown_table(result))
    print("written: " + ", ".join(paths.values()))
    return 0
