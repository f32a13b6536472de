"""Training curves of runs, one panel per loss term, one line per run (docs/training.md).

    python scripts/training_curves.py docs/training-ensemble-curves.png \
        runs/default_weights_v{72,73,76,77,88,89} [--terms loss flow psnr sharpness]

Reads each run's ``history.csv`` (the per-epoch mean of every logged term, written by
`spiritnet train`) and draws the terms against the epoch with PIL, the runs in the
order given, the legend naming each run folder.
"""

import argparse
import csv
import os

from PIL import Image, ImageDraw, ImageFont

COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
PANEL_W, PANEL_H, MARGIN = 420, 260, 48


def read_history(run):
    """{term: [value per epoch]} of ``run``'s history.csv."""
    with open(os.path.join(run, "history.csv")) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise SystemExit(f"{run}/history.csv holds no epoch")
    return {k: [float(r[k]) for r in rows] for k in rows[0] if k != "epoch" and rows[0][k] != "NA"}


def panel(draw, box, term, histories, font):
    """One term's lines in ``box`` (x0, y0), with its axes' extremes written."""
    x0, y0 = box
    values = [v for h in histories for v in h[term]]
    low, high = min(values), max(values)
    high = high if high > low else low + 1.0
    epochs = max(len(h[term]) for h in histories)
    left, top, right, bottom = x0 + MARGIN, y0 + 22, x0 + PANEL_W - 10, y0 + PANEL_H - 24
    draw.rectangle([left, top, right, bottom], outline="#888888")
    draw.text((x0 + MARGIN, y0 + 4), term, fill="black", font=font)
    draw.text((x0 + 2, top), f"{high:.3g}", fill="black", font=font)
    draw.text((x0 + 2, bottom - 10), f"{low:.3g}", fill="black", font=font)
    draw.text((left, bottom + 4), "epoch 1", fill="black", font=font)
    draw.text((right - 50, bottom + 4), f"epoch {epochs}", fill="black", font=font)
    for k, history in enumerate(histories):
        series = history[term]
        points = [(left + (right - left) * i / max(epochs - 1, 1),
                   bottom - (bottom - top) * (v - low) / (high - low)) for i, v in enumerate(series)]
        draw.line(points, fill=COLOURS[k % len(COLOURS)], width=2)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="PNG file to write")
    parser.add_argument("runs", nargs="+", help="run directories holding history.csv")
    parser.add_argument("--terms", nargs="+", default=["loss", "flow", "psnr", "sharpness"])
    args = parser.parse_args(argv)
    histories = [read_history(run) for run in args.runs]
    for term in args.terms:
        missing = [run for run, h in zip(args.runs, histories) if term not in h]
        if missing:
            raise SystemExit(f"no {term!r} in the history of {', '.join(missing)}")
    font = ImageFont.load_default()
    legend = 18 * len(args.runs) + 10
    image = Image.new("RGB", (2 * PANEL_W, PANEL_H * ((len(args.terms) + 1) // 2) + legend), "white")
    draw = ImageDraw.Draw(image)
    for i, term in enumerate(args.terms):
        panel(draw, ((i % 2) * PANEL_W, (i // 2) * PANEL_H), term, histories, font)
    y = image.height - legend + 5
    for k, run in enumerate(args.runs):
        draw.line([(MARGIN, y + 7), (MARGIN + 30, y + 7)], fill=COLOURS[k % len(COLOURS)], width=3)
        draw.text((MARGIN + 40, y), os.path.basename(os.path.normpath(run)), fill="black", font=font)
        y += 18
    image.save(args.out)
    print(f"wrote {args.out} ({len(args.runs)} runs, terms {', '.join(args.terms)})")


if __name__ == "__main__":
    main()
