"""Data-parallel building blocks: which process this is, and collectives over all of them.

A job is started by an MPI launcher (`mpiexec -n N`, `srun`): every process runs the same
script. This module recognises the launcher from the environment it leaves, and then talks
over MPI (mpi4py, buffer methods) for NumPy arrays and over NCCL (CuPy) for GPU arrays. In a
plain process it is a job of one: rank() is 0, size() is 1, the collectives return copies of
their input, and mpi4py is never imported.

Every process must call a collective in the same order, with the same shape and dtype (except
allgather's first axis). An uncaught exception in any process ends the whole job, printing
that process's traceback (MPI_Abort), instead of leaving the others waiting for it.
`Model.fit` uses this module by itself under mpiexec: see engine/models/_data_parallel.py and
docs/distributed.md.

Example (`mpiexec -n 4 python script.py`):
    >>> import engine as en, numpy as np
    >>> en.distributed.rank(), en.distributed.size()
    (2, 4)                                     # on the third process
    >>> en.distributed.allreduce(np.array([1.0]))         # summed over the 4 processes
    array([4.])
    >>> en.distributed.broadcast(np.arange(3) * en.distributed.rank(), root=1)
    array([0, 1, 2])
"""
from __future__ import annotations

import os
import sys
import zlib

import numpy as np

# The job size every launcher leaves in its processes' environment: Open MPI; MPICH and
# Intel MPI (Hydra), Slurm's PMI-2; MVAPICH2.
_SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE")
# PMIx launchers (srun --mpi=pmix) leave a rank but no size: MPI itself is asked.
_RANK_VARIABLES = ("PMIX_RANK",)
_LOCAL_RANK_VARIABLES = ("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "MV2_COMM_WORLD_LOCAL_RANK",
                         "SLURM_LOCALID")
_OPS = ("sum", "mean", "max")


class _Job:
    """The MPI side of a job of several processes (None in a plain process)."""

    def __init__(self, MPI):
        self.MPI, self.comm = MPI, MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.local_rank = None  # asked of MPI once, when the launcher's variables do not say
        self.nccl = None  # set up on the first collective over a GPU array


_job: _Job | None = None
_started = False


def launcher_size(environ=os.environ) -> int | None:
    """The job size an MPI launcher left in `environ`: 1 without a launcher, None when a
    launcher started this process without saying how many (MPI must be asked)."""
    for name in _SIZE_VARIABLES:
        value = environ.get(name)
        if value:
            return int(value)
    return None if any(environ.get(name) for name in _RANK_VARIABLES) else 1


def init() -> None:
    """Join the job the launcher started; every function here calls it, so it is implicit.

    Under a launcher with more than one process this imports mpi4py (which initialises MPI)
    and makes an uncaught exception, Ctrl-C included, end every process of the job. In a
    plain process, or under `mpiexec -n 1`, it does nothing and imports nothing.

    Example:
        >>> en.distributed.init(); en.distributed.is_main()
        True
    """
    global _job, _started
    if _started:
        return
    _started = True
    if launcher_size() == 1:
        return
    MPI = _import_mpi()
    if MPI.COMM_WORLD.Get_size() > 1:
        _job = _Job(MPI)
        sys.excepthook = _abort_on_uncaught(sys.excepthook)


def _import_mpi():
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError(
            f"engine.distributed: this process was started by an MPI launcher (size "
            f"{launcher_size()}) but mpi4py is missing: pip install \"seqfuse[mpi]\"") from exc
    return MPI


def _abort_on_uncaught(previous):
    """An excepthook that prints as before, then ends every process (MPI_Abort)."""
    def hook(kind, value, traceback):
        sys.stderr.write(f"seqfuse: uncaught {kind.__name__} on rank {rank()} of {size()}; "
                         "ending every rank of the job\n")
        previous(kind, value, traceback)
        abort(130 if issubclass(kind, KeyboardInterrupt) else 1)
    return hook


def abort(code: int = 1) -> None:
    """End every process of the job now with exit status `code` (MPI_Abort).

    For an error one process meets alone: a process that simply returned would leave the
    others waiting in their next collective. In a plain process: sys.exit(code).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    init()
    if _job is None:
        sys.exit(code)
    _job.comm.Abort(code)


def rank() -> int:
    """This process's number in the job, 0 … size()−1 (0 in a plain process)."""
    init()
    return 0 if _job is None else _job.rank


def size() -> int:
    """The number of processes in the job (1 in a plain process)."""
    init()
    return 1 if _job is None else _job.size


