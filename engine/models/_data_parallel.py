"""Model.fit, train_on_batch and evaluate across the processes of an MPI job (data parallelism).

Every process holds the whole model and walks the same global batches in the same order (the
shuffle is rank 0's, broadcast each epoch). Of a global batch of b samples, process r of N
takes rows [b·r//N, b·(r+1)//N). One training step:

1. forward on the slice; each output's loss and each metric on the slice;
2. backward of Σ_o (count_o on this process / count_o over all) · loss_o (count: the rows,
   or a masked output's kept entries), so that the sum of the processes' gradients is the
   gradient of the global batch's loss however unevenly the batch splits (N not dividing
   b, the last short batch, a slice with fewer kept entries);
3. dense gradients are summed in flat buckets of about BUCKET_MB (reverse layer order, the
   order backward finishes them), one all-reduce per bucket: after the backward by default,
   or with OVERLAP a non-blocking one started by a post-accumulate hook as soon as the
   bucket's last gradient is final (measured slower on this project's machine: see
   docs/distributed.md); row-sparse gradients (Embedding(sparse=True)) are coalesced and
   all-gathered as (ids, rows), never densified. An Embedding(sparse=False) table whose
   batches touch few of its rows (the main job's: ~350 of 10,000 per process) is computed
   as rows for the step, gathered likewise, and handed to the optimizer as the dense sum
   it expects: a few dozen KB exchanged instead of the whole table, and a faster backward;
4. one small all-reduce (float64) of loss·count and count per output, and metric·weight and
   weight per metric: every process gets the loss and metrics of the whole global batch, as
   one process computing it would, and all agree whether it is finite. It comes after the
   gradients when every output's count is its rows; a masked output's counts are needed
   for step 2, so then it comes first (and a non-finite loss skips the backward);
5. every process applies the same sums with its own optimizer, so the weights stay identical.

A process whose slice is empty (a last batch smaller than N) computes one stand-in row with
every count and weight zero, so that every process makes the same collective calls.
evaluate splits batches the same way and sums every batch's (value·weight, weight) pairs over
the processes in one all-reduce at the end. Weights are broadcast from rank 0 at the start of
fit and of evaluate (and before the first train_on_batch).
"""
from __future__ import annotations

import os

import numpy as np

from .. import distributed
from ..sparse import RowSparse
from ..tensor import array_module, no_grad
from . import _data

# Bucket size: large enough that the per-message latency is small next to its transfer
# time, small enough that the first buckets go out while the backward is still running.
BUCKET_MB = float(os.environ.get("SEQFUSE_BUCKET_MB", 4))
# Start each bucket's all-reduce during the backward (MPI_Iallreduce from the hook) rather
# than after it. Off by default: Open MPI's non-blocking all-reduce moves only inside MPI
# calls and is slower than the blocking one here (docs/distributed.md, "Overlap").
OVERLAP = os.environ.get("SEQFUSE_OVERLAP", "0") == "1"


def replica(model) -> "Replica | None":
    """The model's data-parallel state when this process is one of several; None otherwise."""
    if distributed.size() == 1:
        return None
    state = getattr(model, "_replica", None)
    if state is None:
        state = model._replica = Replica(model)
    return state


def slice_bounds(b: int, rank: int, size: int) -> tuple[int, int]:
    """Rows [start, stop) of a global batch of b that process `rank` of `size` computes."""
    return b * rank // size, b * (rank + 1) // size


