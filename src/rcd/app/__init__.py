"""The application layer: what every entry point (CLI, demo, server, experiments) does the same way.

Pick the device, load a model with its reference and baseline, size generation lengths, run
a sweep and write its report. Built on the method's rooms below it; the entry points above
it hold no logic of their own.
"""

from .device import choose_device
from .generate import complete_prompts
from .lengths import generation_length
from .models import LoadedModels, load_decoder, load_models
from .sweep import SweepJob, run_sweep, sweep_methods, sweep_report, sweep_rows

__all__ = [
    "LoadedModels",
    "SweepJob",
    "choose_device",
    "complete_prompts",
    "generation_length",
    "load_decoder",
    "load_models",
    "run_sweep",
    "sweep_methods",
    "sweep_report",
    "sweep_rows",
]
