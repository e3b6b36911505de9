"""`seqfuse bench`: our kernels beside PyTorch CPU, in one process, interleaved, and both
against this machine's GEMM and memory ceilings measured in the same run.

For each op and size: float32, forward+backward ("train") and forward under no_grad
("infer"); every contender is timed once per round, rounds repeat `--repeat` times (≥5),
and the median is reported with the ratio torch/ours (> 1 means we are faster).
Before a contender runs the process sleeps SETTLE_S, so the worker threads the other library
leaves spinning (OpenBLAS, OpenMP) have parked; without it each contender is timed while the
other's threads still hold the two cores. Then untimed calls (≥ WARM_CALLS, ≥ WARM_S) bring
the cores back from idle, and the next call is timed: steady state, as in consecutive
training steps.

The header names the machine: the CPU model and the cores this process may use, the
instruction set the C++ extension was compiled for beside what the CPU offers, the kernel
choices in force (engine.tuning), NumPy's BLAS, torch's version and threads. Right before the
rows it measures two ceilings: the sgemm rate (NumPy float32 matmul of CEILING_N² matrices,
OpenBLAS on all cores, best of CEILING_CALLS) and the copy bandwidth (COPY_BYTES copied by one
NumPy copy per core at once, bytes read plus written, best of CEILING_CALLS). Each row gives
ours and torch's GFLOP/s (engine/_bench.py's counts, docs/kernels.md "FLOP counts": train rows
forward + backward, infer rows forward only) and its % of the sgemm rate; an embedding row
has no FLOPs and gives GB/s of the fewest bytes it moves and its % of the copy bandwidth.
The rate a row is divided by (its "peak" column) is timed in that row's own rounds, as one
more contender, best of them, so a shared machine's drift during the run moves a row and its
ceiling alike. After the rows both ceilings are measured again (a change says the machine
was busy), a line says how far the ceiling moved between the rounds within a row (a row's %
peak, a median time over the fastest round, reads low by about that much), and the last lines
give per backend the geometric mean of torch/ours over its rows and how many rows are below
1.0×, then, one line each, whether this run met the project's speed targets (TARGETS) and
which rows missed them.
PyTorch is optional (the `compat` extra); without it only our times are printed.
"""
from __future__ import annotations

import ctypes
import datetime
import math
import os
import platform
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import _cpu, _openblas, backends, functional as F
from ._bench import GATES, ITEMSIZE, flops, fractions, min_bytes, parse_ops, report_run, write_json
from ._blas import CORES
from .tensor import Tensor, no_grad
from .utils import terminal_progress

SIZES = {
    "lstm": [(32, 100, 32, 32), (64, 100, 64, 128), (128, 200, 128, 256)],
    "gru": [(32, 100, 32, 32), (64, 100, 64, 128), (128, 200, 128, 256)],
    "simple_rnn": [(32, 100, 32, 32), (64, 100, 64, 128), (128, 200, 128, 256)],
    "conv1d": [(32, 500, 32, 32, 7), (64, 1000, 128, 128, 5)],
    "embedding": [(10_000, 128, 64, 500, False), (100_000, 300, 256, 200, True)],
}
SETTLE_S = 0.2
WARM_CALLS, WARM_S = 2, 0.05
CEILING_N = 2048            # sgemm ceiling: 17 GFLOP a call, ~0.06 s at 300 GFLOP/s
COPY_BYTES = 128 << 20      # copy ceiling: 4× a 32 MiB L3, so memory is what is measured
CEILING_CALLS = 5
ISA_FLAGS = ("avx512f", "avx2", "fma")  # the header's instruction-set columns, widest first


