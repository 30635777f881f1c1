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

import datetime as _dt

import dataclasses
import importlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ReciprocalSpaceMap", "Reconstruction", "read_map", "write_map", "save_stage",
           "load_stage", "write_result", "read_result", "sha256_file"]

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
    from .. import __version__

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

    from ..errors import InputError

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


# ---------------------------------------------------------------------------
# Reading maps
# ---------------------------------------------------------------------------

# Axis names that say "out-of-plane" (compared lower-case, without '_', '-',
# spaces): q_z, Ql (r.l.u. of a (00l) film), L, q_perp, ...
_OOP_NAMES = {"qz", "ql", "l", "qperp", "qoop", "outofplane", "qoutofplane", "qnormal", "kz"}
_INPLANE_ORDER = {"qx": 0, "h": 0, "qh": 0, "qpar": 0, "qip": 0, "x": 0,
                  "qy": 1, "k": 1, "qk": 1, "y": 1}
_RLU_CELL_INDEX = {"h": 0, "qh": 0, "k": 1, "qk": 1, "l": 2, "ql": 2}
_MIN_POINTS = 4  # an axis with fewer points cannot hold a peak and its width


def _norm_name(name: str) -> str:
    return "".join(ch for ch in str(name).lower() if ch.isalnum())


def _unit_kind(units: str | None):
    """Classify an axis' ``units`` string.

    Returns ``("q", factor)`` (multiply to get 1/angstrom), ``("rlu", None)``
    or ``None`` when the string is not a reciprocal length.
    """
    if units is None:
        return None
    u = str(units).strip().lower().replace(" ", "").replace("ångström", "angstrom")
    u = u.replace("å", "angstrom").replace("**", "^").replace("inverse", "1/")
    if u in {"1/angstrom", "angstrom^-1", "angstrom-1", "1/a", "a^-1", "a-1", "1/ang",
             "ang^-1", "1/angstroms", "angstroms^-1", "1/aa"}:
        return ("q", 1.0)
    if u in {"1/nm", "nm^-1", "nm-1", "1/nanometer", "1/nanometre"}:
        return ("q", 0.1)
    if u in {"rlu", "r.l.u.", "r.l.u", "reciprocallatticeunits", "reciprocallatticeunit"}:
        return ("rlu", None)
    return None


