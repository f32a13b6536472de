"""The whole test suite as `make test` runs it: wall time, summed test time, CPU, per file.

    python benchmarks/suite.py --markdown docs/benchmarks.md
    python benchmarks/suite.py --baseline 1349736 --markdown docs/benchmarks.md

Runs ``SPIRITNET_REQUIRE_OPS=1 python -m pytest -q -rfEs -p no:cacheprovider --durations=0``
with the test processes of the Makefile's ``PYTEST_PROCESSES`` (read from the Makefile,
so the two cannot drift apart), in a fresh process of this Python. Nothing is set up: the
``.venv`` and the compiled ops must exist (``make test`` once). Figures: pytest's wall
time from process start to exit, the sum of every test's setup, call and teardown
durations, the CPU time (user + system) of pytest and all its processes, the counts of
passed, failed and skipped tests, and the summed durations per file (the figures
tests/conftest.py's ``SLOW_FILES`` orders the files by: printed ready to paste).

``--baseline REV`` runs the suite of commit REV (its own tests; ``git archive`` into a
temporary folder made a git repository of the commit's files, with this checkout's
compiled ops and CUDA self-test copied in, and PYTHONPATH and the working folder
pointing at it) and then this checkout's, one after
the other in the same run; ``--this-first`` swaps the order. One run per side takes 8-13
minutes on 2 cores: it is not part of ``make bench``. Do not run it beside other work:
the suite uses both cores.
"""

import argparse
import collections
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

from report import ROOT, baseline_tree, machine_description, today, update_section

_DURATION = re.compile(r"^([\d.]+)s (?:setup|call|teardown)\s+(tests/[^:\s]+)::", re.M)
_COUNT = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed)")
_FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.M)
_FINAL = re.compile(r"^=*\s*(\d+ (?:passed|failed|skipped|errors?).*) in [\d.]+s", re.M)


def pytest_processes(makefile=os.path.join(ROOT, "Makefile")):
    """The pytest-xdist options of ``make test`` (the Makefile's ``PYTEST_PROCESSES``)."""
    with open(makefile) as f:
        match = re.search(r"^PYTEST_PROCESSES \?= *(.*)$", f.read(), re.M)
    if not match:
        raise SystemExit(f"{makefile} has no 'PYTEST_PROCESSES ?=' line")
    return match.group(1).split()


def parse_output(text):
    """{"counts": {"passed": n, ...}, "summed": seconds, "files": {file: summed seconds},
    "failed": [test ids]} from pytest's ``-q -rfEs --durations=0`` output."""
    files = collections.Counter()
    for seconds, path in _DURATION.findall(text):
        files[os.path.basename(path)] += float(seconds)
    final = _FINAL.findall(text)
    counts = {}
    if final:
        for number, kind in _COUNT.findall(final[-1]):
            counts["errors" if kind.startswith("error") else kind] = int(number)
    return {"counts": counts, "summed": sum(files.values()), "files": dict(files), "failed": _FAILED.findall(text)}


def run_suite(tree):
    """Runs the suite of the checkout at ``tree``; returns `parse_output`'s figures with
    "wall" and "cpu" (seconds) and "returncode"."""
    env = dict(os.environ, SPIRITNET_REQUIRE_OPS="1", PYTHONPATH=tree, TF_CPP_MIN_LOG_LEVEL="2")
    found = subprocess.run([sys.executable, "-c", "import spiritnet_tf; print(spiritnet_tf.__file__)"],
                           cwd=tree, env=env, capture_output=True, text=True).stdout.strip()
    if not os.path.realpath(found).startswith(os.path.realpath(tree) + os.sep):
        raise SystemExit(f"the suite in {tree} would import spiritnet_tf from {found!r}")
    command = [sys.executable, "-m", "pytest", "-q", "-rfEs", "-p", "no:cacheprovider",
               "--durations=0", *pytest_processes()]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    figures = parse_output(done.stdout)
    if not figures["counts"]:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
        raise SystemExit(f"no pytest summary from the suite in {tree} (exit {done.returncode})")
    return {**figures, "wall": wall, "cpu": cpu, "returncode": done.returncode}


