"""Compile-check the CUDA sources without a GPU: every kernel the cupy backend declares, for
float and double, for sm_80 (A100) and sm_90 (H100/H200).

Two compilers, because both matter:
- NVRTC (through CuPy's binding, the library cupy.RawModule calls on the device) with the
  backend's own options and name expressions: what the GPU will actually load;
- nvcc with `-Xptxas -v` on a file that takes the address of every instantiation: the
  register and spill report. Any spilled byte is a failure (the hot loops must live in
  registers).

usage: python tools/check_cuda.py [STEM ...]      (default: every declared source)
Exit status 1 if a source fails to compile or a kernel spills. Needs nvcc for the second
part and cupy + an NVRTC library (the nvrtc extra) for the first; a missing one is reported
and skipped, so `.ci/run` decides which it requires.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.backends import _cuda, cupy_cuda  # noqa: E402,F401  (cupy_cuda declares the sources)

ARCHS = ("80", "90")


def nvcc_report(stem: str, arch: str) -> str:
    """nvcc's ptxas -v report for every instantiation of `stem` (CalledProcessError on failure)."""
    refs = ",\n".join(f"  (void*)&{name}" for name in _cuda.name_expressions(stem))
    unit = (f'#include "{_cuda.source_path(stem)}"\n'
            f"void* const seqfuse_instantiations[] = {{\n{refs}\n}};\n")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{stem}_check.cu"
        path.write_text(unit)
        done = subprocess.run(["nvcc", "-std=c++17", f"-I{_cuda.KERNEL_DIR}", f"-arch=sm_{arch}",
                               "-Xptxas", "-v", "-c", str(path), "-o", str(Path(tmp) / "x.o")],
                              capture_output=True, text=True)
    if done.returncode:
        raise subprocess.CalledProcessError(done.returncode, "nvcc", done.stdout, done.stderr)
    return done.stderr


def spills(report: str) -> dict[str, int]:
    """{mangled kernel: spilled bytes (stores + loads)} for every kernel that spills."""
    found, kernel = {}, None
    for line in report.splitlines():
        m = re.search(r"Compiling entry function '(\w+)'", line)
        if m:
            kernel = m.group(1)
        m = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m and kernel and int(m.group(1)) + int(m.group(2)):
            found[kernel] = int(m.group(1)) + int(m.group(2))
    return found


def main(stems: list[str]) -> int:
    stems = stems or sorted(_cuda.SOURCES)
    failed = False
    have_nvrtc = not _cuda.nvrtc_unavailable()
    if not have_nvrtc:
        print(f"nvrtc: skipped ({_cuda.nvrtc_unavailable()})")
    have_nvcc = shutil.which("nvcc") is not None
    if not have_nvcc:
        print("nvcc: skipped (not on PATH)")
    for stem in stems:
        for arch in ARCHS:
            if have_nvrtc:
                try:
                    _, names = _cuda.nvrtc_compile(stem, arch)
                    print(f"nvrtc {stem}.cu compute_{arch}: {len(names)} kernels")
                except Exception as exc:  # noqa: BLE001  (report every source, then fail)
                    print(f"nvrtc {stem}.cu compute_{arch}: FAILED\n{exc}")
                    failed = True
            if have_nvcc:
                try:
                    report = nvcc_report(stem, arch)
                except subprocess.CalledProcessError as exc:
                    print(f"nvcc {stem}.cu sm_{arch}: FAILED\n{exc.stderr}")
                    failed = True
                    continue
                spilled = spills(report)
                registers = [int(r) for r in re.findall(r"Used (\d+) registers", report)]
                print(f"nvcc {stem}.cu sm_{arch}: {len(registers)} kernels, registers <= "
                      f"{max(registers, default=0)}, spills: {spilled or 'none'}")
                failed |= bool(spilled)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
