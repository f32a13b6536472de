"""Where a model's margin over constant velocity comes from: its flows, or how it renders them.

docs/training.md, "Forty-fourth and forty-fifth attempts", quotes its figures.

    python scripts/flows_rendered_like_constant_velocity.py RUN_OR_WEIGHTS \\
        --data data/heldout_videos_v6 --cache-dir data/cache/heldout_v6

Prediction mode on the held-out clips at 128x224 (as `spiritnet evaluate`), side by side:
the model; the model's own flows rendered the way constant velocity renders its flow (a
bilinear warp of the previous frame each step, `spiritnet_tf.evaluation.baselines`), so
that only the flows differ from constant velocity; constant velocity damped by a fixed
factor per step (flow0 times a^t at step t+1); and the baselines. Prints the mean PSNR,
EPE and last-frame sharpness ratio of each, then the PSNR per step. A model with
``flow_history`` is evaluated one frame later, with the flow before flow0, as
`spiritnet_tf.training.evaluate_model` does.
"""

import argparse

import tensorflow as tf

from spiritnet_tf.evaluation import BASELINES, evaluate
from spiritnet_tf.evaluation.baselines import warp_sequence
from spiritnet_tf.training.data import evaluation_samples, load_source, parse_source_spec
from spiritnet_tf.training.run import load_model

DAMPING = (0.9, 0.8)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", help="a run folder or weights file (as spiritnet evaluate --weights)")
    parser.add_argument("--data", required=True, help="held-out videos (a folder)")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--size", type=int, nargs=2, default=(128, 224), metavar=("H", "W"))
    args = parser.parse_args()
    height, width = args.size
    source = parse_source_spec(args.data, height=height, width=width, seed=0,
                               cache_dir=args.cache_dir, split="test", take=None)
    septuplets, _ = load_source(source, progress=False)
    model = load_model(args.weights)

    last = {}  # the model's output for the batch being evaluated: one run serves both predictors

    history = model.config.flow_history  # then one frame later, with the flow before flow0

    def model_frames(image, flow0, steps, teacher_flows=None, flow_before=None):
        # `evaluate` gives every predictor the same tensors of a batch (held here, so
        # that a later batch's tensors cannot be mistaken for them).
        if last.get("image") is not image or last.get("flow0") is not flow0:
            last.update(image=image, flow0=flow0)
            inputs = {"image": image, "flow0": flow0}
            if history:
                inputs["flow_before"] = flow_before
            last["out"] = model(inputs, num_frames=steps)
        return last["out"]

    def model_flows(image, flow0, steps, teacher_flows=None, flow_before=None):
        flows = model_frames(image, flow0, steps, flow_before=flow_before)["flows"]
        return {"frames": warp_sequence(image, flows), "flows": flows}

    def damped(factor):
        def predict(image, flow0, steps, teacher_flows=None, flow_before=None):
            flows = tf.stack([flow0 * factor ** t for t in range(steps)], axis=1)
            return {"frames": warp_sequence(image, flows), "flows": flows}
        return predict

    predictors = {"model": model_frames, "model's flows, rendered like constant velocity": model_flows,
                  **{f"constant velocity damped {a}": damped(a) for a in DAMPING}, **BASELINES}
    result = evaluate(predictors, evaluation_samples(septuplets, "prediction", 4, None, 0, history=history),
                      "prediction")
    for row in result.summary:
        print(f"{row['method']:50s} PSNR {row['psnr']:.3f} dB, EPE {row['epe']:.3f} px, "
              f"last-frame sharpness {row['sharpness_ratio']:.2f}")
    per_step = {}
    for row in result.rows:
        per_step.setdefault(row["method"], []).append(row["psnr"])
    for method, values in per_step.items():
        print(f"{method:50s}", " ".join(f"{v:.2f}" for v in values))


if __name__ == "__main__":
    main()
