"""Clears the outputs of notebooks before they are committed (tests/test_notebooks.py checks).

    python notebooks/strip_outputs.py [NOTEBOOK.ipynb ...]   # default: every notebook here

Removes outputs, execution counts and execution timings; keeps cell ids, tags and the
kernel spec.
"""

import glob
import os
import sys

import nbformat


def strip_outputs(path):
    """Strips one notebook in place; returns True when it changed."""
    nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    before = nbformat.writes(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
    nb.metadata.pop("widgets", None)
    after = nbformat.writes(nb)
    if after != before:
        with open(path, "w", encoding="utf-8") as f:
            f.write(after)
    return after != before


def main(argv=None):
    paths = (sys.argv[1:] if argv is None else argv) or sorted(
        glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), "*.ipynb")))
    for path in paths:
        print(f"{path}: {'stripped' if strip_outputs(path) else 'already clean'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