def ours(op, size, rng):
    """(train, infer) closures running our op on the current backend."""
    if op in GATES:
        B, T, Fe, H = size
        G = GATES[op]
        arrays = [rng.standard_normal((B, T, Fe)), rng.standard_normal((Fe, G * H)) * 0.1,
                  rng.standard_normal((H, G * H)) * 0.1,
                  rng.standard_normal((2, G * H) if op == "gru" else (G * H,)) * 0.1]
        call = getattr(F, op)
        first = lambda *t: call(*t)[0]  # noqa: E731
    elif op == "conv1d":
        B, L, C, O, K = size
        arrays = [rng.standard_normal((B, L, C)), rng.standard_normal((K, C, O)) * 0.1,
                  rng.standard_normal(O) * 0.1]
        first = lambda x, k, b: F.conv1d(x, k, b)  # noqa: E731
    else:
        V, D, B, T, sparse = size
        ids = rng.integers(0, V, (B, T))
        table = Tensor(rng.standard_normal((V, D)).astype(np.float32), requires_grad=True)

        def train():
            table.grad = None
            F.embedding(ids, table, sparse=sparse).sum().backward()

        def infer():
            with no_grad():
                F.embedding(ids, table)
        return train, infer
    tensors = [Tensor(a.astype(np.float32), requires_grad=True) for a in arrays]

    def train():
        for t in tensors:
            t.grad = None
        first(*tensors).sum().backward()

    def infer():
        with no_grad():
            first(*tensors)
    return train, infer


def theirs(op, size, rng):
    """(train, infer) closures for the same computation in PyTorch, or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    if op in GATES:
        B, T, Fe, H = size
        module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "simple_rnn": torch.nn.RNN}[op](
            Fe, H, batch_first=True)
        x = torch.tensor(rng.standard_normal((B, T, Fe)), dtype=torch.float32, requires_grad=True)
        forward = lambda: module(x)[0]  # noqa: E731
        params = [x, *module.parameters()]
    elif op == "conv1d":
        B, L, C, O, K = size
        x = torch.tensor(rng.standard_normal((B, C, L)), dtype=torch.float32, requires_grad=True)
        w = torch.tensor(rng.standard_normal((O, C, K)) * 0.1, dtype=torch.float32, requires_grad=True)
        b = torch.zeros(O, requires_grad=True)
        forward = lambda: torch.nn.functional.conv1d(x, w, b)  # noqa: E731
        params = [x, w, b]
    else:
        V, D, B, T, sparse = size
        module = torch.nn.Embedding(V, D, sparse=sparse)
        ids = torch.tensor(rng.integers(0, V, (B, T)))
        forward = lambda: module(ids)  # noqa: E731
        params = list(module.parameters())

    def train():
        for p in params:
            p.grad = None
        forward().sum().backward()

    def infer():
        with torch.no_grad():
            forward()
    return train, infer


def _rounds_ms(fn_by_name, repeat):
    """{name: [ms of each round]}. Interleaved rounds: in each round every contender is timed
    once, in steady state.

    Before its timed call a contender gets the settle pause (the other library's threads
    park) and then warms up with untimed calls of its own, at least WARM_CALLS and WARM_S:
    on the 2-vCPU VM the first one or two calls after an idle pause run both libraries'
    two-thread loops several ms slower (the idle vCPU is slow to come back), which is not
    what consecutive training steps see.
    """
    samples = {name: [] for name in fn_by_name}
    for _ in range(repeat):
        for name, fn in fn_by_name.items():
            time.sleep(SETTLE_S)
            start, calls = time.perf_counter(), 0
            while calls < WARM_CALLS or time.perf_counter() - start < WARM_S:
                fn()
                calls += 1
            start = time.perf_counter()
            fn()
            samples[name].append((time.perf_counter() - start) * 1e3)
    return samples


def _in_backend(name, fn):
    def call():
        with backends.use_backend(name):
            fn()
    return call


# --- the machine and its ceilings ---

def machine(names) -> dict:
    """What the header says about this machine and this build (JSON-ready)."""
    cpu = _cpu.info()
    info = {"cpu": cpu["model"], "cores": CORES,
            "cpu_isa": None if cpu["flags"] is None else [f for f in ISA_FLAGS if f in cpu["flags"]],
            "built_isa": None, "compiler": None, "choices": None, "backends": list(names),
            "python": platform.python_version(), "numpy": np.__version__, "blas": _blas_name(),
            "torch": None, "torch_threads": None}
    if "cpp" in backends.available():
        from . import _C, tuning
        built = _C.build_info()
        info.update(built_isa=[f for f in ISA_FLAGS if f in built["isa"]], compiler=built["compiler"],
                    choices=tuning.current())
    try:
        import torch
    except ImportError:
        return info
    info.update(torch=torch.__version__, torch_threads=torch.get_num_threads())
    return info


def _numpy_openblas():
    """The OpenBLAS library NumPy bundles (ctypes), if engine/_openblas.py found it, else None."""
    for path in _openblas.bundled_libraries():
        if f"{os.sep}numpy.libs{os.sep}" in path and os.path.basename(path) in _openblas.picked:
            return ctypes.CDLL(path), _openblas.picked[os.path.basename(path)]
    return None, None


def _blas_name() -> str:
    """NumPy's BLAS and, for its bundled OpenBLAS, the kernels in force (engine/_openblas.py
    re-picks them per CPU) and its threads: "scipy-openblas 0.3.31 (SkylakeX kernels, 2
    threads)". The kernels set the ceiling: on the Zen 5 VM, Haswell's (AVX2) reach about
    half of SkylakeX's (AVX-512)."""
    try:
        blas = np.__config__.CONFIG["Build Dependencies"]["blas"]
        name = f"{blas['name']} {blas['version']}"
    except (AttributeError, KeyError):  # NumPy < 1.26 has no CONFIG
        return "unknown BLAS"
    lib, core = _numpy_openblas()
    if lib is None:
        return name
    threads = getattr(lib, "scipy_openblas_get_num_threads64_", None) or lib.openblas_get_num_threads
    threads.restype = ctypes.c_int
    return f"{name} ({core} kernels, {threads()} threads)"


