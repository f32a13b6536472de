"""Writes one benchmark's section of docs/benchmarks.md, collects machine facts, and
summarises the file.

Each benchmark owns the text between ``<!-- NAME:begin -->`` and
``<!-- NAME:end -->``; rerunning it replaces only that section (`update_section`).
``python benchmarks/report.py --markdown docs/benchmarks.md``, the last step of
``make bench``, then writes the ``summary`` section at the top and the charts beside
the file (`write_summary`).
"""

import dataclasses
import datetime
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import time


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def baseline_tree(revision, folder):
    """The files of commit ``revision`` of this repository in ``folder`` (``git archive``),
    with this checkout's compiled op libraries (and CUDA self-test build, if any) copied
    in: the code before a change, for the benchmarks' ``--baseline`` side-by-side runs."""
    os.makedirs(folder)
    archive = subprocess.run(["git", "-C", ROOT, "archive", "--format=tar", revision],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
    ops = os.path.join(ROOT, "spiritnet_tf", "ops")
    for name in os.listdir(ops):
        if name.endswith(".so"):
            shutil.copy2(os.path.join(ops, name), os.path.join(folder, "spiritnet_tf", "ops"))
    build = os.path.join(ROOT, "custom_ops", "build")
    if os.path.isdir(build):
        shutil.copytree(build, os.path.join(folder, "custom_ops", "build"))
    return folder


def machine_description():
    """One line naming the machine: CPU model, cores visible, memory, TF version."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_gib = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    mem_gib = int(line.split()[1]) / 2**20
                    break
    except OSError:
        pass
    import tensorflow as tf

    mem = f", {mem_gib:.0f} GiB RAM" if mem_gib else ""
    return f"{cpu}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}, TensorFlow {tf.__version__}"


def pin_two_cores(code):
    """Pins this process to two cores and TensorFlow to two threads per pool (the
    machines the project targets), then puts ``code``, the tree whose ``spiritnet_tf``
    is timed (this checkout or a baseline commit's), first on ``sys.path``."""
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:2])
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(2)
    sys.path.insert(0, code)


def today():
    return datetime.date.today().isoformat()


def update_section(path, name, markdown, *, first=False):
    """Replaces the section ``name`` of the Markdown file at ``path``; a missing section
    is appended, or with ``first`` inserted before the first section (after the title
    and introduction)."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    start = re.search(r"^<!-- [\w-]+:begin -->", text, re.M) if first else None
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    elif start:
        text = text[: start.start()] + block + "\n\n" + text[start.start():]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(text)


def timings(fn, repeats):
    """Wall-clock seconds of ``repeats`` calls of ``fn`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


# ----------------------------------------------------------------------------- summary
#
# `python benchmarks/report.py --markdown docs/benchmarks.md` (the last step of `make
# bench`) reads the sections the scripts wrote, picks the headline figures out of their
# tables (`HEADLINES`), and writes a summary section at the top of the file (machine,
# date, each figure with its ratio to its baseline) and bar charts beside it
# (``<stem>-ratios.png`` and one per `PLOTS` entry). It measures nothing itself.

SUMMARY = "summary"
_NUMBER = re.compile(r"(-?\d[\d,]*(?:\.\d+)?)\s*(ms|samples/s|steps/s|GB/s|MiB|GiB|x|s)?\b")
_HEADER_UNIT = re.compile(r"\((ms|s|MiB|GiB|GB/s|samples/s|steps/s)\)")
_DATE = re.compile(r"\b(\d{4}-\d{2}-\d{2})\b")
_MACHINE = re.compile(r"(?:Machine:|\bon)\s+([^\n]*?TensorFlow \d[\d.]*\d)")


def sections(text):
    """{name: body} of every ``<!-- NAME:begin -->`` ... ``<!-- NAME:end -->`` section, in order."""
    found = re.finditer(r"<!-- ([\w-]+):begin -->\n?(.*?)\n?<!-- \1:end -->", text, re.S)
    return {m.group(1): m.group(2) for m in found}


