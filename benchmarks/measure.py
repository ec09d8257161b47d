"""Device-agnostic clocks and memory meters for the benchmarks.

Time: on CUDA, CUDA events (no host sync inside a measured region, one at its end); on
CPU, `time.perf_counter`. Per-step times come from a forward pre-hook on the decoded
model: the interval between two consecutive forward passes is one whole decode step
(forward, commit policy, residual update); the median over many steps shrugs off the
occasional stall of a shared machine.

Peak memory: on CUDA, `torch.cuda.max_memory_allocated` above the allocation at the start.
On Linux CPUs, the peak resident set (VmHWM) above the RSS at the start, after resetting
the peak through /proc/self/clear_refs; glibc's mmap threshold is pinned at import so
that freed large tensors leave the RSS (otherwise a second run would reuse them and show
no growth). `tracemalloc` cannot see torch's allocations.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import torch

T = TypeVar("T")

_M_MMAP_THRESHOLD = -3


def _pin_mmap_threshold(nbytes: int = 1 << 20) -> bool:
    """Allocations above nbytes are mmapped and returned to the OS when freed (glibc only)."""
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, nbytes))
    except (OSError, AttributeError):
        return False


MMAP_PINNED = _pin_mmap_threshold()


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Stamp:
    """A point in time on `device`: a CUDA event, or perf_counter on CPU."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        if self.cuda:
            self.event = torch.cuda.Event(enable_timing=True)
            self.event.record()
        else:
            self.t = time.perf_counter()

    def seconds_until(self, later: _Stamp) -> float:
        if self.cuda:
            return self.event.elapsed_time(later.event) / 1e3
        return later.t - self.t


def time_call(fn: Callable[[], T], device: torch.device) -> tuple[T, float]:
    """(fn's result, seconds the call took, device work included)."""
    synchronize(device)
    start = _Stamp(device)
    result = fn()
    end = _Stamp(device)
    synchronize(device)
    return result, start.seconds_until(end)


def median_time(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    return statistics.median(time_call(fn, device)[1] for _ in range(repeats))


@dataclass
class StepClock:
    """Intervals between consecutive forward passes of `model` while the clock is running."""

    model: torch.nn.Module
    device: torch.device
    intervals: list[float] = field(default_factory=list)

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        stamps: list[_Stamp] = []
        handle = self.model.register_forward_pre_hook(lambda *_: stamps.append(_Stamp(self.device)))
        try:
            yield
            stamps.append(_Stamp(self.device))  # closes the last step
            synchronize(self.device)
        finally:
            handle.remove()
        self.intervals += [a.seconds_until(b) for a, b in itertools.pairwise(stamps)]

    def median(self) -> float:
        return statistics.median(self.intervals)


def _proc_status(key: str) -> int | None:
    """A VmXXX line of /proc/self/status in bytes, or None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


@dataclass
class PeakMemory:
    """Peak memory growth (bytes) of the code run inside `measure()`; None if unmeasurable."""

    device: torch.device
    bytes: int | None = None

    @property
    def method(self) -> str:
        if self.device.type == "cuda":
            return "torch.cuda.max_memory_allocated above the start"
        return "peak RSS (VmHWM, reset via /proc/self/clear_refs) above the start RSS"

    @contextlib.contextmanager
    def measure(self) -> Iterator[None]:
        if self.device.type == "cuda":
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            start = torch.cuda.memory_allocated(self.device)
            yield
            synchronize(self.device)
            self.bytes = torch.cuda.max_memory_allocated(self.device) - start
            return
        ok = _reset_peak_rss()
        start = _proc_status("VmRSS")
        yield
        peak = _proc_status("VmHWM")
        self.bytes = peak - start if ok and start is not None and peak is not None else None


def machine() -> dict:
    """Where the figures come from."""
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
