"""`seqfuse parity`: every fused op on every backend against the NumPy reference.

Prints one row per (op, options, dtype, backend) with the largest relative error of the
forward outputs and of each gradient, and exits 1 if any exceeds its tolerance.
Tolerances (relative to the largest magnitude of the reference result):
float64 1e-10 (different summation order only); float32 1e-5 forward, 1e-4 gradients
(the float32 kernels use a rational tanh approximation, ~3e-7, and accumulate over T steps).

`--device cuda` checks the `cupy` backend instead of the CPU ones: the inputs are copied to
the GPU, the results back, and compared with the reference computed on the CPU. It runs
every option of the recurrent ops (the CPU list keeps the common ones; tests/rnn_suite.py
covers the rest there), and each recurrent case once per kernel version, forced with
SEQFUSE_CUDA_RNN=v1|v2: where the backend's `loop_version` says it cannot run a version for
the case's shape (v2 needs the weights on chip), the row says "n/a" and why, instead of failing.
"""
from __future__ import annotations

import contextlib
import json
import os

import numpy as np

from . import backends, functional as F
from .backends import _cuda_rnn
from .tensor import no_grad
from .testing import backend_errors
from .utils import terminal_progress

TOLERANCE = {np.float64: (1e-10, 1e-10), np.float32: (1e-5, 1e-4)}
RNN_VERSIONS = ("v1", "v2")
RNN_VERSION_ENV = _cuda_rnn.ENV  # SEQFUSE_CUDA_RNN
_RECURRENT = ("lstm", "gru", "simple_rnn")


@contextlib.contextmanager
def rnn_version(version):
    """Force the cupy backend's recurrent kernel version (SEQFUSE_CUDA_RNN) inside the block;
    None leaves the backend's own choice."""
    saved = os.environ.get(RNN_VERSION_ENV)
    if version is not None:
        os.environ[RNN_VERSION_ENV] = version
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(RNN_VERSION_ENV, None)
        else:
            os.environ[RNN_VERSION_ENV] = saved


def version_unsupported(op, B, H, dtype, version) -> str:
    """Why the cupy backend cannot run kernel `version` of `op` at batch B, H units and dtype
    ("" when it can): the backend's own choice (`_cuda_rnn.loop_version`) under the forced version."""
    with rnn_version(version):
        try:
            _cuda_rnn.loop_version(op, B, H, dtype)
        except ValueError as exc:
            return str(exc)
    return ""


