"""Other libraries' output on the command line: their progress bars and warnings are shown
only with `--verbose` or `--debug` (transformers' "Loading weights" bars, the Hub's retry logs)."""

from __future__ import annotations

import logging
import os
import sys


def show_third_party_output(shown: bool) -> None:
    """Set transformers', huggingface_hub's and datasets' logging and progress bars for this process."""
    from huggingface_hub import utils as hub_utils
    from transformers.utils import logging as transformers_logging

    level = logging.WARNING if shown else logging.ERROR
    transformers_logging.set_verbosity(level)
    hub_utils.logging.set_verbosity(level)
    if shown:
        transformers_logging.enable_progress_bar()
        hub_utils.enable_progress_bars()
    else:
        transformers_logging.disable_progress_bar()
        hub_utils.disable_progress_bars()
    if "datasets" in sys.modules:  # imported only by the commands that read Hub datasets
        import datasets

        datasets.utils.logging.set_verbosity(level)
        (datasets.enable_progress_bars if shown else datasets.disable_progress_bars)()
    else:  # read when datasets is imported
        os.environ["DATASETS_VERBOSITY"] = "warning" if shown else "error"
        os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "0" if shown else "1"
