"""Simulated reciprocal-space maps with their truth.

Two independent generators:

:mod:`nanotools.simulate.model`
    The three hand-written textures the first release was tuned on
    (``simulate_map``): one coherent patch, the map an exact FFT of the
    phasing grid.
:mod:`nanotools.simulate.family`
    A seeded validation family (``draw_family_member``): random textures,
    periods, thicknesses, counts, partial coherence as one patch or as an
    incoherent ensemble, a substrate peak, gaps and bad pixels, the map
    sampled on its own q grid. Used to measure, not to tune.
"""
from .family import FAMILY_TEXTURES, FamilyMember, draw_family_member
from .model import TEXTURES, Simulation, film_object, simulate_map, texture_field, truth_supercell

__all__ = ["TEXTURES", "Simulation", "texture_field", "film_object", "simulate_map",
           "truth_supercell",
           "FAMILY_TEXTURES", "FamilyMember", "draw_family_member"]
