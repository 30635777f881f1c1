"""HDF5 helpers shared by the writers and readers of :mod:`nanotools.io`.

- :func:`atomic_h5`: write a file so that no reader ever sees half of it.
- :func:`write_value` / :func:`read_value`: any stage value (dataclasses,
  arrays, scalars, strings, nested containers) to an HDF5 node and back,
  bit for bit.
- :func:`nx_entry`, :func:`nx_data_group`, :func:`write_dataset`: the NeXus
  groups and datasets of the files nanotools writes.
- :func:`decode_attr`: an h5py attribute as a plain Python value.
"""
from __future__ import annotations

import dataclasses
import importlib
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["atomic_h5", "write_value", "read_value", "decode_attr", "nx_entry", "nx_data_group",
           "write_dataset", "STAGE_PACKAGES"]


# ---------------------------------------------------------------------------
# Atomic file writing, shared by save_stage, write_map and write_result.
# ---------------------------------------------------------------------------

def atomic_h5(path: Path, writer, *, force: bool = True) -> Path:
    """Call ``writer(h5file)`` on a temporary file next to ``path``, fsync it
    and rename it over ``path``.

    The rename is atomic on one file system, so a reader (or a user after
    Ctrl-C) sees either the old file, or no file, or the complete new one,
    never a half-written one.
    """
    import h5py

    path = Path(path)
    if path.exists() and not force:
        from ..errors import InputError
        raise InputError("the output file exists; pass force=True (--force) to overwrite it",
                         path)
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        with h5py.File(tmp_name, "w") as h5:
            writer(h5)
        # h5py closes the file but does not fsync it: without this a power cut
        # after the rename could leave an empty result under the final name.
        with open(tmp_name, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        # BaseException: KeyboardInterrupt / SystemExit from SIGTERM must also
        # remove the temporary file.
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:  # some file systems (and Windows) cannot fsync a directory
        pass
    return path


# ---------------------------------------------------------------------------
# Stage objects <-> HDF5
# ---------------------------------------------------------------------------
# Every node carries an attribute ``nt_kind`` saying how to rebuild the Python
# value; dataclasses also carry ``nt_class`` ("module:QualName").

_KIND = "nt_kind"
_CLASS = "nt_class"


def _class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


#: Packages whose dataclasses a stage file may name (their modules alone are
#: imported when a file is read).
STAGE_PACKAGES = ("nanotools",)


def _import_class(path: str) -> type:
    """The dataclass a stage file names: only the dataclasses of
    :data:`STAGE_PACKAGES`, so a file cannot make the reader import (and
    run) any other module."""
    import dataclasses

    module_name, _, qualname = path.partition(":")
    if not any(module_name == p or module_name.startswith(p + ".") for p in STAGE_PACKAGES):
        raise TypeError(f"stage files hold nanotools dataclasses only, not {path!r}")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and dataclasses.is_dataclass(obj)):
        raise TypeError(f"stage files hold nanotools dataclasses only, not {path!r}")
    return obj


def _where(group, name: str) -> str:
    return f"{group.name.rstrip('/')}/{name}"


def write_value(group, name: str, value: Any) -> None:
    """Write ``value`` as member ``name`` of the h5py ``group``.

    Each node carries ``nt_kind`` (and dataclasses ``nt_class``) so that
    :func:`read_value` rebuilds the same Python value, arrays bit for bit;
    :func:`nanotools.io.save_stage` lists what can be stored. Raises
    ``TypeError`` for anything else (object arrays, arbitrary instances).
    """
    import h5py

    # numpy scalars first: np.float64 is also a Python float, and the dtype
    # must survive the round trip.
    if isinstance(value, np.generic) and not isinstance(value, (np.str_, np.bytes_)):
        ds = group.create_dataset(name, data=value)
        ds.attrs[_KIND] = "numpy_scalar"
    elif isinstance(value, np.ndarray):
        if value.dtype.kind == "U":
            # HDF5 has no fixed-width UCS4 strings: store UTF-8 and the dtype.
            ds = group.create_dataset(name, shape=value.shape, dtype=h5py.string_dtype())
            if value.size:
                ds[...] = np.vectorize(lambda s: s, otypes=[object])(value)
            ds.attrs["nt_dtype"] = value.dtype.str
            ds.attrs[_KIND] = "ndarray_str"
        elif value.dtype.kind == "O":
            raise TypeError(f"cannot save {_where(group, name)}: arrays of Python objects "
                            "are not supported")
        else:
            ds = group.create_dataset(name, data=value)
            ds.attrs[_KIND] = "ndarray"
    elif value is None:
        sub = group.create_group(name)
        sub.attrs[_KIND] = "none"
    elif isinstance(value, bool):
        ds = group.create_dataset(name, data=np.bool_(value))
        ds.attrs[_KIND] = "bool"
    elif isinstance(value, int):
        if -2**63 <= value < 2**63:
            ds = group.create_dataset(name, data=np.int64(value))
            ds.attrs[_KIND] = "int"
        else:
            ds = group.create_dataset(name, data=str(value), dtype=h5py.string_dtype())
            ds.attrs[_KIND] = "bigint"
    elif isinstance(value, float):
        ds = group.create_dataset(name, data=np.float64(value))
        ds.attrs[_KIND] = "float"
    elif isinstance(value, complex):
        ds = group.create_dataset(name, data=np.complex128(value))
        ds.attrs[_KIND] = "complex"
    elif isinstance(value, str):
        try:
            encodable = "\x00" not in value and value.encode("utf-8") is not None
        except UnicodeEncodeError:
            encodable = False
        if encodable:
            ds = group.create_dataset(name, data=value, dtype=h5py.string_dtype())
            ds.attrs[_KIND] = "str"
        else:
            # NUL or lone surrogates: HDF5 strings cannot hold them, raw bytes can.
            raw = np.frombuffer(value.encode("utf-8", "surrogatepass"), dtype=np.uint8)
            ds = group.create_dataset(name, data=raw)
            ds.attrs[_KIND] = "str_raw"
    elif isinstance(value, (bytes, bytearray)):
        ds = group.create_dataset(name, data=np.frombuffer(bytes(value), dtype=np.uint8))
        ds.attrs[_KIND] = "bytes"
    elif isinstance(value, Path):
        ds = group.create_dataset(name, data=str(value), dtype=h5py.string_dtype())
        ds.attrs[_KIND] = "path"
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        sub = group.create_group(name)
        sub.attrs[_KIND] = "dataclass"
        sub.attrs[_CLASS] = _class_path(type(value))
        for f in dataclasses.fields(value):
            write_value(sub, f.name, getattr(value, f.name))
    elif isinstance(value, (list, tuple)):
        sub = group.create_group(name)
        sub.attrs[_KIND] = "tuple" if isinstance(value, tuple) else "list"
        sub.attrs["nt_length"] = len(value)
        for i, item in enumerate(value):
            write_value(sub, str(i), item)
    elif isinstance(value, dict):
        # Keys may be any str (with '/' or '.') or even ints, which HDF5 names
        # cannot all hold: store keys and values as two parallel lists.
        sub = group.create_group(name)
        sub.attrs[_KIND] = "dict"
        write_value(sub, "keys", list(value.keys()))
        write_value(sub, "values", list(value.values()))
    else:
        raise TypeError(f"cannot save {_where(group, name)} of type {type(value).__name__}")


