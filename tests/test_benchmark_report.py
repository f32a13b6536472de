"""benchmarks/report.py: the summary of docs/benchmarks.md (headline figures, ratios, charts).

Runs on small made-up benchmark files, and reads (without writing) the real
docs/benchmarks.md to check that every headline figure is still found in its tables.
"""

import os

import pytest
from PIL import Image

from conftest import REPO, load_script

report = load_script(os.path.join("benchmarks", "report.py"))

MADE_UP = """# Benchmarks

Intro text.

<!-- speed:begin -->
## Speed

Machine: Test CPU, 2 cores, Python 3.11.7, TensorFlow 2.21.0. Date: 2030-01-02.

| C | pass | fast (ms) | slow (ms) |
|---|---|---:|---:|
| 3 | forward | 10.0 | 80.0 |
| 3 | forward+backward | 25.0 | 250.0 |
<!-- speed:end -->

<!-- rates:begin -->
## Rates

Measured 2030-01-03 on Test CPU, 2 cores, Python 3.11.7, TensorFlow 2.21.0.

| What | Figure |
|---|---|
| Pipeline from records | 40 samples/s |
| Pipeline on the fly | 4 samples/s |
| First step | 12.5 s |
| Peak RSS / RSS at start | 1,500 MiB / 1,000 MiB |
<!-- rates:end -->
"""

HEADLINES = (
    report.Headline("speed", "Fast forward+backward",
                    report.Cell({"C": "3", "pass": "forward+backward"}, "fast (ms)"), "slow",
                    report.Cell({"C": "3", "pass": "forward+backward"}, "slow (ms)"), target=5.0),
    report.Headline("speed", "Slow forward", report.Cell({"C": "3", "pass": "forward"}, "slow (ms)"),
                    "fast", report.Cell({"C": "3", "pass": "forward"}, "fast (ms)"), "slower"),
    report.Headline("rates", "Records", report.Cell({"What": "Pipeline from"}, "Figure"),
                    "on the fly", report.Cell({"What": "Pipeline on"}, "Figure"), "higher"),
    report.Headline("rates", "Peak memory", report.Cell({"What": "Peak RSS"}, "Figure", 0),
                    "at start", report.Cell({"What": "Peak RSS"}, "Figure", 1), "share"),
    report.Headline("rates", "Step vs first step", report.Cell({"What": "First step"}, "Figure"),
                    "no such row", report.Cell({"What": "Later steps"}, "Figure")),
    report.Headline("gone", "A section that is not there", report.Cell({"What": "x"}, "Figure"),
                    "nothing", report.Cell({"What": "y"}, "Figure")),
)
PLOTS = (("speed", "speed", "Speed (ms)", "C={C}, {pass}", ("fast (ms)", "slow (ms)")),)


def test_tables_and_quantities():
    tables = report.tables(report.sections(MADE_UP)["rates"])
    assert len(tables) == 1 and tables[0][0] == {"What": "Pipeline from records",
                                                 "Figure": "40 samples/s"}
    assert report.quantity("8478 ms/step (0.12 steps/s, 0.24 samples/s)") == (8478.0, "ms")
    assert report.quantity("129.6 s") == (129600.0, "ms")  # seconds compare with milliseconds
    assert report.quantity("32 samples/s") == (32.0, "samples/s")
    assert report.quantity("1457 MiB / 1093 MiB", 1) == (1093.0, "MiB")
    assert report.quantity("252 ms (247 ms)") == (252.0, "ms")
    assert report.quantity("10.3x") == (10.3, "x")
    assert report.quantity("33.9", unit="ms") == (33.9, "ms")
    assert report.quantity("n/a") is None
    assert report.tables("| a | b |\n|---|---:|\n| 1 \\| 2 | 3 |\n")[0] == [{"a": "1 | 2", "b": "3"}]


