"""A small simulated film that phases in about a second (shared by tests)."""
from types import SimpleNamespace

import numpy as np

from nanotools.simulate import simulate_map

SMALL = dict(shape=(128, 64), period_nm=8.0, thickness_nm=16.0, patch_periods=4,
             total_counts=1e8)
FAST_ALGORITHM = "HIO**300 RAAR**150 ER**50"


def small_simulation(texture="laminate", **kw):
    return simulate_map(texture, **{**SMALL, **kw})


def prepared_from_truth(sim, background=1.0):
    """What preprocessing should measure, taken from the simulation's truth, so
    phasing and pattern tests do not depend on the preprocessing stage."""
    return SimpleNamespace(
        intensity=np.clip(sim.rsm.intensity - background, 0, None), mask=sim.rsm.mask,
        pixel_nm=sim.pixel_nm, thickness_nm=sim.thickness_nm,
        patch_nm=sim.parameters["patch_periods"] * sim.period_nm, period_nm=sim.period_nm,
        G=sim.G)


def phasing_family_module():
    """``benchmarks/phasing_family.py`` as a module (its ``run_draw``,
    ``prepared_from_truth`` and ``true_object`` for family draws)."""
    import importlib.util
    from pathlib import Path
    spec = importlib.util.spec_from_file_location(
        "phasing_family", Path(__file__).resolve().parents[1] / "benchmarks" / "phasing_family.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