def tables(markdown):
    """The pipe tables of a Markdown text: a list of tables, each a list of {header: cell} rows."""
    result, lines = [], markdown.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].lstrip().startswith("|") and i + 1 < len(lines) and re.fullmatch(
                r"\s*\|[\s:|-]+\|\s*", lines[i + 1]):
            header = _cells(lines[i])
            rows, i = [], i + 2
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                cells = _cells(lines[i])
                rows.append(dict(zip(header, cells + [""] * (len(header) - len(cells)))))
                i += 1
            result.append(rows)
        else:
            i += 1
    return result


def _cells(line):
    line = line.strip().removeprefix("|").removesuffix("|")
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)]


def quantity(text, index=0, unit=""):
    """The ``index``-th number of a table cell and its unit: "8478 ms/step (...)" -> (8478.0, "ms").

    ``unit``: the unit of a number written without one (e.g. from a "(ms)" column header).
    Seconds are returned as milliseconds, GiB as MiB, so that figures of one kind compare.
    Returns None when the cell has no such number.
    """
    matches = list(_NUMBER.finditer(text))
    if index >= len(matches):
        return None
    value, unit = float(matches[index].group(1).replace(",", "")), matches[index].group(2) or unit
    if unit == "s":
        value, unit = value * 1000.0, "ms"
    elif unit == "GiB":
        value, unit = value * 1024.0, "MiB"
    return value, unit


@dataclasses.dataclass(frozen=True)
class Cell:
    """A figure in a section's tables: the first row whose cells start with ``row``
    (header -> text prefix) in a table that has ``column``; the ``index``-th number there."""

    row: dict
    column: str
    index: int = 0

    def find(self, section_text):
        for table in tables(section_text):
            for row in table:
                if self.column in row and all(
                        row.get(k, "").startswith(v) for k, v in self.row.items()):
                    return self.find_in_row(row)
        return None

    def find_in_row(self, row):
        unit = _HEADER_UNIT.search(self.column)
        return quantity(row[self.column], self.index, unit.group(1) if unit else "")


@dataclasses.dataclass(frozen=True)
class Headline:
    """One headline figure of the summary and the baseline it is compared with.

    ``kind`` says how to read the ratio: "faster" (times: baseline / value, "N x
    faster"), "slower" (times: value / baseline, "N x slower"), "higher" (rates: value /
    baseline, "N x higher"), "share" (value / baseline, "N x"). ``target``: the ratio the
    project aims at, if any.
    """

    section: str
    label: str
    value: Cell
    baseline_label: str
    baseline: Cell
    kind: str = "faster"
    target: float = None


def _first_column(text):
    return {"What": text}


def _export_against_keras(label, runtime, keras_case, keras_label):
    """An export's CPU time against Keras on the composite warp running the same graph
    (the Keras row whose Runtime ends in ``keras_case``)."""
    return Headline("export", f"{label}, CPU time of one 256x256 animation, 6 frames",
                    Cell({"Runtime": runtime}, "CPU time"),
                    f"Keras, composite warp, {keras_label} (the same graph)",
                    Cell({"Runtime": f"Keras `tf.function`, composite warp, {keras_case}"},
                         "CPU time"), "slower")


