"""Stage files: any stage's output (a dataclass of :mod:`nanotools`) to HDF5
and back, bit for bit, so notebooks and checkpoints can hand one stage's
output to the next.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .hdf5 import atomic_h5, read_value, write_value

__all__ = ["STAGE_FORMAT", "save_stage", "load_stage"]


#: Version of the layout written by :func:`save_stage`; bumped when it changes.
STAGE_FORMAT = 1


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
        write_value(h5, "stage", obj)

    return atomic_h5(Path(path), writer, force=True)


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
            obj = read_value(h5["stage"])
    except InputError:
        raise
    except (OSError, KeyError, ValueError, TypeError, ImportError, AttributeError) as exc:
        raise InputError(f"cannot read stage file: {exc}", path) from None
    if cls is not None and not isinstance(obj, cls):
        raise InputError(f"stage file holds a {type(obj).__name__}, expected {cls.__name__}",
                         path)
    return obj