def _cases(rng, every_option=False):
    """{label: make(dtype) -> (fn, arrays, requires_grad)}; every_option adds the recurrent
    options and poolings the CPU run leaves to the test suite."""
    B, T, Fe, H = 3, 7, 5, 4
    mask = rng.random((B, T)) > 0.3
    mask[0] = False  # a fully-masked row
    left_padded = np.arange(T)[None, :] >= np.array([2, 0, 5])[:, None]  # [B,T], padding first
    pool_mask = rng.random((B, 11)) > 0.3
    pool_mask[:, 0] = True  # a fully masked row would give NaN (Keras's 0/0) on both sides
    ids = rng.integers(0, 50, (B, T))

    def rnn(op, gates, states=0, dropout=False, bias=True, infer=False, **kw):
        # states: how many initial-state arrays the op takes (lstm h0, c0: 2), passed as inputs
        # so their gradients are checked too.
        def make(dtype):
            reset_after = op == "gru" and kw.get("reset_after", True)
            x = rng.standard_normal((B, T, Fe)).astype(dtype)
            k = (rng.standard_normal((Fe, gates * H)) * 0.5).astype(dtype)
            u = (rng.standard_normal((H, gates * H)) * 0.5).astype(dtype)
            b = rng.standard_normal((2, gates * H) if reset_after else (gates * H,)).astype(dtype)
            h0 = [rng.standard_normal((B, H)).astype(dtype) for _ in range(states)]
            drop = ((rng.random((B, H)) > 0.25) / 0.75).astype(dtype) if dropout else None
            call = getattr(F, op)

            def fn(x, k, u, *rest):
                if bias:
                    b, *state = rest
                else:
                    b, state = None, list(rest)
                with no_grad() if infer else contextlib.nullcontext():
                    return call(x, k, u, b, initial_state=state or None, recurrent_dropout_mask=drop,
                                **{"mask": mask, **kw})
            arrays = [x, k, u] + ([b] if bias else []) + h0
            return fn, arrays, [not infer] * len(arrays)
        return make

    def embedding(sparse):
        # sparse: the uncoalesced gradient is densified with each backend's embedding_coalesce.
        def make(dtype):
            return (lambda i, t: F.embedding(i, t, sparse=sparse),
                    [ids, rng.standard_normal((50, 6)).astype(dtype)], [False, True])
        return make

    def conv(padding, strides, dilation, bias=True):
        def make(dtype):
            x = rng.standard_normal((B, 20, 4)).astype(dtype)
            k = rng.standard_normal((3, 4, 5)).astype(dtype)
            b = rng.standard_normal(5).astype(dtype)
            fn = lambda x, k, b=None: F.conv1d(x, k, b, strides=strides, padding=padding,  # noqa: E731
                                               dilation_rate=dilation)
            arrays = [x, k, b] if bias else [x, k]
            return fn, arrays, [True] * len(arrays)
        return make

    def pool(fn):
        def make(dtype):
            return fn, [rng.standard_normal((B, 11, 4)).astype(dtype)], [True]
        return make

    cases = {
        "embedding": embedding(False),
        "embedding sparse": embedding(True),
        "lstm mask": rnn("lstm", 4),
        "lstm backwards": rnn("lstm", 4, go_backwards=True),
        "gru reset_after mask": rnn("gru", 3),
        "gru reset_before mask": rnn("gru", 3, reset_after=False),
        "simple_rnn mask": rnn("simple_rnn", 1),
        "conv1d same s2": conv("same", 2, 1),
        "conv1d causal d2": conv("causal", 1, 2),
        "max_pool1d same": pool(lambda x: F.max_pool1d(x, 3, 2, "same")),
    }
    if not every_option:
        return cases
    for op, gates, states in (("lstm", 4, 2), ("gru", 3, 1), ("simple_rnn", 1, 1)):
        for reset_after in ((True, False) if op == "gru" else (None,)):
            name, extra = op, {}
            if reset_after is not None:
                name, extra = f"gru {'reset_after' if reset_after else 'reset_before'}", \
                    {"reset_after": reset_after}
            cases.update({
                f"{name} plain": rnn(op, gates, mask=None, **extra),
                f"{name} left-pad zero_out": rnn(op, gates, mask=left_padded,
                                                 zero_output_for_mask=True, **extra),
                f"{name} backwards last": rnn(op, gates, go_backwards=True,
                                              return_sequences=False, **extra),
                f"{name} dropout state": rnn(op, gates, states, dropout=True, **extra),
                f"{name} no bias": rnn(op, gates, bias=False, **extra),
                f"{name} infer": rnn(op, gates, infer=True, **extra),
            })
    cases.update({
        "conv1d valid": conv("valid", 1, 1),
        "conv1d same no bias": conv("same", 1, 1, bias=False),
        "conv1d valid s3 d2": conv("valid", 3, 2),
        "max_pool1d valid": pool(lambda x: F.max_pool1d(x, 2, None, "valid")),
        "max_pool1d valid s1": pool(lambda x: F.max_pool1d(x, 3, 1, "valid")),
        "global_max_pool1d": pool(F.global_max_pool1d),
        "global_avg_pool1d mask": pool(lambda x: F.global_avg_pool1d(x, mask=pool_mask)),
    })
    return cases


def _contenders(label, device):
    """[(backend name, row label, forced rnn version)] for one case."""
    if device == "cpu":
        names = [n for n in backends.available() if n != "reference" and backends.get(n).DEVICE == "cpu"]
        return [(n, n, None) for n in names]
    if label.split()[0] in _RECURRENT:
        return [("cupy", f"cupy {v}", v) for v in RNN_VERSIONS]
    return [("cupy", "cupy", None)]


def check_device(device) -> None:
    """ValueError naming the reason when `device` cannot be checked here."""
    if device not in ("cpu", "cuda"):
        raise ValueError(f"--device must be cpu or cuda, got {device!r}")
    if device == "cuda" and "cupy" not in backends.available():
        raise ValueError(f"--device cuda: the cupy backend is unavailable here: "
                         f"{backends.why_unavailable().get('cupy', 'unknown reason')}")


