"""The one HTML writer: a page (``report.html``, ``series.html``) is a
notebook of cells rendered by nbconvert's HTML exporter with the package's
template (``nanotools/templates/nanotools_page``).

The cells are built by the functions here; each says in its metadata what it
is (a figure, a table, a block of text, the start or end of a section), so
the template, not Python, writes the markup and escapes every value::

    cells = [markdown("Intro ..."), *section("stage-01", [figure("rsm", png_b64)]),
             table({"seed": 0}, cls="parameters")]
    html = render("nanotools report", cells)
"""
from __future__ import annotations

from importlib import resources
from typing import Any, Iterable

__all__ = ["markdown", "figure", "text", "note", "bullets", "table", "section", "render",
           "format_value"]

_TEMPLATE = "nanotools_page"


def _raw(kind: str, **meta: Any):
    import nbformat

    return nbformat.v4.new_raw_cell("", metadata={"nanotools": {"kind": kind, **meta}})


def markdown(source: str, *, cls: str = ""):
    """A Markdown cell (rendered to HTML by nbconvert).

    Parameters
    ----------
    source
        Markdown text.
    cls
        Put the rendered text in a ``<div class=cls>`` when given.

    Returns
    -------
    nbformat.NotebookNode
        The cell.
    """
    import nbformat

    return nbformat.v4.new_markdown_cell(source, metadata={"nanotools": {"cls": cls}}
                                         if cls else {})


def figure(name: str, png_base64: str, *, caption: str = "", alt: str = ""):
    """A figure: one PNG with its name and caption.

    Parameters
    ----------
    name
        The figure's name (``id="fig-NAME"``, ``data-figure``).
    png_base64
        The PNG, base64-encoded text.
    caption
        Markdown caption.
    alt
        Alternative text; the name if empty.

    Returns
    -------
    nbformat.NotebookNode
        The cell.
    """
    import nbformat

    output = nbformat.v4.new_output("display_data", data={"image/png": png_base64})
    cell = nbformat.v4.new_code_cell("", outputs=[output])
    cell.metadata["nanotools"] = {"kind": "figure", "name": name, "caption": caption,
                                  "alt": alt}
    return cell


def text(content: str, *, cls: str = "summary"):
    """A block of printed text.

    Parameters
    ----------
    content
        The text, shown as printed.
    cls
        Class of the ``<pre>``.

    Returns
    -------
    nbformat.NotebookNode
        The cell.
    """
    import nbformat

    cell = nbformat.v4.new_code_cell(
        "", outputs=[nbformat.v4.new_output("stream", name="stdout", text=content)])
    cell.metadata["nanotools"] = {"kind": "text", "cls": cls}
    return cell


def note(content: str, *, cls: str):
    """One short paragraph of plain text.

    Parameters
    ----------
    content
        The text.
    cls
        Class of the ``<p>``.

    Returns
    -------
    nbformat.NotebookNode
        The cell.
    """
    return _raw("note", text=content, cls=cls)


def bullets(items: Iterable[str], *, cls: str = ""):
    """A bulleted list of short texts.

    Parameters
    ----------
    items
        The texts.
    cls
        Class of the ``<ul>``.

    Returns
    -------
    nbformat.NotebookNode
        The cell.
    """
    return _raw("list", items=[str(i) for i in items], cls=cls)


def format_value(value: Any) -> str:
    """A value as a person reads it.

    Parameters
    ----------
    value
        Text, bytes (decoded), a number (floats rounded to 6 significant
        digits), a list or array (items joined by ``; ``).

    Returns
    -------
    str
        The text shown.
    """
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return "; ".join(format_value(v) for v in value)
    return str(value)


def table(rows: dict | list, *, cls: str, header: list | None = None):
    """A table of names and values, or a grid.

    Parameters
    ----------
    rows
        A dict: one row per key (``<th>key</th><td data-name=key>value</td>``).
        A list of rows: a grid under ``header``, where a cell may be
        ``{"href": ..., "text": ...}`` (a link).
    cls
        Class of the ``<table>``.
    header
        Column titles of a grid.

    Returns
    -------
    nbformat.NotebookNode
        The cell.
    """
    if isinstance(rows, dict):
        body = [[str(k), format_value(v)] for k, v in rows.items()]
    else:
        body = [[v if isinstance(v, dict) else format_value(v) for v in row] for row in rows]
    return _raw("table", rows=body, cls=cls, header=list(header or []))


def section(section_id: str, cells: list, *, cls: str = "", heading: str = "") -> list:
    """Wrap cells in one ``<section>``.

    Parameters
    ----------
    section_id
        The section's ``id``.
    cells
        The cells it holds.
    cls
        The section's class.
    heading
        An ``<h2>`` heading at its top, if given.

    Returns
    -------
    list
        The cells, between the section's opening and closing markers.
    """
    return [_raw("open", id=section_id, cls=cls, heading=heading), *cells, _raw("close")]


def render(title: str, cells: list) -> str:
    """The page: ``title`` as ``<title>`` and ``<h1>``, then the cells.

    Parameters
    ----------
    title
        Page title.
    cells
        Cells from the functions of this module, in order.

    Returns
    -------
    str
        One self-contained HTML page.
    """
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.v4.new_notebook(cells=list(cells))
    templates = resources.files("nanotools") / "templates"
    exporter = HTMLExporter(template_name=_TEMPLATE, extra_template_basedirs=[str(templates)])
    body, _ = exporter.from_notebook_node(nb, resources={"page_title": title})
    return body