class Replica:
    """One process's share of data-parallel training for one model."""

    def __init__(self, model):
        self.model = model
        self.synced = False  # weights broadcast since the last begin()
        self.stand_in = False  # this step's slice is empty: one stand-in row with zero weight
        self.rows = 0  # the global batch's
        self.reducer = None
        self._collected = []

    def begin(self) -> None:
        """Start of fit or evaluate: rank 0's weights go to every process before the first batch."""
        self.synced = False

    def local_batch(self, x, y, what):
        """This process's slice of a global batch (x, y) of `what` (fit or evaluate); for fit,
        the tables the plan exchanges as rows compute their gradient as rows until backward()."""
        self.rows = _data.num_samples(x, what)
        start, stop = slice_bounds(self.rows, distributed.rank(), distributed.size())
        self.stand_in = start == stop
        rows = slice(0, 1) if self.stand_in else slice(start, stop)
        x, y = _data.take(x, rows), _data.take(y, rows)
        if not self.synced:
            self._broadcast_weights(x)
        if what == "fit" and self.reducer is not None:
            self.reducer.rows_gradients(True)
        return x, y

    def _broadcast_weights(self, x):
        if any(not layer.built for layer in self.model.layers):
            with no_grad():  # the first call builds the layers (rank 0's values are kept below)
                self.model(x)
        weights = [w.data for w in self.model.weights]
        for group in _by_dtype(weights):
            flat = distributed.broadcast(_flatten([weights[i] for i in group]), root=0)
            _unflatten(flat, [weights[i] for i in group])
        self.synced = True

    def backward(self, terms, logs, weights, params):
        """The step's backward: each p.grad becomes the sum over the processes of their
        gradients of the global batch's loss; returns the global batch's (logs, weights).

        terms: each output's _data.LossTerm. The loss differentiated here is
        Σ_o (count_o here / count_o over all) · loss_o. Without masked outputs the counts are
        rows, known here, and the logs are summed after the backward (no wait between forward
        and backward); a masked output's count needs the sum first. A non-finite loss is
        differentiated all the same in the first case (the caller skips its update).
        """
        vector = self._vector(terms, logs, weights)
        if any(term.masked for term in terms):
            logs, weights, totals = _decode(distributed._allreduce_inplace(vector), terms, logs)
            if np.isfinite(logs["loss"]):
                self._sum_gradients(terms, totals, params)
            return logs, weights
        self._sum_gradients(terms, [self.rows] * len(terms), params)
        return _decode(distributed._allreduce_inplace(vector), terms, logs)[:2]

    def _sum_gradients(self, terms, totals, params):
        loss = None
        for term, total in zip(terms, totals):
            value = term.value * ((0 if self.stand_in else term.count) / total if total else 0.0)
            loss = value if loss is None else loss + value
        # A new plan when the trainable weights change (layer.trainable set between fits).
        if self.reducer is None or [id(p) for p in self.reducer.params] != [id(p) for p in params]:
            if self.reducer is not None:
                self.reducer.close()
            tables = {id(t) for t in _embedding_tables(self.model.layers)}
            self.reducer = _Reducer(params, int(BUCKET_MB * 2**20), OVERLAP, tables)
        self.reducer.backward(loss)

    def collect(self, terms, logs, weights) -> None:
        """evaluate: keep this batch's sums; reduce_collected() adds them over the processes."""
        self._collected.append(self._vector(terms, logs, weights))
        self._last = (terms, logs)

    def reduce_collected(self, means):
        """Sum every batch's vector over the processes (one all-reduce) and add the global
        batches to `means` in order, as one process evaluating them would; returns means."""
        if self._collected:
            sums = distributed._allreduce_inplace(np.stack(self._collected))
            terms, logs = self._last
            for row in sums:
                means.add(*_decode(row, terms, logs)[:2])
        self._collected = []
        return means

    def _vector(self, terms, logs, weights) -> np.ndarray:
        """Pairs (value·weight, weight), float64: the sample count, then loss and count per output,
        then value and weight per metric; zeros for a stand-in row."""
        names = {term.name for term in terms}
        pairs = [(1.0, weights["loss"])] + [(term.value.item(), term.count) for term in terms]
        pairs += [(logs[k], weights[k]) for k in logs if k != "loss" and k not in names]
        vector = np.array([[v * w if w else 0.0, w] for v, w in pairs], np.float64).reshape(-1)
        return np.zeros_like(vector) if self.stand_in else vector


def _decode(sums, terms, logs):
    """(logs, weights, per-output count totals) from a summed _vector, in `logs`' key order."""
    names = [term.name for term in terms]
    pairs = sums.reshape(-1, 2)
    samples, pairs = pairs[0][1], pairs[1:]
    losses = {name: (s / w if w else 0.0) for name, (s, w) in zip(names, pairs)}
    totals = [w for _, w in pairs[:len(names)]]
    rest = iter(pairs[len(names):])
    out, weights = {}, {}
    for key in logs:
        if key == "loss":
            out[key], weights[key] = sum(losses.values()), samples
        elif key in losses:
            out[key], weights[key] = losses[key], samples
        else:
            s, w = next(rest)
            out[key], weights[key] = (s / w if w else 0.0), w
    return out, weights, totals


