"""The parameter registry names the function that consumes each parameter."""
from __future__ import annotations

import importlib
import inspect

import pytest

from nanotools.params import PARAMETERS, arguments_for, defaults


@pytest.mark.parametrize("consumer", sorted({p.consumer for p in PARAMETERS.values()}))
def test_each_consumer_takes_its_parameters(consumer):
    module, name = consumer.rsplit(".", 1)
    accepted = inspect.signature(getattr(importlib.import_module(module), name)).parameters
    names = [n.removeprefix("sim_") for n in arguments_for(consumer, defaults())]
    if consumer.endswith("write_result"):  # read from Reconstruction.parameters
        names = ["reconstruction"]
    assert names and all(n in accepted for n in names), (consumer, names)


def test_arguments_for_picks_one_functions_keywords():
    assert list(arguments_for("nanotools.preprocess.prepare", defaults())) == [
        "period_nm", "thickness_nm", "bin", "background", "bragg_peak", "mask_specular",
        "z_subpixels"]
