"""``spiritnet animate IMAGE... -o OUT``: photos in, animations out (`spiritnet_tf.animate`).

Everything the user gave is checked before a model is loaded: options (--frames,
--fps, ...), every photo's header, --mask / --depth files, --weights, and every output
path with its side outputs (existing ones need --overwrite; a file where a folder must
be created is named). Photos that fail, then or while they are animated, are reported
and the others go on; a summary at the end names each failure and the exit status is
1 if any failed.
"""

import glob
import os
import sys

from spiritnet_tf.cli import add_command, ranged

__all__ = ["add_parser"]

FORMATS = {"gif": ".gif", "mp4": ".mp4", "webp": ".webp", "png": "",
           "motion-photo": ".MP.jpg", "live-photo": ".jpg"}


def add_parser(subparsers):
    from spiritnet_tf.animation import DEFAULT_WORKING_SIDE
    from spiritnet_tf.config import DEFAULT_EDGES, DEFAULT_MAX_ZOOM, EDGES, RESAMPLE_MODES
    from spiritnet_tf.io.images import PHOTO_EXTENSIONS
    from spiritnet_tf.io.writers import DEFAULT_FPS, LOOP_MODES, MAX_FPS
    from spiritnet_tf.limits import MAX_ANIMATION_FRAMES, MAX_PIXELS, MIN_SIDE

    p = add_command(subparsers, "animate",
                    "Animate each IMAGE and write the input followed by the generated frames "
                    "(N+1 frames with --loop none). With one photo, OUT is the animation: "
                    ".gif, .mp4, .webp, NAME.MP.jpg (an Android Motion Photo), NAME.jpg (an "
                    "Apple Live Photo: NAME.jpg and NAME.mov sharing one identifier) or a "
                    "folder of PNGs (no extension). With several "
                    "photos, a folder or a pattern, OUT is a folder that receives one "
                    "OUT/<image name>.<--format> per photo (a subfolder of PNGs for --format "
                    "png). Frames keep the photo's resolution: the model runs at "
                    "--working-side and its flows are upsampled. All inputs and outputs are "
                    "checked before the model is loaded; a photo that fails is reported, the "
                    "others go on, a summary names every failure and the exit status is 1. "
                    "Existing outputs are never replaced without --overwrite.")
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help="photo(s) to animate (JPEG, PNG, ...), folders of photos (their "
                        f"{', '.join(PHOTO_EXTENSIONS)} files) or glob patterns such as "
                        "'photos/*.jpg'")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="animation (.gif, .mp4, .webp, .MP.jpg Motion Photo, .jpg Live Photo, "
                        "folder of PNGs); a folder when IMAGE is "
                        "several photos, a folder or a pattern")
    p.add_argument("--format", choices=sorted(FORMATS), default="gif",
                   help="output format when OUT is a folder for several images (default gif)")
    p.add_argument("--frames", type=ranged(int, 1, MAX_ANIMATION_FRAMES), default=6,
                   help=f"generated frames N, 1..{MAX_ANIMATION_FRAMES} (default 6); the output holds N+1 "
                        "frames, the input first (2N with --loop boomerang)")
    p.add_argument("--fps", type=ranged(float, 0, MAX_FPS, open_low=True), default=DEFAULT_FPS,
                   help=f"frames per second, at most {MAX_FPS:g} (default {DEFAULT_FPS:g})")
    p.add_argument("--loop", choices=LOOP_MODES, default="none",
                   help="none: N+1 frames; boomerang: forward then back (2N frames); seamless: "
                        "N+1 frames whose last flows back into the first")
    p.add_argument("--seed", type=ranged(int, -2**63, 2**63 - 1), default=0,
                   help="random seed of the motion (default 0)")
    p.add_argument("--direction", type=ranged(float), default=None, metavar="DEG",
                   help="direction of motion in degrees: 0 = right, 90 = down (default: random)")
    p.add_argument("--magnitude", type=ranged(float, 0), default=1.0,
                   help="scale of the motion, >= 0 (default 1)")
    p.add_argument("--mask", metavar="PNG", help="static region: white pixels do not move")
    p.add_argument("--edges", choices=EDGES, default=DEFAULT_EDGES,
                   help="zoom: every frame shows the same centred crop, the smallest that keeps "
                        "content from outside the photo out of every frame (the motion is scaled "
                        "down if --max-zoom is not enough); extend: no crop, border pixels are "
                        "repeated where the motion uncovers the outside (default %(default)s)")
    p.add_argument("--max-zoom", type=ranged(float, 1.0), default=DEFAULT_MAX_ZOOM,
                   help=f"largest zoom of --edges zoom, >= 1 (default {DEFAULT_MAX_ZOOM:g})")
    depth = p.add_mutually_exclusive_group()
    depth.add_argument("--depth", metavar="FILE", help="depth map, PNG or NPY (larger = farther)")
    depth.add_argument("--inverse-depth", metavar="FILE",
                       help="inverse depth / disparity map, PNG or NPY (larger = nearer)")
    p.add_argument("--working-side", type=ranged(int, MIN_SIDE),
                   default=DEFAULT_WORKING_SIDE,
                   help=f"long side the model runs at (default {DEFAULT_WORKING_SIDE})")
    p.add_argument("--weights", metavar="W",
                   help=".keras model or .weights.h5 file (default: the bundled weights)")
    p.add_argument("--members", type=ranged(int, 1), metavar="K",
                   help="run only the first K members of an ensemble given by --weights "
                        "(the bundled weights are a single model): faster, not what the "
                        "ensemble's quality gate measured (default: all)")
    p.add_argument("--resample-from", choices=RESAMPLE_MODES, default=None,
                   help="warp the previous frame or the input each step (default: the model's)")
    p.add_argument("--save-flows", action="store_true",
                   help="also write OUTBASE_flows.npy and colour-coded flows OUTBASE_flows<ext>")
    p.add_argument("--save-depth", action="store_true",
                   help="also write the inverse depth as OUTBASE_depth.npy and OUTBASE_depth.png")
    p.add_argument("--max-pixels", type=ranged(int, 1), default=MAX_PIXELS,
                   help=f"refuse photos with more pixels (default {MAX_PIXELS:,})")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.set_defaults(func=_run)




