"""`seqfuse parity`: every fused op on every CPU backend against the reference backend.

Prints one row per (op, options, dtype, backend) with the largest relative error of the
forward outputs and of each gradient, and exits 1 if any exceeds its tolerance.
Tolerances (relative to the largest magnitude of the reference result):
float64 1e-10 (different summation order only); float32 1e-5 forward, 1e-4 gradients
(the float32 kernels use a rational tanh approximation, ~3e-7, and accumulate over T steps).
"""
from __future__ import annotations

import numpy as np

from . import backends, functional as F
from .testing import backend_errors
from .utils import terminal_progress

TOLERANCE = {np.float64: (1e-10, 1e-10), np.float32: (1e-5, 1e-4)}


def _cases(rng):
    B, T, Fe, H = 3, 7, 5, 4
    mask = rng.random((B, T)) > 0.3
    mask[0] = False  # a fully-masked row
    ids = rng.integers(0, 50, (B, T))

    def rnn(op, gates, **kw):
        def make(dtype):
            x = rng.standard_normal((B, T, Fe)).astype(dtype)
            k = (rng.standard_normal((Fe, gates * H)) * 0.5).astype(dtype)
            u = (rng.standard_normal((H, gates * H)) * 0.5).astype(dtype)
            bias_shape = (2, gates * H) if op == "gru" and kw.get("reset_after", True) else (gates * H,)
            b = rng.standard_normal(bias_shape).astype(dtype)
            fn = lambda x, k, u, b: getattr(F, op)(x, k, u, b, mask=mask, **kw)  # noqa: E731
            return fn, [x, k, u, b], [True] * 4
        return make

    def embedding(sparse):
        # sparse: the uncoalesced gradient is densified with each backend's embedding_coalesce.
        def make(dtype):
            return (lambda i, t: F.embedding(i, t, sparse=sparse),
                    [ids, rng.standard_normal((50, 6)).astype(dtype)], [False, True])
        return make

    def conv(padding, strides, dilation):
        def make(dtype):
            x = rng.standard_normal((B, 20, 4)).astype(dtype)
            k = rng.standard_normal((3, 4, 5)).astype(dtype)
            b = rng.standard_normal(5).astype(dtype)
            fn = lambda x, k, b: F.conv1d(x, k, b, strides=strides, padding=padding,  # noqa: E731
                                          dilation_rate=dilation)
            return fn, [x, k, b], [True] * 3
        return make

    def pool(padding):
        def make(dtype):
            x = rng.standard_normal((B, 11, 4)).astype(dtype)
            return (lambda x: F.max_pool1d(x, 3, 2, padding)), [x], [True]
        return make

    return {
        "embedding": embedding(False),
        "embedding sparse": embedding(True),
        "lstm mask": rnn("lstm", 4),
        "lstm backwards": rnn("lstm", 4, go_backwards=True),
        "gru reset_after mask": rnn("gru", 3),
        "gru reset_before mask": rnn("gru", 3, reset_after=False),
        "simple_rnn mask": rnn("simple_rnn", 1),
        "conv1d same s2": conv("same", 2, 1),
        "conv1d causal d2": conv("causal", 1, 2),
        "max_pool1d same": pool("same"),
    }


def run(seed=0, print_fn=print) -> bool:
    """Print the parity table; True when every error is within tolerance."""
    rng = np.random.default_rng(seed)
    names = [n for n in backends.available() if n != "reference" and backends.get(n).DEVICE == "cpu"]
    ok = True
    cases = _cases(rng)
    progress = terminal_progress(2 * len(cases), unit_name="case")   # stderr, on a terminal only
    print_fn = progress.printer(print_fn)
    print_fn(f"{'op':<24}{'dtype':<9}{'backend':<9}{'forward':>10}{'gradients (max)':>17}  status")
    done = 0
    for label, make in cases.items():
        for dtype in (np.float32, np.float64):
            progress.update(done, [("checking", f"{label} {np.dtype(dtype).name}")])
            done += 1
            fn, arrays, requires_grad = make(dtype)
            try:
                errors = backend_errors(fn, arrays, requires_grad, names, seed)
            except (NotImplementedError, AttributeError) as exc:
                print_fn(f"{label:<24}{np.dtype(dtype).name:<9}{'-':<9} missing: {exc}")
                ok = False
                continue
            fwd_tol, grad_tol = TOLERANCE[dtype]
            for backend, errs in errors.items():
                fwd = max(v for k, v in errs.items() if k.startswith("forward"))
                grads = [v for k, v in errs.items() if k.startswith("grad")]
                grad = max(grads) if grads else 0.0
                good = fwd <= fwd_tol and grad <= grad_tol
                ok &= good
                print_fn(f"{label:<24}{np.dtype(dtype).name:<9}{backend:<9}{fwd:>10.1e}{grad:>17.1e}  "
                         f"{'ok' if good else 'FAIL'}")
    progress.clear()
    return ok


def main(args) -> int:
    return 0 if run(seed=args.seed) else 1
