"""Make the example map shipped with nanotools (``nanotools/data/example.h5``).

The map ``nanotools run`` and ``make demo`` use when no input is given: a
simulated laminate texture (Ca2RuO4-like: inclined walls of a second
structural phase between wider wires) with the registry's simulation
defaults, 256 x 128 pixels of 1 nm, written as NeXus/HDF5 with
:func:`nanotools.io.write_map`. The recipe travels in the file's metadata
(``simulation``), so the first notebook can rebuild the truth and the
summary compare the reconstruction with it.

Run from the repository root after changing the simulator::

    python examples/make_example.py
"""
from __future__ import annotations

import argparse
from pathlib import Path

from nanotools import io, params, simulate

#: Map geometry of the example (pixels, nm per pixel): a 256 nm wide field
#: of view holds the ~60 nm coherent patch with room to spare (oversampling
#: along x), 128 nm along z three times the 40 nm film.
SHAPE = (256, 128)
PIXEL_NM = 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parent.parent / "nanotools" / "data" / "example.h5"
    parser.add_argument("--out", type=Path, default=default, help="file to write")
    args = parser.parse_args()
    sim_defaults = params.defaults("simulate")
    simulation = simulate.simulate_map(
        sim_defaults["texture"], shape=SHAPE, pixel_nm=PIXEL_NM,
        period_nm=sim_defaults["sim_period_nm"], thickness_nm=sim_defaults["sim_thickness_nm"],
        total_counts=sim_defaults["sim_total_counts"], seed=sim_defaults["sim_seed"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    io.write_map(args.out, simulation.rsm)
    rsm = io.read_map(args.out)
    print(f"wrote {args.out}: {rsm.shape} map, {int(rsm.mask.sum())} masked pixels, "
          f"{args.out.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