def describe_machine(info) -> list[str]:
    """The header lines for machine()'s dict."""
    def flags(names):
        return " ".join(names) or "none of them"
    cpu_isa = "unknown (no /proc/cpuinfo)" if info["cpu_isa"] is None else flags(info["cpu_isa"])
    if info["built_isa"] is None:
        isa = f"C++ extension not in use; CPU offers {cpu_isa}"
        choices = "none (no C++ extension)"
    else:
        unused = [f for f in info["cpu_isa"] or () if f not in info["built_isa"]]
        isa = f"C++ extension built for {flags(info['built_isa'])} ({info['compiler']}); CPU offers {cpu_isa}"
        if unused:
            isa += f"; the build leaves {' '.join(unused)} unused (built with SEQFUSE_NATIVE=OFF?)"
        choices = ", ".join(f"{k}={v}" for k, v in info["choices"].items()) or "none"
    torch = (f"torch {info['torch']} ({info['torch_threads']} threads)" if info["torch"]
             else 'torch not installed (pip install "seqfuse[compat]" for the torch columns)')
    return [f"CPU: {info['cpu']}; {info['cores']} cores available to this process",
            f"instruction set ({', '.join(ISA_FLAGS)}): {isa}",
            f"kernel choices (engine.tuning): {choices}",
            f"NumPy {info['numpy']} on {info['blas']}; {torch}; backends: {', '.join(info['backends'])}; "
            f"Python {info['python']}"]


