"""`seqfuse bench --device cuda`: our CUDA kernels beside PyTorch with cuDNN, on one card.

Everything runs in one process on one GPU, float32, forward+backward (`out.sum().backward()`),
TF32 off on both sides (fp32 as the issue's speed targets are stated). For each row the
contenders are interleaved: each is warmed up (`--repeat`'s WARMUP calls: NVRTC compiles,
cuDNN plans, memory pools), then in every round each is timed once between two
`cupy.cuda.Event`s recorded on the null stream, after a device synchronize; the median of the
rounds is reported with torch/ours (> 1: we are faster). Torch runs on its default stream,
which is the same legacy null stream, so the events bracket its work too.

Rows:
- lstm, gru at (B,T,F,H) of issue 9, variant "plain" (torch: cuDNN nn.LSTM/nn.GRU),
  "mask" (right padding, lengths uniform in [T/2, T]; torch: cuDNN on a packed sequence,
  which skips the padded steps) and "recurrent_dropout" (a (B,H) mask on h_{t-1}; cuDNN has
  none, so torch: an LSTMCell/GRUCell loop, what a PyTorch user writes for it). Ours once per
  kernel version, v1 and v2 forced with SEQFUSE_CUDA_RNN; "vs plain" is the variant's time
  over the plain kernel's of the same version (the issue's target: ≤ +10%).
- embedding (dense and row-sparse gradient; torch nn.Embedding(sparse=...)) and conv1d
  (valid, stride 1; torch's conv1d on its native [B,C,L] layout, cudnn.benchmark on).

The card's ceilings are measured in the same run: cuBLAS sgemm (cupy.matmul, n=CEILING_N,
2·n³ FLOP) and device memory bandwidth (a copy of COPY_BYTES, counting bytes read plus
written). Each row's GEMM % is flops()/time over the sgemm rate, and its bandwidth % is
min_bytes()/time over the copy rate: the fraction of each ceiling the row reaches (the counts
are engine/_bench.py's, shared with the CPU bench: docs/kernels.md, "FLOP counts").
"""
from __future__ import annotations

import datetime
import statistics
import time

import numpy as np

from . import backends, functional as F
from ._bench import GATES as _ALL_GATES, ITEMSIZE
from ._bench import flops, fractions, min_bytes, parse_ops, report_run, write_json
from .parity import RNN_VERSIONS, rnn_version, version_unsupported
from .tensor import Tensor

# (B, T, F, H) from issue 9's speed targets: small batch / long sequence, the cuDNN
# persistent-friendly mid size, and H=128 where cuDNN already runs its persistent kernel.
RNN_SHAPES = [(16, 1000, 128, 512), (64, 100, 64, 256), (16, 1000, 128, 128)]
SHAPES = {
    "lstm": RNN_SHAPES,
    "gru": RNN_SHAPES,
    "embedding": [(50_000, 256, 64, 500, False), (50_000, 256, 64, 500, True)],  # V, D, B, T, sparse
    "conv1d": [(64, 1000, 128, 128, 5), (16, 4000, 256, 256, 3)],              # B, L, C, O, K
}
VARIANTS = ("plain", "mask", "recurrent_dropout")
GATES = {op: _ALL_GATES[op] for op in ("lstm", "gru")}  # the recurrent ops timed here
TORCH_KIND = {"plain": "cudnn", "mask": "cudnn packed", "recurrent_dropout": "cell loop"}
WARMUP = 2
CEILING_N = 8192
COPY_BYTES = 1 << 30


