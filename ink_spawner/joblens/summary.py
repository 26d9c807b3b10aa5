"""A samples file read back: the series for the charts, the summary, the efficiency line.

Used by the portal's metrics API (and by anyone with the file). Tolerates a file being
written or thinned while it is read: a torn last line is skipped.
"""

from __future__ import annotations

import json


def read(path: str, max_bytes: int = 4 << 20) -> tuple[dict | None, list[dict], dict | None]:
    """(header, samples, end line) of a samples file; raises OSError if it cannot be opened."""
    with open(path, "rb") as f:
        return parse(f.read(max_bytes))


def parse(data: bytes) -> tuple[dict | None, list[dict], dict | None]:
    """(header, samples, end line) of a samples file's bytes (the hub reads them itself, see
    :mod:`ink_hub.lens`, to check who owns the file before it trusts it)."""
    header, samples, end = None, [], None
    for line in data.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict):
            continue
        kind = record.get("type")
        if kind == "start":
            header = record
        elif kind == "end":
            end = record
        elif isinstance(record.get("t"), (int, float)):
            samples.append(record)
    return header, samples, end


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def human_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h".replace(".0 h", " h")


def summarize(header: dict | None, samples: list[dict], end: dict | None,
              cpus: int | None = None) -> dict | None:
    """Duration, CPU avg/max/p99 (% of one core), RSS avg/peak, I/O, GPU; exact totals from
    the end line when the job has ended."""
    if not samples and end is None:
        return None
    cpus = cpus or (header or {}).get("cpus") or 1
    start = (header or {}).get("t") or (samples[0]["t"] if samples else 0)
    last_t = end["t"] if end else samples[-1]["t"]
    duration = max(0.0, last_t - start)
    cpu_values = [s.get("cpu", 0.0) for s in samples[1:]]  # the first has no interval behind it
    cpu_s = end["cpu_s"] if end else (samples[-1].get("cpu_s", 0.0) if samples else 0.0)
    rss = [s.get("rss", 0) for s in samples]
    out = {
        "final": end is not None,
        "exit_code": end.get("exit_code") if end else None,
        "duration_s": round(duration, 1),
        "cpus": cpus,
        "cpu_seconds": round(cpu_s, 2),
        "cpu_avg": round(cpu_s / duration * 100, 1) if duration > 0 else 0.0,
        "cpu_max": round(max(cpu_values + [end.get("cpu_max", 0.0) if end else 0.0]), 1) if (cpu_values or end) else 0.0,
        "cpu_p99": round(percentile(cpu_values, 99), 1),
        "rss_avg": int(end["rss_avg"]) if end else (int(sum(rss) / len(rss)) if rss else 0),
        "rss_peak": max([end.get("rss_peak", 0) if end else 0] + rss),
        "io_read": end.get("io_r", 0) if end else (samples[-1].get("io_r", 0) if samples else 0),
        "io_write": end.get("io_w", 0) if end else (samples[-1].get("io_w", 0) if samples else 0),
        "source": (header or {}).get("source"),
        "samples": len(samples),
    }
    mem_peak = [s["mem_peak"] for s in samples if "mem_peak" in s]
    if mem_peak or (end and "mem_peak" in end):  # cgroup: memory.peak, page cache included
        out["mem_peak"] = max(mem_peak + [end.get("mem_peak", 0) if end else 0])
    gpu = [s["gpu_util"] for s in samples if "gpu_util" in s]
    if gpu or (end and "gpu_util_avg" in end):
        out["gpu_util_avg"] = end.get("gpu_util_avg") if end and "gpu_util_avg" in end else round(sum(gpu) / len(gpu), 1)
        out["gpu_mem_peak"] = max([end.get("gpu_mem_peak", 0) if end else 0] + [s.get("gpu_mem", 0) for s in samples])
    if samples and "net_rx" in samples[-1]:
        out["net_rx"] = samples[-1]["net_rx"] - samples[0].get("net_rx", 0)
        out["net_tx"] = samples[-1]["net_tx"] - samples[0].get("net_tx", 0)
    return out


def efficiency(summary: dict | None) -> str:
    """ "used 4 % of 4 cores over 2 h" — CPU time over what the allocation could have given."""
    if not summary or summary["duration_s"] <= 0:
        return ""
    cpus = summary["cpus"] or 1
    used = summary["cpu_seconds"] / (summary["duration_s"] * cpus) * 100
    cores = "1 core" if cpus == 1 else f"{cpus} cores"
    return f"used {used:.0f} % of {cores} over {human_duration(summary['duration_s'])}"
