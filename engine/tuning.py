"""Which variant of a C++ kernel runs on this CPU (docs/kernels.md, "Choices per CPU").

Some kernels have several variants that compute the same result at different speeds on
different CPUs (engine._C.choice_options() lists them). At import of the cpp backend each
choice is set from, in order:
- the environment variable SEQFUSE_<NAME> (e.g. SEQFUSE_GEMM_TILE=8x2, SEQFUSE_CONV1D=gemm),
  to force a variant ("auto" forces the built-in rule);
- for a tuned choice (TUNED: the recurrent loops' register tile, whether their weight
  gradients run on that tile or on OpenBLAS, whether SimpleRNN's and GRU's are summed inside
  their backward loops, where conv1d runs OpenBLAS rather than its direct kernel on passes
  whose columns fill the direct tile, and from what size the embedding gather streams its
  output past the cache), the variant a short timing of each one picked
  on this CPU: the first process on a machine times them (~1 s on the 2-vCPU Zen 3 VM) and
  keeps the result in the cache file (cache_path()), keyed by CPU model, CPU flags, the
  build of engine._C and the OpenBLAS core types in use, so the next processes only read it;
  a process that finds the machine busy (busy(): SEQFUSE_TUNING_MAX_LOAD) runs the rules
  instead and caches nothing;
- otherwise the built-in rule for the CPU ("auto").
A forced value that is not one of the choice's variants raises ValueError at import, naming
the variable, what it may be and what it was. The OpenBLAS kernels NumPy runs are picked
per CPU too, at `import engine` (engine/_openblas.py, SEQFUSE_BLAS_CORE).

    >>> from engine import tuning
    >>> tuning.current()["gemm_tile"]       # e.g. '8x2'
    >>> with tuning.forced("conv1d", "direct"):
    ...     ...                             # every conv1d call in here runs the direct kernel
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time

import numpy as np

from . import _blas, _cpu, _openblas

# A variant must beat the built-in rule's by this much to replace it: timings on a busy
# machine move by a few percent, and a wrong pick is kept in the cache.
MARGIN = 0.05


def env_name(choice: str) -> str:
    """The environment variable that forces `choice`: SEQFUSE_CONV1D for "conv1d"."""
    return "SEQFUSE_" + choice.upper()


def _extension():
    from . import _C
    return _C


def cache_path(environ=os.environ) -> str:
    """SEQFUSE_TUNING_CACHE, else $XDG_CACHE_HOME/seqfuse/tuning.json (~/.cache/...)."""
    if environ.get("SEQFUSE_TUNING_CACHE"):
        return environ["SEQFUSE_TUNING_CACHE"]
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "seqfuse", "tuning.json")


def machine_key() -> str:
    """What a cached pick depends on: the CPU model, its flags, this build of engine._C and
    the OpenBLAS libraries with the core types they run (engine/_openblas.py). The
    weight_gradients and conv1d timings race OpenBLAS, so a pick timed against one core type
    must not stand for another: on the AMD EPYC Zen 4 of 2026-12-04 an AVX2 build timed
    beside SkylakeX kernels cached weight_gradients=blas, and every later process forcing the
    Haswell kernels (SEQFUSE_BLAS_CORE=Haswell) read that pick without timing. A new NumPy's
    OpenBLAS (another library file) is timed anew the same way."""
    path = _extension().__file__
    stat = os.stat(path)
    flags = " ".join(sorted(_cpu.flags()))
    blas = ",".join(f"{lib}:{core}" for lib, core in sorted(_openblas.picked.items()))
    build = f"{os.path.basename(path)}|{stat.st_size}|{stat.st_mtime_ns}"
    text = f"{_cpu.info()['model']}|{flags}|{build}|{blas}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _best_of_rounds(name, values, call, rounds, calls):
    """{variant: best seconds} of `calls` calls of `call` with choice `name` set to each variant
    in turn, after one untimed call, every variant once per round (interleaved, so a busy
    moment of a shared machine hits them alike)."""
    C = _extension()
    best = {v: float("inf") for v in values}
    for _ in range(rounds):
        for value in values:
            C.set_choice(name, value)
            call()
            start = time.perf_counter()
            for _ in range(calls):
                call()
            best[value] = min(best[value], time.perf_counter() - start)
    return best


def _time_gemm_tile(values, rounds=5):
    """{tile: best seconds} of an LSTM loop forward and backward (B,T,F,H) = (64,16,64,128),
    float32, every tile once per round (interleaved, so a busy moment hits them alike). The
    tile serves both loops, so both are timed: one that wins forward may lose backward. "auto"
    widens its tile where a thread's rows outgrow the L1 data cache (kernels/cpu/gemm.hpp,
    step_tile): with AVX-512 here the backward's (64 KiB), not the forward's (24 KiB)."""
    C = _extension()
    rng = np.random.default_rng(0)
    B, T, F, H = 64, 16, 64, 128
    x = rng.standard_normal((B, T, F), dtype=np.float32)
    kernel = rng.standard_normal((F, 4 * H), dtype=np.float32) * 0.1
    U = rng.standard_normal((H, 4 * H), dtype=np.float32) * 0.1
    bias = np.zeros(4 * H, np.float32)
    h0 = np.zeros((B, H), np.float32)
    dhs = rng.standard_normal((T, B, H), dtype=np.float32)

    def call():
        hs, cs, gates = C.lstm_forward(x, kernel, bias, U, h0, h0, None, None)
        C.lstm_backward(dhs, h0, U, h0, h0, hs, cs, gates, None, None, kernel=kernel)
    return _best_of_rounds("gemm_tile", values, call, rounds, calls=3)


def _time_weight_gradients(values, rounds=5):
    """{variant: best seconds} of an LSTM layer's weight gradients at (B,T,F,H) =
    (64,32,64,128), float32: [x_t | h_{t-1}]ᵀ·dz summed over the steps (engine/_recurrent.py;
    x and hs batch-major, as a layer has them), every variant once per round (interleaved).
    The rows are fresh from the loop's caches in a training step, as here: each round first
    writes dz anew."""
    from . import _blas
    C = _extension()
    rng = np.random.default_rng(0)
    B, T, F, H = 64, 32, 64, 128
    x = rng.standard_normal((B, T, F), dtype=np.float32).transpose(1, 0, 2)
    hs = rng.standard_normal((B, T, H), dtype=np.float32).transpose(1, 0, 2)
    h0 = np.zeros((B, H), np.float32)
    dz = np.empty((T, B, 4 * H), np.float32)
    best = {v: float("inf") for v in values}
    for _ in range(rounds):
        for value in values:
            C.set_choice("weight_gradients", value)
            dz[...] = hs[:, :, :1]
            start = time.perf_counter()
            _blas.matmul_tn_sequences([(x, None), (hs, h0)], dz)
            best[value] = min(best[value], time.perf_counter() - start)
    return best


def _time_conv1d(values, rounds=5):
    """{variant: best seconds} of a conv1d forward and backward at (B,L,C,O,K) = (16,262,128,
    128,3), float32, every variant once per round (interleaved). Its columns fill the direct
    kernel's tile in every pass, and C, O = 128 is where "auto", "ragged_gemm" and "wide_gemm"
    differ: ragged_gemm runs direct in every pass, wide_gemm gemm; auto runs direct with an
    AVX-512 build (and in the forward with AVX2, gemm in dx and dkernel). The AMD Zen 5 the
    rule was first measured on ran gemm 1.0-1.16x faster at C, O >= 128; the Intel Xeon of
    2026-12-02 and the AMD Zen 4 of 2026-12-03/04 ran direct 1.05-1.26x faster there."""
    C = _extension()
    rng = np.random.default_rng(0)
    B, L, Ch, O, K = 16, 262, 128, 128, 3
    x = rng.standard_normal((B, L, Ch), dtype=np.float32)
    kernel = rng.standard_normal((K, Ch, O), dtype=np.float32) * 0.1
    bias = np.zeros(O, np.float32)
    grad = rng.standard_normal((B, L - K + 1, O), dtype=np.float32)

    def call():
        C.conv1d_forward(x, kernel, bias, 1, 1)
        C.conv1d_backward(grad, x, kernel, 1, 1)
    return _best_of_rounds("conv1d", values, call, rounds, calls=2)


def _time_weights_in_loop(values, rounds=5):
    """{variant: best seconds} of a GRU (reset_after) and a SimpleRNN training step at (B,T,F,H)
    = (64,32,64,128), float32: forward, backward and the weight gradients, summed inside the
    backward's loop where the variant has them there, else in engine/_recurrent.py's pass
    after it (which runs as the weight_gradients choice, timed before this one says), every
    variant once per round (interleaved). In the loop a block of steps' gradient rows and
    their packed copies sit in the L2 beside the packed Uᵀ (LoopWeights, cpu/gemm_tn.hpp):
    steps 4-7% faster (SimpleRNN on the Intel Xeon, 2 MiB L2; GRU on the AMD Zen 4, 1 MiB),
    not measured where the L2 is smaller (the Zen 3 VM's 512 KiB): this timing decides."""
    from types import SimpleNamespace

    from ._recurrent import _weight_grads
    C = _extension()
    rng = np.random.default_rng(0)
    B, T, F, H = 64, 32, 64, 128
    x = rng.standard_normal((B, T, F), dtype=np.float32)
    h0 = np.zeros((B, H), np.float32)
    dhs = rng.standard_normal((T, B, H), dtype=np.float32)
    weights = {G: (rng.standard_normal((F, G * H), dtype=np.float32) * 0.1,
                   rng.standard_normal((H, G * H), dtype=np.float32) * 0.1,
                   np.zeros(G * H, np.float32)) for G in (1, 3)}

    def after_loop(hs, dxw, du):
        c = SimpleNamespace(x=x, go_backwards=False, dropout_mask=None, hs=hs, h0=h0,
                            reset_after=True, gates=None)
        _weight_grads(c, dxw, du, True, True)

    def call():
        in_loop = C.weights_in_loop()
        kernel, U, bias = weights[3]
        hs, gates, uh = C.gru_forward(x, kernel, bias, U, bias, h0, None, None)
        out = C.gru_backward(dhs, U, bias, h0, hs, gates, uh, None, None, kernel=kernel,
                             overwrite_saved=True, x=x if in_loop else None)
        if not in_loop:
            after_loop(hs, out[0], out[2])
        kernel, U, bias = weights[1]
        hs = C.simple_rnn_forward(x, kernel, bias, U, h0, None, None)
        out = C.simple_rnn_backward(dhs, U, h0, hs, None, None, kernel=kernel,
                                    x=x if in_loop else None)
        if not in_loop:
            after_loop(hs, out[0], out[0])
    return _best_of_rounds("weights_in_loop", values, call, rounds, calls=1)


def _time_gather_stores(values, rounds=5):
    """{variant: best seconds} of an embedding gather of 32,000 ids from a (10000, 128)
    float32 table: a 15.6 MiB output, which "auto" writes with plain stores and
    "stream_above_8mib" streams past the cache, every variant once per round (interleaved),
    each timed over several calls in a row, as consecutive batches call it (the output's
    memory then comes back from the allocator still cached). On the AMD Zen 4 VM of 2026-12-04
    plain stores ran it in 0.30 ms against 0.35 streamed (medians of 60, alternating); the
    Zen 3 VM had streamed 16 MiB faster on one day and not on another (cpu/embedding.hpp,
    kStreamBytes)."""
    C = _extension()
    rng = np.random.default_rng(0)
    table = rng.standard_normal((10_000, 128), dtype=np.float32)
    ids = rng.integers(0, 10_000, 32_000)
    return _best_of_rounds("gather_stores", values, lambda: C.embedding_forward(ids, table),
                           rounds, calls=5)


TUNED = {"gemm_tile": _time_gemm_tile, "weight_gradients": _time_weight_gradients,
         "conv1d": _time_conv1d, "weights_in_loop": _time_weights_in_loop,
         "gather_stores": _time_gather_stores}
# The variants a timing picks among, where not all of them: conv1d's "direct" and "gemm" are
# for forcing, since one shape's timing cannot speak for every shape (each loses up to 9x
# where the other's pass columns fit: docs/kernels.md, "conv1d: direct or GEMM");
# weights_in_loop's "on" is its rule; gather_stores' "stream" and "plain" are for forcing (the
# 61 MiB gather streams 1.4x faster, the 4 MiB one runs 1.6x faster plain: cpu/embedding.hpp).
CANDIDATES = {"conv1d": ("auto", "ragged_gemm", "wide_gemm"), "weights_in_loop": ("auto", "off"),
              "gather_stores": ("auto", "stream_above_8mib")}


def _read_cache(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _write_cache(path, entries):
    """Best effort (a read-only home still works, it just times again next process)."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(entries, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        pass


def tune(name: str, values) -> tuple[str, dict]:
    """Time every variant of `name` (interleaved); returns (pick, {variant: seconds}). The
    built-in rule "auto" stays unless another variant beats it by MARGIN, in that timing and
    again in one of two more of the two alone (two timings of three): the VM's slow phases
    can favour any variant for a round or two, and a pick is cached for good (one process on
    the Zen 3 VM picked the 4x1 tile, which ran 20-50% slower than auto's 6x1 in every cached
    timing before it). The third timing is there for the other way round: on the AMD EPYC
    Zen 4 of 2026-12-03 one build's first conv1d timing had ragged_gemm 12% ahead (12.04
    against 13.66 ms), the second did not repeat it, and auto was cached for that build:
    the bench's conv1d (64,1000,128,128,5) rows then ran 0.97x and 0.94x of torch, where
    ragged_gemm's direct kernel took 160.8 against 185.0 ms per training step; the other
    builds timed there that day picked ragged_gemm wherever their first timing had it ahead
    (bench/RESULTS.md, session 36)."""
    seconds = TUNED[name](list(values))
    best = min((v for v in values if v != "auto"), key=seconds.get)
    if seconds[best] < (1 - MARGIN) * seconds["auto"]:
        for _ in range(2):
            again = TUNED[name](["auto", best])
            if again[best] < (1 - MARGIN) * again["auto"]:
                return best, seconds
    return "auto", seconds


MAX_LOAD_ENV = "SEQFUSE_TUNING_MAX_LOAD"


def busy(environ=os.environ) -> bool:
    """Whether the machine is too busy to time the choices: its 1-minute load average above
    SEQFUSE_TUNING_MAX_LOAD (default: the cores this process may use). A timing would then
    measure the other work, and its pick is cached for the build: one first imported while a
    CI run held both cores of the Intel Xeon VM kept the weight gradients on OpenBLAS and
    forced the 8x2 tile, and GRU's (64,100,64,128) training step ran 14.3 ms against 12.2
    (bench/RESULTS.md, session 34). So a busy process runs the rules and caches nothing; the
    next one times."""
    text = environ.get(MAX_LOAD_ENV, "").strip()
    try:
        limit = float(text) if text else float(_blas.CORES)
    except ValueError:
        raise ValueError(f"{MAX_LOAD_ENV} must be a number (a load average), got {text!r}") from None
    try:
        return os.getloadavg()[0] > limit
    except (AttributeError, OSError):  # no load average to read
        return False


def configure(environ=os.environ) -> dict:
    """Set every choice from `environ`, the tuning cache or a timing, else its built-in rule
    (also where a choice would need a timing and the machine is busy(): nothing is cached
    then); returns {name: value} now in force."""
    C = _extension()
    path, key, cache, changed, loaded = None, None, None, False, None
    for name, values in C.choice_options().items():
        value = environ.get(env_name(name), "").strip()
        if value and value not in values:
            raise ValueError(f"{env_name(name)} must be one of {', '.join(values)}, got {value!r}")
        if not value and name in TUNED:
            if cache is None:
                path, key = cache_path(environ), machine_key()
                cache = _read_cache(path)
            entry = cache.get(key, {}).get(name)
            if entry is None or entry.get("pick") not in values:
                loaded = busy(environ) if loaded is None else loaded
                if loaded:
                    C.set_choice(name, "auto")
                    continue
                pick, seconds = tune(name, CANDIDATES.get(name, values))
                entry = {"pick": pick, "seconds": seconds, "cpu": _cpu.info()["model"],
                         "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
                cache.setdefault(key, {})[name] = entry
                changed = True
            value = entry["pick"]
        C.set_choice(name, value or "auto")
    if changed:
        _write_cache(path, cache)
    return current()


def current() -> dict:
    """{name: value} of every kernel choice in force in this process, plus "blas_core": the
    core type(s) of the bundled OpenBLAS (engine/_openblas.py)."""
    choices = dict(_extension().choices())
    choices["blas_core"] = ",".join(sorted(set(_openblas.picked.values()))) or "n/a"
    return choices


@contextlib.contextmanager
def forced(name: str, value: str):
    """Run the block with choice `name` set to `value`, then restore the previous one."""
    C = _extension()
    previous = C.choices()[name]
    C.set_choice(name, value)
    try:
        yield
    finally:
        C.set_choice(name, previous)
