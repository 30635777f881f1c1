"""Volumes on disk, described without reading them: QM2/nxrefine wrapper
files, consolidated series, any large NXdata.

nxrefine (CHESS QM2) writes a wrapper ``<sample>_<scan>.nxs`` whose
``/entry/transform`` (and ``/entry/masked_transform``, ``/f1/transform``
...) is an NXdata group with ``@axes = ['Ql', 'Qk', 'Qh']`` (so the array is
``(L, K, H)``), axis fields in r.l.u. with ``long_name = 'H (r.l.u.)'`` and
``scaling_factor`` (2 pi a* in 1/angstrom per r.l.u.), and a signal
``data`` that is an external link to ``<scan>/transform.nxs:/entry/data/v``
(float32, 50^3 chunks); per-position groups add ``weights``
(``/entry/data/n``): intensity is data / weights where weights > 0. The
lattice sits in ``/entry/sample/unitcell_a`` ... A temperature series is
consolidated (nexusformat's ``nxconsolidate``) into a 4-D NXdata
``(scan, L, K, H)`` of HDF5 virtual datasets.

:func:`describe_volume` reads only metadata (shape, axes, chunks, links,
weights, lattice, scan axis, size on disk); :func:`read_block` reads one
hyperslab. :func:`write_nxrefine_scan` and :func:`consolidate_scans` write
that layout with nexusformat (the library nxrefine and NeXpy write with),
for tests, demos and benchmarks.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .canonical import RawAxis
from .hdf5 import decode_attr as _decode
from .links import DatasetRef, open_dataset, resolve_dataset
from .nexus import (
    find_nxdata,
    find_signal,
    find_temperature,
    find_unit_cell,
    find_weights,
    nxdata_axis_names,
    open_hdf5,
    read_axis,
)

__all__ = ["Volume", "describe_volume", "read_block", "write_nxrefine_scan",
           "consolidate_scans"]


@dataclass
class Volume:
    """A map or volume on disk, as far as its metadata tell.

    Attributes
    ----------
    path
        The file the user named (the wrapper).
    group
        HDF5 path of the NXdata group.
    signal, weights, mask
        Where the datasets really live, links followed (weights and mask
        may be None).
    shape, dtype, chunks
        Of the signal, in file order (a series: scan axis first).
    axes
        One :class:`~nanotools.io.canonical.RawAxis` per map dimension, file
        order (without the scan axis).
    scan_axis
        The series axis (a :class:`RawAxis`; its index in the signal is 0),
        or None for a single map.
    unit_cell
        ``(a, b, c[, alpha, beta, gamma])`` (angstrom, degrees) or None.
    temperature_K
        The sample temperature of a single map, if the file states it.
    bytes_on_disk
        Storage size of the signal (all its source files for a virtual
        dataset).
    """

    path: Path
    group: str
    signal: DatasetRef
    weights: DatasetRef | None
    mask: DatasetRef | None
    shape: tuple
    dtype: str
    chunks: tuple | None
    axes: list
    scan_axis: RawAxis | None = None
    unit_cell: tuple | None = None
    temperature_K: float | None = None
    bytes_on_disk: int = 0
    notes: list = field(default_factory=list)

    @property
    def map_shape(self) -> tuple:
        """Shape of one map (without the scan axis)."""
        return self.shape[1:] if self.scan_axis is not None else self.shape

    @property
    def n_scans(self) -> int:
        return self.shape[0] if self.scan_axis is not None else 1


def _storage_bytes(dataset, ref: DatasetRef) -> int:
    """Bytes on disk of a dataset; for a virtual one, of its sources."""
    import h5py

    if not dataset.is_virtual:
        return int(dataset.id.get_storage_size())
    total = 0
    for source in dataset.virtual_sources():
        p = Path(source.file_name)
        p = p if p.is_absolute() else ref.file.parent / p
        try:
            with h5py.File(p, "r") as h5:
                total += int(h5[source.dset_name].id.get_storage_size())
        except (OSError, KeyError):
            continue
    return total


def describe_volume(path: str | os.PathLike, data_path: str | None = None) -> Volume:
    """Describe the NXdata map or volume of ``path`` without reading its signal.

    Parameters
    ----------
    path
        A NeXus/HDF5 file: an nxrefine wrapper (external links followed
        relative to its folder), a consolidated 4-D series (virtual
        datasets), a silx image stack (``@interpretation = 'image'`` on a
        3-D signal whose first axis is ``"."``), or a plain NXdata map.
    data_path
        HDF5 path of the NXdata group (default: the ``default`` chain, else
        the first NXdata group).

    Returns
    -------
    Volume

    Raises
    ------
    InputError
        Not HDF5, no NXdata, a linked or virtual-source file missing, links
        that loop, a signal that is not a 2-D/3-D map or a series of them,
        axes that do not match.
    """
    import h5py

    from ..errors import InputError

    path = Path(path)
    with open_hdf5(path) as h5:
        node = find_nxdata(h5, data_path, path)
        group, name = find_signal(node, path)
        where = group.name
        ref = resolve_dataset(path, f"{where.rstrip('/')}/{name}")
        with open_dataset(ref, wrapper=path) as signal:
            shape = tuple(int(n) for n in (signal.shape or ()))
            if signal.dtype.kind not in "biuf":
                raise InputError(f"the signal {signal.name} holds {signal.dtype} values; "
                                 "expected real numbers (counts)", path)
            interpretation = ""
            for holder in (signal, group):
                if "interpretation" in holder.attrs:
                    interpretation = str(_decode(holder.attrs["interpretation"]))
                    break
            names = nxdata_axis_names(group, signal, shape, where, path)
            dtype, chunks = str(signal.dtype), signal.chunks
            size = _storage_bytes(signal, ref)
        # a series: 4-D (scan, L, K, H), or a silx stack of 2-D images
        series = len(shape) == 4 or (len(shape) == 3 and interpretation == "image"
                                     and names[0] is None)
        if len(shape) not in (2, 3, 4) or (len(shape) == 4 and not series):
            raise InputError(f"the signal {ref.path} has {len(shape)} dimension(s) {shape}; "
                             "expected 2 (x, z) or 3 (x, y, z), or a series of them", path)
        scan_axis = None
        if series:
            scan_axis = (read_axis(group, names[0], 0, where, path) if names[0] is not None
                         else RawAxis("scan_index", np.arange(shape[0], dtype=float), None,
                                      "scan index"))
            if scan_axis.values.size != shape[0]:
                raise InputError(f"the scan axis '{scan_axis.name}' has {scan_axis.values.size} "
                                 f"values for {shape[0]} scans", path)
        offset = 1 if series else 0
        axes = [read_axis(group, n, i + offset, where, path) for i, n in enumerate(names[offset:])]
        for i, ax in enumerate(axes):
            if ax.values.size not in (shape[i + offset], shape[i + offset] + 1):
                raise InputError(f"axis '{ax.name}' has {ax.values.size} values but the signal "
                                 f"has {shape[i + offset]} along dimension {i + offset}", path)
        _, weights = find_weights(group, path)
        mask = None
        if group.get("mask", getlink=True) is not None:
            mask = resolve_dataset(path, f"{where.rstrip('/')}/mask")
        entry = group.parent if group.name != "/" else h5
        cell = find_unit_cell(h5, entry)
        temperature = find_temperature(h5, entry)
        if isinstance(group.get(name, getlink=True), h5py.ExternalLink) or ref.linked:
            notes = [f"signal {where}/{name} read from {ref.file.name}:{ref.path} (external link)"]
        else:
            notes = []
    return Volume(path=path, group=where, signal=ref, weights=weights, mask=mask, shape=shape,
                  dtype=dtype, chunks=chunks, axes=axes, scan_axis=scan_axis, unit_cell=cell,
                  temperature_K=temperature, bytes_on_disk=size, notes=notes)


def read_block(volume: Volume, index: tuple, *, scan: int | None = None) -> tuple:
    """Read one hyperslab of a volume: nothing outside it leaves the disk.

    Parameters
    ----------
    volume
        From :func:`describe_volume`.
    index
        One ``slice`` (steps allowed) or int per map dimension, file order.
    scan
        Which map of a series (index along the scan axis); required for a
        series, refused otherwise.

    Returns
    -------
    intensity : ndarray
        float64, the block's shape; data / weights where the file has
        weights (NaN where weights are 0: not measured).
    mask : ndarray of bool or None
        The file's mask over the block (True = not measured).

    Raises
    ------
    InputError
        A file cannot be read, or ``scan`` is out of range.
    """
    from ..errors import InputError, ParameterError

    index = tuple(index)
    if volume.scan_axis is not None:
        if scan is None:
            raise ParameterError(f"{volume.path} holds a series of {volume.n_scans} maps along "
                                 f"'{volume.scan_axis.name}': image one with --scan N (0 to "
                                 f"{volume.n_scans - 1}), or all with 'nanotools series FILE'")
        if not 0 <= int(scan) < volume.n_scans:
            raise ParameterError(f"scan {scan} does not exist: {volume.path} holds "
                                 f"{volume.n_scans} maps")
        index = (int(scan),) + index
    elif scan not in (None, 0):
        raise ParameterError(f"{volume.path} holds one map, not a series (scan {scan})")

    def read(ref):
        with open_dataset(ref, wrapper=volume.path) as ds:
            try:
                return ds[index]
            except (OSError, RuntimeError) as exc:
                raise InputError(f"cannot read {ref.path} in {ref.file.name}: the file is "
                                 f"damaged or truncated ({str(exc).splitlines()[0]})",
                                 volume.path) from None

    intensity = np.asarray(read(volume.signal), dtype=np.float64)
    if volume.weights is not None:
        weights = np.asarray(read(volume.weights), dtype=np.float64)
        good = np.isfinite(weights) & (weights > 0)
        intensity = np.where(good, intensity / np.where(good, weights, 1.0), np.nan)
    mask = None
    if volume.mask is not None:
        mask = np.asarray(read(volume.mask)).astype(bool)
    return intensity, mask


# ---------------------------------------------------------------------------
# Writing the nxrefine layout (tests, demos, benchmarks)
# ---------------------------------------------------------------------------

def write_nxrefine_scan(folder: str | os.PathLike, sample: str, scan: str, data: np.ndarray,
                        H: np.ndarray, K: np.ndarray, L: np.ndarray, *,
                        unit_cell: tuple, weights: np.ndarray | None = None,
                        temperature_K: float | None = None, chunks: tuple | None = None
                        ) -> Path:
    """Write one scan in nxrefine's layout with nexusformat.

    ``folder/<scan>/transform.nxs`` holds ``/entry/data/v`` (the summed
    counts, float32, chunked) and ``/entry/data/n`` (the weights);
    ``folder/<sample>_<scan>.nxs`` is the wrapper: ``/entry/sample``
    (``unitcell_a`` ... ``unitcell_gamma``, ``temperature``),
    ``/entry/transform`` (merged) and ``/f1/transform`` (one detector
    position), NXdata with ``data`` and ``weights`` as external links to
    ``<scan>/transform.nxs`` (relative names, as nxrefine writes them) and
    axes ``[Ql, Qk, Qh]`` carrying ``long_name`` and ``scaling_factor``.

    Parameters
    ----------
    folder
        Where to write (created).
    sample, scan
        Names: the wrapper is ``<sample>_<scan>.nxs``.
    data
        Counts, shape ``(nL, nK, nH)``.
    H, K, L
        Axis values (r.l.u.), lengths ``nH``, ``nK``, ``nL``.
    unit_cell
        ``(a, b, c, alpha, beta, gamma)`` (angstrom, degrees); the scaling
        factors are 2 pi / a etc. (orthogonal cell).
    weights
        Shape of ``data``; default 1 everywhere. ``data`` is stored as
        ``intensity x weights`` is NOT done here: pass the summed counts.
    temperature_K
        Stored as ``/entry/sample/temperature`` (units K).
    chunks
        HDF5 chunks (default nxrefine's 50^3, clipped to the shape).

    Returns
    -------
    Path
        The wrapper file.
    """
    from nexusformat.nexus import NXdata, NXentry, NXfield, NXlink, NXroot, NXsample, nxopen

    folder = Path(folder)
    (folder / scan).mkdir(parents=True, exist_ok=True)
    data = np.asarray(data, dtype=np.float32)
    if data.shape != (len(L), len(K), len(H)):
        raise ValueError(f"data {data.shape} does not match (L, K, H) = "
                         f"({len(L)}, {len(K)}, {len(H)})")
    weights = np.ones_like(data) if weights is None else np.asarray(weights, np.float32)
    chunks = tuple(min(c, n) for c, n in zip(chunks or (50, 50, 50), data.shape))
    transform = folder / scan / "transform.nxs"
    with nxopen(transform, "w") as root:
        root["entry"] = NXentry()
        root["entry/data"] = NXdata()
        root["entry/data/v"] = NXfield(data, chunks=chunks, compression="lzf")
        root["entry/data/n"] = NXfield(weights, chunks=chunks, compression="lzf")
    a, b, c = (float(v) for v in unit_cell[:3])
    alpha, beta, gamma = (float(v) for v in (tuple(unit_cell[3:6]) or (90.0, 90.0, 90.0)))
    wrapper = folder / f"{sample}_{scan}.nxs"
    root = NXroot(NXentry(name="entry"), NXentry(name="f1"))
    sample_group = NXsample(name="sample")
    for key, value in dict(unitcell_a=a, unitcell_b=b, unitcell_c=c, unitcell_alpha=alpha,
                           unitcell_beta=beta, unitcell_gamma=gamma).items():
        sample_group[key] = value
    if temperature_K is not None:
        sample_group["temperature"] = NXfield(float(temperature_K), units="K")
    root["entry/sample"] = sample_group
    link_name = f"{scan}/transform.nxs"
    for entry in ("entry", "f1"):
        Qh = NXfield(np.asarray(H, float), name="Qh", scaling_factor=2 * np.pi / a,
                     long_name="H (r.l.u.)")
        Qk = NXfield(np.asarray(K, float), name="Qk", scaling_factor=2 * np.pi / b,
                     long_name="K (r.l.u.)")
        Ql = NXfield(np.asarray(L, float), name="Ql", scaling_factor=2 * np.pi / c,
                     long_name="L (r.l.u.)")
        root[entry]["transform"] = NXdata(NXlink(name="data", target="/entry/data/v",
                                                 file=link_name), [Ql, Qk, Qh])
        root[entry]["transform/weights"] = NXlink(target="/entry/data/n", file=link_name)
        root[entry]["transform"].attrs["angles"] = (gamma, beta, alpha)
    root["entry/transform"].set_default(over=True)
    # nexusformat resolves the link's file relative to the working directory
    # while saving; nxrefine saves from the wrapper's folder.
    here = os.getcwd()
    try:
        os.chdir(folder)
        root.save(wrapper.name, mode="w")
    finally:
        os.chdir(here)
    return wrapper


def consolidate_scans(wrappers: list, out: str | os.PathLike, *,
                      data_path: str = "entry/transform",
                      scan_path: str = "entry/sample/temperature") -> Path:
    """Consolidate scans into one 4-D NXdata of virtual datasets, as nxrefine
    does (nexusformat's ``nxconsolidate``: scans sorted by ``scan_path``,
    which becomes the first axis).

    Parameters
    ----------
    wrappers
        The scans' wrapper files (:func:`write_nxrefine_scan`).
    out
        The consolidated file (``<sample>_scans.nxs``).
    data_path, scan_path
        The NXdata group consolidated and the scan variable.

    Returns
    -------
    Path
    """
    from nexusformat.nexus import NXentry, NXroot, NXsample, nxconsolidate, nxload

    out = Path(out)
    here = os.getcwd()
    try:
        os.chdir(out.parent)
        roots = [nxload(os.path.relpath(Path(w).resolve(), out.parent.resolve()))
                 for w in wrappers]
        scan_data = nxconsolidate(roots, data_path, scan_path=scan_path)
        root = NXroot(NXentry(name="entry"))
        if "entry/sample" in roots[0]:  # the parent keeps the sample (lattice)
            sample = roots[0]["entry/sample"]
            root["entry/sample"] = NXsample(**{k: sample[k].nxvalue for k in sample
                                               if k != "temperature"})
        root["entry"][scan_data.nxname] = scan_data
        root["entry"][scan_data.nxname].set_default(over=True)
        root.save(out.name, mode="w")
    finally:
        os.chdir(here)
    return out
