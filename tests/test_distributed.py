"""engine.distributed and data-parallel fit: one process here, and `mpiexec -n 2` / `-n 3`.

The mpi tests launch tests/distributed_cases.py (every model × optimizer case) once per
process count and compare each process's weights with every other's (bit for bit) and with a
single-process run of the same global batches (float32 reduction order: 1e-5 relative).
They skip cleanly without mpi4py or mpiexec (the `mpi` extra).
"""
from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest

import distributed_cases as cases
import engine as en
from engine.cli import main as cli_main
from engine.models import _data_parallel

HERE = Path(__file__).resolve().parent
RTOL = 1e-5  # float32 sums taken in another order (slices, then across processes)


# --- one process -------------------------------------------------------------------------

def test_plain_process_is_a_job_of_one_without_mpi4py():
    d = en.distributed
    assert (d.rank(), d.size(), d.local_rank(), d.is_main()) == (0, 1, 0, True)
    d.barrier()
    x = np.arange(4, dtype=np.float32)
    out = d.allreduce(x)
    assert out is not x and np.array_equal(out, x)
    np.testing.assert_array_equal(d.allreduce(np.array([1, 3]), op="mean"), [1.0, 3.0])
    assert d.allreduce(np.array([1, 3]), op="mean").dtype == np.float64
    np.testing.assert_array_equal(d.broadcast(x), x)
    np.testing.assert_array_equal(d.allgather(x[:, None]), x[:, None])
    np.testing.assert_array_equal(d.iallreduce(x.copy()).wait(), x)
    assert "mpi4py.MPI" not in sys.modules  # nothing here may start MPI in a plain process


def test_collectives_reject_bad_arguments():
    d = en.distributed
    with pytest.raises(ValueError, match="op must be one of sum, mean, max, got 'min'"):
        d.allreduce(np.ones(2), op="min")
    with pytest.raises(ValueError, match=r"root must be a rank in \[0, 1\), got 1"):
        d.broadcast(np.ones(2), root=1)
    with pytest.raises(ValueError, match="at least one axis"):
        d.allgather(np.float32(1))
    with pytest.raises(TypeError, match="numeric"):
        d.allreduce(np.array(["a"]))
    with pytest.raises(TypeError, match="int or float, got bool"):
        d.allreduce(np.array([True]))
    with pytest.raises(ValueError, match="'sum' or 'max'"):
        d.iallreduce(np.ones(2), op="mean")


def test_launcher_size_from_the_environment():
    assert en.distributed.launcher_size({}) == 1
    assert en.distributed.launcher_size({"OMPI_COMM_WORLD_SIZE": "4"}) == 4
    assert en.distributed.launcher_size({"PMI_SIZE": "8"}) == 8   # MPICH / Intel MPI / Slurm PMI-2
    assert en.distributed.launcher_size({"PMIX_RANK": "0"}) is None  # PMIx: ask MPI


