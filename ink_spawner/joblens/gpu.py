"""GPU utilisation and memory of a job through NVML, when ``nvidia-ml-py`` and a GPU are there.

Optional: :func:`open_gpus` returns None without the package, without a driver or without a
device, and a job is then sampled without GPU figures. The job's devices are those the
scheduler gave it (``CUDA_VISIBLE_DEVICES`` as indices, else all); its memory is what the
job's own processes hold on them where NVML can tell, else the devices' used memory.
"""

from __future__ import annotations

import os


class Gpus:
    def __init__(self, nvml, handles):
        self.nvml, self.handles = nvml, handles

    def read(self, pids: list[int]) -> dict:
        nvml, wanted = self.nvml, set(pids)
        util, own, used = [], 0, 0
        for h in self.handles:
            try:
                util.append(nvml.nvmlDeviceGetUtilizationRates(h).gpu)
                used += nvml.nvmlDeviceGetMemoryInfo(h).used
                for p in nvml.nvmlDeviceGetComputeRunningProcesses(h):
                    if p.pid in wanted and p.usedGpuMemory:
                        own += p.usedGpuMemory
            except nvml.NVMLError:
                continue
        if not util:
            return {}
        return {"gpu_util": sum(util) / len(util), "gpu_mem": own or used}


def open_gpus() -> Gpus | None:
    try:
        import pynvml as nvml  # nvidia-ml-py
    except ImportError:
        return None
    try:
        nvml.nvmlInit()
        count = nvml.nvmlDeviceGetCount()
    except Exception:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        indices = [int(i) for i in visible.split(",") if i.strip().isdigit() and int(i) < count]
    else:
        indices = list(range(count))
    if not indices:
        return None
    return Gpus(nvml, [nvml.nvmlDeviceGetHandleByIndex(i) for i in indices])
