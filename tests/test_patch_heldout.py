"""Coherent patch on held-out family draws whose zeroth order lies under a
substrate rod: the width must come from the satellites the patch alone
shapes, not from broken, split or disorder-broadened ones."""
from __future__ import annotations

import warnings

import pytest

from nanotools.preprocess import prepare
from nanotools.preprocess.measure import _patch_shaped
from nanotools.simulate import draw_family_member


@pytest.mark.parametrize("seed", [
    53,   # amplitude ensemble: -1 and +-2 broadened five fold (was -52 %)
    149,  # laminate ensemble: +2 lost among the side lobes of +1 (was +408 %)
])
def test_patch_of_ensemble_under_substrate_rod(seed):
    member = draw_family_member(seed)
    p = member.parameters
    assert p["substrate"] and p["coherence"]["model"] == "ensemble"
    true = p["coherence"]["patch_periods"] * member.period_nm
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prep = prepare(member.rsm)
    # measured -1.7 % (53) and -2.0 % (149)
    assert prep.patch_nm == pytest.approx(true, rel=0.05)


def test_broadened_satellites_are_dropped():
    # +-2 five times broader than the first orders: not the patch's shape
    fits = {-1: (100.0, 3.0), 1: (97.0, 3.0), -2: (20.0, 2.0), 2: (19.0, 2.0)}
    assert sorted(_patch_shaped(fits)) == [-1, 1]
    # a noisy sharp fit does not discard the rest
    fits = {-1: (100.0, 3.0), 1: (98.0, 3.0), 2: (170.0, 40.0)}
    assert sorted(_patch_shaped(fits)) == [-1, 1, 2]