def lengths(B, T):
    """The mask variant's row lengths, longest first, in [T/2, T] with the first row full:
    the same for ours and torch (a fixed seed)."""
    rows = np.sort(np.random.default_rng(1).integers(T // 2, T + 1, B))[::-1].copy()
    rows[0] = T
    return rows


def ours(op, size, variant, rng, xp=None):
    """A forward+backward closure running our op with its inputs resident on the GPU
    (xp: cupy; numpy runs the same closure on the CPU backend, for the tests)."""
    if xp is None:
        import cupy as xp

    def gpu(a):
        return Tensor(xp.asarray(a, dtype=np.float32), requires_grad=True)

    if op == "embedding":
        V, D, B, T, sparse = size
        ids = xp.asarray(rng.integers(0, V, (B, T)))
        table = gpu(rng.standard_normal((V, D)))

        def step():
            table.grad = None
            F.embedding(ids, table, sparse=sparse).sum().backward()
        return step
    if op == "conv1d":
        B, L, C, O, K = size
        tensors = [gpu(rng.standard_normal((B, L, C))), gpu(rng.standard_normal((K, C, O)) * 0.1),
                   gpu(rng.standard_normal(O) * 0.1)]
        forward = lambda: F.conv1d(*tensors)  # noqa: E731
    else:
        B, T, Fe, H = size
        G = GATES[op]
        tensors = [gpu(rng.standard_normal((B, T, Fe))), gpu(rng.standard_normal((Fe, G * H)) * 0.05),
                   gpu(rng.standard_normal((H, G * H)) * 0.05),
                   gpu(rng.standard_normal((2, G * H) if op == "gru" else (G * H,)) * 0.1)]
        options = {}
        if variant == "mask":
            options["mask"] = xp.asarray(np.arange(T)[None, :] < lengths(B, T)[:, None])
        elif variant == "recurrent_dropout":
            options["recurrent_dropout_mask"] = xp.asarray(
                ((rng.random((B, H)) > 0.25) / 0.75).astype(np.float32))
        call = getattr(F, op)
        forward = lambda: call(*tensors, **options)[0]  # noqa: E731

    def step():
        for t in tensors:
            t.grad = None
        forward().sum().backward()
    return step


def theirs(torch, op, size, variant, rng, device="cuda"):
    """(kind, forward+backward closure) for the same computation in PyTorch on the GPU
    (device="cpu" runs it on the CPU, for the tests)."""
    cuda = torch.device(device)

    def leaf(a):
        return torch.tensor(a, dtype=torch.float32, device=cuda, requires_grad=True)

    if op == "embedding":
        V, D, B, T, sparse = size
        module = torch.nn.Embedding(V, D, sparse=sparse).to(cuda)
        ids = torch.tensor(rng.integers(0, V, (B, T)), device=cuda)
        forward, params = (lambda: module(ids)), list(module.parameters())
        kind = "embedding"
    elif op == "conv1d":
        B, L, C, O, K = size
        x, w = leaf(rng.standard_normal((B, C, L))), leaf(rng.standard_normal((O, C, K)) * 0.1)
        b = leaf(rng.standard_normal(O) * 0.1)
        forward, params, kind = (lambda: torch.nn.functional.conv1d(x, w, b)), [x, w, b], "cudnn"
    else:
        B, T, Fe, H = size
        x = leaf(rng.standard_normal((B, T, Fe)))
        kind = TORCH_KIND[variant]
        if variant == "recurrent_dropout":
            cell = {"lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}[op](Fe, H).to(cuda)
            drop = torch.tensor((rng.random((B, H)) > 0.25) / 0.75, dtype=torch.float32, device=cuda)
            forward = lambda: _cell_loop(torch, cell, x, drop, op)  # noqa: E731
            params = [x, *cell.parameters()]
        else:
            module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[op](Fe, H, batch_first=True).to(cuda)
            params = [x, *module.parameters()]
            if variant == "mask":
                row_lengths = torch.tensor(lengths(B, T))  # on the CPU, as pack_padded_sequence wants

                def forward():
                    packed = torch.nn.utils.rnn.pack_padded_sequence(x, row_lengths, batch_first=True)
                    return module(packed)[0].data
            else:
                forward = lambda: module(x)[0]  # noqa: E731

    def step():
        for p in params:
            p.grad = None
        forward().sum().backward()
    return kind, step


def _cell_loop(torch, cell, x, drop, op):
    """x: [B,T,F] -> [B,T,H], the dropout mask on h_{t-1} at every step (Keras/Gal semantics)."""
    B, H = drop.shape
    h = x.new_zeros(B, H)
    c = x.new_zeros(B, H)
    outputs = []
    for t in range(x.shape[1]):
        if op == "lstm":
            h, c = cell(x[:, t], (h * drop, c))
        else:
            h = cell(x[:, t], h * drop)
        outputs.append(h)
    return torch.stack(outputs, 1)


def event_timer(cupy):
    """fn -> milliseconds of device time from an idle device to fn's last kernel."""
    def time_ms(fn):
        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        cupy.cuda.Device().synchronize()
        start.record()
        fn()
        end.record()
        end.synchronize()
        return cupy.cuda.get_elapsed_time(start, end)
    return time_ms


def median_ms(fns, repeat, time_ms, warmup=WARMUP):
    """{name: median ms} over `repeat` interleaved rounds, or {name: "Error: ..."} for a
    contender that raised (it is dropped from the later rounds; the others go on)."""
    results, live = {}, dict(fns)
    for name, fn in fns.items():
        try:
            for _ in range(warmup):
                fn()
        except Exception as exc:  # noqa: BLE001  (a report: one broken contender, not the run)
            results[name] = f"{type(exc).__name__}: {exc}"
            del live[name]
    samples = {name: [] for name in live}
    for _ in range(repeat):
        for name, fn in list(live.items()):
            try:
                samples[name].append(time_ms(fn))
            except Exception as exc:  # noqa: BLE001
                results[name] = f"{type(exc).__name__}: {exc}"
                del live[name]
    results.update({name: statistics.median(s) for name, s in samples.items() if name in live})
    return results


def measure_ceilings(cupy, time_ms, repeat=5) -> dict:
    """The card's sgemm GFLOP/s (cupy.matmul, n=CEILING_N, TF32 off) and copy GB/s
    (COPY_BYTES read and as many written), each the median of `repeat` after warm-up."""
    n = CEILING_N
    a = cupy.random.standard_normal((n, n), dtype=np.float32)  # random: zeros run faster
    b = cupy.random.standard_normal((n, n), dtype=np.float32)
    c = cupy.empty((n, n), dtype=np.float32)
    gemm = median_ms({"gemm": lambda: cupy.matmul(a, b, out=c)}, repeat, time_ms)["gemm"]
    src = cupy.random.standard_normal(COPY_BYTES // ITEMSIZE, dtype=np.float32)
    dst = cupy.empty_like(src)
    copy = median_ms({"copy": lambda: cupy.copyto(dst, src)}, repeat, time_ms)["copy"]
    del a, b, c, src, dst
    cupy.get_default_memory_pool().free_all_blocks()
    return {"sgemm_gflops": 2.0 * n ** 3 / gemm / 1e6, "sgemm_n": n,
            "bandwidth_gbs": 2.0 * COPY_BYTES / copy / 1e6, "copy_bytes": COPY_BYTES}


def make_row(op, size, variant, version, ours_result, torch_result, torch_kind, ceilings,
             plain_ms=None) -> dict:
    """One JSON row; ours_result/torch_result: median ms, or an error string, or None."""
    ms = ours_result if isinstance(ours_result, float) else None
    torch_ms = torch_result if isinstance(torch_result, float) else None
    row = {"op": op, "size": list(size), "variant": variant, "version": version, "ms": ms,
           "torch_kind": torch_kind, "torch_ms": torch_ms,
           "torch_over_ours": torch_ms / ms if ms and torch_ms else None,
           "vs_plain": ms / plain_ms - 1 if ms and plain_ms else None,
           "flops": flops(op, size), "min_bytes": min_bytes(op, size, variant),
           "error": ours_result if isinstance(ours_result, str) else None,
           "torch_error": torch_result if isinstance(torch_result, str) else None}
    for prefix, time_ms in (("", ms), ("torch_", torch_ms)):
        row[f"{prefix}gemm_fraction"], row[f"{prefix}bandwidth_fraction"] = fractions(
            row["flops"], row["min_bytes"], time_ms, ceilings)
    return row


COLUMNS = ("op", "size", "variant", "ours", "ms", "torch", "torch ms", "torch/ours", "vs plain",
           "GEMM %", "BW %")


def _cells(row) -> list[str]:
    def number(value, fmt):
        return "-" if value is None else format(value, fmt)
    ours_ms = number(row["ms"], ".2f") if not row["error"] else ("n/a" if row["error"].startswith("n/a") else "error")
    size = "x".join(str(v) for v in row["size"] if not isinstance(v, bool))
    return [row["op"], size + (" sparse" if True in row["size"] else ""),
            row["variant"], row["version"] or "cupy", ours_ms, row["torch_kind"] or "-",
            number(row["torch_ms"], ".2f"), number(row["torch_over_ours"], ".2f"),
            number(row["vs_plain"], "+.0%"), number(row["gemm_fraction"], ".1%"),
            number(row["bandwidth_fraction"], ".1%")]


WIDTHS = (10, 23, 17, 4, 8, 12, 8, 10, 8, 6, 6)
_LEFT = (0, 1, 2, 3, 5)  # text columns; numbers are right-aligned


def _line(cells) -> str:
    return "  ".join(f"{c:<{w}}" if i in _LEFT else f"{c:>{w}}"
                     for i, (c, w) in enumerate(zip(cells, WIDTHS)))


def format_row(row, markdown=False) -> str:
    """One row of the table (plain text aligned under format_header, or Markdown)."""
    cells = _cells(row)
    return "| " + " | ".join(cells) + " |" if markdown else _line(cells)


def format_header(markdown=False) -> list[str]:
    return ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)] if markdown else [_line(COLUMNS)]


def describe_ceilings(ceilings) -> str:
    return (f"ceilings: cuBLAS sgemm {ceilings['sgemm_gflops'] / 1e3:.1f} TFLOP/s (n={ceilings['sgemm_n']}, "
            f"TF32 off); copy {ceilings['bandwidth_gbs'] / 1e3:.2f} TB/s (read + write)")


def _groups(ops, quick):
    """(op, size, variant) in the order they are timed: each size's plain before its variants."""
    for op in ops:
        for size in SHAPES[op][:1] if quick else SHAPES[op]:
            for variant in VARIANTS if op in GATES else ("plain",):
                yield op, size, variant


def _import_torch():
    """(torch, None) with TF32 off and cudnn.benchmark on, or (None, why not)."""
    try:
        import torch
    except ImportError as exc:
        return None, f"torch is not importable: {exc}"
    if not torch.cuda.is_available():
        return None, f"torch {torch.__version__} sees no CUDA device"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    return torch, None


def run(ops, repeat=5, quick=False, print_fn=print, markdown=False, json_path=None, max_seconds=None):
    """Time every (op, size, variant); returns the report dict (card, ceilings, rows)."""
    import cupy
    time_ms = event_timer(cupy)
    torch, torch_missing = _import_torch()
    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.runtime.getDevice())
    report = {"card": props["name"].decode() if isinstance(props["name"], bytes) else props["name"],
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "cupy": cupy.__version__, "torch": torch.__version__ if torch else None,
              "cudnn": torch.backends.cudnn.version() if torch else None, "torch_missing": torch_missing,
              "repeat": repeat, "tf32": False, "ceilings": None, "rows": [], "skipped": []}
    print_fn(f"card: {report['card']}; cupy {report['cupy']}; torch {report['torch']} "
             f"(cuDNN {report['cudnn']}){'; ' + torch_missing if torch_missing else ''}")
    report["ceilings"] = measure_ceilings(cupy, time_ms, repeat)
    print_fn(describe_ceilings(report["ceilings"]))
    for line in format_header(markdown):
        print_fn(line)
    start, plain = time.perf_counter(), {}
    for op, size, variant in _groups(ops, quick):
        if max_seconds is not None and time.perf_counter() - start > max_seconds:
            report["skipped"].append({"op": op, "size": list(size), "variant": variant})
            continue
        rng = np.random.default_rng(0)
        versions = RNN_VERSIONS if op in GATES else (None,)
        step = _build(lambda: ours(op, size, variant, rng))
        fns = {version: _in_version(version, step) for version in versions}  # same inputs for each
        unsupported = {v: _unsupported(op, size, v) for v in versions if v}
        for version, why in unsupported.items():
            if why:  # v2 where the weights do not fit on chip: the row says so, nothing is timed
                fns.pop(version)
        kind = None
        if torch is not None:
            kind, fns["torch"] = _build(lambda: theirs(torch, op, size, variant, rng), pair=True)
        results = median_ms(fns, repeat, time_ms)
        for version in versions:
            plain_ms = plain.get((op, tuple(size), version)) if variant != "plain" else None
            ours_result = f"n/a: {unsupported[version]}" if unsupported.get(version) else results.get(version)
            row = make_row(op, size, variant, version, ours_result, results.get("torch"),
                           kind, report["ceilings"], plain_ms)
            if variant == "plain" and row["ms"]:
                plain[(op, tuple(size), version)] = row["ms"]
            report["rows"].append(row)
            print_fn(format_row(row, markdown))
        _free(cupy, torch)
        write_json(report, json_path)
    for group in report["skipped"]:
        print_fn(f"skipped (--max-seconds {max_seconds}): {group['op']} {group['size']} {group['variant']}")
    write_json(report, json_path)
    return report


def _unsupported(op, size, version):
    """parity.version_unsupported at (B, H) of size; "" if asking fails (the timed call then
    fails the same way, and its row shows the error)."""
    try:
        return version_unsupported(op, size[0], size[3], np.float32, version)
    except Exception:  # noqa: BLE001
        return ""


def _build(make, pair=False):
    """make() now; if it raises, a step that raises the same (its row shows the error), as
    ("-", step) when make returns a (kind, step) pair."""
    try:
        return make()
    except Exception as exc:  # noqa: BLE001  (shown in the row)
        def failed():
            raise exc
        return ("-", failed) if pair else failed


def _in_version(version, fn):
    def call():
        with rnn_version(version):
            fn()
    return call


def _free(cupy, torch):
    cupy.get_default_memory_pool().free_all_blocks()
    if torch is not None:
        torch.cuda.empty_cache()


def main(args) -> int:
    ops = parse_ops(args.ops, SHAPES)
    if args.repeat < 1:
        raise ValueError(f"--repeat must be >= 1, got {args.repeat}")
    if args.backends:
        raise ValueError("--backends: not used with --device cuda (the GPU has one backend, cupy)")
    if "cupy" not in backends.available():
        raise ValueError(f"--device cuda: the cupy backend is unavailable here: "
                         f"{backends.why_unavailable().get('cupy', 'unknown reason')}")
    report_run(run, args.json, ops=ops, repeat=args.repeat, quick=args.quick, markdown=args.markdown,
               max_seconds=args.max_seconds)
    return 0
