"""``spiritnet animate IMAGE... -o OUT``: photos in, animations out (`spiritnet_tf.animate`)."""

import os

__all__ = ["add_parser"]

FORMATS = {"gif": ".gif", "mp4": ".mp4", "webp": ".webp", "png": ""}


def add_parser(subparsers):
    from spiritnet_tf.animation import DEFAULT_WORKING_SIDE
    from spiritnet_tf.config import DEFAULT_EDGES, DEFAULT_MAX_ZOOM, EDGES, RESAMPLE_MODES
    from spiritnet_tf.limits import MAX_ANIMATION_FRAMES
    from spiritnet_tf.io.writers import DEFAULT_FPS, LOOP_MODES

    p = subparsers.add_parser(
        "animate", help="turn photos into short animations",
        description="Animate each IMAGE and write the input followed by the generated frames "
                    "(N+1 frames with --loop none). With one IMAGE, OUT is the animation: "
                    ".gif, .mp4, .webp, or a folder of PNGs (no extension). With several, OUT "
                    "is a folder that receives one OUT/<image name>.<--format> per image "
                    "(a subfolder of PNGs for --format png). Frames keep the photo's resolution: "
                    "the model runs at --working-side and its flows are upsampled (docs/design.md "
                    "§6). Existing outputs are never replaced without --overwrite.")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="photo(s) to animate (JPEG, PNG, ...)")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="animation (.gif, .mp4, .webp, folder of PNGs); a folder for several images")
    p.add_argument("--format", choices=sorted(FORMATS), default="gif",
                   help="output format when OUT is a folder for several images (default gif)")
    p.add_argument("--frames", type=int, default=6,
                   help=f"generated frames N, 1..{MAX_ANIMATION_FRAMES} (default 6); the output holds N+1 "
                        "frames, the input first (2N with --loop boomerang)")
    p.add_argument("--fps", type=float, default=DEFAULT_FPS, help=f"frames per second (default {DEFAULT_FPS:g})")
    p.add_argument("--loop", choices=LOOP_MODES, default="none",
                   help="none: N+1 frames; boomerang: forward then back (2N frames); seamless: "
                        "N+1 frames whose last flows back into the first")
    p.add_argument("--seed", type=int, default=0, help="random seed of the motion (default 0)")
    p.add_argument("--direction", type=float, default=None, metavar="DEG",
                   help="direction of motion in degrees: 0 = right, 90 = down (default: random)")
    p.add_argument("--magnitude", type=float, default=1.0, help="scale of the motion (default 1)")
    p.add_argument("--mask", metavar="PNG", help="static region: white pixels do not move")
    p.add_argument("--edges", choices=EDGES, default=DEFAULT_EDGES,
                   help="zoom: every frame shows the same centred crop, the smallest that keeps "
                        "content from outside the photo out of every frame (the motion is scaled "
                        "down if --max-zoom is not enough); extend: no crop, border pixels are "
                        "repeated where the motion uncovers the outside (default %(default)s)")
    p.add_argument("--max-zoom", type=float, default=DEFAULT_MAX_ZOOM,
                   help=f"largest zoom of --edges zoom, >= 1 (default {DEFAULT_MAX_ZOOM:g})")
    depth = p.add_mutually_exclusive_group()
    depth.add_argument("--depth", metavar="FILE", help="depth map, PNG or NPY (larger = farther)")
    depth.add_argument("--inverse-depth", metavar="FILE",
                       help="inverse depth / disparity map, PNG or NPY (larger = nearer)")
    p.add_argument("--working-side", type=int, default=DEFAULT_WORKING_SIDE,
                   help=f"long side the model runs at (default {DEFAULT_WORKING_SIDE})")
    p.add_argument("--weights", metavar="W",
                   help=".keras model or .weights.h5 file (default: the bundled weights)")
    p.add_argument("--resample-from", choices=RESAMPLE_MODES, default=None,
                   help="warp the previous frame or the input each step (default: the model's)")
    p.add_argument("--save-flows", action="store_true",
                   help="also write OUTBASE_flows.npy and colour-coded flows OUTBASE_flows<ext>")
    p.add_argument("--save-depth", action="store_true",
                   help="also write the inverse depth as OUTBASE_depth.npy and OUTBASE_depth.png")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.set_defaults(func=_run)


def _outputs(images, output, fmt):
    """The output path of each image: OUT itself for one image, OUT/<stem><ext> for several."""
    if len(images) == 1:
        return [output]
    from spiritnet_tf.io.writers import output_format

    if os.path.isfile(output) or output_format(output) != "folder":
        raise ValueError(f"{output}: with several images the output must be a folder (no extension)")
    paths, seen = [], {}
    for image in images:
        stem = os.path.splitext(os.path.basename(os.path.normpath(image)))[0]
        if stem in seen:
            raise ValueError(f"{seen[stem]} and {image} would both be written to {stem}; rename one")
        seen[stem] = image
        paths.append(os.path.join(output, stem + FORMATS[fmt]))
    return paths


def _run(args):
    from spiritnet_tf.animation import animate, check_outputs

    outputs = _outputs(args.images, args.output, args.format)
    for path in outputs:  # unknown extensions and existing outputs fail before any work
        check_outputs(path, overwrite=args.overwrite, save_flows=args.save_flows,
                      save_depth=args.save_depth)
    for image, path in zip(args.images, outputs):
        # The photo is read (and checked) before the weights are loaded; loaded weights
        # are cached, so several photos share one model.
        anim = animate(
            image, args.frames, args.seed, weights=args.weights, direction=args.direction,
            magnitude=args.magnitude, mask=args.mask, depth=args.depth,
            inverse_depth=args.inverse_depth, working_side=args.working_side, loop=args.loop,
            resample_from=args.resample_from, edges=args.edges, max_zoom=args.max_zoom,
        )
        written = anim.save(path, fps=args.fps, overwrite=args.overwrite,
                            save_flows=args.save_flows, save_depth=args.save_depth, progress=True)
        height, width = anim.size
        print(f"wrote {', '.join(written)}: {len(anim.frame_order())} frames at {width}x{height} "
              f"(model at {anim.working_size[1]}x{anim.working_size[0]}"
              + (f", zoom {anim.zoom:.3f}" if anim.zoom > 1 else "") + ")")
        if anim.motion_scale < 1:
            print(f"note: {image}: the motion was scaled down to {anim.motion_scale:.0%} so that "
                  f"the zoom stays within --max-zoom {args.max_zoom:g} and no pixel shows content "
                  "from outside the photo (raise --max-zoom, lower --magnitude, or use --edges extend)")
    return 0
