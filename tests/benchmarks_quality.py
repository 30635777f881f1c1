"""Import shim: the slow quality test runs the benchmark's own code."""
import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "quality", Path(__file__).resolve().parents[1] / "benchmarks" / "quality.py")
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
run_texture = _module.run_texture
run_family_member = _module.run_family_member
summarise = _module.summarise
plot_estimate = _module.plot_estimate
summarise_rows = _module.summarise_rows