def local_rank() -> int:
    """This process's number among the job's processes on this machine (to pick its GPU:
    `cupy.cuda.Device(en.distributed.local_rank() % cupy.cuda.runtime.getDeviceCount()).use()`)."""
    init()
    for name in _LOCAL_RANK_VARIABLES:
        if os.environ.get(name):
            return int(os.environ[name])
    if _job is None:
        return 0
    if _job.local_rank is None:  # a collective: every process asks at the same point
        _job.local_rank = _job.comm.Split_type(_job.MPI.COMM_TYPE_SHARED).Get_rank()
    return _job.local_rank


def is_main() -> bool:
    """True on rank 0, the process that prints, writes files and saves checkpoints."""
    return rank() == 0


def barrier() -> None:
    """Wait until every process has reached this call."""
    init()
    if _job is not None:
        _job.comm.Barrier()


def allreduce(array, op: str = "sum"):
    """`array` combined elementwise over every process: op "sum", "mean" or "max".

    array: a NumPy array (reduced over MPI) or a CuPy array (over NCCL), of the same shape
    and dtype on every process. Returns a new array; "mean" of integers is float64.

    Example:
        >>> en.distributed.allreduce(np.array([rank, 1]), op="max")   # 4 processes
        array([3, 1])
    """
    _check_op(op)
    array = _contiguous(array, "allreduce")
    if array.dtype.kind == "b":
        raise TypeError("allreduce: array must be int or float, got bool (cast it, e.g. to int64)")
    _check_same(array.shape, array.dtype, "allreduce", "array")
    out = _allreduce_inplace(array.copy(), "max" if op == "max" else "sum")
    if op == "mean":
        return out / size() if out.dtype.kind in "biu" else _divide(out, size())
    return out


def _allreduce_inplace(buffer, op="sum"):
    """Reduce `buffer` in place and return it: allreduce without the copy and the shape check,
    for fit's steps, where every process reaches the same call with the same shape."""
    init()
    if _job is None or buffer.size == 0:
        return buffer
    if _on_gpu(buffer):
        _nccl_call("allReduce", buffer, op)
    else:
        _job.comm.Allreduce(_job.MPI.IN_PLACE, buffer, _mpi_op(op))
    return buffer


def iallreduce(buffer, op: str = "sum") -> "_Request":
    """Start reducing `buffer` in place over every process and return at once ("sum" or "max").

    The buffer must not be read or written until `request.wait()` returns it; no shape check
    is made (every process must pass the same shape and dtype). With SEQFUSE_OVERLAP=1 fit
    starts its gradient buckets this way during the backward. Open MPI moves a non-blocking
    collective on only inside MPI calls (`request.test()` is one).

    Example:
        >>> request = en.distributed.iallreduce(grad_buffer)   # ... other work ...
        >>> summed = request.wait()
    """
    if op not in ("sum", "max"):
        raise ValueError(f"iallreduce: op must be 'sum' or 'max', got {op!r}")
    init()
    if _job is None or buffer.size == 0:
        return _Request(buffer)
    if _on_gpu(buffer):
        _nccl_call("allReduce", buffer, op)
        return _Request(buffer)  # NCCL runs in stream order: later kernels see the result
    return _Request(buffer, _job.comm.Iallreduce(_job.MPI.IN_PLACE, buffer, _mpi_op(op)))


class _Request:
    """A started iallreduce: wait() completes it and returns the reduced buffer."""

    def __init__(self, buffer, request=None):
        self.buffer, self._request = buffer, request

    def test(self) -> bool:
        """True once the reduction is done (also lets MPI progress it)."""
        return self._request is None or self._request.Test()

    def wait(self):
        if self._request is not None:
            self._request.Wait()
            self._request = None
        return self.buffer


def broadcast(array, root: int = 0):
    """Process `root`'s `array` on every process (same shape and dtype everywhere).

    Example:
        >>> en.distributed.broadcast(np.full(2, en.distributed.rank()), root=0)
        array([0, 0])
    """
    array = _contiguous(array, "broadcast")
    if isinstance(root, (bool, np.bool_)) or not isinstance(root, (int, np.integer)) \
            or not 0 <= root < size():
        raise ValueError(f"broadcast: root must be a rank in [0, {size()}), got {root!r}")
    _check_same(array.shape, array.dtype, "broadcast", "array")
    out = array.copy()
    if _job is not None and out.size:
        if _on_gpu(out):
            _nccl_call("bcast", out, root=root)
        else:
            _job.comm.Bcast(out, root=root)
    return out


def allgather(array):
    """Every process's `array` concatenated along the first axis, in rank order.

    The first axis may differ between processes (rows of a sparse gradient); the other axes
    and the dtype must not. GPU arrays travel through host memory (MPI).

    Example:
        >>> en.distributed.allgather(np.arange(en.distributed.rank() + 1))   # 3 processes
        array([0, 0, 1, 0, 1, 2])
    """
    return _allgather_rows(array)[0]


