"""Preprocessing: from a raw reciprocal-space map to the input of phasing.

:func:`prepare` chains the steps below; each is a public function of its own,
usable and tested alone:

- :func:`locate_bragg_peak`: the Bragg peak from the reciprocal lattice
  (``q = 0``, integer ``H, K``) and the centre of the satellite comb, not the
  brightest pixel (the first satellite outshines the zeroth order when
  ``J0 < J1``); :func:`locate_peak`: the brightest feature, sub-pixel, blind
  to masked pixels (the fallback).
- :func:`specular_rod_mask`: a substrate peak and its truncation rod on the
  specular line, recognised (sharper along ``q_z`` than any film fringe)
  and masked; :func:`subtract_substrate_rod`: for phasing, the rod modelled
  from the map and subtracted instead, so that the film's zeroth order
  under it stays measured.
- :func:`estimate_background` / :func:`subtract_background`: a flat
  background per pixel, the floor that the rods' decay approaches; zero
  where the map shows none.
- :func:`centre_and_crop`: the peak at index ``n // 2`` of every axis (the FFT
  convention of the package), cropped symmetrically, the mask carried.
- :func:`bin_map`: sum counts over ``bin`` pixels per axis, correcting for
  masked pixels.
- :func:`measure_period`: texture period from the spacing of the satellites
  along the in-plane axis.
- :func:`measure_thickness`: film thickness from the extent of the
  Patterson function along the out-of-plane axis, summed over every rod
  (:func:`patterson_along`).
- :func:`measure_patch`: width of the coherent patch from the shape of the
  central satellite.

Which axis is out-of-plane is decided when the map is read
(:func:`nanotools.io.orientation.guess_out_of_plane`).

Modules, one step each: :mod:`~nanotools.preprocess.bragg` (the Bragg
peak and the substrate rod), :mod:`~nanotools.preprocess.substrate` (the
rod subtracted), :mod:`~nanotools.preprocess.peak` (brightest
feature and background), :mod:`~nanotools.preprocess.crop` (centring, cropping, binning),
:mod:`~nanotools.preprocess.measure` (period, thickness, patch and their
fits), :mod:`~nanotools.preprocess.prepare` (the whole stage), and
:mod:`~nanotools.preprocess.pixels` (helpers they share).

Conventions (``docs/ARCHITECTURE.md``): arrays ``(x, z)`` or ``(x, y, z)``,
out-of-plane axis last; ``q`` in 1/angstrom; lengths in nm; masks ``True`` =
not measured. A length ``L`` and the spacing ``dq`` of the features it makes
in reciprocal space are related by ``L = 2 pi / dq``.
"""
from __future__ import annotations

from .bragg import BraggPeak, locate_bragg_peak, specular_rod_mask
from .crop import CentredMap, bin_map, centre_and_crop, extend_unmeasured_z
from .measure import (
    LengthMeasurement,
    SatelliteComb,
    measure_patch,
    measure_period,
    measure_thickness,
    patterson_along,
    satellite_comb,
)
from .peak import BackgroundEstimate, estimate_background, locate_peak, subtract_background
from .prepare import PreparedMap, finer_z_grid, prepare
from .substrate import SubstrateRod, subtract_substrate_rod

__all__ = ["PreparedMap", "LengthMeasurement", "CentredMap", "BraggPeak", "BackgroundEstimate",
           "SatelliteComb", "SubstrateRod", "prepare", "locate_bragg_peak", "specular_rod_mask",
           "subtract_substrate_rod", "locate_peak",
           "estimate_background", "subtract_background", "centre_and_crop", "bin_map",
           "extend_unmeasured_z", "finer_z_grid",
           "measure_period", "measure_thickness", "measure_patch", "patterson_along",
           "satellite_comb"]

# Stage files name a dataclass by its import path (nanotools.io.save_stage):
# keep the public path, so files written before and after the split are
# identical.
for _cls in (PreparedMap, LengthMeasurement, CentredMap):
    _cls.__module__ = __name__
del _cls