def _expand(images):
    """(photo paths, whether OUT names one animation) from the IMAGE arguments.

    A folder gives its photo files (`PHOTO_EXTENSIONS`, sorted, hidden files skipped), a
    pattern with * ? [ its matches (sorted); anything else is taken as a photo path (a
    missing one is then reported with the other failures). Raises ValueError for a
    folder without photos or a pattern that matches nothing.
    """
    from spiritnet_tf.io.images import PHOTO_EXTENSIONS

    photos, single = [], len(images) == 1
    for item in images:
        if os.path.isdir(item):
            found = sorted(os.path.join(item, f) for f in os.listdir(item)
                           if not f.startswith(".") and f.lower().endswith(PHOTO_EXTENSIONS)
                           and os.path.isfile(os.path.join(item, f)))
            if not found:
                raise ValueError(f"IMAGE {item}: a folder without photos "
                                 f"({', '.join(PHOTO_EXTENSIONS)} files)")
            photos += found
            single = False
        elif not os.path.lexists(item) and glob.has_magic(item):
            found = sorted(p for p in glob.glob(item) if os.path.isfile(p))
            if not found:
                raise ValueError(f"IMAGE {item}: the pattern matches no file")
            photos += found
            single = False
        else:
            photos.append(item)
    unique = list(dict.fromkeys(os.path.normpath(p) for p in photos))
    return unique, single


def _outputs(photos, single, output, fmt):
    """The output path of each photo: OUT itself for one photo, OUT/<stem><ext> otherwise."""
    from spiritnet_tf.io.writers import output_format

    if single:
        output_format(output)  # ValueError naming OUT for an unknown extension
        return [output]
    if os.path.isfile(output) or output_format(output) != "folder":
        raise ValueError(f"-o {output}: with several photos, a folder or a pattern, -o must be a "
                         "folder (no extension); choose the files' type with --format")
    paths, seen = [], {}
    for photo in photos:
        stem = os.path.splitext(os.path.basename(photo))[0]
        if stem in seen:
            raise ValueError(f"{seen[stem]} and {photo} would both be written to "
                             f"{os.path.join(output, stem + FORMATS[fmt])}; rename one")
        seen[stem] = photo
        paths.append(os.path.join(output, stem + FORMATS[fmt]))
    return paths


