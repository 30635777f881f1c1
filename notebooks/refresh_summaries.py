"""Store the reference output of each notebook's summary cell.

The stage notebooks are kept without outputs, except for the one cell per
notebook tagged ``summary`` / ``nbval-check-output``: its printed, rounded,
seeded figure is what ``pytest --nbval-lax notebooks/`` compares. Run this
after a change that moves those figures on purpose (a better algorithm),
then review the diff::

    python notebooks/refresh_summaries.py

It executes the notebooks in order with their own (CI-sized) defaults in a
scratch folder, copies the summary cells' text into the stored notebooks,
and strips every other output and execution count (a summary cell keeps
the count 1: nbval skips the comparison of a cell that looks unrun).
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import nbformat
import papermill

HERE = Path(__file__).resolve().parent


def main() -> int:
    books = sorted(HERE.glob("[0-9][0-9]_*.ipynb"))
    with tempfile.TemporaryDirectory(prefix="nanotools-refresh-") as scratch:
        for book in books:
            shutil.copy(book, scratch)
        for book in books:
            executed = Path(scratch) / book.name
            papermill.execute_notebook(str(executed), str(executed), cwd=scratch,
                                       kernel_name="python3", progress_bar=False)
            ran = nbformat.read(str(executed), as_version=4)
            stored = nbformat.read(str(book), as_version=4)
            outputs = {c.id: c.outputs for c in ran.cells if c.cell_type == "code"}
            for cell in stored.cells:
                if cell.cell_type != "code":
                    continue
                checked = "nbval-check-output" in cell.metadata.get("tags", [])
                # nbval compares only cells that look run: the reference keeps a count
                cell.execution_count = 1 if checked else None
                cell.outputs = [o for o in outputs.get(cell.id, []) if o.output_type == "stream"
                                ] if checked else []
                if checked:
                    print(f"{book.name}: {''.join(o.text for o in cell.outputs).strip()}")
            nbformat.write(stored, str(book))
    return 0


if __name__ == "__main__":
    sys.exit(main())