HEADLINES = (
    Headline("warp", "Adaptive warp, compiled op, forward+backward, C=3 (B=4, 256x448)",
             Cell({"C": "3", "pass": "forward+backward"}, "compiled (ms)"), "composite warp",
             Cell({"C": "3", "pass": "forward+backward"}, "composite (ms)"), target=5.0),
    Headline("warp", "Adaptive warp, compiled op, forward+backward, C=67 (B=4, 256x448)",
             Cell({"C": "67", "pass": "forward+backward"}, "compiled (ms)"), "composite warp",
             Cell({"C": "67", "pass": "forward+backward"}, "composite (ms)"), target=17.0),
    Headline("data", "Training pipeline from TFRecords (256x448, batch 8)",
             Cell({"What (256x448)": "Pipeline from TFRecords"}, "Figure"),
             "rendering synthetic scenes on the fly",
             Cell({"What (256x448)": "Pipeline rendering synthetic scenes"}, "Figure"), "higher"),
    Headline("data", "DIS teacher `medium`, one frame pair (256x448)",
             Cell({"What (256x448)": "DIS teacher `medium`"}, "Figure"),
             "synthetic scene, render one septuplet",
             Cell({"What (256x448)": "Synthetic scene, render one septuplet"}, "Figure"), "share"),
    Headline("depth", "MegaDepth `small` forward (batch 1, 256x448)",
             Cell({"preset": "small"}, "forward median (min)"), "`paper` preset",
             Cell({"preset": "paper"}, "forward median (min)")),
    Headline("model", "SpiritNet `small` per-step latency, resample from previous (256x448)",
             Cell({"preset": "small", "resample_from": "previous"}, "per-step latency (ms)"),
             "`paper` preset", Cell({"preset": "paper", "resample_from": "previous"},
                                    "per-step latency (ms)")),
    Headline("model", "SpiritNet `small` per-step latency, resample from input (256x448)",
             Cell({"preset": "small", "resample_from": "input"}, "per-step latency (ms)"),
             "`paper` preset", Cell({"preset": "paper", "resample_from": "input"},
                                    "per-step latency (ms)")),
    Headline("animate", "`animate`, 448x256 photo, 6 frames, warm (CPU time)",
             Cell(_first_column("`animate`, 448x256 photo, 6 frames, warm: CPU"), "this code"),
             "the code before (the base commit)",
             Cell(_first_column("`animate`, 448x256 photo, 6 frames, warm: CPU"), "base commit"),
             target=2.0),
    Headline("animate", "`spiritnet animate` of the example photo, process start to exit (wall: "
             "issue 17's measure, item 3)",
             Cell(_first_column("`spiritnet animate examples/coffee.jpg -o out.gif` (600x400"), "this code"),
             "the code before (the base commit)",
             Cell(_first_column("`spiritnet animate examples/coffee.jpg -o out.gif` (600x400"), "base commit"),
             target=2.0),
    Headline("animate", "`spiritnet animate` of the example photo, process start to exit (CPU time)",
             Cell(_first_column("`spiritnet animate examples/coffee.jpg -o out.gif`: CPU"), "this code"),
             "the code before (the base commit)",
             Cell(_first_column("`spiritnet animate examples/coffee.jpg -o out.gif`: CPU"), "base commit"),
             target=2.0),
    Headline("suite", "`make test`'s pytest, the whole suite, process start to exit (wall; "
             "item 1 of issue 17: at most 12 minutes)",
             Cell(_first_column("pytest, process start to exit: wall"), "this code"),
             "the code before (the base commit)",
             Cell(_first_column("pytest, process start to exit: wall"), "base commit")),
    Headline("animate", "3000x2000 photo: all 7 full-resolution frames (streamed)",
             Cell(_first_column("3000x2000, compute all 7"), "Figure"),
             "the model run (`animate` at 448x299, 6 frames)",
             Cell(_first_column("3000x2000 photo, `animate`"), "Figure"), "share"),
    Headline("animate", "3000x2000 photo: peak RSS",
             Cell(_first_column("3000x2000, peak RSS"), "Figure", 0),
             "RSS with the model loaded", Cell(_first_column("3000x2000, peak RSS"), "Figure", 1),
             "share"),
    Headline("animate", "`spiritnet animate` of a 4000x3000 photo: peak RSS of the process",
             Cell(_first_column("`spiritnet animate big.jpg -o out.mp4`, 4000x3000: peak RSS"),
                  "this code"),
             "the code before (the base commit)",
             Cell(_first_column("`spiritnet animate big.jpg -o out.mp4`, 4000x3000: peak RSS"),
                  "base commit"), "share"),
    Headline("training", "Training step, `small`, 128x128, batch 2, 5 frames, depth net once "
             "(CPU time)", Cell({"Depth net": "once"}, "CPU time per step"),
             "the depth net every step", Cell({"Depth net": "every step"}, "CPU time per step")),
    Headline("training", "Training, first step (trace + compile), depth net once",
             Cell({"Depth net": "once"}, "First step (trace + compile)"),
             "the depth net every step",
             Cell({"Depth net": "every step"}, "First step (trace + compile)")),
    _export_against_keras("SavedModel `serving_default`", "SavedModel `serving_default`",
                          "`serving_default`'s graph", "`serving_default`'s graph in memory"),
    _export_against_keras("SavedModel `animate_tensor`", "SavedModel `animate_tensor`",
                          "`animate_tensor`'s graph", "`animate_tensor`'s graph in memory"),
    _export_against_keras("TFLite float32 (LiteRT)", "TFLite float32", "flow0", "flow0 given"),
    Headline("export", "SavedModel `serving_default`, CPU time per animation",
             Cell({"Runtime": "SavedModel `serving_default`"}, "CPU time"),
             "the code before the change (same run)",
             Cell({"Runtime": "SavedModel `serving_default`"}, "CPU time before")),
)

