"""Reading reciprocal-space maps and writing results (NeXus/HDF5).

Three groups of functions:

- :func:`read_map` / :func:`write_map`: a reciprocal-space map in and out of
  NeXus/HDF5 (and ``.npy``/``.npz`` in), brought to the canonical order of
  :class:`ReciprocalSpaceMap` (in-plane axes first, out-of-plane last, every
  axis increasing, q in 1/angstrom).
- :func:`save_stage` / :func:`load_stage`: any stage dataclass (or nested
  dicts, lists, arrays of them) to HDF5 and back, bit for bit, so notebooks
  and checkpoints can hand one stage's output to the next.
- :func:`write_result` / :func:`read_result`: the ``result.h5`` layout of
  the contract, written atomically.
"""
from __future__ import annotations

import dataclasses
import importlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ReciprocalSpaceMap", "save_stage", "load_stage"]

#: Version of the layout written by :func:`save_stage`; bumped when it changes.
STAGE_FORMAT = 1


@dataclass
class ReciprocalSpaceMap:
    """A reciprocal-space map around one film Bragg peak.

    Attributes
    ----------
    intensity
        Counts, float64, shape ``(nx, nz)`` or ``(nx, ny, nz)``: in-plane
        axes first, the out-of-plane axis last.
    mask
        Bool, same shape; ``True`` marks a pixel that was not measured.
    q
        One increasing 1-D array per axis: absolute momentum transfer in
        1/angstrom.
    axis_names
        The axes' names as found in the file (or made up by the simulator).
    out_of_plane_reason
        Why the last axis was taken as out-of-plane (metadata or data).
    source
        Path of the file read, or a description of the simulation.
    metadata
        Anything else worth carrying (``temperature_K``, ``unit_cell``...).
    """

    intensity: np.ndarray
    mask: np.ndarray
    q: tuple
    axis_names: tuple = ()
    out_of_plane_reason: str = ""
    source: str = ""
    metadata: dict = field(default_factory=dict)

    @property
    def ndim(self) -> int:
        return self.intensity.ndim

    @property
    def shape(self) -> tuple:
        return self.intensity.shape


# ---------------------------------------------------------------------------
# Atomic file writing, shared by save_stage, write_map and write_result.
# ---------------------------------------------------------------------------

def _atomic_h5(path: Path, writer, *, force: bool = True) -> Path:
    """Call ``writer(h5file)`` on a temporary file next to ``path``, fsync it
    and rename it over ``path``.

    The rename is atomic on one file system, so a reader (or a user after
    Ctrl-C) sees either the old file, or no file, or the complete new one,
    never a half-written one.
    """
    import h5py

    path = Path(path)
    if path.exists() and not force:
        from .errors import InputError
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


def _import_class(path: str) -> type:
    module_name, _, qualname = path.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _where(group, name: str) -> str:
    return f"{group.name.rstrip('/')}/{name}"


def _write_value(group, name: str, value: Any) -> None:
    """Write ``value`` as member ``name`` of the h5py ``group``."""
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
            _write_value(sub, f.name, getattr(value, f.name))
    elif isinstance(value, (list, tuple)):
        sub = group.create_group(name)
        sub.attrs[_KIND] = "tuple" if isinstance(value, tuple) else "list"
        sub.attrs["nt_length"] = len(value)
        for i, item in enumerate(value):
            _write_value(sub, str(i), item)
    elif isinstance(value, dict):
        # Keys may be any str (with '/' or '.') or even ints, which HDF5 names
        # cannot all hold: store keys and values as two parallel lists.
        sub = group.create_group(name)
        sub.attrs[_KIND] = "dict"
        _write_value(sub, "keys", list(value.keys()))
        _write_value(sub, "values", list(value.values()))
    else:
        raise TypeError(f"cannot save {_where(group, name)} of type {type(value).__name__}")


def _read_value(node) -> Any:
    """Rebuild the Python value written by :func:`_write_value`."""
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
        items = [_read_value(node[str(i)]) for i in range(int(node.attrs["nt_length"]))]
        return tuple(items) if kind == "tuple" else items
    if kind == "dict":
        return dict(zip(_read_value(node["keys"]), _read_value(node["values"])))
    if kind == "dataclass":
        cls = _import_class(str(node.attrs[_CLASS]))
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            raise TypeError(f"{node.attrs[_CLASS]} is not a dataclass")
        values = {name: _read_value(node[name]) for name in node}
        fields = {f.name: f for f in dataclasses.fields(cls)}
        init = {k: v for k, v in values.items() if k in fields and fields[k].init}
        obj = cls(**init)
        for k, v in values.items():
            if k in fields and not fields[k].init:
                # frozen dataclasses refuse setattr; the saved value must win
                object.__setattr__(obj, k, v)
        return obj
    raise ValueError(f"unknown stored kind {kind!r} at {node.name}")


def save_stage(path: str | os.PathLike, obj: Any) -> Path:
    """Save a stage's output (any dataclass of :mod:`nanotools`) to HDF5.

    The file can be read back with :func:`load_stage` into the same class,
    with every array bit-identical (dtype, shape, NaN payloads). Fields may
    hold NumPy arrays and scalars, Python ``bool``/``int``/``float``/
    ``complex``/``str``/``bytes``/``None``, ``pathlib.Path``, and lists,
    tuples, dicts and dataclasses of those, nested to any depth (e.g.
    ``PatternResult.clusters``, a list of ``ClusterAverage``).

    Parameters
    ----------
    path
        File to write; replaced atomically if it exists.
    obj
        The object to save (usually a stage dataclass).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    TypeError
        If a field holds something that cannot be stored (an object array,
        an arbitrary class instance).

    Examples
    --------
    >>> save_stage("prepared.h5", prepared)          # doctest: +SKIP
    >>> prepared = load_stage("prepared.h5")         # doctest: +SKIP
    """
    from . import __version__

    def writer(h5):
        h5.attrs["nt_stage_format"] = STAGE_FORMAT
        h5.attrs["nt_version"] = __version__
        _write_value(h5, "stage", obj)

    return _atomic_h5(Path(path), writer, force=True)


def load_stage(path: str | os.PathLike, cls: type | None = None) -> Any:
    """Load an object written by :func:`save_stage`.

    Parameters
    ----------
    path
        File written by :func:`save_stage`.
    cls
        If given, the class the object must be (an :class:`InputError` is
        raised otherwise), so a notebook fails early when handed the wrong
        stage's file.

    Returns
    -------
    object
        An instance of the class stored in the file (its import path is
        stored, so the defining module must be importable).

    Raises
    ------
    InputError
        The file is missing, not HDF5, not written by :func:`save_stage`,
        or holds another class than ``cls``.
    """
    import h5py

    from .errors import InputError

    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", path)
    try:
        with h5py.File(path, "r") as h5:
            if "stage" not in h5 or "nt_stage_format" not in h5.attrs:
                raise InputError("not a nanotools stage file (written by save_stage)", path)
            if int(h5.attrs["nt_stage_format"]) > STAGE_FORMAT:
                raise InputError("stage file written by a newer nanotools; upgrade to read it",
                                 path)
            obj = _read_value(h5["stage"])
    except InputError:
        raise
    except (OSError, KeyError, ValueError, TypeError, ImportError, AttributeError) as exc:
        raise InputError(f"cannot read stage file: {exc}", path) from None
    if cls is not None and not isinstance(obj, cls):
        raise InputError(f"stage file holds a {type(obj).__name__}, expected {cls.__name__}",
                         path)
    return obj
