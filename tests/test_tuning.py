"""engine.tuning: kernel choices forced by environment variable or in-process, and their errors."""
import ast

import pytest

from engine import backends
from fresh_process import run_python

pytestmark = pytest.mark.skipif(not backends.get("cpp").available(), reason="engine._C not built")


def test_every_choice_has_variants_and_one_in_force():
    from engine import _C, tuning
    options = _C.choice_options()
    assert {"conv1d", "gemm_tile"} <= set(options)
    current = tuning.current()
    for name, values in options.items():
        assert current[name] in values
    assert current["blas_core"]


def test_forced_sets_and_restores():
    from engine import tuning
    before = tuning.current()["conv1d"]
    with tuning.forced("conv1d", "direct"):
        assert tuning.current()["conv1d"] == "direct"
    assert tuning.current()["conv1d"] == before


def test_bad_values_name_the_choice_and_the_variants():
    from engine import _C, tuning
    variants = "auto, direct, gemm, ragged_gemm, wide_gemm"
    with pytest.raises(ValueError, match=f"conv1d must be one of {variants}, got 'fast'"):
        _C.set_choice("conv1d", "fast")
    with pytest.raises(ValueError, match="unknown choice 'tile'"):
        _C.set_choice("tile", "8x32")
    with pytest.raises(ValueError, match=f"SEQFUSE_CONV1D must be one of {variants}, got 'fast'"):
        tuning.configure({"SEQFUSE_CONV1D": "fast"})
    tuning.configure({})


def test_environment_variable_forces_a_choice_at_import():
    code = "from engine import backends, tuning; backends.get('cpp'); print(tuning.current()['conv1d'])"
    result = run_python(code, SEQFUSE_CONV1D="gemm")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "gemm"


def test_bad_environment_variable_fails_at_import_with_its_name():
    result = run_python("from engine import backends; backends.get('cpp')", SEQFUSE_CONV1D="fast")
    assert result.returncode != 0
    assert ("SEQFUSE_CONV1D must be one of auto, direct, gemm, ragged_gemm, wide_gemm, got 'fast'"
            in result.stderr)


_PICK = "from engine import backends, tuning; backends.get('cpp'); print(tuning.current()['gemm_tile'])"


def test_tuned_choice_is_timed_once_then_read_from_the_cache(tmp_path):
    import json

    from engine import _C
    cache = tmp_path / "tuning.json"
    # Times whatever the load (a CI run keeps this machine busy: busy() below).
    first = run_python(_PICK, SEQFUSE_TUNING_CACHE=str(cache), SEQFUSE_TUNING_MAX_LOAD="inf")
    assert first.returncode == 0, first.stderr
    entries = json.loads(cache.read_text())
    (entry,) = [e["gemm_tile"] for e in entries.values()]
    assert first.stdout.strip() == entry["pick"]
    assert set(entry["seconds"]) == set(_C.choice_options()["gemm_tile"]) and entry["cpu"]
    (weights,) = [e["weight_gradients"] for e in entries.values()]
    assert set(weights["seconds"]) == {"auto", "tile", "blas"}
    assert weights["pick"] in weights["seconds"] and all(t > 0 for t in weights["seconds"].values())
    # conv1d times only the rule against ragged_gemm and wide_gemm: "direct" and "gemm" are
    # for forcing.
    (conv,) = [e["conv1d"] for e in entries.values()]
    assert set(conv["seconds"]) == {"auto", "ragged_gemm", "wide_gemm"}
    assert conv["pick"] in conv["seconds"]
    # weights_in_loop times its rule ("on") against the pass after the loop.
    (loop,) = [e["weights_in_loop"] for e in entries.values()]
    assert set(loop["seconds"]) == {"auto", "off"} and loop["pick"] in loop["seconds"]
    # gather_stores times its rule against streaming from 8 MiB.
    (gather,) = [e["gather_stores"] for e in entries.values()]
    assert set(gather["seconds"]) == {"auto", "stream_above_8mib"}
    assert gather["pick"] in gather["seconds"]
    # A later process takes the cached pick without timing again (edited here to tell).
    entry["pick"] = "6x4"
    cache.write_text(json.dumps({key: {"gemm_tile": entry} for key in entries}))
    assert run_python(_PICK, SEQFUSE_TUNING_CACHE=str(cache)).stdout.strip() == "6x4"
    # The environment variable wins over the cache.
    forced = run_python(_PICK, SEQFUSE_TUNING_CACHE=str(cache), SEQFUSE_GEMM_TILE="8x3")
    assert forced.stdout.strip() == "8x3"


def test_cache_key_follows_the_openblas_core_types(monkeypatch):
    # weight_gradients and conv1d are timed against OpenBLAS: a pick timed beside one core
    # type (or one OpenBLAS build) is not read back under another.
    from engine import _openblas, tuning
    monkeypatch.setattr(_openblas, "picked", {"libscipy_openblas-x.so": "SkylakeX"})
    key = tuning.machine_key()
    assert tuning.machine_key() == key
    monkeypatch.setattr(_openblas, "picked", {"libscipy_openblas-x.so": "Haswell"})
    assert tuning.machine_key() != key
    monkeypatch.setattr(_openblas, "picked", {"libscipy_openblas-y.so": "SkylakeX"})
    assert tuning.machine_key() != key


def test_unwritable_cache_still_tunes(tmp_path):
    from engine import _C
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run_python(_PICK, SEQFUSE_TUNING_CACHE=str(blocker / "sub" / "tuning.json"),
                        SEQFUSE_TUNING_MAX_LOAD="inf")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() in _C.choice_options()["gemm_tile"]


