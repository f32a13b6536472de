"""The notebooks in notebooks/: stored without outputs, and run top to bottom in a fresh kernel.

Each notebook asserts what it shows, so running it is the test. They run with small
settings (``SPIRITNET_NB_SMALL=1``: a tiny model, 64 px, 2 frames, a few training
steps; see each notebook's parameters cell) in a new IPython kernel of the interpreter
running pytest (kernel "python3" of the ipykernel installed beside it, checked below),
with this checkout first on ``PYTHONPATH`` and ``TMPDIR`` inside pytest's tmp_path.
"""

import glob
import os
import sys
import time

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient

from conftest import REPO

NOTEBOOK_DIR = os.path.join(REPO, "notebooks")
NOTEBOOKS = ["01_animate.ipynb", "02_train_with_model_fit.ipynb", "03_export_and_serve.ipynb"]
KERNEL = "python3"
CELL_TIMEOUT = 600  # seconds per cell: a guard against hangs (the slowest cell, the first
# training step of 02, takes 1 to 3 minutes on 2 busy cores)
_CHECK = "import sys, spiritnet_tf\nprint(sys.prefix)\nprint(spiritnet_tf.__file__)"


def _read(name):
    return nbformat.read(os.path.join(NOTEBOOK_DIR, name), as_version=nbformat.NO_CONVERT)


def test_the_notebooks_are_all_listed():
    found = sorted(os.path.basename(p) for p in glob.glob(os.path.join(NOTEBOOK_DIR, "*.ipynb")))
    assert found == NOTEBOOKS


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_stored_without_outputs(name):
    """Committed notebooks hold no outputs, execution counts or run metadata (diffs stay readable)."""
    nb = _read(name)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == KERNEL
    for index, cell in enumerate(nb.cells):
        where = f"{name} cell {index}"
        if cell.cell_type == "code":
            assert cell.outputs == [], (
                f"{where} has outputs: clear them with `python notebooks/strip_outputs.py`")
            assert cell.execution_count is None, f"{where} has an execution count"
        assert "execution" not in cell.metadata, f"{where} has execution timings in its metadata"
        assert "attachments" not in cell or not cell.attachments, f"{where} has attachments"
    parameters = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(parameters) == 1 and "SPIRITNET_NB_SMALL" in parameters[0].source, (
        f"{name} needs one cell tagged 'parameters' reading SPIRITNET_NB_SMALL")


def test_kernel_runs_this_interpreter():
    """The "python3" kernel spec starts this Python (its ipykernel), not another install."""
    spec = KernelSpecManager().get_kernel_spec(KERNEL)
    program = spec.argv[0]
    # jupyter_client replaces a bare "python"/"python3" with the interpreter that starts it.
    assert program in ("python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}") or (
        os.path.realpath(program) == os.path.realpath(sys.executable)), spec.argv
    assert spec.argv[1:3] == ["-m", "ipykernel_launcher"], spec.argv


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_top_to_bottom(name, tmp_path):
    nb = _read(name)
    nb.cells.append(nbformat.v4.new_code_cell(_CHECK))
    env = dict(os.environ, SPIRITNET_NB_SMALL="1", TMPDIR=str(tmp_path), TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p))
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name=KERNEL,
                            resources={"metadata": {"path": NOTEBOOK_DIR}})
    start = time.perf_counter()
    client.execute(env=env)  # raises CellExecutionError (with the cell and traceback) on failure
    print(f"{name}: {time.perf_counter() - start:.0f} s")
    lines = "".join(o.get("text", "") for o in nb.cells[-1].outputs).split()
    assert lines[0] == sys.prefix, f"the kernel ran {lines[0]}, not this interpreter ({sys.prefix})"
    assert os.path.realpath(lines[1]).startswith(os.path.realpath(REPO) + os.sep), (
        f"the kernel imported spiritnet_tf from {lines[1]}, not from this checkout")
