"""Run Python in a fresh interpreter, as a user's process would import engine."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile


def run(args, timeout=120, **env) -> subprocess.CompletedProcess:
    """`python *args` with `env` added to this process's environment, started outside the
    source tree: from the repository root, Python would import the source's engine package
    (without a compiled engine._C when the project was installed with `pip install .`)
    instead of the installed one."""
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          env={**os.environ, **env}, cwd=tempfile.gettempdir(), timeout=timeout)


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    """`python -c code` in a fresh interpreter (run)."""
    return run(["-c", code], **env)