def _check_outputs(outputs, args):
    """Every problem with the outputs and their side outputs, as CLI messages."""
    from spiritnet_tf.animation import output_paths
    from spiritnet_tf.io.writers import check_output_parent, output_conflict, output_format

    problems = []
    for output in outputs:
        paths = output_paths(output, save_flows=args.save_flows, save_depth=args.save_depth)
        for key, path in paths.items():
            folder = key in ("animation", "flows") and output_format(path) == "folder"
            try:
                conflict = output_conflict(path, folder=folder)
                check_output_parent(path)
            except OSError as e:
                problems.append(str(e))
                continue
            if conflict is not None and not args.overwrite:
                problems.append(f"{path} {conflict}; pass --overwrite to replace "
                                + ("them" if folder else "it"))
    return problems


def _check_options(args):
    """Checks --mask, --depth / --inverse-depth and --weights; ValueError/OSError naming them."""
    from spiritnet_tf.io.images import ImageInputError, load_depth_map, load_mask
    from spiritnet_tf.io.weights import weights_path

    checks = (("--mask", args.mask, load_mask, {}),
              ("--depth", args.depth, load_depth_map, {"kind": "depth"}),
              ("--inverse-depth", args.inverse_depth, load_depth_map, {"kind": "inverse"}))
    for option, path, load, options in checks:
        if path is not None:
            try:
                load(path, max_pixels=args.max_pixels, **options)
            except ImageInputError as e:
                raise ValueError(f"{option} {e}") from None
    if args.weights is not None:
        try:
            weights_path(args.weights)  # the loader's own rule, before the model loads
        except (ValueError, OSError) as e:
            raise ValueError(f"--weights {e}") from None


def _fail(failures, photo, error):
    message = str(error) if isinstance(error, (ValueError, OSError)) else (
        f"{type(error).__name__}: {error}")
    if os.path.basename(photo) not in message:
        message = f"{photo}: {message}"
    failures.append((photo, message))
    print(f"spiritnet animate: failed: {message}", file=sys.stderr, flush=True)


def _run(args):
    from spiritnet_tf import animation
    from spiritnet_tf.model import MemberCountError
    from spiritnet_tf.io.images import ImageInputError, check_image

    photos, single = _expand(args.images)
    outputs = _outputs(photos, single, args.output, args.format)
    problems = _check_outputs(outputs, args)
    if problems:
        raise ValueError("\n  ".join(["nothing written:"] + problems))
    _check_options(args)

    failures, ready = [], []
    for photo, output in zip(photos, outputs):  # headers only: nothing is decoded yet
        try:
            check_image(photo, max_pixels=args.max_pixels)
            ready.append((photo, output))
        except ImageInputError as e:
            _fail(failures, photo, e)
    if ready:
        # One model for every photo; weights that do not fit fail here, before any photo.
        try:  # (with --members, only those members are built: `load_model`)
            model = animation.load_model(args.weights, resample_from=args.resample_from,
                                         members=args.members)
        except MemberCountError as e:
            raise ValueError(f"--members {args.members}: {e}") from None
    for photo, output in ready:
        try:
            anim = animation.animate(
                photo, args.frames, args.seed, weights=model, direction=args.direction,
                magnitude=args.magnitude, mask=args.mask, depth=args.depth,
                inverse_depth=args.inverse_depth, working_side=args.working_side,
                loop=args.loop, max_pixels=args.max_pixels, edges=args.edges,
                max_zoom=args.max_zoom, progress=True)
            written = anim.save(output, fps=args.fps, overwrite=args.overwrite,
                                save_flows=args.save_flows, save_depth=args.save_depth,
                                progress=True)
        except Exception as e:  # noqa: BLE001 - reported; the other photos go on
            _fail(failures, photo, e)
            continue
        height, width = anim.size
        print(f"wrote {', '.join(written)}: {len(anim.frame_order())} frames at {width}x{height} "
              f"(model at {anim.working_size[1]}x{anim.working_size[0]}"
              + (f", zoom {anim.zoom:.3f}" if anim.zoom > 1 else "") + ")", flush=True)
        if anim.motion_scale < 1:
            print(f"note: {photo}: the motion was scaled down to {anim.motion_scale:.0%} so that "
                  f"the zoom stays within --max-zoom {args.max_zoom:g} and no pixel shows content "
                  "from outside the photo (raise --max-zoom, lower --magnitude, or use --edges "
                  "extend)", flush=True)
    if failures:
        done = len(photos) - len(failures)
        print(f"spiritnet animate: {done} of {len(photos)} photo(s) animated; "
              f"{len(failures)} failed:", file=sys.stderr)
        for _, message in failures:
            print(f"  {message}", file=sys.stderr)
        return 1
    return 0