# Bar charts: (file suffix, section, title, label of a row (format string over its
# cells), value columns). Every table row holding those columns is one group of bars.
PLOTS = (
    ("warp", "warp", "Adaptive warp, B=4, 256x448 (ms, lower is better)",
     "C={C}, {pass}", ("compiled (ms)", "composite (ms)")),
    ("model", "model", "SpiritNet forward, batch 1, 256x448 (ms, lower is better)",
     "{preset}, resample from {resample_from}", ("per-step latency (ms)", "first frame (ms)")),
    ("export", "export", "One 256x256 animation, 6 frames, per runtime (ms, median; lower is better)",
     "{Runtime}", ("Latency per animation",)),
)


def _format(value, unit, compact=False):
    """A figure as text: as precise as the tables write it, or ``compact`` (for charts)."""
    if unit == "ms" and value >= 10000:
        value, unit = value / 1000, "s"
    if not compact:
        text = f"{value:,.2f}".rstrip("0").rstrip(".")
    elif value >= 100 or float(value).is_integer():
        text = f"{value:,.0f}"
    else:
        text = f"{value:,.{1 if value >= 1 else 2}f}"
    return f"{text} {unit}".strip()


def headline_rows(text, headlines=HEADLINES):
    """One dict per headline: label, value, baseline, ratio, reading, target, date
    (None where a figure is missing: the section or its row is not in ``text``)."""
    found = sections(text)
    rows = []
    for h in headlines:
        body = found.get(h.section)
        value = h.value.find(body) if body else None
        base = h.baseline.find(body) if body else None
        row = {"headline": h, "section": h.section, "label": h.label, "value": value,
               "baseline": base, "ratio": None, "reading": None,
               "date": (_DATE.search(body) or [None, None])[1] if body else None}
        if value and base and value[0] > 0 and base[0] > 0:
            ratio = base[0] / value[0] if h.kind == "faster" else value[0] / base[0]
            row["ratio"] = ratio
            row["reading"] = {"faster": f"{ratio:.1f}x faster",
                              "slower": (f"{ratio:.2f}x slower" if ratio >= 1
                                         else f"{ratio:.2f}x the time (faster)"),
                              "higher": f"{ratio:.1f}x higher",
                              "share": f"{ratio:.2f}x"}[h.kind]
        rows.append(row)
    return rows


def section_machines(text):
    """{section: machine line} as each benchmark section states it (the summary excluded)."""
    result = {}
    for name, body in sections(text).items():
        match = _MACHINE.search(body) if name != SUMMARY else None
        if match:
            result[name] = match.group(1)
    return result