def _decode(value) -> Any:
    """h5py attributes come back as bytes, numpy strings or arrays of them."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return _decode(value[()])
        return [_decode(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass
class _RawAxis:
    name: str
    values: np.ndarray
    units: str | None
    long_name: str = ""


@dataclass
class _RawMap:
    """A map as found in a file, before validation and reordering."""

    intensity: Any
    mask: Any
    axes: list
    unit_cell: tuple | None = None
    out_of_plane_hint: Any = None
    metadata: dict = field(default_factory=dict)
    stored: dict = field(default_factory=dict)  # what write_map stored verbatim
    where: str = ""


def _parse_unit_cell(value, path) -> tuple:
    """``'a,b,c'``, one number (cubic) or a sequence -> (a, b, c) in angstrom."""
    from ..errors import ParameterError

    if isinstance(value, str):
        parts = [p for p in value.replace(";", ",").replace(" ", ",").split(",") if p]
    else:
        parts = list(np.ravel(np.asarray(value, dtype=object)))
    try:
        numbers = [float(p) for p in parts]
    except (TypeError, ValueError):
        raise ParameterError(f"unit_cell must be 'a,b,c' in angstrom, got {value!r}") from None
    if len(numbers) == 1:
        numbers = numbers * 3
    if len(numbers) not in (3, 6) or not all(np.isfinite(numbers[:3])) or min(numbers[:3]) <= 0:
        raise ParameterError(f"unit_cell must be three positive lengths 'a,b,c' in angstrom, "
                             f"got {value!r}")
    return tuple(numbers)


def _find_unit_cell(h5, start) -> tuple | None:
    """Lattice constants from an NXsample group (NeXus ``unit_cell`` /
    ``unit_cell_abc``, or NXrefine's and Mantid's ``unitcell_a`` ...)."""
    import h5py

    samples = []

    def visit(name, obj):
        if isinstance(obj, h5py.Group) and _decode(obj.attrs.get("NX_class")) == "NXsample":
            samples.append(obj)

    try:
        start.visititems(visit)
        if start.name != "/":
            h5.visititems(visit)
    except (OSError, RuntimeError, KeyError):
        return None
    for sample in samples:
        for key in ("unit_cell", "unit_cell_abc"):
            if key in sample:
                try:
                    cell = np.asarray(sample[key][...], dtype=float).ravel()
                except (OSError, TypeError, ValueError):
                    continue
                if cell.size >= 3:
                    return tuple(float(v) for v in cell[:6])
        for prefix in ("unit_cell_", "unitcell_", "lattice_"):
            names = [prefix + k for k in ("a", "b", "c")]
            if all(n in sample for n in names):
                try:
                    abc = [float(np.ravel(sample[n][...])[0]) for n in names]
                    angles = [float(np.ravel(sample[prefix + k][...])[0])
                              for k in ("alpha", "beta", "gamma") if prefix + k in sample]
                except (OSError, TypeError, ValueError, IndexError):
                    continue
                return tuple(abc + (angles if len(angles) == 3 else []))
    return None


def _find_temperature(h5, start) -> float | None:
    import h5py

    found = []

    def visit(name, obj):
        if (isinstance(obj, h5py.Group) and _decode(obj.attrs.get("NX_class")) == "NXsample"
                and "temperature" in obj and not found):
            try:
                ds = obj["temperature"]
                value = float(np.ravel(ds[...])[0])
                units = str(_decode(ds.attrs.get("units", "K"))).strip()
                if units in ("C", "degC", "celsius", "Celsius"):
                    value += 273.15
                if np.isfinite(value):
                    found.append(value)
            except (OSError, TypeError, ValueError, IndexError, KeyError):
                pass

    try:
        (start if start.name != "/" else h5).visititems(visit)
    except (OSError, RuntimeError, KeyError):
        return None
    return found[0] if found else None


def _find_nxdata(h5, data_path, path):
    """The NXdata group to read: ``data_path``, else the ``default`` chain,
    else the first NXdata group in the file."""
    import h5py

    from ..errors import InputError

    if data_path:
        try:
            node = h5[data_path]
        except (KeyError, OSError, ValueError):
            raise InputError(f"no group or dataset '{data_path}' in the file", path) from None
        return node
    node = h5
    # NeXus: the root's `default` names an NXentry, the entry's `default` its
    # NXdata; some writers put a whole path in it.
    for _ in range(8):
        target = _decode(node.attrs.get("default")) if "default" in node.attrs else None
        if not isinstance(target, str) or not target:
            break
        try:
            child = node[target]
        except (KeyError, OSError, ValueError):
            break
        if not isinstance(child, h5py.Group):
            break
        node = child
        if _decode(node.attrs.get("NX_class")) == "NXdata":
            return node
    found = []

    def visit(name, obj):
        if isinstance(obj, h5py.Group) and _decode(obj.attrs.get("NX_class")) == "NXdata":
            found.append(obj)
            return True  # stop at the first one
        return None

    try:
        h5.visititems(visit)
    except (OSError, RuntimeError) as exc:
        raise InputError(f"the HDF5 file is damaged (truncated?): {exc}", path) from None
    if not found:
        raise InputError("no NXdata group in the file (a NeXus map needs an NXdata group "
                         "with 'signal' and 'axes' attributes; --data picks a group)", path)
    return found[0]


def _read_hdf5(path: Path, data_path: str | None) -> _RawMap:
    import h5py

    from ..errors import InputError

    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        text = str(exc)
        if "truncated" in text.lower() or "eof" in text.lower():
            raise InputError("the HDF5 file is truncated (incomplete copy?)", path) from None
        raise InputError(f"cannot open the HDF5 file ({text.splitlines()[0] if text else 'OSError'})",
                         path) from None
    with h5:
        node = _find_nxdata(h5, data_path, path)
        where = node.name
        if isinstance(node, h5py.Dataset):  # --data pointed at the signal itself
            signal, group = node, node.parent
        else:
            group = node
            signal_name = _decode(group.attrs.get("signal")) if "signal" in group.attrs else None
            signal = None
            if isinstance(signal_name, str) and signal_name:
                if signal_name not in group:
                    raise InputError(f"NXdata group {where} names signal '{signal_name}', "
                                     "which does not exist (broken external link?)", path)
                signal = group[signal_name]
            else:  # NeXus 2: a dataset with attribute signal=1
                for key in group:
                    try:
                        obj = group[key]
                    except (KeyError, OSError):
                        continue
                    if isinstance(obj, h5py.Dataset) and str(_decode(obj.attrs.get("signal", ""))) == "1":
                        signal = obj
                        break
            if signal is None:
                raise InputError(f"NXdata group {where} has no 'signal' attribute naming the "
                                 "intensity dataset", path)
            if not isinstance(signal, h5py.Dataset):
                raise InputError(f"the signal {signal.name} is not a dataset", path)
        shape = signal.shape
        if shape is None or len(shape) not in (2, 3):
            ndim = 0 if shape is None else len(shape)
            raise InputError(f"the signal {signal.name} has {ndim} dimension(s) {shape}; "
                             "expected 2 (x, z) or 3 (x, y, z)", path)
        if signal.dtype.kind not in "biuf":
            raise InputError(f"the signal {signal.name} holds {signal.dtype} values; "
                             "expected real numbers (counts)", path)

        # axis names: group attribute `axes` (list, or 'a:b:c'), else the
        # signal's own `axes` attribute (NeXus 2), else AXIS_indices.
        axes_attr = None
        for holder in (group, signal):
            if "axes" in holder.attrs:
                axes_attr = _decode(holder.attrs["axes"])
                break
        if isinstance(axes_attr, str):
            axes_attr = [a for a in axes_attr.replace(",", ":").split(":")]
        names = [None] * len(shape)
        if isinstance(axes_attr, list):
            if len(axes_attr) != len(shape):
                raise InputError(f"NXdata group {where} lists {len(axes_attr)} axes for a "
                                 f"{len(shape)}-D signal {tuple(shape)}", path)
            names = [str(a).strip() for a in axes_attr]
        for key, value in group.attrs.items():
            if key.endswith("_indices"):
                idx = _decode(value)
                idx = idx[0] if isinstance(idx, list) and len(idx) == 1 else idx
                if isinstance(idx, int) and 0 <= idx < len(shape) and names[idx] in (None, ".", ""):
                    names[idx] = key[: -len("_indices")]
        axes = []
        for i, name in enumerate(names):
            if name in (None, ".", ""):
                raise InputError(f"NXdata group {where} gives no axis for dimension {i} of "
                                 f"the signal (needs an 'axes' attribute)", path)
            if name not in group or not isinstance(group[name], h5py.Dataset):
                raise InputError(f"axis '{name}' named in {where} is missing", path)
            ds = group[name]
            try:
                values = np.asarray(ds[...])
            except (OSError, TypeError, ValueError) as exc:
                raise InputError(f"cannot read axis '{name}' ({exc})", path) from None
            if values.dtype.kind not in "biuf":
                raise InputError(f"axis '{name}' holds {values.dtype} values, not numbers", path)
            units = _decode(ds.attrs.get("units")) if "units" in ds.attrs else None
            long_name = _decode(ds.attrs.get("long_name", ""))
            axes.append(_RawAxis(name, values.astype(np.float64), units if isinstance(units, str)
                                 else None, long_name if isinstance(long_name, str) else ""))
        try:
            intensity = signal[...]
        except (OSError, RuntimeError) as exc:
            raise InputError(f"cannot read the signal {signal.name}: the file is damaged or "
                             f"truncated ({str(exc).splitlines()[0]})", path) from None
        mask = None
        if "mask" in group and isinstance(group["mask"], h5py.Dataset):
            try:
                mask = group["mask"][...]
            except (OSError, RuntimeError) as exc:
                raise InputError(f"cannot read the mask ({exc})", path) from None
        weights = None
        wname = _decode(group.attrs.get("weights")) if "weights" in group.attrs else None
        wname = wname if isinstance(wname, str) and wname in group else (
            "weights" if "weights" in group else None)
        if wname and isinstance(group[wname], h5py.Dataset) and group[wname].shape == shape:
            try:
                weights = np.asarray(group[wname][...], dtype=np.float64)
            except (OSError, RuntimeError, TypeError, ValueError):
                weights = None
        raw = _RawMap(intensity=intensity, mask=mask, axes=axes, where=where)
        if weights is not None:
            raw.metadata["weights"] = wname
            raw.stored["weights"] = weights
        hint = _decode(group.attrs.get("out_of_plane_axis")) if "out_of_plane_axis" in group.attrs else None
        raw.out_of_plane_hint = hint
        entry = group.parent if group.name != "/" else h5
        raw.unit_cell = _find_unit_cell(h5, entry)
        temperature = _find_temperature(h5, entry)
        if temperature is not None:
            raw.metadata["temperature_K"] = temperature
        # what write_map stored verbatim, so that a round trip is exact
        if "nt_axis_names" in group.attrs:
            raw.stored["axis_names"] = tuple(str(n) for n in _decode(group.attrs["nt_axis_names"])) \
                if isinstance(_decode(group.attrs["nt_axis_names"]), list) else None
        for key in ("nt_out_of_plane_reason", "nt_source"):
            if key in group.attrs:
                raw.stored[key] = str(_decode(group.attrs[key]))
        if "nt_metadata" in group:
            try:
                raw.stored["metadata"] = _read_value(group["nt_metadata"])
            except (KeyError, ValueError, TypeError, ImportError, AttributeError, OSError):
                pass
    return raw


def _linspace_axis(spec, n: int, path) -> _RawAxis:
    """One entry of the ``axes`` argument: ``(name, start, stop, units)`` or
    ``(name, values, units)``."""
    from ..errors import ParameterError

    try:
        if len(spec) == 4:
            name, start, stop, units = spec
            values = np.linspace(float(start), float(stop), n)
        elif len(spec) == 3:
            name, values, units = spec
            values = np.asarray(values, dtype=np.float64)
        else:
            raise ValueError
    except (TypeError, ValueError):
        raise ParameterError(f"an axis must be (NAME, START, STOP, UNITS) or (NAME, VALUES, UNITS), "
                             f"got {spec!r}") from None
    return _RawAxis(str(name), values, str(units))


def _read_numpy(path: Path, axes_spec) -> _RawMap:
    from ..errors import InputError, ParameterError

    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise InputError(f"cannot read the NumPy file ({exc})", path) from None
    except (OSError, EOFError) as exc:
        raise InputError(f"cannot read the NumPy file: damaged or truncated ({exc})", path) from None
    except Exception as exc:  # zipfile.BadZipFile and friends from a damaged .npz
        raise InputError(f"cannot read the NumPy file: damaged or truncated ({exc})", path) from None
    mask = None
    axes = []
    unit_cell = None
    if isinstance(loaded, np.ndarray):
        intensity = loaded
    else:
        try:
            with loaded as npz:
                keys = list(npz.keys())
                arrays = {k: npz[k] for k in keys}
        except Exception as exc:  # BadZipFile, CRC errors, ValueError on pickles
            raise InputError(f"cannot read the .npz file ({exc})", path) from None
        for key in ("intensity", "signal", "data", "counts"):
            if key in arrays:
                intensity = arrays[key]
                break
        else:
            if len(arrays) == 1:
                intensity = next(iter(arrays.values()))
            else:
                raise InputError("the .npz file has no array named 'intensity' (found: "
                                 + ", ".join(keys) + ")", path)
        mask = arrays.get("mask")
        if "unit_cell" in arrays:
            unit_cell = _parse_unit_cell(arrays["unit_cell"].tolist(), path)
        if axes_spec is None and "axes" in arrays:
            names = [str(n) for n in np.ravel(arrays["axes"])]
            units = ([str(u) for u in np.ravel(arrays["units"])] if "units" in arrays
                     else ["1/angstrom"] * len(names))
            if len(units) != len(names):
                raise InputError("the .npz 'units' array must have one entry per axis", path)
            for name, unit in zip(names, units):
                if name not in arrays:
                    raise InputError(f"the .npz file lists axis '{name}' but has no array of "
                                     "that name", path)
                axes.append(_RawAxis(name, np.asarray(arrays[name]).astype(np.float64)
                                     if np.asarray(arrays[name]).dtype.kind in "biuf"
                                     else np.asarray(arrays[name]), unit))
    if not isinstance(intensity, np.ndarray):
        raise InputError("the file holds no array", path)
    if intensity.ndim not in (2, 3):
        raise InputError(f"the intensity array has {intensity.ndim} dimension(s) "
                         f"{intensity.shape}; expected 2 (x, z) or 3 (x, y, z)", path)
    if intensity.dtype.kind not in "biuf":
        raise InputError(f"the intensity array holds {intensity.dtype} values; expected real "
                         "numbers (counts)", path)
    if axes_spec is not None:
        if len(axes_spec) != intensity.ndim:
            raise ParameterError(f"{len(axes_spec)} axes given for a {intensity.ndim}-D map "
                                 f"{intensity.shape} ({path})")
        axes = [_linspace_axis(spec, n, path) for spec, n in zip(axes_spec, intensity.shape)]
    if not axes:
        raise InputError("a NumPy map needs its axes: give one --axis NAME START STOP UNITS "
                         "per dimension (or store 'axes' and the axis arrays in the .npz)", path)
    if len(axes) != intensity.ndim:
        raise InputError(f"{len(axes)} axes for a {intensity.ndim}-D map {intensity.shape}", path)
    for ax in axes:
        if not isinstance(ax.values, np.ndarray) or ax.values.dtype.kind not in "f":
            raise InputError(f"axis '{ax.name}' does not hold numbers", path)
    return _RawMap(intensity=intensity, mask=mask, axes=axes, unit_cell=unit_cell,
                   where="(NumPy array)")


def _profile(intensity: np.ndarray, valid: np.ndarray, peak: tuple, axis: int) -> np.ndarray:
    """1-D profile through ``peak`` along ``axis``, averaged over +-1 pixel
    across (robust to one bad pixel), masked pixels interpolated."""
    index = []
    for d, p in enumerate(peak):
        if d == axis:
            index.append(slice(None))
        else:
            index.append(slice(max(p - 1, 0), p + 2))
    block = np.where(valid, intensity, 0.0)[tuple(index)]
    weight = valid[tuple(index)].astype(float)
    others = tuple(d for d in range(intensity.ndim) if d != axis)
    num = block.sum(axis=others)
    den = weight.sum(axis=others)
    good = den > 0
    prof = np.zeros(num.shape)
    prof[good] = num[good] / den[good]
    if good.sum() >= 2 and not good.all():
        idx = np.arange(prof.size)
        prof[~good] = np.interp(idx[~good], idx[good], prof[good])
    return prof


def _fringe_ratio(prof: np.ndarray, p: int) -> tuple[float, float]:
    """Distance from the peak to its first side maximum, over the central
    lobe's full width at half maximum (both in pixels), the smaller of the
    two sides (``inf`` if there is no side maximum), and that width.

    A film's thickness fringes (|sinc|^2) give ~1.6: the first side maximum
    sits at 1.43 fringe spacings and the central lobe is 0.9 spacing wide. A
    lateral satellite of a texture seen through a coherent patch several
    periods wide sits many central-peak widths away (ratio > 3).
    """
    top = prof[p]
    if top <= 0:
        return np.inf, 0.0
    half = top / 2
    widths = []
    for step in (1, -1):
        i = p
        while 0 <= i + step < prof.size and prof[i + step] > half:
            i += step
        if not 0 <= i + step < prof.size:
            return np.inf, float(prof.size)
        a, b = prof[i], prof[i + step]  # linear interpolation of the crossing
        widths.append(abs(i - p) + (a - half) / (a - b) if a != b else abs(i - p))
    fwhm = sum(widths)
    ratios = []
    for step in (1, -1):
        i = p
        while 0 <= i + step < prof.size and prof[i + step] <= prof[i]:
            i += step  # walk down to the first minimum
        minimum = prof[i]
        j = i
        while 0 <= j + step < prof.size and prof[j + step] >= prof[j]:
            j += step  # then up to the next maximum
        if j != i and prof[j] > 1.5 * max(minimum, 1e-300) and prof[j] > 1e-4 * top:
            ratios.append(abs(j - p) / max(fwhm, 1e-9))
    return (min(ratios) if ratios else np.inf), fwhm


def _guess_out_of_plane(intensity, valid, q, names):
    """Pick the out-of-plane axis from the data alone.

    Returns ``(index, reason)``; ``index`` is None when the data do not tell.
    Two cues, in order: (1) the film Bragg peak of an (00l)-type reflection
    sits far from the origin along the out-of-plane axis and near zero
    in-plane; (2) thickness fringes: the profile through the peak along the
    out-of-plane axis has side maxima at ~1.6 central-lobe widths.
    """
    from scipy import ndimage

    data = np.where(valid, intensity, 0.0)
    smooth = ndimage.uniform_filter(data, size=3, mode="nearest")
    peak = np.unravel_index(int(np.argmax(smooth)), data.shape)
    qpeak = np.array([abs(float(qi[p])) for qi, p in zip(q, peak)])
    order = np.argsort(qpeak)[::-1]
    if qpeak[order[0]] > 0.3 and qpeak[order[0]] > 2.0 * qpeak[order[1]]:
        i = int(order[0])
        others = ", ".join(f"{qpeak[j]:.3g}" for j in range(len(q)) if j != i)
        return i, (f"data: the Bragg peak sits at |q| = {qpeak[i]:.3g} 1/angstrom along "
                   f"'{names[i]}', far from the origin, and near it along the other "
                   f"axes ({others} 1/angstrom)")
    measured = [_fringe_ratio(_profile(intensity, valid, peak, a), int(peak[a]))
                for a in range(data.ndim)]
    ratios = [m[0] for m in measured]
    fringe_like = [a for a, r in enumerate(ratios) if 1.0 <= r <= 2.6]
    others_clear = all(r > 3.0 for a, r in enumerate(ratios) if a not in fringe_like)
    # A peak less than 2 pixels wide is undersampled: its "side maxima" can be
    # pixel noise, so the fringe cue is only trusted on well-sampled maps.
    sampled = all(m[1] >= 2.0 for m in measured)
    if len(fringe_like) == 1 and others_clear and sampled:
        i = fringe_like[0]
        return i, (f"data: thickness fringes along '{names[i]}' (first side maximum at "
                   f"{ratios[i]:.2f} central-peak widths; "
                   + ", ".join(f"'{names[a]}': {ratios[a]:.2f}" for a in range(len(q)) if a != i)
                   + ")")
    return None, ("the data do not tell which axis is out-of-plane (peak position "
                  + ", ".join(f"{v:.3g}" for v in qpeak) + " 1/angstrom; fringe ratios "
                  + ", ".join(f"{r:.2f}" for r in ratios) + "; peak widths "
                  + ", ".join(f"{m[1]:.1f}" for m in measured) + " pixels)")


def _canonical(raw: _RawMap, path, *, unit_cell=None, out_of_plane=None) -> ReciprocalSpaceMap:
    """Validate a raw map and bring it to the canonical order."""
    import warnings

    from ..errors import InputError, ParameterError

    intensity = np.asarray(raw.intensity)
    shape = intensity.shape
    ndim = intensity.ndim
    if min(shape) < _MIN_POINTS:
        raise InputError(f"the map {shape} is too small: every axis needs at least "
                         f"{_MIN_POINTS} points", path)
    names = [ax.name for ax in raw.axes]
    if len(set(names)) != len(names):
        raise InputError(f"axis names repeat: {names}", path)

    # --- axes: length, finite, monotonic, units -> absolute q (1/angstrom)
    cell = _parse_unit_cell(unit_cell, path) if unit_cell not in (None, "") else raw.unit_cell
    q_axes = []
    conversions = []
    for i, ax in enumerate(raw.axes):
        values = np.asarray(ax.values, dtype=np.float64)
        if values.ndim != 1:
            raise InputError(f"axis '{ax.name}' is not 1-D (shape {values.shape})", path)
        if values.size == shape[i] + 1:  # NeXus histogram: bin edges -> centres
            values = 0.5 * (values[1:] + values[:-1])
        if values.size != shape[i]:
            raise InputError(f"axis '{ax.name}' has {values.size} values but the signal has "
                             f"{shape[i]} along dimension {i}", path)
        if not np.all(np.isfinite(values)):
            raise InputError(f"axis '{ax.name}' holds NaN or infinite values", path)
        step = np.diff(values)
        if not (np.all(step > 0) or np.all(step < 0)):
            raise InputError(f"axis '{ax.name}' is not monotonic (its values must all increase "
                             "or all decrease)", path)
        kind = _unit_kind(ax.units)
        if kind is None:
            label = f"{ax.name} {ax.long_name}".lower()
            if ax.units is None and (_norm_name(ax.name) in _RLU_CELL_INDEX
                                     and ("r.l.u" in label or "rlu" in label
                                          or _norm_name(ax.name).startswith("q")
                                          or _norm_name(ax.name) in ("h", "k", "l"))):
                kind = ("rlu", None)  # NXrefine writes Qh/Qk/Ql with no units attribute
                conversions.append(f"'{ax.name}' has no units; taken as r.l.u. from its name")
            elif ax.units is None:
                raise InputError(f"axis '{ax.name}' has no 'units' attribute; expected "
                                 "1/angstrom or rlu", path)
            else:
                raise InputError(f"axis '{ax.name}' has units '{ax.units}'; expected 1/angstrom "
                                 "(or 1/nm) or rlu", path)
        if kind[0] == "rlu":
            which = _RLU_CELL_INDEX.get(_norm_name(ax.name))
            if which is None:
                raise InputError(f"axis '{ax.name}' is in r.l.u. but its name does not say "
                                 "whether it is H, K or L", path)
            if cell is None:
                raise InputError(f"axis '{ax.name}' is in r.l.u. and no lattice constants are "
                                 "known: give -p unit_cell a,b,c (angstrom) or store an "
                                 "NXsample unit_cell in the file", path)
            if len(cell) == 6 and any(abs(angle - 90.0) > 1e-6 for angle in cell[3:]):
                warnings.warn(f"the unit cell {cell} is not orthogonal; q is computed as "
                              "2 pi h / a per axis (orthogonal approximation)", stacklevel=3)
            values = 2 * np.pi * values / cell[which]
            conversions.append(f"'{ax.name}' r.l.u. x 2 pi / {cell[which]:g} angstrom")
        else:
            values = values * kind[1]
        q_axes.append(values)

    # --- mask and intensity values
    if raw.mask is None:
        mask = np.zeros(shape, bool)
    else:
        mask = np.asarray(raw.mask)
        if mask.shape != shape:
            raise InputError(f"the mask has shape {mask.shape} but the signal has {shape}", path)
        if mask.dtype.kind not in "biu":
            raise InputError(f"the mask holds {mask.dtype} values; expected booleans "
                             "(True = not measured)", path)
        mask = mask.astype(bool)
    intensity = intensity.astype(np.float64)  # copies: the caller's array is not touched
    weights = raw.stored.get("weights")
    if weights is not None:  # NXrefine stores summed counts and their weights
        good = np.isfinite(weights) & (weights > 0)
        intensity = np.where(good, intensity / np.where(good, weights, 1.0), np.nan)
    finite = np.isfinite(intensity)
    if not finite.any():
        raise InputError("the intensity is NaN (or infinite) everywhere", path)
    n_inf = int(np.isinf(intensity).sum())
    if n_inf:
        warnings.warn(f"{n_inf} infinite intensity values masked", stacklevel=3)
    mask = mask | ~finite
    intensity[~finite] = 0.0
    # a masked pixel's value is never used, but must not be a negative intensity
    intensity[mask & (intensity < 0)] = 0.0
    measured = ~mask
    if not measured.any():
        raise InputError("every pixel is masked: nothing was measured", path)
    values = intensity[measured]
    vmax = float(values.max())
    if vmax <= 0:
        if vmax == 0 and float(values.min()) == 0:
            raise InputError("the intensity is zero everywhere", path)
        raise InputError("the intensity is negative (or zero) everywhere", path)
    negative = values < 0
    if negative.any():
        weight = float(-values[negative].sum()) / float(values[~negative].sum())
        if weight > 0.05:
            raise InputError(f"{int(negative.sum())} pixels ({100 * negative.mean():.1f}%) have "
                             f"negative intensity (down to {values.min():.3g}): not counts; "
                             "log-scaled or signed data cannot be imaged", path)
        warnings.warn(f"{int(negative.sum())} pixels have negative intensity (down to "
                      f"{values.min():.3g}; background-subtracted?); set to zero", stacklevel=3)
        intensity[measured & (intensity < 0)] = 0.0
        values = intensity[measured]
    if float(values.min()) == vmax:
        raise InputError(f"the intensity is constant ({vmax:g}) everywhere: no Bragg peak", path)
    at_max = measured & (intensity == vmax)
    n_at_max = int(at_max.sum())
    if n_at_max >= 3 and vmax >= 100:
        # A detector that saturates clips the peak at one value; those pixels
        # are wrong, so they must stay free in the Fourier projection.
        warnings.warn(f"{n_at_max} pixels sit at the maximum value {vmax:g}: the Bragg peak "
                      "looks saturated; they are masked", stacklevel=3)
        mask = mask | at_max
        intensity[at_max] = 0.0

    # --- which axis is out-of-plane
    oop = None
    reason = ""
    if out_of_plane is not None:
        if isinstance(out_of_plane, (int, np.integer)) and not isinstance(out_of_plane, bool):
            if not -ndim <= int(out_of_plane) < ndim:
                raise ParameterError(f"out_of_plane axis {out_of_plane} does not exist in a "
                                     f"{ndim}-D map ({path})")
            oop = int(out_of_plane) % ndim
        elif str(out_of_plane) in names:
            oop = names.index(str(out_of_plane))
        else:
            raise ParameterError(f"out_of_plane axis '{out_of_plane}' is not one of "
                                 f"{', '.join(names)} ({path})")
        reason = f"chosen by the user: '{names[oop]}'"
    if oop is None and isinstance(raw.out_of_plane_hint, str) and raw.out_of_plane_hint in names:
        oop = names.index(raw.out_of_plane_hint)
        reason = f"metadata: the NXdata attribute out_of_plane_axis names '{names[oop]}'"
    if oop is None:
        matches = [i for i, n in enumerate(names) if _norm_name(n) in _OOP_NAMES]
        if len(matches) == 1:
            oop = matches[0]
            reason = f"metadata: the axis name '{names[oop]}' means out-of-plane"
    if oop is None:
        oop, reason = _guess_out_of_plane(intensity, ~mask, q_axes, names)
        if oop is None:
            oop = ndim - 1
            reason = (f"assumed the file's last axis '{names[oop]}': " + reason)
            warnings.warn(f"cannot tell the out-of-plane axis; {reason}. Name it with "
                          "--out-of-plane if this is wrong", stacklevel=3)

    # --- reorder: in-plane axes (qx/h before qy/k, else file order), oop last
    inplane = [i for i in range(ndim) if i != oop]
    if "axis_names" not in raw.stored:  # a file from write_map keeps its order
        inplane.sort(key=lambda i: (_INPLANE_ORDER.get(_norm_name(names[i]), 5), i))
    order = inplane + [oop]
    intensity = np.transpose(intensity, order)
    mask = np.transpose(mask, order)
    q_out = []
    flipped = []
    for new, old in enumerate(order):
        qa = q_axes[old]
        if qa[0] > qa[-1]:
            intensity = np.flip(intensity, axis=new)
            mask = np.flip(mask, axis=new)
            qa = qa[::-1]
            flipped.append(names[old])
        q_out.append(np.ascontiguousarray(qa))
    intensity = np.ascontiguousarray(intensity)
    mask = np.ascontiguousarray(mask)

    if "metadata" in raw.stored:
        metadata = raw.stored["metadata"]
    else:
        metadata = dict(raw.metadata)
        metadata["file_axes"] = tuple(names)
        if flipped:
            metadata["flipped_axes"] = tuple(flipped)
        if conversions:
            metadata["unit_conversion"] = tuple(conversions)
        if cell is not None:
            metadata["unit_cell"] = tuple(float(c) for c in cell)
        metadata["data_path"] = raw.where
    axis_names = raw.stored.get("axis_names") or tuple(names[i] for i in order)
    return ReciprocalSpaceMap(
        intensity=intensity, mask=mask, q=tuple(q_out), axis_names=tuple(axis_names),
        out_of_plane_reason=raw.stored.get("nt_out_of_plane_reason", reason),
        source=raw.stored.get("nt_source", str(path)), metadata=metadata)


_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def read_map(path: str | os.PathLike, data_path: str | None = None, *, axes=None,
             unit_cell=None, out_of_plane=None) -> ReciprocalSpaceMap:
    """Read a reciprocal-space map from NeXus/HDF5, ``.npy`` or ``.npz``.

    Parameters
    ----------
    path
        The file. HDF5 is recognised by its signature, not its name.
    data_path
        HDF5 path of the NXdata group (or of the signal dataset) to read;
        by default the file's ``default`` attributes lead to it, else the
        first NXdata group is used.
    axes
        For NumPy files: one entry per array dimension, in the array's
        order, ``(name, start, stop, units)`` (evenly spaced) or
        ``(name, values, units)``; units ``1/angstrom``, ``1/nm`` or ``rlu``.
        An ``.npz`` may instead store ``axes`` (the names), one array per
        name, ``units``, ``mask`` and ``unit_cell``.
    unit_cell
        Lattice constants ``a, b, c`` (angstrom; a string ``"a,b,c"``, one
        number for a cubic cell, or a sequence) to convert r.l.u. axes,
        overriding an NXsample ``unit_cell`` in the file. H, K, L axes use
        a, b, c: ``q = 2 pi h / a`` (orthogonal cell).
    out_of_plane
        Name or file index of the out-of-plane axis, overriding what the
        metadata and data say.

    Returns
    -------
    ReciprocalSpaceMap
        Canonical order (in-plane axes first, out-of-plane last, every axis
        increasing), q in 1/angstrom, float64 intensity with masked pixels
        (mask, NaN, saturated) set to 0, and ``out_of_plane_reason``.

    Raises
    ------
    InputError
        The file is missing, unreadable, not HDF5/NumPy, truncated, has no
        NXdata, a signal that is not 2-D or 3-D, missing or mismatched or
        non-monotonic axes, a mask of the wrong shape, r.l.u. axes with no
        lattice constants, or an intensity that is NaN-only, all zero,
        constant or mostly negative.
    ParameterError
        A bad ``axes``, ``unit_cell`` or ``out_of_plane`` argument.

    Warns
    -----
    UserWarning
        For what can still be imaged: a few negative pixels (set to 0),
        a saturated peak (masked), infinite values (masked), a guessed
        out-of-plane axis.
    """
    from ..errors import InputError

    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path)
    if path.is_dir():
        raise InputError("is a directory, not a file", path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise InputError(f"cannot read the file ({exc.strerror or exc})", path) from None
    if not head:
        raise InputError("the file is empty", path)
    if head.startswith(b"\x93NUMPY") or head.startswith(b"PK\x03\x04") or \
            path.suffix.lower() in (".npy", ".npz"):
        raw = _read_numpy(path, axes)
    elif head == _HDF5_MAGIC or _is_hdf5_with_userblock(path):
        raw = _read_hdf5(path, data_path)
    else:
        raise InputError("not an HDF5/NeXus file (nor .npy/.npz)", path)
    return _canonical(raw, path, unit_cell=unit_cell, out_of_plane=out_of_plane)


def _is_hdf5_with_userblock(path: Path) -> bool:
    """HDF5 allows a user block: the signature may sit at 512, 1024, ..."""
    try:
        import h5py
        return bool(h5py.is_hdf5(path))
    except (OSError, ValueError):
        return False


# ---------------------------------------------------------------------------
# Writing maps
# ---------------------------------------------------------------------------

def _dataset_names(names: tuple, ndim: int) -> tuple[list, bool]:
    """HDF5 dataset names for the axes; False if the real names had to be
    replaced (a '/', a clash, a reserved name)."""
    ok = (len(names) == ndim and len(set(names)) == ndim
          and all(isinstance(n, str) and n and "/" not in n and n not in (".", "..")
                  and n not in ("intensity", "mask", "nt_metadata") for n in names))
    if ok:
        return list(names), True
    return [f"q{i}" for i in range(ndim)], False


def write_map(path: str | os.PathLike, rsm: ReciprocalSpaceMap) -> Path:
    """Write a map as NeXus/HDF5 so that :func:`read_map` gives it back
    bit for bit.

    Layout: ``/entry/data`` (NXdata, ``signal="intensity"``, ``axes`` = one
    name per dimension, out-of-plane last, attribute ``out_of_plane_axis``),
    ``intensity`` (float64), ``mask`` (bool), one axis dataset per
    dimension (``units="1/angstrom"``), the metadata in ``nt_metadata``;
    ``default`` attributes on ``/`` and ``/entry``. Written atomically.

    Parameters
    ----------
    path
        File to write (replaced if it exists).
    rsm
        The map, in canonical order.

    Returns
    -------
    Path
    """
    import h5py

    from ..errors import InputError

    intensity = np.asarray(rsm.intensity)
    mask = np.asarray(rsm.mask)
    if intensity.ndim not in (2, 3) or mask.shape != intensity.shape or \
            len(rsm.q) != intensity.ndim or \
            any(np.ndim(q) != 1 or len(q) != n for q, n in zip(rsm.q, intensity.shape)):
        raise InputError("inconsistent map: intensity, mask and q do not match in shape", path)
    names = tuple(rsm.axis_names) if rsm.axis_names else (
        ("qx", "qz") if intensity.ndim == 2 else ("qx", "qy", "qz"))
    ds_names, kept = _dataset_names(names, intensity.ndim)

    def writer(h5):
        entry = _nx_entry(h5, default="data")
        data = entry.create_group("data")
        data.attrs["NX_class"] = "NXdata"
        data.attrs["signal"] = "intensity"
        data.attrs["axes"] = ds_names
        data.attrs["out_of_plane_axis"] = ds_names[-1]
        for i, name in enumerate(ds_names):
            data.attrs[f"{name}_indices"] = np.int64(i)
            ds = data.create_dataset(name, data=np.asarray(rsm.q[i], dtype=np.float64))
            ds.attrs["units"] = "1/angstrom"
        data.create_dataset("intensity", data=np.asarray(intensity, dtype=np.float64),
                            compression="gzip", compression_opts=4, shuffle=True)
        data["intensity"].attrs["units"] = "counts"
        data.create_dataset("mask", data=mask.astype(bool), compression="gzip")
        data.attrs["nt_axis_names"] = [str(n) for n in names]
        data.attrs["nt_out_of_plane_reason"] = str(rsm.out_of_plane_reason)
        data.attrs["nt_source"] = str(rsm.source)
        _write_value(data, "nt_metadata", dict(rsm.metadata))
        temperature = rsm.metadata.get("temperature_K") if isinstance(rsm.metadata, dict) else None
        if isinstance(temperature, (int, float)) and not isinstance(temperature, bool):
            sample = entry.create_group("sample")
            sample.attrs["NX_class"] = "NXsample"
            sample.create_dataset("temperature", data=float(temperature))
            sample["temperature"].attrs["units"] = "K"

    if not kept and not all(isinstance(n, str) for n in names):
        raise InputError(f"axis names must be strings, got {names!r}", path)
    return _atomic_h5(Path(path), writer, force=True)


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------

@dataclass
class Reconstruction:
    """Everything one reconstruction produced, as written to ``result.h5``.

    Attributes
    ----------
    supercell
        :class:`nanotools.analysis.SupercellMaps` of the chosen cluster's
        average: ``amplitude``, ``phase`` (rad), ``displacement`` (angstrom),
        strain maps, ``x_nm``, ``z_nm``; arrays ``(n_cell, n_film)``.
    patterns
        :class:`nanotools.patterns.PatternResult` (clusters, chosen, period).
    phasing
        :class:`nanotools.phasing.PhasingResult` of every start.
    parameters
        The full, validated parameter set (``nanotools.params.validate``).
    seed
        The random seed of the phasing and of k-means.
    input_path, input_sha256
        The input map and its SHA-256 (hex).
    wall_time_s, phasing_time_s
        Time of the whole run, and of the phasing iterations alone (s).
    resolution
        From :func:`nanotools.analysis.prtf` (``nm``, ``x_nm``, ``z_nm``).
    notes
        What the pipeline decided (out-of-plane axis, preprocessing notes).
    date, version
        ISO 8601 date of the run and the nanotools version.
    """

    supercell: Any
    patterns: Any
    phasing: Any
    parameters: dict
    seed: int
    input_path: str = ""
    input_sha256: str = ""
    wall_time_s: float = 0.0
    phasing_time_s: float = 0.0
    resolution: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    date: str = ""
    version: str = ""


def sha256_file(path: str | os.PathLike, *, chunk_bytes: int = 1 << 22) -> str:
    """SHA-256 (hex) of a file, read in chunks so big maps fit in memory."""
    import hashlib

    from ..errors import InputError

    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while block := fh.read(chunk_bytes):
                digest.update(block)
    except FileNotFoundError:
        raise InputError("file not found", path) from None
    except IsADirectoryError:
        raise InputError("is a directory, not a file", path) from None
    except OSError as exc:
        raise InputError(f"cannot read the file ({exc.strerror or exc})", path) from None
    return digest.hexdigest()


def _nx_entry(h5, *, default: str):
    """Mark ``h5`` as an NXroot whose ``default`` chain leads to
    ``/entry/<default>``, and return the new ``/entry`` (NXentry)."""
    h5.attrs["default"] = "entry"
    h5.attrs["NX_class"] = "NXroot"
    h5.attrs["creator"] = "nanotools"
    entry = h5.create_group("entry")
    entry.attrs["NX_class"] = "NXentry"
    entry.attrs["default"] = default
    return entry


def _nxdata(parent, name: str, *, signal: str, axes: list, nx_class: str = "NXdata"):
    group = parent.create_group(name)
    group.attrs["NX_class"] = nx_class
    group.attrs["signal"] = signal
    group.attrs["axes"] = axes
    for i, axis in enumerate(axes):
        group.attrs[f"{axis}_indices"] = np.int64(i)
    return group


def _ds(group, name: str, data, units: str | None = None, **kw):
    ds = group.create_dataset(name, data=data, **kw)
    if units:
        ds.attrs["units"] = units
    return ds


def write_result(path: str | os.PathLike, reconstruction: Reconstruction, *,
                 force: bool = False) -> Path:
    """Write ``result.h5`` (layout of CONTRACT.md) atomically.

    Layout (all NeXus):

    ``/entry/supercell`` (NXdata, ``signal="amplitude"``, ``axes=["x", "z"]``)
        ``amplitude``, ``phase`` (rad), ``displacement`` (angstrom),
        ``strain_zz``, ``strain_xz``, ``complex_field`` (the chosen complex
        average), ``x``, ``z`` (nm); attributes ``period_nm``, ``G``
        (1/angstrom).
    ``/entry/clusters``
        ``chosen``, ``chosen_reason`` (attributes), per-cell ``labels`` and
        ``run_index``, per-cluster ``label``, ``n_members``, ``score``, and
        one NXdata ``cluster_<label>`` with the average and its spread.
    ``/entry/runs``
        The best ``keep_runs`` objects (``objects``, ``supports``,
        ``kept_start_indices``) and every start's ``start_indices``,
        ``fourier_error``, ``llk`` and ``history``.
    ``/entry/process`` (NXprocess)
        ``program``, ``version``, ``date``, ``parameters`` (JSON), ``seed``,
        ``n_starts``, ``n_iterations``, ``algorithm``, ``wall_time_s``,
        ``phasing_time_s``, ``input_file``, ``input_sha256``, ``notes``,
        ``resolution_nm``.

    Parameters
    ----------
    path
        The result file.
    reconstruction
        What to write.
    force
        Replace an existing file; without it an existing result is never
        touched (:class:`InputError`).

    Returns
    -------
    Path
    """
    import json

    import h5py

    from .. import __version__
    from ..errors import InputError

    path = Path(path)
    if path.is_dir():
        raise InputError("the output path is a directory; give a file name (result.h5)", path)
    if path.exists() and not force:
        raise InputError("the output file exists; pass --force to overwrite it", path)
    rec = reconstruction
    maps, pat, ph = rec.supercell, rec.patterns, rec.phasing
    params = dict(rec.parameters)
    keep = int(params.get("keep_runs", 16))

    def writer(h5):
        entry = _nx_entry(h5, default="supercell")

        cell = _nxdata(entry, "supercell", signal="amplitude", axes=["x", "z"])
        cell.attrs["period_nm"] = float(pat.period_nm)
        cell.attrs["G"] = float(pat.G)
        _ds(cell, "amplitude", np.asarray(maps.amplitude))
        _ds(cell, "phase", np.asarray(maps.phase), "rad")
        _ds(cell, "displacement", np.asarray(maps.displacement), "angstrom")
        for name in ("strain_zz", "strain_xz"):
            if getattr(maps, name, None) is not None:
                _ds(cell, name, np.asarray(getattr(maps, name)))
        _ds(cell, "complex_field", np.asarray(pat.best.mean))
        _ds(cell, "x", np.asarray(maps.x_nm, dtype=np.float64), "nm")
        _ds(cell, "z", np.asarray(maps.z_nm, dtype=np.float64), "nm")

        clusters = entry.create_group("clusters")
        clusters.attrs["NX_class"] = "NXcollection"
        clusters.attrs["chosen"] = np.int64(pat.chosen)
        clusters.attrs["chosen_reason"] = str(pat.chosen_reason)
        _ds(clusters, "labels", np.asarray(pat.labels))
        _ds(clusters, "run_index", np.asarray(pat.run_index))
        _ds(clusters, "label", np.array([c.label for c in pat.clusters], dtype=np.int64))
        _ds(clusters, "n_members", np.array([c.n_members for c in pat.clusters], dtype=np.int64))
        _ds(clusters, "score", np.array([c.score for c in pat.clusters], dtype=np.float64))
        for c in pat.clusters:
            g = _nxdata(clusters, f"cluster_{c.label}", signal="amplitude", axes=["x", "z"])
            g.attrs["label"] = np.int64(c.label)
            g.attrs["n_members"] = np.int64(c.n_members)
            g.attrs["score"] = float(c.score)
            g.attrs["chosen"] = bool(c.label == pat.chosen)
            _ds(g, "mean", np.asarray(c.mean))
            _ds(g, "amplitude", np.asarray(c.amplitude))
            _ds(g, "amplitude_std", np.asarray(c.amplitude_std))
            _ds(g, "displacement", np.asarray(c.displacement), "angstrom")
            _ds(g, "displacement_std", np.asarray(c.displacement_std), "angstrom")
            _ds(g, "runs", np.asarray(getattr(c, "runs", np.zeros(0, np.int64))))
            # the axes are shared with the supercell: soft links, no copies
            g["x"] = h5py.SoftLink("/entry/supercell/x")
            g["z"] = h5py.SoftLink("/entry/supercell/z")

        runs = entry.create_group("runs")
        runs.attrs["NX_class"] = "NXcollection"
        order = np.argsort(np.asarray(ph.fourier_error), kind="stable")[:keep]
        _ds(runs, "start_indices", np.asarray(ph.start_indices))
        _ds(runs, "fourier_error", np.asarray(ph.fourier_error))
        _ds(runs, "llk", np.asarray(ph.llk))
        _ds(runs, "history", np.asarray(ph.history), compression="gzip", shuffle=True)
        _ds(runs, "kept_start_indices", np.asarray(ph.start_indices)[order])
        _ds(runs, "objects", np.asarray(ph.objects)[order], compression="gzip")
        _ds(runs, "supports", np.asarray(ph.supports)[order], compression="gzip")

        proc = entry.create_group("process")
        proc.attrs["NX_class"] = "NXprocess"
        string = h5py.string_dtype()
        _ds(proc, "program", "nanotools", dtype=string)
        _ds(proc, "version", rec.version or __version__, dtype=string)
        _ds(proc, "date", rec.date or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            dtype=string)
        _ds(proc, "parameters", json.dumps(params, sort_keys=True, default=str), dtype=string)
        _ds(proc, "seed", np.int64(rec.seed))
        _ds(proc, "n_starts", np.int64(len(np.asarray(ph.start_indices))))
        _ds(proc, "n_iterations", np.int64(ph.n_iterations))
        _ds(proc, "algorithm", str(ph.algorithm), dtype=string)
        _ds(proc, "wall_time_s", float(rec.wall_time_s), "s")
        _ds(proc, "phasing_time_s", float(rec.phasing_time_s), "s")
        _ds(proc, "input_file", str(rec.input_path), dtype=string)
        _ds(proc, "input_sha256", str(rec.input_sha256), dtype=string)
        _ds(proc, "notes", [str(n) for n in rec.notes] or [""], dtype=string)
        for key in ("nm", "x_nm", "z_nm"):
            if key in rec.resolution:
                _ds(proc, f"resolution_{key}" if key != "nm" else "resolution_nm",
                    float(rec.resolution[key]), "nm")

    return _atomic_h5(path, writer, force=force)


def read_result(path: str | os.PathLike) -> dict:
    """Read a ``result.h5`` written by :func:`write_result`.

    Returns
    -------
    dict
        ``{"supercell": {...}, "clusters": {...}, "runs": {...},
        "process": {...}}``: every dataset as a NumPy array (strings as
        ``str``), group attributes merged in, ``process["parameters"]``
        decoded from JSON; ``clusters["groups"]`` maps each
        ``cluster_<label>`` to its datasets.

    Raises
    ------
    InputError
        Missing, not HDF5, or not a nanotools result.
    """
    import json

    import h5py

    from ..errors import InputError

    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", path)

    def load(group) -> dict:
        out = {key: _decode(value) for key, value in group.attrs.items()
               if key not in ("NX_class", "signal", "axes") and not key.endswith("_indices")}
        for key, obj in group.items():
            if isinstance(obj, h5py.Dataset):
                if obj.dtype.kind == "O" or h5py.check_string_dtype(obj.dtype):
                    value = obj.asstr()[()]
                    out[key] = value.tolist() if isinstance(value, np.ndarray) else value
                else:
                    out[key] = obj[()]
        return out

    try:
        with h5py.File(path, "r") as h5:
            if not all(f"entry/{g}" in h5 for g in ("supercell", "clusters", "runs", "process")):
                raise InputError("not a nanotools result file (no /entry/supercell, clusters, "
                                 "runs, process)", path)
            result = {name: load(h5["entry"][name])
                      for name in ("supercell", "clusters", "runs", "process")}
            result["clusters"]["groups"] = {
                key: load(obj) for key, obj in h5["entry/clusters"].items()
                if isinstance(obj, h5py.Group)}
    except InputError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"cannot read the result file ({exc})", path) from None
    try:
        result["process"]["parameters"] = json.loads(result["process"]["parameters"])
    except (KeyError, TypeError, ValueError):
        raise InputError("the result's /entry/process/parameters is not JSON", path) from None
    return result
