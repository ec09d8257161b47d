"""Install PyTorch into the running interpreter's environment, sensibly.

- An importable torch is kept as it is (never replaced or upgraded).
- Without an NVIDIA GPU, the CPU build (no multi-GB CUDA libraries), from PyTorch's CPU
  index with PyPI as fallback; a wheel in pip's configured find-links is used if present.
- With a GPU (nvidia-smi works), the default PyPI build, which carries CUDA.
RCD_TORCH_SPEC overrides the requirement (default: torch==2.13.0 on CPU, torch on GPU).
"""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import subprocess
import sys

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
CPU_DEFAULT = "torch==2.13.0"


def has_nvidia_gpu() -> bool:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    return subprocess.run([smi, "-L"], capture_output=True).returncode == 0


def main() -> int:
    if importlib.util.find_spec("torch") is not None:
        import torch

        print(f"install_torch: keeping installed torch {torch.__version__}")
        return 0
    pip = [sys.executable, "-m", "pip", "install", "--retries", "1"]
    if has_nvidia_gpu():
        spec = os.environ.get("RCD_TORCH_SPEC", "torch")
        cmd = [*pip, spec]
    else:
        spec = os.environ.get("RCD_TORCH_SPEC", CPU_DEFAULT)
        # macOS wheels on PyPI are CPU-only already; elsewhere ask the CPU index first.
        extra = [] if platform.system() == "Darwin" else ["--extra-index-url", CPU_INDEX]
        cmd = [*pip, spec, *extra]
    print("install_torch:", " ".join(cmd), flush=True)
    return subprocess.call(cmd)


if __name__ == "__main__":
    raise SystemExit(main())
