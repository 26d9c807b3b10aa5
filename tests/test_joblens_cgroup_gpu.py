"""Job Lens' cgroup v2 reader and NVML reader on their own: a cgroup directory written by the
test (the dev machines' jobs have no cgroup of their own) and an NVML module injected in
``sys.modules`` (no GPU here). The sampler and the summary around them are the real ones."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

from ink_spawner.joblens import summary as lens
from ink_spawner.joblens.cgroup import Cgroup, job_cgroup
from ink_spawner.joblens.sampler import Sampler

MiB = 1 << 20


def write_cgroup(d, usage_usec, current, peak, inactive_file, rbytes=0, wbytes=0, procs=()):
    d.mkdir(parents=True, exist_ok=True)
    (d / "cpu.stat").write_text(f"usage_usec {usage_usec}\nuser_usec {usage_usec // 2}\nsystem_usec 0\n")
    (d / "memory.current").write_text(f"{current}\n")
    (d / "memory.peak").write_text(f"{peak}\n")
    (d / "memory.stat").write_text(f"anon {current - inactive_file}\nfile {inactive_file}\n"
                                   f"inactive_file {inactive_file}\nactive_file 0\n")
    (d / "io.stat").write_text(f"8:0 rbytes={rbytes} wbytes={wbytes} rios=3 wios=4 dbytes=0 dios=0\n"
                               f"259:0 rbytes={rbytes} wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n")
    (d / "cgroup.procs").write_text("".join(f"{p}\n" for p in procs))


def test_cgroup_figures_from_a_directory(tmp_path):
    d = tmp_path / "job_42"
    write_cgroup(d, usage_usec=2_500_000, current=300 * MiB, peak=900 * MiB, inactive_file=100 * MiB,
                 rbytes=4096, wbytes=8192, procs=(11, 12))
    figures = Cgroup(str(d)).read()
    assert figures["cpu_s"] == 2.5
    assert figures["rss"] == 200 * MiB  # the working set: page cache it could drop left out
    assert figures["mem_peak"] == 900 * MiB  # the kernel's peak, page cache included
    assert "rss_peak" not in figures  # never mixed into the working-set peak
    assert (figures["io_r"], figures["io_w"]) == (8192, 8192)  # both devices added up
    assert figures["procs"] == 2
    # a directory given as the setting is used when it holds cpu.stat; "off" turns it off
    assert job_cgroup(str(d)) == str(d)
    assert job_cgroup(str(tmp_path / "nowhere")) is None and job_cgroup("off") is None


def test_cgroup_sampler_summary_keeps_working_set_and_kernel_peak_apart(tmp_path):
    """A job that read a big file: memory.peak (600 MiB, mostly page cache) is reported as
    mem_peak; rss_peak stays the largest working set sampled (250 MiB)."""
    d = tmp_path / "job_7"
    write_cgroup(d, 0, current=50 * MiB, peak=50 * MiB, inactive_file=0)
    child = subprocess.Popen(["sleep", "30"])
    try:
        out = tmp_path / "m.jsonl"
        sampler = Sampler(child.pid, str(out), interval=1, cpus=2, cgroup_setting=str(d))
        assert sampler.source.source == "cgroup"
        sampler.sample()
        write_cgroup(d, 1_000_000, current=600 * MiB, peak=600 * MiB, inactive_file=350 * MiB)
        sampler.sample()
        write_cgroup(d, 3_000_000, current=120 * MiB, peak=600 * MiB, inactive_file=20 * MiB)
        sampler.sample()
        running = lens.summarize(*lens.read(str(out)))
        assert running["rss_peak"] == 250 * MiB and running["mem_peak"] == 600 * MiB
        sampler.stop(exit_code=0)
        header, samples, end = lens.read(str(out))
        assert header["source"] == "cgroup" and end["mem_peak"] == 600 * MiB
        s = lens.summarize(header, samples, end)
        assert s["final"] and s["rss_peak"] == 250 * MiB and s["mem_peak"] == 600 * MiB
        assert s["cpu_seconds"] == 3.0 and s["source"] == "cgroup"
    finally:
        child.kill()
        child.wait()


class FakeNVMLError(Exception):
    pass


def fake_pynvml(util_by_device, used_by_device, processes):
    """An NVML module as nvidia-ml-py's ``pynvml`` offers it, for devices without hardware."""
    m = types.ModuleType("pynvml")
    m.NVMLError = FakeNVMLError
    m.initialised = False
    m.nvmlInit = lambda: setattr(m, "initialised", True)
    m.nvmlDeviceGetCount = lambda: len(util_by_device)
    m.nvmlDeviceGetHandleByIndex = lambda i: i
    m.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=util_by_device[h], memory=0)
    m.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(used=used_by_device[h], total=16 << 30)
    m.nvmlDeviceGetComputeRunningProcesses = lambda h: processes.get(h, [])
    return m


def test_gpu_figures_go_through_the_sampler_into_the_summary(tmp_path, monkeypatch):
    child = subprocess.Popen(["sleep", "30"])
    try:
        proc = types.SimpleNamespace
        nvml = fake_pynvml(util_by_device=[5, 80, 40], used_by_device=[1 << 30, 6 << 30, 3 << 30],
                           processes={1: [proc(pid=child.pid, usedGpuMemory=2 << 30),
                                          proc(pid=999_999, usedGpuMemory=4 << 30)],
                                      2: [proc(pid=child.pid, usedGpuMemory=1 << 30)]})
        monkeypatch.setitem(sys.modules, "pynvml", nvml)
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,2")  # the job's devices: not device 0
        out = tmp_path / "m.jsonl"
        sampler = Sampler(child.pid, str(out), interval=1, cgroup_setting="off")
        assert nvml.initialised and sampler.gpus is not None
        first = sampler.sample()
        assert first["gpu_util"] == 60  # the mean of devices 1 and 2
        assert first["gpu_mem"] == 3 << 30  # the job's own processes only, not pid 999999's
        nvml.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=100, memory=0)
        sampler.sample()
        sampler.stop(exit_code=0)
        header, samples, end = lens.read(str(out))
        assert header["gpu"] is True
        s = lens.summarize(header, samples, end)
        assert s["gpu_util_avg"] == 80.0 and s["gpu_mem_peak"] == 3 << 30
    finally:
        child.kill()
        child.wait()


def test_no_nvml_or_no_device_means_no_gpu_figures(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails: package not installed
    sampler = Sampler(1, str(tmp_path / "a.jsonl"), interval=1, cgroup_setting="off")
    assert sampler.gpus is None
    broken = fake_pynvml([], [], {})

    def no_driver():
        raise FakeNVMLError("Driver Not Loaded")

    broken.nvmlInit = no_driver
    monkeypatch.setitem(sys.modules, "pynvml", broken)
    assert Sampler(1, str(tmp_path / "b.jsonl"), interval=1, cgroup_setting="off").gpus is None
    sampler.stop()
