"""Small training runs for tests/test_distributed.py, the same in one process and under mpiexec.

`mpiexec -n N python tests/distributed_cases.py OUT_DIR` runs every case on N processes and
writes OUT_DIR/rank{r}.npz (weights after fit) and OUT_DIR/rank{r}.json (histories, evaluate
results, per-step weight checks, collective results); the test compares them with `run(case)`
in its own single process.
"""
from __future__ import annotations

import json
import sys
import zlib
from pathlib import Path

import numpy as np

import engine as en

L = en.layers
VOCAB, T = 200, 7  # few rows per batch: dense Embedding gradients travel as rows
# 22 samples, 16 after validation_split=0.25, in global batches of 7: 7, 7 and a short 2.
# Two processes split them 3+4, 3+4, 1+1; three 2+2+3, 2+2+3 and 0+1+1 (rank 0 has nothing).
# evaluate's 11 samples in batches of 5 end with one sample: every process but one has none.
SAMPLES, BATCH, EPOCHS = 22, 7, 2

class _WithUnusedWeight(L.Dense):
    """A Dense with one more weight that no call uses: it gets no gradient, so the optimizer
    must leave it alone (AdamW's weight decay included), as in one process."""

    def build(self, input_shape):
        super().build(input_shape)
        self.unused = self.add_weight("unused", (3,), "ones")


MODELS = {
    "dense": lambda: [L.Dense(6, activation="tanh"), L.Dense(1, activation="sigmoid")],
    "unused_weight": lambda: [_WithUnusedWeight(6, activation="tanh"), L.Dense(1, activation="sigmoid")],
    "embedding": lambda: [L.Embedding(VOCAB, 6, mask_zero=True), L.GlobalAveragePooling1D(),
                          L.Dense(1, activation="sigmoid")],
    "embedding_sparse": lambda: [L.Embedding(VOCAB, 6, sparse=True), L.GlobalAveragePooling1D(),
                                 L.Dense(1, activation="sigmoid")],
    "lstm": lambda: [L.Embedding(VOCAB, 6, mask_zero=True), L.LSTM(5), L.Dense(1, activation="sigmoid")],
    "gru": lambda: [L.GRU(4), L.Dense(1)],
    "conv1d": lambda: [L.Embedding(VOCAB, 6), L.Conv1D(4, 3, activation="relu"),
                       L.GlobalMaxPooling1D(), L.Dense(1, activation="sigmoid")],
    # A masked sequence output: the loss averages over kept steps, unevenly split by process.
    "lstm_sequence": lambda: [L.Embedding(VOCAB, 6, mask_zero=True), L.LSTM(5, return_sequences=True),
                              L.Dense(1)],
}


def _two_outputs():
    """Functional: a dict input; a masked per-step output and a pooled one, each with its loss."""
    tokens = en.Input((T,), dtype="int64", name="tokens")
    steps = L.LSTM(5, return_sequences=True)(L.Embedding(VOCAB, 6, mask_zero=True)(tokens))
    return en.Model({"tokens": tokens}, {"per_step": L.Dense(1, name="per_step")(steps),
                                         "label": L.Dense(1, activation="sigmoid", name="label")(
                                             L.GlobalAveragePooling1D()(steps))})


OPTIMIZERS = {"sgd": lambda: en.optimizers.SGD(0.1, momentum=0.9),
              "rmsprop": lambda: en.optimizers.RMSprop(0.01),
              "adam": lambda: en.optimizers.Adam(0.01),
              "adamw": lambda: en.optimizers.AdamW(0.01, weight_decay=0.01)}
CASES = ([(m, o) for m in MODELS if m != "unused_weight" for o in OPTIMIZERS]
         + [("two_outputs", "adam"), ("unused_weight", "adamw")])


