"""Which variant of a C++ kernel runs on this CPU (docs/kernels.md, "Choices per CPU").

Some kernels have several variants that compute the same result at different speeds on
different CPUs (engine._C.choice_options() lists them). At import of the cpp backend each
choice is set from, in order:
- the environment variable SEQFUSE_<NAME> (e.g. SEQFUSE_CONV1D=gemm), to force a variant;
- otherwise the rule for this CPU ("auto").
A forced value that is not one of the choice's variants raises ValueError at import, naming
the variable, what it may be and what it was.

    >>> from engine import tuning
    >>> with tuning.forced("conv1d", "direct"):
    ...     ...                          # every conv1d call in here runs the direct kernel
"""
from __future__ import annotations

import contextlib
import os


def env_name(choice: str) -> str:
    """The environment variable that forces `choice`: SEQFUSE_CONV1D for "conv1d"."""
    return "SEQFUSE_" + choice.upper()


def _extension():
    from . import _C
    return _C


def configure(environ=os.environ) -> dict:
    """Set every choice from `environ` (or its default); returns {name: value} now in force."""
    C = _extension()
    for name, values in C.choice_options().items():
        value = environ.get(env_name(name), "").strip()
        if not value:
            value = values[0]
        if value not in values:
            raise ValueError(f"{env_name(name)} must be one of {', '.join(values)}, got {value!r}")
        C.set_choice(name, value)
    return C.choices()


def current() -> dict:
    """{name: value} of every choice in force in this process."""
    return _extension().choices()


@contextlib.contextmanager
def forced(name: str, value: str):
    """Run the block with choice `name` set to `value`, then restore the previous one."""
    C = _extension()
    previous = C.choices()[name] if name in C.choices() else None
    C.set_choice(name, value)
    try:
        yield
    finally:
        if previous is not None:
            C.set_choice(name, previous)