def _allgather_rows(*arrays):
    """allgather of several arrays with the same number of rows in each process (the ids of
    a sparse gradient and its rows): one exchange of row counts for all of them."""
    arrays = [_contiguous(a, "allgather") for a in arrays]
    if any(a.ndim == 0 for a in arrays):
        raise ValueError("allgather: array must have at least one axis (rows to gather), got a scalar")
    init()
    if _job is None:
        return [a.copy() for a in arrays]
    device = _on_gpu(arrays[0])
    hosts = [a.get() if device else a for a in arrays]
    # One small Allgather carries each process's row count and a signature of the rest.
    signature = _signature([(h.shape[1:], h.dtype.str) for h in hosts])
    info = np.array([len(hosts[0]), signature], np.int64)
    table = np.empty((size(), 2), np.int64)
    _job.comm.Allgather(info, table)
    if (table[:, 1] != signature).any():
        raise ValueError(f"allgather: every process must pass arrays with the same shape after the first "
                         f"axis and the same dtype; this one has "
                         f"{', '.join(f'{h.shape[1:]} {h.dtype}' for h in hosts)}")
    outs = []
    for host in hosts:
        row = int(np.prod(host.shape[1:], dtype=np.int64))
        out = np.empty((int(table[:, 0].sum()),) + host.shape[1:], host.dtype)
        _job.comm.Allgatherv(host, [out, table[:, 0] * row])
        outs.append(out)
    if device:
        import cupy
        return [cupy.asarray(out) for out in outs]
    return outs


def _check_op(op):
    if op not in _OPS:
        raise ValueError(f"allreduce: op must be one of {', '.join(_OPS)}, got {op!r}")


def _contiguous(array, what):
    if not _on_gpu(array):
        array = np.asarray(array)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"{what}: array must be numeric (bool, int or float), got dtype {array.dtype}")
    return array if array.flags.c_contiguous else array.copy()


def _divide(out, n):
    out /= n
    return out


def _signature(value) -> int:
    """A number that differs between processes when their shapes and dtypes differ."""
    return zlib.crc32(repr(value).encode())


def _check_same(shape, dtype, what, name):
    """Raise on every process alike when the processes disagree on shape or dtype (one tiny
    MAX all-reduce of +signature and −signature), instead of a hang or garbage."""
    init()
    if _job is None:
        return
    signature = _signature((tuple(shape), np.dtype(dtype).str))
    both = np.array([signature, -signature], np.int64)
    _job.comm.Allreduce(_job.MPI.IN_PLACE, both, _job.MPI.MAX)
    if both[0] != -both[1]:
        raise ValueError(f"{what}: every process must pass {name} with the same shape and dtype; "
                         f"they differ (rank {rank()} has {tuple(shape)} {np.dtype(dtype)})")


def _mpi_op(op):
    return _job.MPI.MAX if op == "max" else _job.MPI.SUM


def _on_gpu(array) -> bool:
    return type(array).__module__.startswith("cupy")


# NCCL for CuPy arrays. Not exercised on the machine this was written on (no GPU there);
# the unit tests cover the dtype table and the set-up order only.
_NCCL_TYPES = {"float16": "NCCL_FLOAT16", "float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64",
               "int32": "NCCL_INT32", "int64": "NCCL_INT64", "uint8": "NCCL_UINT8"}


def _nccl_communicator():
    """This process's NCCL communicator, made once: rank 0's unique id goes to every process
    over MPI, then each joins with its current CUDA device (one device per process)."""
    if _job.nccl is None:
        try:
            from cupy.cuda import nccl
        except ImportError as exc:
            raise ImportError("engine.distributed: collectives on GPU arrays need CuPy with NCCL: "
                              "pip install \"seqfuse[gpu]\"") from exc
        unique_id = _job.comm.bcast(nccl.get_unique_id() if _job.rank == 0 else None, root=0)
        _job.nccl = (nccl, nccl.NcclCommunicator(_job.size, unique_id, _job.rank))
    return _job.nccl


def _nccl_call(name, buffer, op="sum", root=0):
    import cupy
    nccl, communicator = _nccl_communicator()
    kind = _NCCL_TYPES.get(buffer.dtype.name)
    if kind is None:
        raise TypeError(f"engine.distributed: NCCL takes {sorted(_NCCL_TYPES)}, got {buffer.dtype}")
    stream = cupy.cuda.get_current_stream().ptr
    if name == "allReduce":
        nccl_op = nccl.NCCL_MAX if op == "max" else nccl.NCCL_SUM
        communicator.allReduce(buffer.data.ptr, buffer.data.ptr, buffer.size, getattr(nccl, kind),
                               nccl_op, stream)
    else:
        communicator.bcast(buffer.data.ptr, buffer.size, getattr(nccl, kind), root, stream)
