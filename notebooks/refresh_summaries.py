"""Store the reference output of each notebook's summary cell.

The stage notebooks are stored without outputs. The one cell per notebook
tagged ``summary`` / ``nbval-check-output`` prints a rounded, seeded figure;
its expected text lives in ``tests/notebook_summaries.json``, and the nbval
test puts it into a copy of the notebook before ``pytest --nbval-lax``
compares. Run this after a change that moves those figures on purpose (a
better algorithm), then review the diff::

    python notebooks/refresh_summaries.py

It executes the notebooks in order with their own (CI-sized) defaults in a
scratch folder and writes the summary cells' text to that JSON file.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat
import papermill

# the tests' planner (tests/conftest.py): the same plans, the same figures
os.environ.setdefault("NANOTOOLS_FFTW_PLANNER", "estimate")

HERE = Path(__file__).resolve().parent
SUMMARIES = HERE.parent / "tests" / "notebook_summaries.json"


def main() -> int:
    books = sorted(HERE.glob("[0-9][0-9]_*.ipynb"))
    references = {}
    with tempfile.TemporaryDirectory(prefix="nanotools-refresh-") as scratch:
        for book in books:
            shutil.copy(book, scratch)
        for book in books:
            executed = Path(scratch) / book.name
            papermill.execute_notebook(str(executed), str(executed), cwd=scratch,
                                       kernel_name="python3", progress_bar=False)
            ran = nbformat.read(str(executed), as_version=4)
            for cell in ran.cells:
                tags = cell.metadata.get("tags", [])
                if cell.cell_type == "code" and "nbval-check-output" in tags:
                    references[book.name] = "".join(o.text for o in cell.outputs
                                                    if o.output_type == "stream")
                    print(f"{book.name}: {references[book.name].strip()}")
    SUMMARIES.write_text(json.dumps(references, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