def summary_markdown(text, *, machine, date, plots=(), headlines=HEADLINES):
    """The summary section for the benchmark file ``text`` (see the module notes above)."""
    rows = headline_rows(text, headlines)
    machines = sorted(set(section_machines(text).values()))
    dates = sorted({r["date"] for r in rows if r["date"]})
    lines = [
        "## Summary",
        "",
        f"Written {date} by `benchmarks/report.py` (`make bench`) on {machine}. "
        "It measures nothing: it collects the headline figures of the sections below, "
        f"measured {', '.join(dates) if dates else 'on dates not stated'} on "
        f"{'; '.join(machines) if machines else 'machines not stated'} (each section says "
        "how, and how loaded the machine was).",
        "",
        "| figure | value | baseline | ratio to the baseline |",
        "|---|---:|---|---|",
    ]
    for r in rows:
        if r["value"] is None or r["baseline"] is None:
            lines.append(f"| {r['label']} | n/a | {r['headline'].baseline_label} | "
                         f"n/a (not found in the `{r['section']}` section) |")
            continue
        ratio = r["reading"]
        target = r["headline"].target
        if target is not None:
            ratio += f" (target {target:g}x: {'met' if r['ratio'] >= target else 'not met'})"
        lines.append(f"| {r['label']} | {_format(*r['value'])} | {r['headline'].baseline_label}: "
                     f"{_format(*r['baseline'])} | {ratio} |")
    if plots:
        lines += [""] + [f"![{alt}]({path})" for alt, path in plots]
    return "\n".join(lines)


def update_summary(path, markdown):
    """Writes the summary section at the top of ``path`` (see `update_section`)."""
    update_section(path, SUMMARY, markdown, first=True)


# ----------------------------------------------------------------------------- charts

_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]


def bar_chart(path, title, groups, *, series=(), log=False, reference=None, size=(900, None)):
    """Horizontal bars, one group per category: ``groups`` = [(label, [value per series])]
    or [(label, values, [text per bar])] to write a text beside each bar instead of its value.

    ``series``: names of the values (a legend when more than one); ``log``: log-scale
    axis; ``reference``: a value drawn as a dashed vertical line (e.g. 1x). Writes a PNG.
    """
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=13)
    per_group = max(len(group[1]) for group in groups)
    bar, gap = 16, 12
    width = size[0]
    top, bottom = 44 + (22 if len(series) > 1 else 0), 36
    height = size[1] or top + bottom + len(groups) * (per_group * bar + gap)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    left = 16 + max(probe.textlength(group[0], font=font) for group in groups)
    right = 110
    values = [v for group in groups for v in group[1] if v is not None and v > 0]
    high = max(values + [reference or 0]) * 1.05
    low = min(values + [reference or high]) / 1.5 if log else 0.0

    def x_of(value):
        span = (math.log10(high) - math.log10(low)) if log else high
        frac = (math.log10(value) - math.log10(low)) / span if log else value / span
        return left + frac * (width - left - right)

    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((12, 10), title, fill="black", font=font)
    if log:
        ticks = [10.0 ** e for e in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)]
        ticks = [t for t in ticks if low <= t <= high]
    else:
        # 1-2-5 steps, at most one tick per 70 px of the plot (long labels leave it narrow)
        most = max(2, int((width - left - right) / 70))
        step = 10 ** math.floor(math.log10(high / most)) if high > 0 else 1
        step *= next((m for m in (1, 2, 5, 10) if high / (step * m) <= most), 10)
        ticks = [i * step for i in range(int(high / step) + 1)]
    for tick in ticks:
        x = x_of(tick)
        draw.line([(x, top - 4), (x, height - bottom)], fill=(225, 225, 225))
        draw.text((x, height - bottom + 6), f"{tick:g}", fill="black", font=font, anchor="mt")
    if reference is not None:
        x = x_of(reference)
        for y in range(top - 4, height - bottom, 8):
            draw.line([(x, y), (x, y + 4)], fill=(90, 90, 90), width=2)
    y = top
    for label, vs, *texts in groups:
        texts = texts[0] if texts else [_format(v, "", compact=True) if v else "" for v in vs]
        block = len(vs) * bar
        draw.text((left - 8, y + block / 2), label, fill="black", font=font, anchor="rm")
        for i, value in enumerate(vs):
            if value is not None and value > 0:
                x = x_of(value)
                draw.rectangle([left, y + i * bar + 1, x, y + (i + 1) * bar - 2],
                               fill=_COLOURS[i % len(_COLOURS)])
                draw.text((x + 4, y + i * bar + bar / 2), texts[i], fill="black",
                          font=font, anchor="lm")
        y += block + gap
    if len(series) > 1:
        x = left
        for i, name in enumerate(series):
            draw.rectangle([x, 36, x + 14, 48], fill=_COLOURS[i % len(_COLOURS)])
            draw.text((x + 20, 42), name, fill="black", font=font, anchor="lm")
            x += 40 + probe.textlength(name, font=font)
    image.save(path, format="PNG")
    return path


