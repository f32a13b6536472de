"""Pictures of the default animation of the example photo, for the README (`make pictures`).

    python scripts/pictures.py [--photo examples/coffee.jpg] [--out docs]

writes, with the bundled weights, seed 0 and every other default:
  OUT/example-depth.png   the inverse depth z the motion was drawn from (bright = near)
  OUT/example-flow.png    the first step's motion (-F_1) on the standard flow colour wheel
                          (hue = direction, saturation = speed; white = still)
  OUT/example-frames.jpg  a contact sheet of the frames, frame 0 first
"""

import argparse
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photo", default=os.path.join(REPO, "examples", "coffee.jpg"))
    parser.add_argument("--out", default=os.path.join(REPO, "docs"))
    args = parser.parse_args(argv)

    import spiritnet_tf
    from spiritnet_tf.io import contact_sheet, depth_to_rgb, flow_to_rgb, to_uint8, write_image

    anim = spiritnet_tf.animate(args.photo, num_frames=6, seed=0)
    paths = {name: os.path.join(args.out, name) for name in
             ("example-depth.png", "example-flow.png", "example-frames.jpg")}
    write_image(depth_to_rgb(anim.depth), paths["example-depth.png"], overwrite=True)
    write_image(to_uint8(flow_to_rgb(-anim.flows[0])), paths["example-flow.png"], overwrite=True)
    write_image(contact_sheet(anim.frames), paths["example-frames.jpg"], overwrite=True)
    print(f"wrote {', '.join(paths.values())} (zoom {anim.zoom:.3f}, motion scale {anim.motion_scale:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
