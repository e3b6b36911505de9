"""Data-parallel throughput and all-reduce cost on this machine (docs/distributed.md).

    python bench/bench_distributed.py              # both parts, printed as Markdown tables
    python bench/bench_distributed.py --rounds 1 --epochs 1 --sizes 1K,1M   # quicker

throughput: samples/s of the main job's training (`seqfuse train --data movie_reviews --model
lstm`: TextVectorization to 10k tokens × 40, Embedding(mask_zero) → LSTM(32) → Dense(sigmoid),
RMSprop, global batch 64, its 80% training split, no validation) as
  1 process × 2 threads (OMP_NUM_THREADS=2), 1 process × 1 thread,
  2 processes × 1 thread (mpiexec -n 2): buckets all-reduced after the backward (the
  default), and started during it from the hooks (SEQFUSE_OVERLAP=1, 1 MB buckets).
Configurations alternate in rounds; each run warms up for one epoch, then times --epochs
epochs. The machine is shared: the table leads with each configuration's best round.
allreduce: median time of the blocking in-place all-reduce fit's buckets use, and of the
non-blocking one SEQFUSE_OVERLAP=1 starts (`iallreduce(buffer).wait()`), on float32 buffers
of 1 KB … 64 MB over 2 processes (bandwidth = bytes / time, which at N = 2 is also a ring's
bus bandwidth 2(N−1)/N · bytes / time).
model: the cost model of docs/distributed.md, step time and speedup at N = 1 … 1024 from
the main job's measured one-thread step (fixed part + per-sample part, fitted on batches of
8 and 64), gradient bytes counted on the engine's own models, the distinct token ids of the
main job's batches (its Embedding gradient's rows), and per-message latency α and bandwidth
β of this machine (the allreduce part's 1K and 16M rows) and of two networks (typical
published figures, not measured here).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
CONFIGS = {  # name: (processes, threads per process, extra environment)
    "1 process × 2 threads": (1, 2, {}),
    "1 process × 1 thread": (1, 1, {}),
    "2 processes × 1 thread": (2, 1, {}),
    "2 processes × 1 thread, overlap": (2, 1, {"SEQFUSE_OVERLAP": "1", "SEQFUSE_BUCKET_MB": "1"}),
}
NETWORKS = {"InfiniBand HDR 200 Gb/s": (3e-6, 20e9),  # assumed: typical published figures
            "25 Gb Ethernet, TCP": (30e-6, 2.5e9)}
RANKS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
SIZES = {"1K": 2**10, "4K": 2**12, "16K": 2**14, "64K": 2**16, "256K": 2**18, "1M": 2**20,
         "4M": 2**22, "16M": 2**24, "64M": 2**26}


def throughput(epochs):
    """One configuration's training speed, measured in every process; rank 0 prints JSON."""
    import engine as en
    from engine.tasks.movie_reviews import _text_model
    d = en.distributed
    en.set_random_seed(0)
    (x_train, y_train), _ = en.datasets.movie_reviews.load_data(seed=0)
    vectorize = en.text.TextVectorization(max_tokens=10_000, output_sequence_length=40)
    vectorize.adapt(x_train)
    x = vectorize(x_train)
    cut = int(len(x) * 0.8)  # the task's validation_split=0.2
    x, y = x[:cut], y_train[:cut].astype(np.float32)
    model = en.Sequential(_text_model("lstm", vectorize.vocabulary_size(), 32, en.layers))
    model.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["acc"])
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    d.barrier()
    start = time.perf_counter()
    model.fit(x, y, epochs=epochs, batch_size=64, verbose=0)
    seconds = float(d.allreduce(np.array([time.perf_counter() - start]), op="max")[0])
    if d.is_main():
        print(json.dumps({"samples_per_s": epochs * len(x) / seconds, "seconds": seconds,
                          "steps": epochs * -(-len(x) // 64)}))


def allreduce(sizes):
    import engine as en
    d = en.distributed
    rows = []
    for name in sizes:
        buffer = np.ones(SIZES[name] // 4, np.float32)
        row = [name, SIZES[name]]
        for call in (d._allreduce_inplace, lambda b: d.iallreduce(b).wait()):
            call(buffer)
            # The same number of calls in every process (a count decided apart would deadlock).
            times = []
            for _ in range(max(5, min(200, 2**26 // SIZES[name]))):
                d.barrier()
                start = time.perf_counter()
                call(buffer)
                times.append(time.perf_counter() - start)
            worst = d.allreduce(np.array(times), op="max")  # the slowest process decides each call
            row.append(float(np.median(worst)))
        rows.append(row)
    if d.is_main():
        print(json.dumps(rows))


def step_times():
    """(fixed s, s per sample) of the main job's training step on one thread, from the median
    train_on_batch time at batch 8 and 64 (the optimizer's full-table update is in the fixed part)."""
    import engine as en
    from engine.tasks.movie_reviews import _text_model
    en.set_random_seed(0)
    model = en.Sequential(_text_model("lstm", 10_000, 32, en.layers))
    model.compile(optimizer="rmsprop", loss="binary_crossentropy")
    rng = np.random.default_rng(0)
    medians = {}
    for batch in (8, 64):
        x = rng.integers(1, 10_000, size=(batch, 40))
        y = rng.integers(0, 2, size=(batch, 1)).astype(np.float32)
        times = []
        for _ in range(30):
            start = time.perf_counter()
            model.train_on_batch(x, y)
            times.append(time.perf_counter() - start)
        medians[batch] = statistics.median(times[5:])
    per_sample = (medians[64] - medians[8]) / 56
    print(json.dumps([medians[8] - 8 * per_sample, per_sample]))


def gradient_bytes():
    """Dense gradient bytes (float32) of the README's models and of a large LSTM language model."""
    import engine as en
    from engine.tasks.movie_reviews import _text_model
    L = en.layers
    models = {f"movie_reviews {kind}": _text_model(kind, 10_000, 32, L)
              for kind in ("lstm", "gru", "bilstm", "conv1d")}
    models["jfk_weather lstm"] = [L.LSTM(32), L.Dense(1)]
    models["large LSTM LM"] = [  # Embedding(50k, 512), 2 × LSTM(1024), Dense(50k)
        L.Embedding(50_000, 512), L.LSTM(1024, return_sequences=True), L.LSTM(1024), L.Dense(50_000)]
    sizes = {}
    for name, layers in models.items():
        model = en.Sequential(layers)
        model.build((None, 40, 14) if name.startswith("jfk") else (None, 40))
        sizes[name] = 4 * model.count_params()
    return sizes


def distinct_ids(rows_choices, draws=200):
    """{rows: mean count of distinct token ids in `rows` random sentences of the main job's
    data}: the rows of the Embedding gradient one process sends per step."""
    import engine as en
    (x_train, _), _ = en.datasets.movie_reviews.load_data(seed=0)
    vectorize = en.text.TextVectorization(max_tokens=10_000, output_sequence_length=40)
    vectorize.adapt(x_train)
    ids, rng = vectorize(x_train), np.random.default_rng(0)
    return {r: float(np.mean([len(np.unique(ids[rng.choice(len(ids), r, replace=False)]))
                              for _ in range(draws)])) for r in rows_choices}


def cost_model(alpha_shm, beta_shm):
    """Print the step-time model of docs/distributed.md for the main job and every network."""
    fixed, per_sample = _launch(1, 1, {}, "steps", "--worker")
    sizes = gradient_bytes()
    table = 10_000 * 32 * 4  # the main job's Embedding, gathered as rows while that is cheaper
    rows = distinct_ids(sorted({-(-64 // n) for n in RANKS}))

    def main_job(n, alpha, beta, ring=True):
        k = rows[-(-64 // n)]
        embedding = (_gather_seconds(n, k, 32 * 4 + 8, alpha, beta, ring) if 2 * n * k <= 10_000
                     else _allreduce_seconds(n, table, alpha, beta, ring))
        rest = sizes["movie_reviews lstm"] - table
        return embedding + _allreduce_seconds(n, rest, alpha, beta, ring) + _logs_seconds(n, alpha)

    one = fixed + per_sample * 64
    two = fixed + per_sample * 32 + main_job(2, alpha_shm, beta_shm)
    print(f"main job step on one thread: {fixed * 1e3:.2f} ms + {per_sample * 1e6:.1f} µs per sample; "
          f"distinct ids per process: {', '.join(f'{r} rows {k:.0f}' for r, k in rows.items())}; "
          f"this machine (α {alpha_shm * 1e6:.1f} µs, β {beta_shm / 1e9:.2f} GB/s): {one * 1e3:.2f} ms "
          f"on 1 process, {two * 1e3:.2f} ms predicted on 2\n")
    print("| exchange per step, ms | MB | network | " + " | ".join(f"N={n}" for n in RANKS[1:]) + " |")
    print("|---|---|---|" + "---|" * (len(RANKS) - 1))
    for network, (alpha, beta) in NETWORKS.items():
        cells = [f"{main_job(n, alpha, beta) * 1e3:.2f}" for n in RANKS[1:]]
        print(f"| main job as fit exchanges it (batch 64) | rows | {network} | " + " | ".join(cells) + " |")
        for name, nbytes in sizes.items():
            cells = [f"{(_allreduce_seconds(n, nbytes, alpha, beta) + _logs_seconds(n, alpha)) * 1e3:.2f}"
                     for n in RANKS[1:]]
            print(f"| {name}, all-reduced | {nbytes / 1e6:.2f} | {network} | " + " | ".join(cells) + " |")
    print("\n| main job, global batch 64: step ms (speedup) | " + " | ".join(f"N={n}" for n in RANKS) + " |")
    print("|---|" + "---|" * len(RANKS))
    for network, (alpha, beta) in NETWORKS.items():
        for ring in (True, False):
            cells = []
            for n in RANKS:
                step = fixed + per_sample * -(-64 // n) + (main_job(n, alpha, beta, ring) if n > 1 else 0.0)
                cells.append(f"{step * 1e3:.2f} ({one / step:.1f}×)")
            latency = "ring latency" if ring else "log2 N latency"
            print(f"| {network}, {latency} | " + " | ".join(cells) + " |")


def _allreduce_seconds(n, nbytes, alpha, beta, ring=True):
    """An all-reduce moving 2(N−1)/N·bytes through each process: a ring's 2(N−1) message
    latencies, or (ring=False) the 2·log2 N of the recursive-halving algorithms MPI picks for
    small messages and many processes."""
    steps = 2 * (n - 1) if ring else 2 * np.log2(n)
    return steps * alpha + 2 * (n - 1) / n * nbytes / beta


def _gather_seconds(n, rows, row_bytes, alpha, beta, ring=True):
    """Row all-gathers (counts, ids, rows: 3 collectives of N−1 ring steps, or log2 N
    recursive-doubling steps): each process receives every other process's rows."""
    steps = 3 * ((n - 1) if ring else np.log2(n))
    return steps * alpha + (n - 1) * rows * row_bytes / beta


def _logs_seconds(n, alpha):
    """The step's small all-reduce of losses and metrics (recursive doubling: log2 N messages)."""
    return np.log2(n) * alpha


def _launch(processes, threads, extra, *args):
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), **extra,
           "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    command = [sys.executable, str(HERE), *args]
    if processes > 1:
        mpiexec = Path(sys.executable).parent / "mpiexec"
        mpiexec = str(mpiexec) if mpiexec.exists() else shutil.which("mpiexec")
        if mpiexec is None:
            raise SystemExit("bench_distributed: mpiexec not found: pip install \"seqfuse[mpi]\"")
        command = [mpiexec, "-n", str(processes), *command]
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=HERE.parent)
    if done.returncode != 0:
        raise SystemExit(f"bench_distributed: {' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", nargs="?", default="all",
                        choices=["all", "throughput", "allreduce", "model", "steps"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per run")
    parser.add_argument("--sizes", default=",".join(SIZES), help=f"all-reduce sizes from {list(SIZES)}")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = args.sizes.split(",")
    unknown = set(sizes) - set(SIZES)
    if unknown:
        parser.error(f"--sizes: unknown {sorted(unknown)}; choose from {list(SIZES)}")
    if args.worker:
        return {"throughput": lambda: throughput(args.epochs), "allreduce": lambda: allreduce(sizes),
                "steps": step_times}[args.part]()
    stamp = time.strftime("%Y-%m-%d %H:%MZ", time.gmtime())
    print(f"{stamp}; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f} at the start "
          "(the machine is shared: other jobs slow some rounds)\n")
    if args.part in ("all", "throughput"):
        results = {name: [] for name in CONFIGS}
        for _ in range(args.rounds):
            for name, (processes, threads, extra) in CONFIGS.items():
                results[name].append(_launch(processes, threads, extra, "throughput", "--worker",
                                             "--epochs", str(args.epochs))["samples_per_s"])
        # Other jobs slow a configuration in some rounds and not others: the best round is the
        # closest to a quiet machine.
        base = max(results["1 process × 2 threads"])
        print("| configuration | samples/s, best round | vs 1 × 2 threads (best) | median | each round |")
        print("|---|---|---|---|---|")
        for name, values in results.items():
            print(f"| {name} | {max(values):,.0f} | {max(values) / base:.2f} | "
                  f"{statistics.median(values):,.0f} | {', '.join(f'{v:,.0f}' for v in values)} |")
        print()
    if args.part in ("all", "allreduce", "model"):
        if args.part == "model":
            sizes = ["1K", "16M"]
        rows = _launch(2, 1, {}, "allreduce", "--worker", "--sizes", ",".join(sizes))
        print("| bytes | blocking (fit) | bandwidth | non-blocking (overlap) | bandwidth |")
        print("|---|---|---|---|---|")
        for name, nbytes, blocking, nonblocking in rows:
            print(f"| {name} | {blocking * 1e6:,.1f} µs | {nbytes / blocking / 1e9:.2f} GB/s | "
                  f"{nonblocking * 1e6:,.1f} µs | {nbytes / nonblocking / 1e9:.2f} GB/s |")
        print()
        times = {name: blocking for name, _, blocking, _ in rows}
        if args.part != "allreduce" and {"1K", "16M"} <= set(times):
            # At N = 2 a ring makes 2 messages of half the bytes each way: α ≈ t(1K) / 2.
            cost_model(times["1K"] / 2, SIZES["16M"] / times["16M"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