def write_plots(path, text, headlines=HEADLINES, plots=PLOTS):
    """Writes ``<stem>-ratios.png`` and one chart per `PLOTS` entry beside the Markdown
    file ``path``; returns [(alt text, path relative to the Markdown file)]."""
    folder, stem = os.path.dirname(os.path.abspath(path)), os.path.splitext(os.path.basename(path))[0]
    written = []
    rows = [r for r in headline_rows(text, headlines) if r["ratio"] is not None]
    if rows:
        name = f"{stem}-ratios.png"
        bar_chart(os.path.join(folder, name),
                  "Headline figures: ratio to their baseline (log scale; the dashed line is 1x)",
                  [(r["label"].replace("`", ""), [r["ratio"]], [r["reading"]]) for r in rows],
                  log=True, reference=1.0)
        written.append(("headline ratios", name))
    found = sections(text)
    for suffix, section, title, label, columns in plots:
        groups = []
        for table in tables(found.get(section, "")):
            for row in table:
                if all(c in row for c in columns):
                    try:
                        name = label.format(**row).replace("`", "")
                    except KeyError:  # another table of the section
                        continue
                    values = [Cell({}, c).find_in_row(row) for c in columns]
                    groups.append((name, [v[0] if v else None for v in values]))
        if groups:
            name = f"{stem}-{suffix}.png"
            bar_chart(os.path.join(folder, name), title, groups, series=columns)
            written.append((title, name))
    return written


def write_summary(path, *, machine=None, date=None, headlines=HEADLINES, plots=PLOTS):
    """Reads the Markdown file ``path``, writes its charts and its summary section.

    Returns the headline rows (see `headline_rows`).
    """
    text = open(path).read()
    charts = write_plots(path, text, headlines, plots)
    markdown = summary_markdown(text, machine=machine or machine_description(),
                                date=date or today(), plots=charts, headlines=headlines)
    update_summary(path, markdown)
    return headline_rows(text, headlines)


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(
        description="Summarise docs/benchmarks.md: headline figures with their ratios, charts "
                    "(the last step of `make bench`; it measures nothing).")
    parser.add_argument("--markdown", default="docs/benchmarks.md",
                        help="the benchmark file whose sections to summarise (default %(default)s)")
    args = parser.parse_args(argv)
    if not os.path.exists(args.markdown):
        print(f"report.py: {args.markdown} does not exist; run the benchmarks first", file=sys.stderr)
        return 2
    rows = write_summary(args.markdown)
    missing = [r["label"] for r in rows if r["ratio"] is None]
    for label in missing:
        print(f"report.py: warning: headline not found: {label}", file=sys.stderr)
    print(f"updated the summary of {args.markdown}: {len(rows) - len(missing)} of {len(rows)} "
          "headline figures")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
