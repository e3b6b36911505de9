"""What the CPU is: its model and feature flags, read once from /proc/cpuinfo.

The bench header, the tuning cache key (engine/tuning.py) and the OpenBLAS kernel re-pick
(engine/_openblas.py) all ask this one reader.
"""
from __future__ import annotations

import functools
import importlib
import importlib.util
import os
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


# Builds of the C++ extension (CMakeLists.txt). The default build is engine._C alone, compiled
# for the build machine (-march=native). A portable build (SEQFUSE_NATIVE=OFF) has engine._C
# for baseline x86-64 beside one build per x86-64 microarchitecture level, and the best one
# this CPU runs is loaded as engine._C, the way OpenBLAS picks its kernels at load time: on
# the Zen 5 VM the baseline build ran the recurrent rows of `seqfuse bench` 2.2-8.4x slower
# than AVX-512 code.
ISA_ENV = "SEQFUSE_ISA"
_V2 = {"cx16", "lahf_lm", "popcnt", "sse4_1", "sse4_2", "ssse3"}
_V3 = _V2 | {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"}
# level (GCC's -march name) -> (module, the /proc/cpuinfo flags it needs), best first.
LEVELS = {
    "x86-64-v4": ("_C_x86_64_v4", frozenset(_V3 | {"avx512f", "avx512bw", "avx512cd", "avx512dq",
                                                   "avx512vl"})),
    "x86-64-v3": ("_C_x86_64_v3", frozenset(_V3)),
    "x86-64": ("_C", frozenset()),
}


def pick_level(choice: str, cpu_flags, built) -> str | None:
    """The level whose build to load as engine._C, or None to import engine._C as it is.

    choice: SEQFUSE_ISA ("" or "auto": the best level this CPU runs, or a level name to force);
    cpu_flags: the CPU's flags; built: the levels other than x86-64 this install has (empty
    for the default -march=native build, which has no choice to make)."""
    choice = choice.strip() or "auto"
    if choice != "auto" and choice not in LEVELS:
        raise ValueError(f"{ISA_ENV} must be one of auto, {', '.join(LEVELS)}, got {choice!r}")
    if not built:
        if choice != "auto":
            raise ValueError(f"{ISA_ENV}={choice}: this engine._C is a single build (-march=native); "
                             "the levels come with a SEQFUSE_NATIVE=OFF build")
        return None
    if choice == "auto":
        return next(level for level, (_, needs) in LEVELS.items()
                    if (level in built or level == "x86-64") and needs <= cpu_flags)
    if choice != "x86-64" and choice not in built:
        raise ValueError(f"{ISA_ENV}={choice}: this install has no {LEVELS[choice][0]} "
                         f"(built: x86-64, {', '.join(sorted(built))})")
    missing = LEVELS[choice][1] - cpu_flags
    if missing:
        raise ValueError(f"{ISA_ENV}={choice}: this CPU lacks {', '.join(sorted(missing))}")
    return choice


def load_extension(package: str, environ=os.environ):
    """At `import engine`: in a portable build, import the build of the C++ extension for this
    CPU's level (pick_level) and return it, to stand as engine._C; None where there is no
    choice (the default build: engine._C is imported when first used) or the pick is engine._C."""
    built = {level for level, (module, _) in LEVELS.items()
             if level != "x86-64" and importlib.util.find_spec(f"{package}.{module}") is not None}
    level = pick_level(environ.get(ISA_ENV, ""), flags(), built)
    if level is None or level == "x86-64":
        return None
    return importlib.import_module(f"{package}.{LEVELS[level][0]}")