def test_headline_ratios():
    rows = {r["label"]: r for r in report.headline_rows(MADE_UP, HEADLINES)}
    fast = rows["Fast forward+backward"]
    assert fast["value"] == (25.0, "ms") and fast["baseline"] == (250.0, "ms")
    assert fast["ratio"] == pytest.approx(10.0) and fast["reading"] == "10.0x faster"
    assert fast["date"] == "2030-01-02"
    assert rows["Slow forward"]["ratio"] == pytest.approx(8.0)
    assert rows["Slow forward"]["reading"] == "8.00x slower"
    # A "slower" figure below its baseline reads as what it is, not "0.50x slower".
    reverse = report.Headline("speed", "Fast, read as slower",
                              report.Cell({"C": "3", "pass": "forward"}, "fast (ms)"), "slow",
                              report.Cell({"C": "3", "pass": "forward"}, "slow (ms)"), "slower")
    assert report.headline_rows(MADE_UP, (reverse,))[0]["reading"] == "0.12x the time (faster)"
    assert rows["Records"]["ratio"] == pytest.approx(10.0)
    assert rows["Records"]["reading"] == "10.0x higher"
    assert rows["Peak memory"]["ratio"] == pytest.approx(1.5)
    assert rows["Peak memory"]["reading"] == "1.50x"
    assert rows["Step vs first step"]["ratio"] is None  # its baseline row is missing
    assert rows["A section that is not there"]["value"] is None


def test_write_summary_at_the_top_with_charts_and_idempotent(tmp_path):
    path = tmp_path / "bench.md"
    path.write_text(MADE_UP)
    report.write_summary(str(path), machine="Test machine", date="2030-02-01",
                         headlines=HEADLINES, plots=PLOTS)
    text = path.read_text()
    # At the top: after the title and the introduction, before the first section.
    assert text.index("Intro text.") < text.index("<!-- summary:begin -->") < text.index(
        "<!-- speed:begin -->")
    summary = report.sections(text)["summary"]
    assert "Written 2030-02-01 by `benchmarks/report.py` (`make bench`) on Test machine" in summary
    assert "measured 2030-01-02, 2030-01-03 on Test CPU, 2 cores, Python 3.11.7, TensorFlow 2.21.0" \
        in summary
    assert ("| Fast forward+backward | 25 ms | slow: 250 ms | 10.0x faster (target 5x: met) |"
            in summary)
    assert "| Slow forward | 80 ms | fast: 10 ms | 8.00x slower |" in summary
    assert "| Records | 40 samples/s | on the fly: 4 samples/s | 10.0x higher |" in summary
    assert "| Peak memory | 1,500 MiB | at start: 1,000 MiB | 1.50x |" in summary
    assert "| Step vs first step | n/a | no such row | n/a (not found in the `rates` section) |" \
        in summary
    assert "![headline ratios](bench-ratios.png)" in summary
    assert "![Speed (ms)](bench-speed.png)" in summary
    for name in ("bench-ratios.png", "bench-speed.png"):
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG" and image.width > 100 and image.height > 50
    # The sections themselves are untouched.
    for name in ("speed", "rates"):
        assert report.sections(text)[name] == report.sections(MADE_UP)[name]
    # Running it again replaces the summary (one block, same text).
    report.write_summary(str(path), machine="Test machine", date="2030-02-01",
                         headlines=HEADLINES, plots=PLOTS)
    assert path.read_text() == text and text.count("<!-- summary:begin -->") == 1
    # A benchmark rewriting its section later keeps the summary where it is.
    report.update_section(str(path), "rates", "## Rates\n\nnew figures")
    again = path.read_text()
    assert report.sections(again)["rates"] == "## Rates\n\nnew figures"
    assert again.index("<!-- summary:begin -->") < again.index("<!-- speed:begin -->")


def test_summary_of_a_file_without_sections(tmp_path):
    path = tmp_path / "empty.md"
    path.write_text("# Benchmarks\n")
    rows = report.write_summary(str(path), machine="M", date="2030-02-01", headlines=HEADLINES,
                                plots=PLOTS)
    assert all(r["ratio"] is None for r in rows)
    text = path.read_text()
    assert text.startswith("# Benchmarks\n\n<!-- summary:begin -->") and "n/a" in text
    assert not list(tmp_path.glob("*.png"))  # nothing to draw


