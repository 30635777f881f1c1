"""The reciprocal-space map that every stage starts from."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["ReciprocalSpaceMap"]


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