def _row(label, dtype, backend, errors=None, problem=None):
    """One result: {op, dtype, backend, forward, gradients, worst, status, detail}."""
    row = {"op": label, "dtype": np.dtype(dtype).name, "backend": backend, "forward": None,
           "gradients": None, "worst": None, "status": problem[0] if problem else "ok",
           "detail": problem[1] if problem else ""}
    if errors is not None:
        fwd_tol, grad_tol = TOLERANCE[dtype]
        row["forward"] = _largest(v for k, v in errors.items() if k.startswith("forward"))
        row["gradients"] = _largest(v for k, v in errors.items() if k.startswith("grad"))
        row["worst"] = next((k for k, v in errors.items() if v != v), None) or max(errors, key=errors.get)
        tolerance = {k: fwd_tol if k.startswith("forward") else grad_tol for k in errors}
        beyond = [k for k, v in errors.items() if not v <= tolerance[k]]  # NaN is beyond too
        if beyond:
            row["status"], row["detail"] = "FAIL", ", ".join(beyond)
    return row


def _largest(values) -> float:
    """The largest error, NaN if any is NaN (max() would let a NaN hide behind the order)."""
    values = list(values)
    return float("nan") if any(v != v for v in values) else max(values, default=0.0)


HEADER = f"{'op':<36}{'dtype':<9}{'backend':<9}{'forward':>10}{'gradients (max)':>17}  status"


def format_row(row) -> str:
    """A row of the table: errors, then ok / FAIL (with the outputs beyond tolerance) /
    n/a / missing / error and its reason."""
    head = f"{row['op']:<36}{row['dtype']:<9}{row['backend']:<9}"
    if row["forward"] is None:
        return f"{head} {row['status']}: {row['detail']}"
    status = f"{row['status']} {row['detail']}".rstrip()
    return f"{head}{row['forward']:>10.1e}{row['gradients']:>17.1e}  {status}"


def run(seed=0, print_fn=print, device="cpu") -> bool:
    """Print the parity table; True when every error is within tolerance."""
    return passed(check(seed, print_fn, device))


def check(seed=0, print_fn=print, device="cpu") -> list[dict]:
    """Print the parity table; returns its rows (see _row)."""
    check_device(device)
    rng = np.random.default_rng(seed)
    cases = _cases(rng, every_option=True) if device == "cuda" else _cases(rng)
    progress = terminal_progress(2 * len(cases), unit_name="case")   # stderr, on a terminal only
    print_fn = progress.printer(print_fn)
    print_fn(HEADER)
    rows, done = [], 0
    for label, make in cases.items():
        for dtype in (np.float32, np.float64):
            progress.update(done, [("checking", f"{label} {np.dtype(dtype).name}")])
            done += 1
            for row in _check_case(label, make, dtype, device, seed):
                rows.append(row)
                print_fn(format_row(row))
    progress.clear()
    return rows


def _check_case(label, make, dtype, device, seed):
    fn, arrays, requires_grad = make(dtype)
    if device == "cpu":
        try:
            errors = backend_errors(fn, arrays, requires_grad, [n for n, _, _ in _contenders(label, device)], seed)
        except (NotImplementedError, AttributeError) as exc:
            return [_row(label, dtype, "-", problem=("missing", str(exc)))]
        return [_row(label, dtype, name, errs) for name, errs in errors.items()]
    rows = []
    for name, shown, version in _contenders(label, device):
        try:
            # x: [B,T,F], recurrent_kernel: [H,G·H]
            why = version and version_unsupported(label.split()[0], arrays[0].shape[0], arrays[2].shape[0],
                                                  dtype, version)
            if why:
                rows.append(_row(label, dtype, shown, problem=("n/a", why)))
                continue
            with rnn_version(version):
                errors = backend_errors(fn, arrays, requires_grad, [name], seed)[name]
            rows.append(_row(label, dtype, shown, errors))
        except (NotImplementedError, AttributeError) as exc:  # not in the kernel table (yet)
            rows.append(_row(label, dtype, shown, problem=("missing", str(exc))))
        except Exception as exc:  # noqa: BLE001  (a report: every case gets its row, then exit 1)
            rows.append(_row(label, dtype, shown, problem=("error", f"{type(exc).__name__}: {exc}")))
    return rows


def passed(rows) -> bool:
    """True when every row is within tolerance (an "n/a" version counts as passed)."""
    return all(row["status"] in ("ok", "n/a") for row in rows)


def main(args) -> int:
    rows = check(seed=args.seed, device=args.device)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": args.device, "seed": args.seed, "passed": passed(rows),
                       "rows": rows}, f, indent=1, default=str)
    return 0 if passed(rows) else 1