def as_repository(tree):
    """Makes ``tree`` (a `baseline_tree`, which has no ``.git``) a git repository whose
    tracked files are its commit's (its own .gitignore keeps the copied builds out), for
    the tests that list the tracked files (tests/test_repository.py)."""
    git = ["git", "-C", tree, "-c", "user.name=suite", "-c", "user.email=suite@localhost"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "baseline"]):
        subprocess.run(git + args, check=True, capture_output=True)
    return tree


def _counts(figures):
    c = figures["counts"]
    return " / ".join(str(c.get(k, 0)) for k in ("passed", "failed", "skipped", "errors"))


def markdown(results, *, baseline, this, load):
    """The section's Markdown: ``results`` maps "base" (optional) and "this" to `run_suite`."""
    sides = [s for s in ("base", "this") if s in results]
    names = {"base": "base commit", "this": "this code"}
    lines = [
        "## The test suite (`benchmarks/suite.py`)",
        "",
        f"Measured {today()} on {machine_description()}; load average (1/5/15 min) at the "
        f"start: {load[0]}, at the end: {load[1]}. The command of `make test` "
        f"(`pytest -q -rfEs --durations=0 {' '.join(pytest_processes())}`, "
        "SPIRITNET_REQUIRE_OPS=1), each side's own tests.",
    ]
    if baseline:
        lines += ["", f"Side by side, in one run: base commit `{baseline}` and this checkout "
                  f"(`{this}`), one after the other ({' then '.join(names[s] for s in results)})."]
    header = "| What | " + " | ".join(names[s] for s in sides) + (" | base / this |" if baseline else " |")
    lines += ["", header, "|---" * (len(sides) + 1 + bool(baseline)) + "|"]
    for label, key in (("pytest, process start to exit: wall", "wall"),
                       ("summed test durations (setup + call + teardown)", "summed"),
                       ("CPU time (user + system) of pytest and its processes", "cpu")):
        cells = [f"{results[s][key]:,.1f} s" for s in sides]
        if baseline:
            cells.append(f"{results['base'][key] / results['this'][key]:.2f}x faster")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("| tests passed / failed / skipped / errors | "
                 + " | ".join(_counts(results[s]) for s in sides) + (" | |" if baseline else " |"))
    for side in sides:
        if results[side]["failed"]:
            lines.append(f"\nFailed in {names[side]}: " + ", ".join(
                f"`{test}`" for test in results[side]["failed"]) + ".")
    files = sorted(results["this"]["files"], key=lambda f: -results["this"]["files"][f])
    lines += ["", "Per file, summed test durations (s), largest first in this code:", "",
              "| file | " + " | ".join(names[s] for s in sides) + " |",
              "|---" * (len(sides) + 1) + "|"]
    for name in files:
        if results["this"]["files"][name] >= 1.0:
            lines.append(f"| {name} | " + " | ".join(
                f"{results[s]['files'].get(name, 0.0):.1f}" for s in sides) + " |")
    return "\n".join(lines)


def slow_files(files, at_least=15.0):
    """tests/conftest.py's ``SLOW_FILES`` from one run's per-file sums (largest first)."""
    return {name: round(seconds) for name, seconds in sorted(files.items(), key=lambda i: -i[1])
            if seconds >= at_least}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", metavar="REV", help="also run the suite of commit REV")
    parser.add_argument("--this-first", action="store_true",
                        help="with --baseline: this checkout's suite first")
    parser.add_argument("--markdown", help="Markdown file whose `suite` section to rewrite")
    args = parser.parse_args(argv)
    this = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()
    load = ["/".join(f"{x:.1f}" for x in os.getloadavg())]
    results = {}
    with tempfile.TemporaryDirectory() as work:
        trees = {"this": ROOT}
        if args.baseline:
            trees["base"] = as_repository(baseline_tree(args.baseline, os.path.join(work, "base")))
        order = sorted(trees, key=lambda side: (side == "base") == args.this_first)
        for side in order:
            print(f"running the suite of {side} ({trees[side]})", flush=True)
            results[side] = run_suite(trees[side])
            print(f"  {results[side]['wall']:.1f} s, {_counts(results[side])}", flush=True)
    load.append("/".join(f"{x:.1f}" for x in os.getloadavg()))
    text = markdown(results, baseline=args.baseline, this=this, load=load)
    print(text)
    print("\nSLOW_FILES =", slow_files(results["this"]["files"]))
    if args.markdown:
        update_section(args.markdown, "suite", text)
    failed = [s for s in results if results[s]["returncode"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
