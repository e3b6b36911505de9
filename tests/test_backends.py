"""The backend registry: discovery, selection, and why a backend is missing."""
import os
import subprocess
import sys

import pytest

import engine as en


def test_cpu_backends_are_available():
    assert {"reference", "numba", "cpp"} <= set(en.backends.available())
    assert en.backends.names()[:3] == ["reference", "numba", "cpp"]


def test_unavailable_backends_say_why():
    reasons = en.backends.why_unavailable()
    assert set(reasons) == set(en.backends.names()) - set(en.backends.available())
    assert all(isinstance(r, str) and r for r in reasons.values())


def test_every_backend_has_the_same_kernel_table():
    ops = {name for name in dir(en.backends.get("reference"))
           if name.endswith(("_forward", "_backward", "_coalesce")) and not name.startswith("_")}
    assert {"embedding_forward", "embedding_backward", "embedding_coalesce"} <= ops
    for name in en.backends.names():
        module = en.backends._discover()[name]
        assert module.NAME == name and module.DEVICE in ("cpu", "cuda")
        if module.DEVICE == "cpu":
            missing = ops - set(dir(module))
            assert not missing, f"backend {name} lacks {sorted(missing)}"


def test_selection_precedence(monkeypatch):
    monkeypatch.delenv("ENGINE_BACKEND", raising=False)
    default = en.get_backend()
    assert default == next(n for n in en.backends.CPU_PREFERENCE if n in en.backends.available())
    with en.use_backend("reference"):
        assert en.get_backend() == "reference"
        with en.use_backend("numba"):
            assert en.get_backend() == "numba"
        assert en.get_backend() == "reference"
    try:
        en.set_backend("numba")
        assert en.get_backend() == "numba"
    finally:
        en.backends._chosen = None
    assert en.get_backend() == default


def test_bad_names_are_clear():
    with pytest.raises(ValueError, match="unknown name 'nope'"):
        en.set_backend("nope")
    missing = en.backends.why_unavailable()
    for name, reason in missing.items():
        with pytest.raises(ValueError, match="not available"):
            en.set_backend(name)


def test_environment_variable_selects_backend(tmp_path):
    env = dict(os.environ, ENGINE_BACKEND="reference")
    out = subprocess.run([sys.executable, "-c", "import engine; print(engine.get_backend())"],
                         env=env, capture_output=True, text=True, check=True, cwd=tmp_path)
    assert out.stdout.strip() == "reference"