class CeilingCalls:
    """The two ceilings as calls to time: `sgemm`, a NumPy float32 matmul of CEILING_N²
    matrices (OpenBLAS on all cores), and `copy`, COPY_BYTES copied as one NumPy copy per core
    at once; `rate(name, seconds)` turns a call's time into GFLOP/s or GB/s (bytes read and as
    many written). A context manager: its copy threads stop on exit."""

    def __init__(self):
        self.n, self.copy_bytes = CEILING_N, COPY_BYTES
        a, b = np.random.default_rng(0).standard_normal((2, self.n, self.n), dtype=np.float32)
        self._gemm = (a, b, np.empty_like(a))  # random: zeros may run faster
        self._src = np.ones(self.copy_bytes // ITEMSIZE, np.float32)
        self._dst = np.zeros_like(self._src)  # written once, so no page is faulted in a timed copy
        self._edges = np.linspace(0, self._src.size, CORES + 1).astype(int)
        self._pool = ThreadPoolExecutor(CORES)  # np.copyto releases the GIL

    def sgemm(self):
        a, b, c = self._gemm
        np.matmul(a, b, out=c)

    def copy(self):
        e, src, dst = self._edges, self._src, self._dst
        list(self._pool.map(lambda i: np.copyto(dst[e[i]:e[i + 1]], src[e[i]:e[i + 1]]), range(CORES)))

    def rate(self, name, seconds):
        work = 2.0 * self.n ** 3 if name == "sgemm" else 2.0 * self.copy_bytes
        return work / seconds / 1e9

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._pool.shutdown()


def measure_ceilings(calls=CEILING_CALLS) -> dict:
    """The sgemm rate (GFLOP/s of a NumPy float32 matmul, n=CEILING_N, OpenBLAS on all
    cores) and the copy bandwidth (GB/s, COPY_BYTES read and as many written,
    one copy per core at once), each the best of `calls` after one warm-up call."""
    with CeilingCalls() as ceiling:
        return {"sgemm_gflops": ceiling.rate("sgemm", _best_seconds(ceiling.sgemm, calls)),
                "sgemm_n": ceiling.n,
                "bandwidth_gbs": ceiling.rate("copy", _best_seconds(ceiling.copy, calls)),
                "copy_bytes": ceiling.copy_bytes, "threads": CORES, "calls": calls}


def _best_seconds(fn, calls):
    fn()
    best = math.inf
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def describe_ceilings(ceilings) -> list[str]:
    return [f"ceilings, measured now: sgemm {ceilings['sgemm_gflops']:.1f} GFLOP/s (NumPy float32 matmul, "
            f"n={ceilings['sgemm_n']}, {ceilings['threads']} cores, best of {ceilings['calls']}); copy "
            f"{ceilings['bandwidth_gbs']:.1f} GB/s ({ceilings['copy_bytes'] >> 20} MiB read + written, "
            f"{ceilings['threads']} threads, best of {ceilings['calls']})",
            "GFLOP/s: matrix-product FLOPs (docs/kernels.md, \"FLOP counts\"; train: forward + backward, "
            "infer: forward) over the median time; peak: the same sgemm timed as one more contender in "
            "the row's rounds, best of them, and % peak is of it; embedding rows (no FLOPs): GB/s of "
            "the fewest bytes moved, against the copy timed so"]


def describe_recheck(before, after, busy=0.1) -> str:
    """The ceilings measured again after the rows, beside the ones the rows were divided by:
    on a shared machine a busy moment during either measurement shows as a change."""
    changes = [after[k] / before[k] - 1 for k in ("sgemm_gflops", "bandwidth_gbs")]
    line = (f"ceilings again after the rows: sgemm {after['sgemm_gflops']:.1f} GFLOP/s ({changes[0]:+.0%}), "
            f"copy {after['bandwidth_gbs']:.1f} GB/s ({changes[1]:+.0%})")
    if max(map(abs, changes)) > busy:
        line += (f"; a change beyond ±{busy:.0%}: the machine was busy during one of the two measurements "
                 "(each row's % peak is of the ceiling timed in its own rounds, its peak column)")
    return line


def describe_spread(rows) -> str | None:
    """How far the ceiling timed in each row's rounds moved within the row (1 - slowest /
    fastest round), or None with fewer than two rounds. A row's % peak divides its median time
    by the fastest round, so where the machine's speed moves between rounds (a shared VM) it
    reads low by about that much."""
    rounds = {(r["op"], tuple(r["size"]), r["mode"]): r["ceiling_rounds"] for r in rows
              if len(r.get("ceiling_rounds") or ()) > 1}
    if not rounds:
        return None
    spreads = {key: 1 - min(rates) / max(rates) for key, rates in rounds.items()}
    (op, size, mode), largest = max(spreads.items(), key=lambda item: item[1])
    return (f"the ceiling within a row's rounds: its slowest round below its fastest by "
            f"{statistics.median(spreads.values()):.0%} (median over rows), at most {largest:.0%} "
            f"({op} {size} {mode}); % peak divides a median time by the fastest round, so it reads "
            f"low by about that much where the machine's speed moved between rounds")


def row_ceilings(ceilings, kind, rate) -> dict:
    """The run's ceilings with the one a row is held to ("sgemm" GFLOP/s or "copy" GB/s)
    replaced by `rate`, the rate timed beside that row."""
    return {**ceilings, "sgemm_gflops" if kind == "sgemm" else "bandwidth_gbs": rate}


# --- rows, table and summary ---

def make_row(op, size, mode, backend, ms, torch_ms, ceilings) -> dict:
    """One JSON row; ms, torch_ms: median milliseconds (torch_ms None without torch); ceilings:
    {"sgemm_gflops", "bandwidth_gbs"}, the ones timed beside the row (`row_ceilings`)."""
    row = {"op": op, "size": list(size), "mode": mode, "backend": backend, "ms": ms, "torch_ms": torch_ms,
           "torch_over_ours": torch_ms / ms if torch_ms else None,
           "flops": flops(op, size, mode), "min_bytes": min_bytes(op, size, mode=mode),
           "ceilings": ceilings}
    for prefix, time_ms in (("", ms), ("torch_", torch_ms)):
        row[f"{prefix}gemm_fraction"], row[f"{prefix}bandwidth_fraction"] = fractions(
            row["flops"], row["min_bytes"], time_ms, ceilings)
    return row


COLUMNS = ("op", "size", "mode", "backend", "ms", "GFLOP/s", "% peak",
           "torch ms", "torch GFLOP/s", "torch % peak", "torch/ours", "peak")
WIDTHS = (10, 28, 5, 7, 8, 10, 7, 8, 13, 12, 10, 10)
_LEFT = (0, 1, 2, 3)  # text columns; numbers are right-aligned


def _cells(row) -> list[str]:
    cells = [row["op"], str(tuple(row["size"])), row["mode"], row["backend"]]
    for prefix in ("", "torch_"):
        ms = row[f"{prefix}ms"]
        if ms is None:
            cells += ["-", "-", "-"]
        elif row["flops"]:
            cells += [f"{ms:.2f}", f"{row['flops'] / (ms * 1e6):.1f}", f"{row[f'{prefix}gemm_fraction']:.1%}"]
        else:
            cells += [f"{ms:.2f}", f"{row['min_bytes'] / (ms * 1e6):.1f} GB/s",
                      f"{row[f'{prefix}bandwidth_fraction']:.1%}"]
    cells.append("-" if row["torch_over_ours"] is None else f"{row['torch_over_ours']:.2f}")
    cells.append(f"{row['ceilings']['sgemm_gflops']:.1f}" if row["flops"]
                 else f"{row['ceilings']['bandwidth_gbs']:.1f} GB/s")
    return cells


def _line(cells) -> str:
    return " ".join(f"{c:<{w}}" if i in _LEFT else f"{c:>{w}}" for i, (c, w) in enumerate(zip(cells, WIDTHS)))


def format_header(markdown=False) -> list[str]:
    return ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)] if markdown else [_line(COLUMNS)]