def test_a_busy_machine_runs_the_rules_and_caches_nothing(tmp_path):
    # busy(): the 1-minute load average above SEQFUSE_TUNING_MAX_LOAD (default: the cores);
    # -1 makes any machine busy. A timing then would measure the other work and be cached for
    # the build, so the process runs every rule and a later, quiet one times.
    cache = tmp_path / "tuning.json"
    code = "from engine import backends, tuning; backends.get('cpp'); print(sorted(tuning.current().items()))"
    result = run_python(code, SEQFUSE_TUNING_CACHE=str(cache), SEQFUSE_TUNING_MAX_LOAD="-1")
    assert result.returncode == 0, result.stderr
    current = dict(ast.literal_eval(result.stdout))
    assert all(current[name] == "auto" for name in ("gemm_tile", "weight_gradients", "conv1d",
                                                    "weights_in_loop", "gather_stores"))
    assert not cache.exists()
    # A forced choice still wins.
    result = run_python(_PICK, SEQFUSE_TUNING_CACHE=str(cache), SEQFUSE_TUNING_MAX_LOAD="-1",
                        SEQFUSE_GEMM_TILE="8x3")
    assert result.stdout.strip() == "8x3"


def test_the_load_limit_must_be_a_number():
    from engine import tuning
    assert tuning.busy({"SEQFUSE_TUNING_MAX_LOAD": "-1"}) is True
    assert tuning.busy({"SEQFUSE_TUNING_MAX_LOAD": "inf"}) is False
    with pytest.raises(ValueError, match="SEQFUSE_TUNING_MAX_LOAD must be a number .*, got 'lots'"):
        tuning.busy({"SEQFUSE_TUNING_MAX_LOAD": "lots"})


def test_tune_keeps_the_builtin_rule_unless_clearly_faster(monkeypatch):
    from engine import tuning
    times = {"auto": 1.0, "8x2": 1.0, "8x3": 0.97, "6x4": 2.0}
    monkeypatch.setitem(tuning.TUNED, "gemm_tile", lambda values: {v: times[v] for v in values})
    assert tuning.tune("gemm_tile", list(times))[0] == "auto"
    times["8x3"] = 0.9
    assert tuning.tune("gemm_tile", list(times)) == ("8x3", times)
    # A win neither of the next two timings (auto against the winner alone) repeats is not
    # kept; one that the third repeats is (two of three).
    lose, win = {"auto": 1.0, "8x3": 0.99}, {"auto": 1.0, "8x3": 0.9}
    for rest, pick in (([lose, lose], "auto"), ([lose, win], "8x3"), ([win], "8x3")):
        timings = iter([dict(times), *rest])
        monkeypatch.setitem(tuning.TUNED, "gemm_tile", lambda values: next(timings))
        assert tuning.tune("gemm_tile", list(times)) == (pick, times)
        assert next(timings, None) is None  # no timing more than needed


def test_weight_gradient_timing_runs_every_variant():
    """The weight-gradient timing sets each variant in turn (configure() sets the pick after it)."""
    from engine import _C, backends, tuning
    backends.get("cpp")
    before = tuning.current()["weight_gradients"]
    seconds = tuning.TUNED["weight_gradients"](["auto", "tile", "blas"], rounds=1)
    assert set(seconds) == {"auto", "tile", "blas"} and all(0 < t < 10 for t in seconds.values())
    _C.set_choice("weight_gradients", before)
    assert tuning.current()["weight_gradients"] == before


def test_conv1d_timing_runs_its_candidates_and_times_only_them():
    from engine import _C, backends, tuning
    backends.get("cpp")
    before = tuning.current()["conv1d"]
    seconds = tuning.TUNED["conv1d"](list(tuning.CANDIDATES["conv1d"]), rounds=1)
    assert set(seconds) == {"auto", "ragged_gemm", "wide_gemm"}
    assert all(0 < t < 10 for t in seconds.values())
    _C.set_choice("conv1d", before)
    assert tuning.current()["conv1d"] == before


def test_gather_stores_timing_runs_its_candidates_and_restores_the_choice():
    from engine import _C, backends, tuning
    backends.get("cpp")
    before = tuning.current()["gather_stores"]
    seconds = tuning.TUNED["gather_stores"](list(tuning.CANDIDATES["gather_stores"]), rounds=1)
    assert set(seconds) == {"auto", "stream_above_8mib"}
    assert all(0 < t < 10 for t in seconds.values())
    _C.set_choice("gather_stores", before)
    assert tuning.current()["gather_stores"] == before


def test_weights_in_loop_timing_runs_the_rule_and_the_pass_after_the_loop():
    """Both ways run a GRU and a SimpleRNN step: in the loop under "auto", after it under "off"
    (engine/_recurrent.py's pass, which the timing calls as a layer does)."""
    from engine import _C, backends, tuning
    backends.get("cpp")
    before = tuning.current()["weights_in_loop"]
    seen = []
    real = _C.weights_in_loop
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_C, "weights_in_loop", lambda: seen.append(real()) or seen[-1])
        seconds = tuning.TUNED["weights_in_loop"](list(tuning.CANDIDATES["weights_in_loop"]),
                                                   rounds=1)
    assert set(seconds) == {"auto", "off"} and all(0 < t < 10 for t in seconds.values())
    assert True in seen and False in seen
    _C.set_choice("weights_in_loop", before)
    assert tuning.current()["weights_in_loop"] == before
