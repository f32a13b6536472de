"""``spiritnet data vimeo | videos | synthetic``: prepare training data."""

import sys

from spiritnet_tf.cli import add_command

__all__ = ["add_parser"]


def _size(parser):
    parser.add_argument("--height", type=int, default=256, help="frame height (default 256)")
    parser.add_argument("--width", type=int, default=448, help="frame width (default 448)")


def add_parser(subparsers):
    data = add_command(subparsers, "data", "Prepare training data (docs/design.md §4).")
    sub = data.add_subparsers(dest="data_command", metavar="SOURCE", required=True)

    p = sub.add_parser("vimeo", help="build the Vimeo-90K TFDS dataset with teacher flows")
    p.add_argument("--manual-dir", required=True,
                   help="folder holding the unzipped vimeo_septuplet (see the instructions)")
    p.add_argument("--data-dir", required=True, help="TFDS data directory to write")
    p.add_argument("--config", choices=("spiritnet", "full"), default="spiritnet",
                   help="spiritnet: the paper's 5000/600/40 subset (default); full: all")
    p.add_argument("--on-error", choices=("fail", "skip"), default="fail",
                   help="unreadable septuplets: stop (default) or skip with a warning")
    p.set_defaults(func=_vimeo)

    p = sub.add_parser("videos", help="cut videos / frame folders into cached septuplets")
    p.add_argument("directory", help="folder of .mp4/.mov/.gif files or frame folders")
    p.add_argument("--out", required=True, help="cache folder for the TFRecords")
    _size(p)
    p.add_argument("--frame-step", type=int, default=1, help="use every n-th frame")
    p.add_argument("--stride", type=int, default=7, help="frames between septuplet starts")
    p.add_argument("--teacher", default="dis", help="flow teacher (default dis)")
    p.add_argument("--on-error", choices=("fail", "skip"), default="fail",
                   help="unreadable files: stop (default) or skip with a warning")
    p.set_defaults(func=_videos)

    p = sub.add_parser("synthetic", help="render synthetic parallax scenes to TFRecords")
    p.add_argument("count", type=int, help="number of septuplets")
    p.add_argument("--out", required=True, help="output folder")
    _size(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shard-size", type=int, default=256, help="samples per TFRecord file")
    p.set_defaults(func=_synthetic)


def _vimeo(args):
    import tensorflow_datasets as tfds

    from spiritnet_tf.data.vimeo90k import ManualDownloadError, Vimeo90kSeptuplet, find_vimeo_root

    try:
        find_vimeo_root(args.manual_dir)
    except ManualDownloadError as e:
        print(e, file=sys.stderr)
        return 2
    builder = Vimeo90kSeptuplet(config=args.config, data_dir=args.data_dir,
                                on_error=args.on_error)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=args.manual_dir))
    for name, split in builder.info.splits.items():
        print(f"{name}: {split.num_examples} septuplets")
    print(f"written to {builder.data_dir}")
    return 0


def _videos(args):
    from spiritnet_tf.data.videos import cache_videos

    paths = cache_videos(args.directory, args.out, teacher=args.teacher,
                         size=(args.height, args.width), frame_step=args.frame_step,
                         stride=args.stride, on_error=args.on_error)
    print(f"{len(paths)} TFRecord files in {args.out}")
    return 0


def _synthetic(args):
    from spiritnet_tf.data.synthetic import write_synthetic_records

    paths = write_synthetic_records(args.out, args.count, args.height, args.width,
                                    seed=args.seed, shard_size=args.shard_size)
    print(f"{args.count} septuplets in {len(paths)} TFRecord files in {args.out}")
    return 0