def format_row(row, markdown=False) -> str:
    """One row of the table (plain text aligned under format_header, or Markdown)."""
    cells = _cells(row)
    return "| " + " | ".join(cells) + " |" if markdown else _line(cells)


def summarize(rows) -> dict:
    """{backend: {"rows", "geomean" (of torch/ours), "below" (rows under 1.0)}}; geomean and
    below are None for a backend without torch times."""
    summary = {}
    for backend in dict.fromkeys(row["backend"] for row in rows):
        ratios = [r["torch_over_ours"] for r in rows if r["backend"] == backend and r["torch_over_ours"]]
        summary[backend] = {"rows": sum(r["backend"] == backend for r in rows),
                            "geomean": math.exp(statistics.fmean(map(math.log, ratios))) if ratios else None,
                            "below": sum(ratio < 1.0 for ratio in ratios) if ratios else None}
    return summary


def describe_summary(summary) -> list[str]:
    lines = []
    for backend, s in summary.items():
        if s["geomean"] is None:
            lines.append(f"{backend}: {s['rows']} rows; no torch/ours ratio (torch not installed)")
        else:
            lines.append(f"{backend}: geometric mean torch/ours {s['geomean']:.2f}x over {s['rows']} rows, "
                         f"{s['below']} of them below 1.0x")
    return lines