@pytest.mark.parametrize("size", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("batch", [1, 2, 5, 7, 64])
def test_slices_partition_every_global_batch(batch, size):
    bounds = [_data_parallel.slice_bounds(batch, r, size) for r in range(size)]
    assert bounds[0][0] == 0 and bounds[-1][1] == batch
    assert all(stop == start for (_, stop), (start, _) in zip(bounds, bounds[1:]))
    lengths = [stop - start for start, stop in bounds]
    assert max(lengths) - min(lengths) <= 1


def test_nccl_calls_for_gpu_arrays(monkeypatch):
    """The host side of the NCCL path with stand-ins for CuPy and MPI (no GPU on this machine:
    the real NCCL calls are untested here): rank 0's unique id goes to every process, the
    communicator is made once, dtype and op map to NCCL's, and the result stays in place."""
    calls = []

    class Communicator:
        def __init__(self, size, unique_id, rank):
            calls.append(("init", size, unique_id, rank))

        def allReduce(self, send, receive, count, dtype, op, stream):
            calls.append(("allReduce", send, receive, count, dtype, op, stream))

        def bcast(self, buffer, count, dtype, root, stream):
            calls.append(("bcast", buffer, count, dtype, root, stream))

    nccl = types.SimpleNamespace(NcclCommunicator=Communicator, get_unique_id=lambda: b"id-of-rank-0",
                                 NCCL_SUM=0, NCCL_MAX=2, NCCL_FLOAT32=7, NCCL_FLOAT64=8)
    cuda = types.SimpleNamespace(nccl=nccl, get_current_stream=lambda: types.SimpleNamespace(ptr=99))
    cupy = types.ModuleType("cupy")
    cupy.cuda = cuda
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setitem(sys.modules, "cupy.cuda", cuda)

    class Array:  # what the NCCL path reads of a cupy.ndarray
        __module__ = "cupy"

        def __init__(self, dtype, size):
            self.dtype, self.size = np.dtype(dtype), size
            self.data = types.SimpleNamespace(ptr=1234)

    comm = types.SimpleNamespace(bcast=lambda value, root: calls.append(("mpi bcast", value, root)) or value)
    job = types.SimpleNamespace(comm=comm, rank=0, size=2, nccl=None)
    monkeypatch.setattr(en.distributed, "_job", job)
    monkeypatch.setattr(en.distributed, "_started", True)
    buffer = Array("float32", 10)
    assert en.distributed.iallreduce(buffer).wait() is buffer
    en.distributed.iallreduce(Array("float64", 3), op="max")
    en.distributed._nccl_call("bcast", Array("float32", 5), root=1)
    assert calls == [("mpi bcast", b"id-of-rank-0", 0), ("init", 2, b"id-of-rank-0", 0),
                     ("allReduce", 1234, 1234, 10, 7, 0, 99), ("allReduce", 1234, 1234, 3, 8, 2, 99),
                     ("bcast", 1234, 5, 7, 1, 99)]
    with pytest.raises(TypeError, match="NCCL takes"):
        en.distributed.iallreduce(Array("complex64", 2))


# --- under mpiexec -----------------------------------------------------------------------

def _mpiexec():
    """mpiexec next to this Python (the mpi extra's Open MPI wheel), else on PATH."""
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def _launch(n, *args, timeout=120, env=None, **popen):
    """`mpiexec -n n python args...` with what a root container and a 2-core machine need."""
    if importlib.util.find_spec("mpi4py") is None or _mpiexec() is None:
        pytest.skip("needs mpi4py and mpiexec: pip install \"seqfuse[mpi]\"")
    env = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMP_NUM_THREADS": "1", **(env or {})}
    command = [_mpiexec(), "-n", str(n), "--oversubscribe", sys.executable, *map(str, args)]
    # Started in tests/, so `python -m engine` and `-c` import the engine pytest imports (the
    # installed one, or PYTHONPATH's), not a source tree without its built extension.
    if popen:
        return subprocess.Popen(command, env=env, cwd=HERE, **popen)
    return subprocess.run(command, env=env, cwd=HERE, capture_output=True, text=True, timeout=timeout)


# Buckets of a few hundred bytes, so that these small models still have several, taken in
# turn: after the backward on 2 processes, started from the hooks during it on 3.
BUCKETS = {2: {"SEQFUSE_BUCKET_MB": "0.002"}, 3: {"SEQFUSE_BUCKET_MB": "0.0005", "SEQFUSE_OVERLAP": "1"}}


@functools.lru_cache(maxsize=None)
def _launched(n, tmp):
    out = Path(tmp) / f"n{n}"
    out.mkdir()
    done = _launch(n, HERE / "distributed_cases.py", out, env=BUCKETS[n])
    assert done.returncode == 0, done.stderr[-3000:]
    return ([dict(np.load(out / f"rank{r}.npz")) for r in range(n)],
            [json.loads((out / f"rank{r}.json").read_text()) for r in range(n)], out)


@functools.lru_cache(maxsize=None)
def _single(model_name, optimizer_name):
    return cases.run(model_name, optimizer_name)


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    return functools.partial(_launched, tmp=str(tmp_path_factory.mktemp("mpi")))


@pytest.mark.mpi
@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("model_name,optimizer_name", cases.CASES)
def test_fit_matches_one_process(launched, n, model_name, optimizer_name):
    weights, reports, _ = launched(n)
    key = f"{model_name}-{optimizer_name}"
    single_weights, single_history, single_result = _single(model_name, optimizer_name)
    for i, expected in enumerate(single_weights):
        ours = [w[f"{key}-{i}"] for w in weights]
        for r, w in enumerate(ours[1:], 1):
            assert np.array_equal(w, ours[0]), f"{key} weight {i}: rank {r} differs from rank 0"
        scale = max(float(np.abs(expected).max()), 1e-3)
        assert np.abs(ours[0] - expected).max() <= RTOL * scale, f"{key} weight {i}"
    for report in reports:
        history = report["history"][key]
        assert history.keys() == single_history.keys()
        for name, values in single_history.items():
            np.testing.assert_allclose(history[name], values, rtol=RTOL, atol=1e-6, err_msg=name)
        for name, value in single_result.items():
            assert report["evaluate"][key][name] == pytest.approx(value, rel=RTOL, abs=1e-6), name


@pytest.mark.mpi
@pytest.mark.parametrize("n", [2, 3])
def test_freezing_a_layer_between_fits(launched, n):
    weights, _, _ = launched(n)
    expected = cases.refit_frozen()
    for i, w in enumerate(expected):
        ours = weights[0][f"frozen-{i}"]
        assert np.abs(ours - w).max() <= RTOL * max(float(np.abs(w).max()), 1e-3), i
    frozen = len(expected) // 2  # the second fit left the embedding (weight 0) as the first did
    assert np.array_equal(weights[0][f"frozen-{frozen}"], weights[0]["frozen-0"])


@pytest.mark.mpi
@pytest.mark.parametrize("n", [2, 3])
def test_weights_agree_after_every_step_and_collectives(launched, n):
    _, reports, _ = launched(n)
    for r, report in enumerate(reports):
        assert report["in_step"] == {"dense": [True] * 5, "embedding_sparse": [True] * 5}
        c = report["collectives"]
        assert (c["rank"], c["size"]) == (r, n)
        assert c["sum"] == [n * (n - 1) / 2, n]
        assert c["mean"] == [(n - 1) / 2, 1.0]
        assert c["max"] == [n - 1, 0]
        assert c["broadcast"] == [0, n, 2 * n]
        assert c["allgather"] == [[q, q] for q in range(n) for _ in range(q + 1)]
        assert "same shape and dtype" in c["mismatch"] and f"rank {r} has ({r + 1},)" in c["mismatch"]


@pytest.mark.mpi
@pytest.mark.parametrize("n", [2, 3])
def test_callback_files_are_written_once_by_rank_0(launched, n):
    _, reports, out = launched(n)
    rows = (out / "log.csv").read_text().splitlines()
    assert rows[0] == "epoch,acc,loss,val_acc,val_loss" and len(rows) == 1 + cases.EPOCHS
    history = reports[0]["csv_history"]
    for epoch, row in enumerate(rows[1:]):
        fields = row.split(",")
        assert fields[:3] == [str(epoch), repr(history["acc"][epoch]), repr(history["loss"][epoch])]
    assert sorted(p.name for p in out.glob("checkpoint-*.npz")) == [
        f"checkpoint-{e}.npz" for e in range(1, cases.EPOCHS + 1)]
    assert not list(out.glob("*.tmp"))


FAILING = """
import numpy as np, engine as en
class Fail(en.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if en.distributed.rank() == 1:
            raise RuntimeError("rank one fails on purpose")
model = en.Sequential([en.layers.Dense(1)])
model.compile(optimizer="sgd", loss="mse")
x = np.ones((64, 3), "float32")
model.fit(x, x[:, :1], epochs=1000, batch_size=8, verbose=0, callbacks=[Fail()])
"""


@pytest.mark.mpi
def test_an_exception_on_one_rank_ends_the_job_with_its_message():
    # Rank 0 goes on into the next epoch's collectives: without the abort it would wait forever.
    start = time.perf_counter()
    done = _launch(2, "-c", FAILING, timeout=60)
    assert done.returncode != 0
    assert "rank one fails on purpose" in done.stderr
    assert "uncaught RuntimeError on rank 1 of 2" in done.stderr
    assert time.perf_counter() - start < 60


WAITING = """
import os, numpy as np, engine as en
print("ready", os.getpid(), flush=True)
model = en.Sequential([en.layers.Dense(1)])
model.compile(optimizer="sgd", loss="mse")
x = np.ones((64, 3), "float32")
model.fit(x, x[:, :1], epochs=10**6, batch_size=8, verbose=0)
"""


@pytest.mark.mpi
def test_ctrl_c_stops_every_rank():
    with _launch(2, "-c", WAITING, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as job:
        try:
            pids = [int(job.stdout.readline().split()[1]) for _ in range(2)]
            os.kill(job.pid, signal.SIGINT)  # what Ctrl-C sends mpiexec
            assert job.wait(timeout=30) != 0
        finally:
            if job.poll() is None:
                job.kill()
                job.wait()
    deadline = time.perf_counter() + 10
    while any(_alive(pid) for pid in pids) and time.perf_counter() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in pids)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


TRAIN = ["train", "--epochs", "1", "--units", "4", "--sequence-length", "8", "--max-tokens", "500",
         "--verbose", "2", "--batch-size", "256"]


@pytest.mark.mpi
def test_cli_train_prints_the_one_process_report_once(tmp_path, capsys):
    history, model = tmp_path / "history.json", tmp_path / "model.npz"
    done = _launch(2, "-m", "engine", *TRAIN, "--history", history, "--save", model)
    assert done.returncode == 0, done.stderr[-3000:]
    assert cli_main(TRAIN) == 0
    single = capsys.readouterr().out
    assert "; data-parallel over 2 MPI processes\n" in done.stdout
    assert done.stdout.count("test: loss") == 1 and done.stdout.count(f"saved model to {model}\n") == 1
    ours = done.stdout.replace("; data-parallel over 2 MPI processes", "")
    ours = ours.replace(f"saved model to {model}\n", "")

    def timeless(text):
        return re.sub(r"\d+(\.\d+)?(ms|us|µs|s)\b(/step)?", "<time>", text)

    ours, single = timeless(ours), timeless(single)
    assert re.sub(r"[\d.]+", "#", ours) == re.sub(r"[\d.]+", "#", single)
    numbers = [[float(v) for v in re.findall(r"\d+\.\d+|\d+", text)] for text in (ours, single)]
    np.testing.assert_allclose(*numbers, atol=2e-4)  # printed to 4 places
    assert set(json.loads(history.read_text())["history"]) == {"loss", "acc", "val_loss", "val_acc"}
    assert en.load_model(model).count_params() > 0