def read_value(node) -> Any:
    """Rebuild the Python value written by :func:`write_value` at the h5py
    ``node`` (group or dataset); dataclasses are imported by the class path
    stored with them."""
    kind = node.attrs.get(_KIND)
    if isinstance(kind, bytes):
        kind = kind.decode()
    if kind == "numpy_scalar":
        return node[()]
    if kind == "ndarray":
        return node[...]
    if kind == "ndarray_str":
        dtype = np.dtype(str(node.attrs["nt_dtype"]))
        raw = node.asstr()[...]
        return np.array(raw.tolist() if raw.ndim else raw[()], dtype=dtype).reshape(node.shape)
    if kind == "none":
        return None
    if kind == "bool":
        return bool(node[()])
    if kind == "int":
        return int(node[()])
    if kind == "bigint":
        return int(node.asstr()[()])
    if kind == "float":
        return float(node[()])
    if kind == "complex":
        return complex(node[()])
    if kind == "str":
        return node.asstr()[()]
    if kind == "str_raw":
        return node[...].tobytes().decode("utf-8", "surrogatepass")
    if kind == "bytes":
        return node[...].tobytes()
    if kind == "path":
        return Path(node.asstr()[()])
    if kind in ("list", "tuple"):
        items = [read_value(node[str(i)]) for i in range(int(node.attrs["nt_length"]))]
        return tuple(items) if kind == "tuple" else items
    if kind == "dict":
        return dict(zip(read_value(node["keys"]), read_value(node["values"])))
    if kind == "dataclass":
        cls = _import_class(str(node.attrs[_CLASS]))
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            raise TypeError(f"{node.attrs[_CLASS]} is not a dataclass")
        values = {name: read_value(node[name]) for name in node}
        fields = {f.name: f for f in dataclasses.fields(cls)}
        init = {k: v for k, v in values.items() if k in fields and fields[k].init}
        obj = cls(**init)
        for k, v in values.items():
            if k in fields and not fields[k].init:
                # frozen dataclasses refuse setattr; the saved value must win
                object.__setattr__(obj, k, v)
        return obj
    raise ValueError(f"unknown stored kind {kind!r} at {node.name}")


def decode_attr(value) -> Any:
    """An h5py attribute as a plain Python value: ``str`` for bytes, Python
    scalars for NumPy ones, lists for arrays (h5py attributes come back as
    bytes, numpy strings or arrays of them)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return decode_attr(value[()])
        return [decode_attr(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def nx_entry(h5, *, default: str):
    """Mark ``h5`` as an NXroot whose ``default`` chain leads to
    ``/entry/<default>``, and return the new ``/entry`` (NXentry)."""
    h5.attrs["default"] = "entry"
    h5.attrs["NX_class"] = "NXroot"
    h5.attrs["creator"] = "nanotools"
    entry = h5.create_group("entry")
    entry.attrs["NX_class"] = "NXentry"
    entry.attrs["default"] = default
    return entry


def nx_data_group(parent, name: str, *, signal: str, axes: list, nx_class: str = "NXdata"):
    """Create the NeXus group ``parent/name`` (NXdata by default) whose
    ``signal`` attribute names its data and ``axes`` its axis datasets, one
    ``<axis>_indices`` attribute per axis; return the new h5py group."""
    group = parent.create_group(name)
    group.attrs["NX_class"] = nx_class
    group.attrs["signal"] = signal
    group.attrs["axes"] = axes
    for i, axis in enumerate(axes):
        group.attrs[f"{axis}_indices"] = np.int64(i)
    return group


def write_dataset(group, name: str, data, units: str | None = None, **kw):
    """Create dataset ``group/name`` from ``data`` (``kw`` go to h5py's
    ``create_dataset``: dtype, compression...), with a NeXus ``units``
    attribute when ``units`` is given; return the dataset."""
    ds = group.create_dataset(name, data=data, **kw)
    if units:
        ds.attrs["units"] = units
    return ds