def test_every_headline_is_found_in_docs_benchmarks():
    """The scripts' tables and report.HEADLINES / PLOTS agree (read-only: nothing is written)."""
    with open(os.path.join(REPO, "docs", "benchmarks.md")) as f:
        text = f.read()
    rows = report.headline_rows(text)
    missing = [r["label"] for r in rows if r["ratio"] is None]
    assert not missing, f"headlines not found in docs/benchmarks.md: {missing}"
    found = report.sections(text)
    for suffix, section, _, label, columns in report.PLOTS:
        rows = [row for table in report.tables(found[section]) for row in table
                if all(c in row for c in columns)]
        assert rows and all(label.format(**row) for row in rows), suffix
    summary = report.sections(text).get("summary")
    assert summary is not None, "docs/benchmarks.md has no summary: run benchmarks/report.py"
    for _, name in [("", f"benchmarks-{p[0]}.png") for p in report.PLOTS] + [("", "benchmarks-ratios.png")]:
        assert f"({name})" in summary and os.path.exists(os.path.join(REPO, "docs", name)), name


def test_suite_benchmark_reads_pytest_output_and_the_makefile(monkeypatch):
    """benchmarks/suite.py: figures parsed from pytest's ``-q --durations=0`` output, the
    test processes taken from the Makefile, and its table read by the summary."""
    monkeypatch.syspath_prepend(os.path.join(REPO, "benchmarks"))
    suite = load_script(os.path.join("benchmarks", "suite.py"))
    with open(os.path.join(REPO, "Makefile")) as f:
        assert f"PYTEST_PROCESSES ?= {' '.join(suite.pytest_processes())}\n" in f.read()
    output = """....s.F
============================= slowest durations ==============================
12.50s call     tests/test_a.py::test_one[x]
2.00s setup    tests/test_a.py::test_one[x]
0.50s call     tests/test_b.py::test_two
(3 durations < 0.005s hidden.  Use -vv to show these durations.)
=========================== short test summary info ============================
FAILED tests/test_b.py::test_three - AssertionError: assert 1 == 2
SKIPPED [1] tests/test_b.py:9: no GPU
1 failed, 5 passed, 1 skipped, 2 warnings in 20.25s
"""
    figures = suite.parse_output(output)
    assert figures["counts"] == {"failed": 1, "passed": 5, "skipped": 1}
    assert figures["summed"] == pytest.approx(15.0)
    assert figures["files"] == {"test_a.py": 14.5, "test_b.py": 0.5}
    assert figures["failed"] == ["tests/test_b.py::test_three"]
    assert suite.slow_files(figures["files"], at_least=1.0) == {"test_a.py": 14}

    def fake_run(command, **kwargs):  # the import check finds this checkout; pytest fails
        stdout = os.path.join(REPO, "spiritnet_tf", "__init__.py") if "-c" in command else "ImportError"
        return type("Done", (), {"stdout": stdout, "stderr": "", "returncode": 4})()

    monkeypatch.setattr(suite.subprocess, "run", fake_run)
    with pytest.raises(SystemExit, match="no pytest summary"):
        suite.run_suite(REPO)
    with pytest.raises(SystemExit, match="would import spiritnet_tf from"):
        suite.run_suite(os.path.join(REPO, "tests"))
    results = {side: {**figures, "wall": wall, "cpu": 30.0, "returncode": 0}
               for side, wall in (("base", 30.0), ("this", 20.0))}
    text = suite.markdown(results, baseline="abc1234", this="def5678", load=["0.1", "1.9"])
    doc = f"<!-- suite:begin -->\n{text}\n<!-- suite:end -->\n"
    headline = [h for h in report.HEADLINES if h.section == "suite"]
    row = report.headline_rows(doc, headline)[0]
    assert (row["value"], row["baseline"]) == ((20000.0, "ms"), (30000.0, "ms"))
    assert "1.50x faster" in text and "| 5 / 1 / 1 / 0 |" in text
    assert "Failed in base commit: `tests/test_b.py::test_three`." in text
