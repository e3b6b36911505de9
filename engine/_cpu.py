"""What the CPU is: its model and feature flags, read once from /proc/cpuinfo.

The bench header, the tuning cache key (engine/tuning.py) and the OpenBLAS kernel re-pick
(engine/_openblas.py) all ask this one reader.
"""
from __future__ import annotations

import functools
import platform


@functools.lru_cache(maxsize=None)
def info(path="/proc/cpuinfo") -> dict:
    """{"model": the CPU's name, "flags": set of its flags or None where unknown} from the
    first processor of /proc/cpuinfo (Linux), else from the platform module."""
    fields = {}
    try:
        with open(path) as f:
            for line in f:
                if not line.strip():
                    break  # one processor is enough: they are all alike
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    model = fields.get("model name") or platform.processor() or platform.machine() or "unknown"
    if "cpu family" in fields:  # "AMD EPYC" alone does not tell Zen 4 from Zen 5
        model += f" (family {fields['cpu family']}, model {fields.get('model', '?')})"
    return {"model": model, "flags": frozenset(fields["flags"].split()) if "flags" in fields else None}


def flags() -> frozenset:
    """The CPU's feature flags (empty where unknown)."""
    return info()["flags"] or frozenset()