class _Reducer:
    """Sums every process's gradients of `params` into their .grad during loss.backward().

    The first backward only records the order in which gradients become final and how each
    should travel (_kind); rank 0's record, broadcast, becomes the plan every process follows
    (so all start the same collectives in the same order): dense gradients in buckets of at
    most `bucket_bytes`, the others as gathered rows. From then on a post-accumulate hook
    copies each final gradient into its bucket; with `overlap`, a bucket whose gradients are
    all in starts its non-blocking all-reduce at once, if every bucket before it has started
    (the order is fixed); otherwise the buckets are all-reduced in order after the backward.
    """

    def __init__(self, params, bucket_bytes, overlap, tables):
        self.params, self.bucket_bytes, self.overlap = list(params), bucket_bytes, overlap
        self.tables = tables  # ids of dense Embedding tables: candidates to travel as rows
        self.plan = None
        self._record, self._active = [], False
        self._handles = [p.register_post_accumulate_grad_hook(self._on_gradient)
                         for p in self.params]
        self._index = {id(p): i for i, p in enumerate(self.params)}

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()

    def rows_gradients(self, on) -> None:
        """Ask the plan's ROWS tables to compute their gradient as rows (F.embedding reads it),
        for one step: on before its forward, off after its backward."""
        for i in self.plan.rows if self.plan is not None else ():
            self.params[i]._rows_gradient = on

    def backward(self, loss) -> None:
        if self.plan is not None:
            self._start_step()
        self._active = True
        try:
            loss.backward()
        finally:
            self._active = False
            self.rows_gradients(False)
        if self.plan is None:
            self.plan = _Plan.from_record(self._record, self.params, self.bucket_bytes, self.tables)
            self._start_step()
            for i in self._record:
                self._on_gradient(self.params[i], force=True)
        self._finish_step()

    def _on_gradient(self, param, force=False):
        if not (self._active or force):
            return
        i = self._index[id(param)]
        if self.plan is None:
            self._record.append(i)
            return
        bucket = self.plan.bucket_of.get(i)
        if bucket is None:  # a gradient that travels as rows
            return
        self._buffers[bucket].fill(i, param.grad)
        if self.overlap:
            self._start_ready(blocking=False)

    def _start_step(self):
        self._buffers = [_Buffer(bucket, self.params) for bucket in self.plan.buckets]
        self._next = 0

    def _start_ready(self, blocking):
        while self._next < len(self._buffers) and self._buffers[self._next].complete():
            self._buffers[self._next].start(blocking)
            self._next += 1
        if not blocking:
            for buffer in self._buffers[:self._next]:
                buffer.test()  # lets MPI move the started exchanges on while backward runs

    def _finish_step(self):
        for buffer in self._buffers[self._next:]:
            buffer.fill_missing()
        self._start_ready(blocking=True)
        for buffer in self._buffers:
            buffer.finish()
        for i in self.plan.sparse:
            self.params[i].grad = _gather_rows(self.params[i])
        for i in self.plan.rows:
            self.params[i].grad = _gather_rows(self.params[i]).to_dense()


DENSE, SPARSE, ROWS = 0, 1, 2  # how a gradient travels: in a bucket; as rows; as rows, then dense


def _kind(param, tables) -> int:
    """SPARSE for a RowSparse gradient; ROWS for a dense Embedding table whose gradient has
    few nonzero rows: gathering every process's rows (~N·k rows) costs less than all-reducing
    the table (~2V rows) while 2·N·k ≤ V; else DENSE."""
    grad = param.grad
    if isinstance(grad, RowSparse):
        return SPARSE
    if id(param) in tables:
        rows = int(grad.reshape(len(grad), -1).any(axis=1).sum())
        if 2 * distributed.size() * rows <= len(grad):
            return ROWS
    return DENSE


