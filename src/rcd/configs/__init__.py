"""Option files shipped with rcd: `rcd eval --config paper/llada-gsm8k` reads `paper/llada-gsm8k.yaml`.

`paper/` holds the settings of the RCD paper's runs (one file per evaluation and training
setup), each setting's public source cited in the file. A `--config` value that names an
existing file is that file; otherwise it is looked up here.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

SUFFIXES = (".yaml", ".yml", ".json")


def shipped_names() -> list[str]:
    """Names of the shipped option files, e.g. 'paper/llada-gsm8k'."""
    root = resources.files(__package__)
    names = []
    for folder in root.iterdir():
        if folder.is_dir():
            names += [
                f"{folder.name}/{Path(f.name).stem}" for f in folder.iterdir() if f.name.endswith(SUFFIXES)
            ]
    return sorted(names)


def options_file(name: str) -> Path:
    """The file a `--config` value names: a path that exists, else a shipped option file
    (`paper/llada-gsm8k`, with or without `.yaml`); a name that is neither stays as given,
    for the reader to report."""
    path = Path(name)
    if path.exists():
        return path
    shipped = resources.files(__package__).joinpath(name if name.endswith(SUFFIXES) else f"{name}.yaml")
    return Path(str(shipped)) if shipped.is_file() else path
