"""What `seqfuse bench` (engine/benchmark.py, CPU) and `seqfuse bench --device cuda`
(engine/benchmark_cuda.py) share: each op's FLOP and byte counts (docs/kernels.md, "FLOP
counts"), the fractions of the measured ceilings a time reaches, the --ops parser and the
JSON report (--json PATH, or on stdout).

Sizes are (B, T, F, H) for the recurrent ops, (B, L, C, O, K) for conv1d (valid padding,
stride 1) and (V, D, B, T, sparse) for embedding. "train" is forward + backward of
`out.sum()` (every gradient), "infer" the forward alone.

    >>> flops("lstm", (64, 100, 64, 128), "infer")      # 2·B·T·(F+H)·4H
    1258291200.0
"""
from __future__ import annotations

import json
import sys

GATES = {"lstm": 4, "gru": 3, "simple_rnn": 1}
OPS = (*GATES, "conv1d", "embedding")
ITEMSIZE = 4  # float32
MODES = ("train", "infer")


def forward_flops(op, size) -> float:
    """Matrix-product FLOP of one forward (a (M,K)·(K,N) product is 2·M·K·N; pointwise work
    is not counted).

    Recurrent: per step the input projection x_t·W and the recurrent product h·U, both into
    G·H columns (G = 4 lstm, 3 gru, 1 simple_rnn): 2·B·T·(F+H)·G·H. conv1d: 2·B·L_out·C·O·K.
    embedding: a gather, no products: 0 (its ceiling is bandwidth, see min_bytes).
    """
    if op in GATES:
        B, T, Fe, H = size
        return 2.0 * B * T * (Fe + H) * GATES[op] * H
    if op == "conv1d":
        B, L, C, O, K = size
        return 2.0 * B * (L - K + 1) * C * O * K
    if op == "embedding":
        return 0.0
    raise ValueError(f"flops: unknown op {op!r}; expected one of {sorted(OPS)}")


def flops(op, size, mode="train") -> float:
    """forward_flops for "infer"; 3× that for "train": the backward is twice the forward.

    Recurrent backward: dx (dz·Wᵀ) and dh (dz·Uᵀ) per step, and the weight gradients xᵀ·dz
    and hᵀ·dz, each as large as its forward product. conv1d backward: dx and dkernel, each
    the forward's size. (Masked steps are counted: the kernels compute them.)
    """
    _check_mode(mode)
    return forward_flops(op, size) * (3 if mode == "train" else 1)


def min_bytes(op, size, variant="plain", mode="train") -> float:
    """The fewest bytes the op moves through memory: each input read once, each output and
    gradient written once (float32; ids int64).

    train:
    - recurrent: x read and dx written (2·B·T·F), outputs written and their gradient read
      (2·B·T·H), the gate activations saved by the forward and read by the backward
      (2·B·T·G·H), the parameters read and their gradients written (2·P, P = (F+H)·G·H +
      bias); a mask (B·T bytes) or recurrent-dropout mask (B·H floats) read once.
    - conv1d: x read, dx written, y written, dy read, kernel and bias read, gradients written.
    - embedding: rows gathered and written (2·N·D), their gradient read (N·D), then the dense
      [V,D] gradient written (dense) or the N·D uncoalesced row values (sparse); ids read twice.
    infer: the inputs and parameters read, the output written (recurrent: no gates saved).
    """
    _check_mode(mode)
    train = mode == "train"
    if op in GATES:
        B, T, Fe, H = size
        G = GATES[op]
        params = (Fe + H) * G * H + (2 if op == "gru" else 1) * G * H
        extra = {"plain": 0, "mask": B * T, "recurrent_dropout": ITEMSIZE * B * H}[variant]
        if train:
            return float(ITEMSIZE * (2 * B * T * (Fe + H + G * H) + 2 * params) + extra)
        return float(ITEMSIZE * (B * T * (Fe + H) + params) + extra)
    if op == "conv1d":
        B, L, C, O, K = size
        x, y, weights = B * L * C, B * (L - K + 1) * O, K * C * O + O
        return float(ITEMSIZE * (2 * (x + y + weights) if train else x + y + weights))
    if op == "embedding":
        V, D, B, T, sparse = size
        N = B * T
        if not train:
            return float(ITEMSIZE * 2 * N * D + 8 * N)
        gradient = N * D if sparse else V * D
        return float(ITEMSIZE * (3 * N * D + gradient) + 2 * 8 * N)
    raise ValueError(f"min_bytes: unknown op {op!r}; expected one of {sorted(OPS)}")


def _check_mode(mode):
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def fractions(flop, moved, ms, ceilings):
    """(fraction of the sgemm rate, fraction of the copy bandwidth) reached in `ms`;
    None where there is no time, no ceiling, or (GEMM) no products.
    ceilings: {"sgemm_gflops": GFLOP/s, "bandwidth_gbs": GB/s}."""
    if not ms or not ceilings:
        return None, None
    gemm = flop / (ms * 1e6) / ceilings["sgemm_gflops"] if flop else None
    return gemm, moved / (ms * 1e6) / ceilings["bandwidth_gbs"]


def parse_ops(text, known) -> list[str]:
    """--ops "a,b" -> ["a", "b"], every name in `known` (all of them when text is None)."""
    if text is None:
        return list(known)
    ops = [op.strip() for op in text.split(",") if op.strip()]
    unknown = [op for op in ops if op not in known]
    if unknown or not ops:
        raise ValueError(f"--ops: unknown {unknown or text!r}; expected some of {sorted(known)}")
    return ops


def write_json(report, path):
    """The report into `path` (nothing for None or "-": stdout is the caller's)."""
    if path and path != "-":
        with open(path, "w") as f:
            json.dump(report, f, indent=1)


def report_run(run, json_arg, **kwargs) -> dict:
    """run(print_fn=..., json_path=json_arg, **kwargs) for --json: with no PATH (json_arg "-")
    the table goes to stderr and the report, as JSON, to stdout."""
    to_stdout = json_arg == "-"
    report = run(print_fn=(lambda *a: print(*a, file=sys.stderr)) if to_stdout else print,
                 json_path=json_arg, **kwargs)
    if to_stdout:
        json.dump(report, sys.stdout, indent=1)
        print()
    return report