class _Plan:
    """Buckets of parameter indices (dense gradients, one dtype each), the sparse indices, and
    the dense tables exchanged as rows (see _kind)."""

    def __init__(self, buckets, sparse, rows):
        self.buckets, self.sparse, self.rows = buckets, sparse, rows
        self.bucket_of = {i: b for b, bucket in enumerate(buckets) for i in bucket}

    @classmethod
    def from_record(cls, record, params, bucket_bytes, tables):
        # Rank 0's record for everyone: [index, kind] in the order gradients became final.
        mine = np.array([[i, _kind(params[i], tables)] for i in record], np.int64)
        length = distributed.broadcast(np.array([len(mine)], np.int64))[0]
        if distributed.rank() != 0:
            mine = np.zeros((length, 2), np.int64)
        record = distributed.broadcast(mine.reshape(length, 2)).tolist()
        # Weights with no gradient yet go last, as dense: a later step may reach them.
        record += [[i, 0] for i in sorted(set(range(len(params))) - {i for i, _ in record})]
        buckets, by_kind, size, dtype = [], {SPARSE: [], ROWS: []}, 0, None
        for i, kind in record:
            if kind != DENSE:
                by_kind[kind].append(i)
                continue
            nbytes = params[i].data.nbytes
            if not buckets or size + nbytes > bucket_bytes or params[i].dtype != dtype:
                buckets.append([])
                size, dtype = 0, params[i].dtype
            buckets[-1].append(i)
            size += nbytes
        return cls(buckets, by_kind[SPARSE], by_kind[ROWS])


class _Buffer:
    """One bucket's flat gradient buffer during one step: the gradients, then one flag per
    parameter (1 where this process has its gradient), summed alike."""

    def __init__(self, indices, params):
        starts = np.cumsum([0] + [params[i].size for i in indices]).tolist()
        self.slots = {i: (params[i], start) for i, start in zip(indices, starts)}
        self.flags = {i: starts[-1] + k for k, i in enumerate(indices)}
        first = params[indices[0]]
        self.flat = array_module(first.data).empty(starts[-1] + len(indices), first.dtype)
        self.missing = set(indices)
        self.request = None

    def fill(self, i, grad):
        if isinstance(grad, RowSparse):  # the plan saw a dense gradient here: still correct
            grad = grad.to_dense()
        param, start = self.slots[i]
        self.flat[start:start + param.size] = grad.reshape(-1)
        self.flat[self.flags[i]] = 1
        self.missing.discard(i)

    def fill_missing(self):
        """A parameter no gradient reached on this process this step contributes zeros."""
        for i in self.missing:
            param, start = self.slots[i]
            self.flat[start:start + param.size] = 0
            self.flat[self.flags[i]] = 0
        self.missing.clear()

    def complete(self) -> bool:
        return not self.missing

    def start(self, blocking):
        if blocking:
            distributed._allreduce_inplace(self.flat)
        else:
            self.request = distributed.iallreduce(self.flat)

    def test(self):
        self.request.test()

    def finish(self):
        """Each parameter's summed gradient, or None where no process had one (as one process
        computing the whole batch would have none: the optimizer then leaves it alone)."""
        if self.request is not None:
            self.request.wait()
        flags = self.flat[len(self.flat) - len(self.flags):].tolist()
        for (param, start), present in zip(self.slots.values(), flags):
            param.grad = self.flat[start:start + param.size].reshape(param.shape) if present else None


def _gather_rows(param) -> RowSparse:
    """Every process's rows of a sparse gradient, coalesced here first (fewer rows to send)."""
    grad = param.grad
    xp = array_module(param.data)
    if grad is None:
        grad = RowSparse(xp.zeros(0, np.int64), xp.zeros((0,) + param.shape[1:], param.dtype), param.shape)
    elif not isinstance(grad, RowSparse):  # dense here: every row (the first step of a ROWS table)
        grad = RowSparse(xp.arange(param.shape[0]), grad, param.shape)
    grad = grad.coalesce()
    return RowSparse(*distributed._allgather_rows(grad.indices, grad.values), param.shape)


def _embedding_tables(layers) -> list:
    """The tables of the Embedding(sparse=False) layers among `layers`, nested models' too."""
    from ..layers import Embedding
    tables = []
    for layer in layers:
        if isinstance(layer, Embedding) and not layer.sparse and layer.built:
            tables.append(layer.embeddings)
        tables += _embedding_tables(getattr(layer, "layers", []))
    return tables


def _by_dtype(arrays) -> list[list[int]]:
    groups = {}
    for i, a in enumerate(arrays):
        groups.setdefault(a.dtype.str, []).append(i)
    return list(groups.values())


def _flatten(arrays):
    xp = array_module(arrays[0])
    return xp.concatenate([a.reshape(-1) for a in arrays])


def _unflatten(flat, arrays) -> None:
    start = 0
    for a in arrays:
        a[...] = flat[start:start + a.size].reshape(a.shape)
        start += a.size