# The project's speed targets (issue 10; README, "Correctness and speed"), judged on each run's
# rows: the C++ backend against torch and against the ceilings timed beside each row, the
# Numba backend against a floor of torch's speed. (backend, what, the rows it holds for, or
# None for the backend's geometric mean of torch/ours, the row's value, the least value that
# meets it.)
TARGETS = (
    ("cpp", "every row >= 1.0x torch", lambda r: True, "torch_over_ours", 1.0),
    ("cpp", "geometric mean >= 1.5x torch", None, "torch_over_ours", 1.5),
    ("cpp", "recurrent training at H >= 128 >= 75% of peak",
     lambda r: r["op"] in GATES and r["mode"] == "train" and r["size"][3] >= 128, "gemm_fraction", 0.75),
    ("cpp", "conv1d at C, O >= 128 >= 80% of peak",
     lambda r: r["op"] == "conv1d" and min(r["size"][2:4]) >= 128, "gemm_fraction", 0.80),
    ("numba", "every row >= 0.5x torch", lambda r: True, "torch_over_ours", 0.5),
)


def judge_targets(rows, summary) -> list[dict]:
    """Each target of TARGETS whose backend ran: {"backend", "target", "met" (None: no row
    measured it in this run, e.g. --quick, --ops or no torch), "lowest" (the row with the
    least value, or for the geometric mean the value alone), "misses" (rows below it)}."""
    verdicts = []
    for backend, text, holds, key, least in TARGETS:
        if backend not in summary:
            continue
        if holds is None:
            geomean = summary[backend]["geomean"]
            measured = [] if geomean is None else [{"value": geomean}]
        else:
            measured = [{"op": r["op"], "size": r["size"], "mode": r["mode"], "value": r[key]}
                        for r in rows if r["backend"] == backend and holds(r) and r[key] is not None]
        lowest = min(measured, key=lambda m: m["value"], default=None)
        verdicts.append({"backend": backend, "target": text, "least": least, "key": key,
                         "met": None if lowest is None else lowest["value"] >= least, "lowest": lowest,
                         "misses": [m for m in measured if m["value"] < least and "op" in m]})
    return verdicts


def describe_targets(verdicts) -> list[str]:
    """One line per verdict: met, with the lowest value, or missed, with every row that misses."""
    def value(m, key):
        return f"{m['value']:.2f}x" if key == "torch_over_ours" else f"{m['value']:.1%}"

    def at(m, key):
        return f"{m['op']} {tuple(m['size'])} {m['mode']} {value(m, key)}"
    lines = []
    for v in verdicts:
        head, lowest = f"target for {v['backend']}, {v['target']}: ", v["lowest"]
        if v["met"] is None:
            lines.append(head + "not measured in this run")
        elif v["misses"]:
            lines.append(head + "missed by " + ", ".join(at(m, v["key"]) for m in v["misses"]))
        else:  # a row target met, or the geometric mean (no row) met or missed
            lines.append(head + ("met" if v["met"] else "missed") + " ("
                         + (f"lowest {at(lowest, v['key'])})" if "op" in lowest else f"{value(lowest, v['key'])})"))
    return lines


