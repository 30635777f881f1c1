"""Following HDF5 links the way a beamline user expects.

A QM2 wrapper file (nxrefine) holds no data: its signal and weights are
*external links* to ``<scan>/transform.nxs``, and a consolidated series is
a *virtual dataset* whose sources are the scans' files. HDF5 resolves a
relative link name against environment variables, the current directory
and (depending on the library version) the linking file's folder; a target
that is missing then surfaces as a bare ``KeyError`` deep inside h5py, and a
virtual source that is missing silently reads as the fill value (zeros).

:func:`resolve_dataset` follows soft and external links itself, one hop at a
time, relative to the folder of the file holding each link, and says which
file is missing or where a chain of links loops. :func:`open_dataset` opens
the dataset it found with virtual sources resolved relative to the virtual
file's folder (HDF5's ``${ORIGIN}`` prefix), after checking that every
source exists.
"""
from __future__ import annotations

import contextlib
import os
import posixpath
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DatasetRef", "resolve_dataset", "open_dataset", "missing_virtual_sources"]

_MAX_HOPS = 32  # a longer chain than this is a loop in all but name


@dataclass(frozen=True)
class DatasetRef:
    """Where a dataset really lives, after following links.

    Attributes
    ----------
    file
        The HDF5 file holding the dataset (absolute path).
    path
        The dataset's path inside ``file``.
    hops
        Every ``file:path`` visited from the first name, for messages.
    """

    file: Path
    path: str
    hops: tuple = ()

    @property
    def linked(self) -> bool:
        """True when the dataset is not in the file where the search began."""
        return len({h.split(":", 1)[0] for h in self.hops}) > 1


def _show(file: Path, path: str, relative_to: Path | None) -> str:
    name = str(file)
    if relative_to is not None:
        try:
            name = str(file.relative_to(relative_to.parent))
        except ValueError:
            pass
    return f"{name}:{path}"


def resolve_dataset(file: str | Path, path: str, *, wrapper: str | Path | None = None
                    ) -> DatasetRef:
    """Follow the soft and external links from ``file:path`` to a dataset.

    Parameters
    ----------
    file
        The HDF5 file to start in (the wrapper).
    path
        Absolute HDF5 path of the node to follow (e.g.
        ``/entry/transform/data``).
    wrapper
        The file the user named, for error messages (default ``file``).

    Returns
    -------
    DatasetRef

    Raises
    ------
    InputError
        A linked file is missing (naming the link, its target and the file
        looked for), the links loop, the target is not a dataset, or a file
        cannot be opened.
    """
    import h5py

    from ..errors import InputError

    start = Path(file).resolve()
    wrapper = Path(wrapper) if wrapper is not None else Path(file)
    current, where = start, path
    seen: list[str] = []
    for _ in range(_MAX_HOPS):
        key = f"{current}:{where}"
        if key in seen:
            loop = " -> ".join(_show(Path(k.split(":", 1)[0]), k.split(":", 1)[1], start)
                               for k in seen[seen.index(key):] + [key])
            raise InputError(f"the external links of {path} form a loop ({loop})", wrapper)
        seen.append(key)
        try:
            h5 = h5py.File(current, "r")
        except OSError as exc:
            text = str(exc).splitlines()[0] if str(exc) else "OSError"
            raise InputError(f"cannot open {current.name}, reached from {path} ({text})",
                             wrapper) from None
        with h5:
            try:
                link = h5.get(where, getlink=True)
            except (KeyError, OSError, RuntimeError, ValueError):
                link = None
            if link is None:
                raise InputError(f"{where} does not exist in {_show(current, '', start)[:-1]}"
                                 + (f" (reached from {path})" if current != start else ""),
                                 wrapper)
            if isinstance(link, h5py.ExternalLink):
                target = Path(link.filename)
                if not target.is_absolute():
                    # nxrefine writes '<scan>/transform.nxs': relative to the
                    # folder of the file holding the link, not to the cwd
                    target = current.parent / target
                if not target.is_file():
                    raise InputError(
                        f"{where} in {current.name} is an external link to "
                        f"{link.filename}:{link.path}, and that file is missing (looked for "
                        f"{os.path.relpath(target)}); copy it along with the wrapper, in the "
                        "same folder relative to it", wrapper)
                current, where = target.resolve(), link.path
                continue
            if isinstance(link, h5py.SoftLink):
                where = link.path if link.path.startswith("/") else \
                    posixpath.normpath(posixpath.join(posixpath.dirname(where), link.path))
                continue
            try:
                node = h5[where]
            except (KeyError, OSError, RuntimeError) as exc:
                raise InputError(f"cannot open {where} in {current.name} ({exc})",
                                 wrapper) from None
            if not isinstance(node, h5py.Dataset):
                raise InputError(f"{where} in {current.name} is a group, not a dataset", wrapper)
            return DatasetRef(current, where, tuple(seen))
    raise InputError(f"more than {_MAX_HOPS} links from {path}: they form a loop", wrapper)


def missing_virtual_sources(dataset, file: Path) -> list[Path]:
    """The source files of a virtual dataset that do not exist, each
    resolved relative to the folder of the virtual ``file`` (where HDF5
    looks first when opened by :func:`open_dataset`)."""
    if not dataset.is_virtual:
        return []
    missing = []
    for source in dataset.virtual_sources():
        name = source.file_name
        if name == ".":  # a source in the virtual file itself
            continue
        p = Path(name)
        if not p.is_absolute():
            p = Path(file).parent / p
        if not p.is_file() and p not in missing:
            missing.append(p)
    return missing


@contextlib.contextmanager
def open_dataset(ref: DatasetRef, *, wrapper: str | Path | None = None):
    """Open the dataset ``ref`` for reading; yields an ``h5py.Dataset``.

    Virtual sources with relative names are looked for in the virtual
    file's folder first (HDF5's ``${ORIGIN}`` prefix), and a missing source
    is an error instead of a silent block of zeros.

    Raises
    ------
    InputError
        The file cannot be opened, or a virtual source is missing.
    """
    import h5py

    from ..errors import InputError

    wrapper = Path(wrapper) if wrapper is not None else ref.file
    try:
        h5 = h5py.File(ref.file, "r")
    except OSError as exc:
        raise InputError(f"cannot open {ref.file} ({str(exc).splitlines()[0]})", wrapper) from None
    with h5:
        try:
            dataset = h5[ref.path]
            if dataset.is_virtual and any(not Path(s.file_name).is_absolute()
                                          for s in dataset.virtual_sources()):
                # reopen with relative sources looked for next to the virtual file
                # (a prefix differing from an open handle's is refused by HDF5)
                dataset.id.close()
                dapl = h5py.h5p.create(h5py.h5p.DATASET_ACCESS)
                dapl.set_virtual_prefix(b"${ORIGIN}")
                dataset = h5py.Dataset(h5py.h5d.open(h5.id, ref.path.encode(), dapl=dapl))
        except (KeyError, OSError, RuntimeError) as exc:
            raise InputError(f"cannot open {ref.path} in {ref.file.name} ({exc})",
                             wrapper) from None
        missing = missing_virtual_sources(dataset, ref.file)
        if missing:
            names = ", ".join(str(m) for m in missing[:3]) + (" ..." if len(missing) > 3 else "")
            raise InputError(f"the virtual dataset {ref.path} in {ref.file.name} reads "
                             f"{len(missing)} missing source file(s): {names}", wrapper)
        yield dataset