def data(model_name, n=SAMPLES, seed=1):
    """(x, y) for a model: token ids (right-padded, varied lengths) or float sequences."""
    rng = np.random.default_rng(seed)
    if model_name in ("dense", "unused_weight"):
        x = rng.normal(size=(n, 5)).astype("float32")
        return x, (x[:, :1] + x[:, 1:2] > 0).astype("float32")
    if model_name == "gru":
        x = rng.normal(size=(n, T, 3)).astype("float32")
        return x, x[:, :, :1].mean(axis=1)
    ids = rng.integers(1, VOCAB, size=(n, T))
    for row, length in enumerate(rng.integers(1, T + 1, size=n)):
        ids[row, length:] = 0
    if model_name == "lstm_sequence":
        return ids, rng.normal(size=(n, T, 1)).astype("float32")
    if model_name == "two_outputs":
        return {"tokens": ids}, {"per_step": rng.normal(size=(n, T, 1)).astype("float32"),
                                 "label": (ids[:, :1] > VOCAB // 2).astype("float32")}
    return ids, (ids[:, :1] > VOCAB // 2).astype("float32")


LOSSES = {"gru": ("mse", ["mae"]), "lstm_sequence": ("mse", ["mae"]),
          "two_outputs": ({"per_step": "mse", "label": "binary_crossentropy"},
                          {"per_step": ["mae"], "label": ["acc"]})}


def run(model_name, optimizer_name):
    """Fit (with validation), then evaluate: (weights, history, evaluate result)."""
    en.set_random_seed(0)
    model = _two_outputs() if model_name == "two_outputs" else en.Sequential(MODELS[model_name]())
    loss, metrics = LOSSES.get(model_name, ("binary_crossentropy", ["acc"]))
    model.compile(optimizer=OPTIMIZERS[optimizer_name](), loss=loss, metrics=metrics)
    x, y = data(model_name)
    history = model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, validation_split=0.25, verbose=0)
    x_test, y_test = data(model_name, n=11, seed=2)
    result = model.evaluate(x_test, y_test, batch_size=5, verbose=0, return_dict=True)
    return model.get_weights(), history.history, result


def refit_frozen():
    """fit, freeze the first layer, fit again (a new bucket plan): the weights after each."""
    en.set_random_seed(0)
    model = en.Sequential(MODELS["lstm"]())
    model.compile(optimizer="adam", loss="binary_crossentropy")
    x, y = data("lstm")
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    first = model.get_weights()
    model.layers[0].trainable = False
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    return first + model.get_weights()


def _checksum(model) -> int:
    return zlib.crc32(b"".join(w.tobytes() for w in model.get_weights()))


def _steps_in_step(model_name):
    """train_on_batch steps: after every one, every process must hold the same bits."""
    en.set_random_seed(0)
    model = en.Sequential(MODELS[model_name]())
    model.compile(optimizer="adam", loss="binary_crossentropy")
    x, y = data(model_name)
    agreed = []
    for start in range(0, SAMPLES, 5):
        model.train_on_batch(x[start:start + 5], y[start:start + 5])
        sums = en.distributed.allgather(np.array([_checksum(model)], np.int64))
        agreed.append(bool((sums == sums[0]).all()))
    return agreed


def _collectives():
    """The public collectives on small arrays whose results the test knows in advance."""
    d = en.distributed
    r, n = d.rank(), d.size()
    out = {"rank": r, "size": n,
           "sum": d.allreduce(np.array([r, 1.0])).tolist(),
           "mean": d.allreduce(np.array([r, 1]), op="mean").tolist(),
           "max": d.allreduce(np.array([r, -r], np.int32), op="max").tolist(),
           "broadcast": d.broadcast(np.arange(3) * (r + 1), root=n - 1).tolist(),
           "allgather": d.allgather(np.full((r + 1, 2), r, np.float32)).tolist()}
    d.barrier()
    try:
        d.allreduce(np.zeros(r + 1))
    except ValueError as exc:
        out["mismatch"] = str(exc)
    return out


def main(out_dir):
    out_dir = Path(out_dir)
    rank = en.distributed.rank()
    weights, report = {}, {"collectives": _collectives(), "history": {}, "evaluate": {},
                           "in_step": {m: _steps_in_step(m) for m in ("dense", "embedding_sparse")}}
    for model_name, optimizer_name in CASES:
        key = f"{model_name}-{optimizer_name}"
        ws, history, result = run(model_name, optimizer_name)
        weights.update({f"{key}-{i}": w for i, w in enumerate(ws)})
        report["history"][key], report["evaluate"][key] = history, result
    # Files from callbacks: rank 0 writes them, once.
    model = en.Sequential(MODELS["dense"]())
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["acc"])
    x, y = data("dense")
    files = [en.callbacks.CSVLogger(out_dir / "log.csv"),
             en.callbacks.ModelCheckpoint(str(out_dir / "checkpoint-{epoch}.npz"), monitor="loss")]
    report["csv_history"] = model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, verbose=0,
                                      callbacks=files).history
    weights.update({f"frozen-{i}": w for i, w in enumerate(refit_frozen())})
    np.savez(out_dir / f"rank{rank}.npz", **weights)
    (out_dir / f"rank{rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