def run(ops, names, repeat=5, quick=False, print_fn=print, markdown=False, json_path=None) -> dict:
    """Time every op × size × mode on each backend in `names` beside torch; returns the report
    dict (machine, ceilings, rows, ceilings_after, summary, targets), also written to json_path."""
    bullet = "- " if markdown else ""
    report = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "repeat": repeat, "machine": machine(names), "ceilings": None, "rows": [], "summary": None}
    for line in describe_machine(report["machine"]):
        print_fn(bullet + line)
    report["ceilings"] = measure_ceilings()
    for line in describe_ceilings(report["ceilings"]):
        print_fn(bullet + line)
    if markdown:
        print_fn("")  # a Markdown table starts after a blank line
    sizes = {op: SIZES[op][:1] if quick else SIZES[op] for op in ops}
    progress = terminal_progress(2 * sum(map(len, sizes.values())), unit_name="row")  # stderr, terminal only
    print_fn = progress.printer(print_fn)
    for line in format_header(markdown):
        print_fn(line)
    with CeilingCalls() as ceiling:
        for op in ops:
            for size in sizes[op]:
                rng = np.random.default_rng(0)
                contenders = {}
                for name in names:
                    with backends.use_backend(name):
                        contenders[name] = ours(op, size, rng)
                torch_pair = theirs(op, size, rng)
                for mode, index in (("train", 0), ("infer", 1)):
                    progress.update(len(report["rows"]) // len(names), [("timing", f"{op} {size} {mode}")])
                    fns = {name: _in_backend(name, pair[index]) for name, pair in contenders.items()}
                    if torch_pair is not None:
                        fns["torch"] = torch_pair[index]
                    # The row's ceiling, timed in its rounds: a drift of a shared machine's speed
                    # during the run moves both alike (the Zen 3 VM's sgemm: 168 GFLOP/s before
                    # one run's rows and 86 after them).
                    kind = "sgemm" if flops(op, size, mode) else "copy"
                    fns[kind] = getattr(ceiling, kind)
                    samples = _rounds_ms(fns, repeat)
                    times = {name: statistics.median(ms) for name, ms in samples.items()}
                    rates = [ceiling.rate(kind, ms / 1e3) for ms in samples[kind]]
                    beside = row_ceilings(report["ceilings"], kind, max(rates))
                    for name in names:
                        row = make_row(op, size, mode, name, times[name], times.get("torch"), beside)
                        row["ceiling_rounds"] = rates
                        report["rows"].append(row)
                        print_fn(format_row(row, markdown))
                write_json(report, json_path)  # a run cut short keeps its rows
    progress.clear()
    if markdown:
        print_fn("")
    report["ceilings_after"] = measure_ceilings()
    print_fn(bullet + describe_recheck(report["ceilings"], report["ceilings_after"]))
    spread = describe_spread(report["rows"])
    if spread:
        print_fn(bullet + spread)
    report["summary"] = summarize(report["rows"])
    report["targets"] = judge_targets(report["rows"], report["summary"])
    for line in describe_summary(report["summary"]) + describe_targets(report["targets"]):
        print_fn(bullet + line)
    write_json(report, json_path)
    return report


def main(args) -> int:
    ops = parse_ops(args.ops, SIZES)
    if args.repeat < 1:
        raise ValueError(f"--repeat must be >= 1, got {args.repeat}")
    if args.max_seconds is not None:
        raise ValueError("--max-seconds is for --device cuda only")
    names = args.backends.split(",") if args.backends else \
        [n for n in backends.available() if backends.get(n).DEVICE == "cpu" and n != "reference"]
    for name in names:
        backends.get(name)
    report_run(run, args.json, ops=ops, names=names, repeat=args.repeat, quick=args.quick,
               markdown=args.markdown)
    return 0
