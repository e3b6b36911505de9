"""Model: compile / fit / evaluate / predict / summary / save, as in Keras.

Example:
    >>> model = en.Sequential([en.layers.Embedding(10_000, 32, mask_zero=True),
    ...                        en.layers.LSTM(32), en.layers.Dense(1, activation="sigmoid")])
    >>> model.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["acc"])
    >>> history = model.fit(x_train, y_train, epochs=10, batch_size=128, validation_split=0.2)
"""
from __future__ import annotations

import numpy as np

from .. import callbacks as callbacks_module
from .. import device as device_module
from .. import distributed
from .. import losses, metrics as metrics_module, optimizers
from ..random import generator
from ..layers import symbolic
from ..tensor import Tensor, array_module, no_grad
from . import _data, _data_parallel, _logs
from ._logs import Means as _Means, host_logs as _host_logs, on_gpu as _on_gpu


class Model:
    """Layers trained by one optimizer on one loss per output. `en.Model(inputs, outputs)` makes
    a functional model (engine/models/functional.py); subclasses define `call`.

    Example:
        >>> x = en.Input((None, 12)); model = en.Model(x, en.layers.Dense(9)(en.layers.LSTM(32)(x)))
    """

    def __new__(cls, *args, **kwargs):
        if cls is Model and (args or "inputs" in kwargs):
            from .functional import Functional
            return super().__new__(Functional)
        return super().__new__(cls)

    def __init__(self, name="model"):
        self.name = name
        self.trainable = True
        self.stop_training = False
        self.optimizer = self.loss = None
        self._metrics = []
        self._inbound_nodes = []  # calls on symbolic tensors: a model used as a layer
        self._initial_epoch = None   # set by BackupAndRestore.on_train_begin to resume

    _device = None   # set by to(); None: device_module.default_device()

    def __call__(self, x, training=False):
        if symbolic.any_symbolic(x):
            return symbolic.call(self, x, {})
        if self.device == "cuda":   # NumPy batches are copied to the device, as Keras converts
            x = _data.map_structure(lambda a: device_module.to_device(a, "cuda")
                                    if isinstance(a, np.ndarray) and a.dtype.kind in "biuf" else a, x)
        return self.call(x, training=training)

    @property
    def device(self) -> str:
        """Where the model computes: "cpu" or "cuda" (set by to(), else the default device)."""
        return self._device or device_module.default_device()

    def to(self, device: str) -> "Model":
        """Move every weight, its gradient and the optimizer's slots to "cpu" or "cuda", in
        place (the same Tensor objects, so a compiled optimizer keeps its references); layers
        built later are created there. fit/evaluate/predict then copy each NumPy batch to the
        device; predict still returns NumPy. Returns the model, as torch's Module.to.
        DeviceUnavailableError, with the reason, where the device is missing.

        Example:
            >>> model.to("cuda").fit(x_train, y_train, epochs=2)     # on a machine with a GPU
        """
        device_module.require(device, f"{self.name}.to")
        self._device = device
        for layer in self.layers:
            layer.to(device)
        if self.optimizer is not None:
            self.optimizer._move_slots(device)
        return self

    def call(self, x, training=False):
        raise NotImplementedError

    @property
    def layers(self):
        return []

    def _named_weights(self) -> list[tuple[str, Tensor]]:
        """(name, weight) in layer order; a layer used twice contributes its weights once."""
        seen, out = set(), []
        for layer in self.layers:
            for name, w in zip(layer._weight_names, layer.weights):
                if id(w) not in seen:
                    seen.add(id(w))
                    out.append((name, w))
        return out

    @property
    def weights(self) -> list[Tensor]:
        return [w for _, w in self._named_weights()]

    @property
    def _weight_names(self) -> list[str]:
        return [name for name, _ in self._named_weights()]

    @property
    def trainable_weights(self) -> list[Tensor]:
        if not self.trainable:
            return []
        keep = {id(w) for layer in self.layers for w in layer.trainable_weights}
        return [w for w in self.weights if id(w) in keep]

    def get_layer(self, name=None, index=None):
        """A layer by name or by position in `layers`, as Keras."""
        if (name is None) == (index is None):
            raise ValueError("get_layer: give exactly one of name and index")
        if index is not None:
            if not -len(self.layers) <= index < len(self.layers):
                raise ValueError(f"get_layer: index {index} is out of range for {len(self.layers)} layers")
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"get_layer: no layer named {name!r}; layers: {[l.name for l in self.layers]}")

    def get_weights(self):
        return [w.numpy().copy() for w in self.weights]

    def set_weights(self, weights):
        """Replace every weight (the order of get_weights); shapes must match exactly."""
        weights, named = list(weights), self._named_weights()
        if len(weights) != len(named):
            raise ValueError(f"{self.name}: set_weights expected {len(named)} arrays, got {len(weights)}")
        # Check every shape first so a bad list leaves the model untouched.
        for (name, w), value in zip(named, weights):
            if np.shape(value) != w.shape:
                raise ValueError(f"{self.name}: weight {name} must have shape {w.shape}, got {np.shape(value)}")
        for (_, w), value in zip(named, weights):
            w.data[...] = device_module.to_device(np.asarray(value), w.device)

    def count_params(self) -> int:
        return int(sum(w.size for w in self.weights))

    @property
    def output_names(self) -> list[str]:
        """One name per model output (loss, metric and log names use them with several outputs)."""
        return [self.layers[-1].name] if self.layers else ["output"]

    def compile(self, optimizer="rmsprop", loss=None, metrics=None):
        """optimizer: name or Optimizer; loss: Keras name or callable; metrics: names/callables.

        With several outputs, loss is one loss for all, a list (one per output) or a dict keyed
        by output name; metrics is a flat list (every output), a list of lists or a dict.
        """
        if loss is None:
            raise ValueError("compile: a loss is required (a Keras loss name or a callable)")
        names = self.output_names
        self.optimizer = optimizers.get(optimizer)
        per_loss = _data.by_name(loss, names, "compile", "loss", broadcast=True)
        if any(spec is None for spec in per_loss):
            raise ValueError(f"compile: every output needs a loss; outputs {names}, got {loss!r}")
        self._losses = [(_loss_name(spec), losses.get(spec)) for spec in per_loss]
        self.loss = self._losses[0][1] if len(names) == 1 else loss
        self._loss_name = self._losses[0][0]
        nested = isinstance(metrics, dict) or (
            len(names) > 1 and isinstance(metrics, (list, tuple)) and metrics
            and all(isinstance(m, (list, tuple)) or m is None for m in metrics))
        per_metrics = (_data.by_name(metrics, names, "compile", "metrics") if nested
                       else [metrics] * len(names))
        self._metrics = [[metrics_module.get(m, loss_name) for m in (specs or [])]
                         for specs, (loss_name, _) in zip(per_metrics, self._losses)]

    def _check_compiled(self, what):
        if self.loss is None:
            raise RuntimeError(f"{what}: call compile(optimizer, loss, metrics) first")

    def _batches(self, x, y, batch_size, shuffle):
        n = _data.num_samples(x, "fit")
        # Under mpiexec every process walks rank 0's order (the same batches, sliced per process).
        order = distributed.broadcast(generator().permutation(n)) if shuffle else np.arange(n)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            yield _data.take(x, idx), (None if y is None else _data.take(y, idx))

    def _dataset(self, x, y, batch_size, shuffle):
        """Batches from arrays, or from a re-iterable of (x, y) batches (engine.data datasets)."""
        if y is None and not _data.is_arrays(x):
            return iter(x)
        return self._batches(x, y, batch_size, shuffle)

    def fit(self, x, y=None, batch_size=32, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, initial_epoch=0):
        """Train; returns a History (history.history maps loss/metric names to per-epoch lists).

        x: array [N, ...] with y [N, ...] (lists or dicts of arrays for several inputs or
        outputs), or a re-iterable of (x, y) batches.
        validation_split takes the last fraction of x/y before shuffling, as Keras.
        verbose: 0 silent, 1 or "auto" Keras's progress bar (one line per epoch in a log
        file), 2 one line per epoch. callbacks: en.callbacks instances (engine/callbacks.py
        lists the hooks and their logs). A NaN or infinite loss stops training with a message
        (the TerminateOnNaN that fit adds): that batch's update is skipped, the epoch is
        logged with its non-finite loss, and weights and checkpoints written so far are kept.
        Under `mpiexec -n N` training is data-parallel (models/_data_parallel.py): batch_size
        stays the global batch, every process computes a slice of it, logs cover the whole
        batch, and only rank 0 shows progress.
        """
        self._check_compiled("fit")
        _check_positive_int(batch_size, "fit", "batch_size")
        _check_verbose(verbose, "fit")
        verbose = verbose if distributed.is_main() else 0
        if isinstance(epochs, (bool, np.bool_)) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"fit: epochs must be a non-negative int, got {epochs!r}")
        if not 0 <= validation_split < 1:
            raise ValueError(f"fit: validation_split must be in [0, 1), got {validation_split}")
        if _data.is_arrays(x) or y is not None:
            x, y = _data.as_arrays(x, y, "fit")
            if validation_split:
                n = _data.num_samples(x, "fit")
                cut = int(n * (1 - validation_split))
                if cut == 0 or cut == n:
                    raise ValueError(f"fit: validation_split={validation_split} of {n} samples "
                                     f"leaves {cut} for training and {n - cut} for validation")
                validation_data = (_data.take(x, slice(cut, None)), _data.take(y, slice(cut, None)))
                x, y = _data.take(x, slice(None, cut)), _data.take(y, slice(None, cut))
        elif not hasattr(x, "__iter__"):
            raise TypeError(f"fit: x must be an array or an iterable of (x, y) batches, got {type(x).__name__}")
        elif validation_split:
            raise ValueError("fit: validation_split needs array inputs; pass validation_data with a dataset")
        self._build_for(x)
        replica = _data_parallel.replica(self)
        if replica is not None:
            replica.begin()
        callbacks = callbacks_module.CallbackList(
            callbacks, add_history=True, add_progbar=verbose != 0, add_terminate_on_nan=True, model=self,
            verbose=verbose, epochs=epochs, steps=_num_batches(x, batch_size))
        self.stop_training, self._initial_epoch, logs = False, None, {}
        callbacks.on_train_begin()
        for epoch in range(self._initial_epoch or initial_epoch, epochs):
            callbacks.on_epoch_begin(epoch)
            logs = self._train_epoch(x, y, batch_size, shuffle, callbacks)
            if validation_data is not None and not self.stop_training:
                data = validation_data if isinstance(validation_data, tuple) else (validation_data,)
                values = self.evaluate(*data, batch_size=batch_size, callbacks=callbacks, return_dict=True)
                logs.update({f"val_{k}": v for k, v in values.items()})
            callbacks.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        callbacks.on_train_end(logs)
        return callbacks.history

    def _build_for(self, x):
        """Create the weights and the optimizer's slots before training starts, as Keras's fit,
        so on_train_begin callbacks (BackupAndRestore) find them: a forward pass on one sample."""
        # A dataset is not read here: iterating it would draw from its own shuffling generator.
        if not self.weights and _data.is_arrays(x) and _data.num_samples(x, "fit"):
            with no_grad():
                self(_data.take(x, slice(0, 1)))
        self.optimizer.build(self.trainable_weights)

    def _train_epoch(self, x, y, batch_size, shuffle, callbacks) -> dict:
        """One pass over the data; logs are weighted means over the batches, as Keras."""
        means = _Means()
        for batch, (xb, yb) in enumerate(self._dataset(x, y, batch_size, shuffle)):
            callbacks.on_train_batch_begin(batch)
            means.add(*self._train_step(xb, yb))
            callbacks.on_train_batch_end(batch, means.result())
            if self.stop_training:
                break
        if not means.seen:
            raise ValueError("fit: the training data is empty")
        return means.result()

    def train_on_batch(self, x, y) -> dict:
        """One optimizer step on one batch; returns {"loss": ..., metric: ...}.

        A non-finite loss skips the step, so the weights stay as they were.
        """
        return _host_logs(self._train_step(x, y)[0])

    def _train_step(self, x, y):
        """(logs, weight of each log entry) for one optimizer step on one batch; under mpiexec
        this process computes its slice, and logs and gradients are summed over all of them."""
        replica = _data_parallel.replica(self)
        if replica is not None:
            x, y = replica.local_batch(x, y, "fit")
        out = self(x, training=True)
        params = self.trainable_weights  # after the call: the first call builds the layers
        for p in params:
            p.grad = None
        terms, logs, weights = self._loss_terms(y, out, "fit")
        if _on_gpu(logs["loss"]) and replica is None:
            # No host round trip: the update kernels read the finite flag on the device and
            # write nothing for a non-finite loss (optimizer iterations still count the step).
            _sum([term.value for term in terms]).backward()
            ok = array_module(logs["loss"]).isfinite(logs["loss"])
            self.optimizer._apply([(p.grad, p) for p in params if p.grad is not None], ok=ok)
            return logs, weights
        if replica is not None:
            logs, weights = replica.backward(terms, logs, weights, params)
        elif np.isfinite(logs["loss"]):
            _sum([term.value for term in terms]).backward()
        if np.isfinite(logs["loss"]):
            self.optimizer.step(params)
        return logs, weights

    def _loss_and_metrics(self, y, out, what):
        """(total loss Tensor, logs, weights): each output's loss is masked by the output's mask
        (a sequence output of a masked model), and so are its metrics, as Keras."""
        terms, logs, weights = self._loss_terms(y, out, what)
        return _sum([term.value for term in terms]), logs, weights

    def _loss_terms(self, y, out, what):
        """_loss_and_metrics with each output's loss apart: (terms, logs, weights), terms
        holding each output's _data.LossTerm (data-parallel steps weight them one by one)."""
        return _logs.loss_terms(self, y, out, what)

    def evaluate(self, x, y=None, batch_size=32, verbose="auto", callbacks=None, return_dict=False):
        """Loss and metrics over the data (size-weighted mean of batches).

        Returns the loss alone (a float) when compiled without metrics, else
        [loss, metric, ...] in compile's order; return_dict=True gives {name: value}.
        verbose and callbacks (on_test_* hooks) as in fit.
        """
        self._check_compiled("evaluate")
        _check_positive_int(batch_size, "evaluate", "batch_size")
        _check_verbose(verbose, "evaluate")
        if _data.is_arrays(x) or y is not None:
            x, y = _data.as_arrays(x, y, "evaluate")
        verbose = verbose if distributed.is_main() else 0
        replica = _data_parallel.replica(self)  # under mpiexec: slices of each batch, sums at the end
        if replica is not None:
            replica.begin()
        if not isinstance(callbacks, callbacks_module.CallbackList):   # fit passes its own
            callbacks = callbacks_module.CallbackList(callbacks, add_progbar=verbose != 0, model=self,
                                                      verbose=verbose, epochs=1, steps=_num_batches(x, batch_size))
        means = _Means()
        callbacks.on_test_begin()
        with no_grad():
            for batch, (xb, yb) in enumerate(self._dataset(x, y, batch_size, shuffle=False)):
                callbacks.on_test_batch_begin(batch)
                if replica is not None:
                    xb, yb = replica.local_batch(xb, yb, "evaluate")
                terms, logs, weights = self._loss_terms(yb, self(xb), "evaluate")
                if replica is not None:
                    replica.collect(terms, logs, weights)
                if replica is None or not replica.stand_in:  # under mpiexec: progress of this slice
                    means.add(logs, weights)
                callbacks.on_test_batch_end(batch, means.result())
        if replica is not None:
            means = replica.reduce_collected(_Means())
        if not means.seen:
            raise ValueError("evaluate: the data is empty")
        result = means.result()
        callbacks.on_test_end(result)
        if return_dict:
            return result
        return result["loss"] if len(result) == 1 else list(result.values())

    def predict(self, x, batch_size=32, verbose="auto", callbacks=None):
        """Model outputs for x [N, ...] (a list or dict of arrays for several inputs), batch by
        batch, as one numpy array [N, ...] (a list of arrays for several outputs).
        verbose and callbacks (on_predict_* hooks) as in fit."""
        _check_positive_int(batch_size, "predict", "batch_size")
        _check_verbose(verbose, "predict")
        x = _data.map_structure(lambda a: a.numpy() if isinstance(a, Tensor) else np.asarray(a), x)
        n = _data.num_samples(x, "predict")
        if n == 0:
            raise ValueError(f"predict: x must hold at least one sample, got shapes "
                             f"{[a.shape for a in _data.flatten(x)]}")
        callbacks = callbacks_module.CallbackList(callbacks, add_progbar=verbose != 0, model=self,
                                                  verbose=verbose, epochs=1, steps=_num_batches(x, batch_size))
        outs = []
        callbacks.on_predict_begin()
        with no_grad():
            for batch, start in enumerate(range(0, n, batch_size)):
                callbacks.on_predict_batch_begin(batch)
                out = self(_data.take(x, slice(start, start + batch_size)))
                outs.append(_data.map_structure(lambda t: t.numpy(), out))
                callbacks.on_predict_batch_end(batch, {"outputs": outs[-1]})
        callbacks.on_predict_end()
        return _concatenate(outs)

    def summary(self, print_fn=print):
        """Layer, output shape and parameter count of each layer (after the model is built)."""
        rows = [("Layer (type)", "Output Shape", "Param #")]
        shape = getattr(self, "_input_shape", None)
        for layer in self.layers:
            out = "?"
            if shape is not None:
                shape = layer.output_shape(shape)
                out = str(shape)
            rows.append((f"{layer.name} ({type(layer).__name__})", out, str(layer.count_params())))
        self._print_table(rows, print_fn)

    def _print_table(self, rows, print_fn):
        widths = [max(len(r[i]) for r in rows) + 2 for i in range(len(rows[0]))]
        line = "-" * sum(widths)
        print_fn(f'Model: "{self.name}"')
        print_fn(line)
        for i, r in enumerate(rows):
            print_fn("".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
            print_fn("=" * len(line) if i == 0 else line)
        trainable = sum(w.size for w in self.trainable_weights)
        print_fn(f"Total params: {self.count_params()}\nTrainable params: {trainable}\n"
                 f"Non-trainable params: {self.count_params() - trainable}")

    def save(self, path):
        """Architecture and weights in one file: a Keras 3 archive for `.keras` (keras.saving
        .load_model opens it; needs h5py), else seqfuse's .npz. Written to a temp file, then renamed.

        Example:
            >>> model.save("model.keras"); en.load_model("model.keras").predict(x)
        """
        from .saving import save_model
        save_model(self, path)

    def save_weights(self, path):
        """The weights alone, in Keras 3's `.weights.h5` layout (the name must end so).

        Example:
            >>> model.save_weights("model.weights.h5")   # Keras: keras_model.load_weights(...)
        """
        from .keras_format import save_weights
        save_weights(self, path)

    def load_weights(self, path):
        """Read a `.weights.h5` file (from save_weights or Keras) into this built model."""
        from .keras_format import load_weights
        load_weights(self, path)

    def torch_state_dict(self):
        """The weights as a PyTorch state_dict ({"<layer name>.<torch parameter>": tensor}).

        Keys follow a torch module holding one submodule per seqfuse layer, named as the
        layer: Dense -> nn.Linear ("dense.weight", "dense.bias"), Embedding -> nn.Embedding,
        Conv1D -> nn.Conv1d, LSTM/GRU/SimpleRNN -> nn.LSTM/GRU/RNN(batch_first=True)
        ("lstm.weight_ih_l0", ...), Bidirectional -> bidirectional=True (..._l0_reverse).
        See engine.convert.

        Example:
            >>> torch_module.load_state_dict(model.torch_state_dict())
        """
        from ..convert import model_to_torch
        return model_to_torch(self)

    def load_torch_state_dict(self, state_dict):
        """Set the weights from a PyTorch state_dict keyed as torch_state_dict() makes them.

        Example:
            >>> model.load_torch_state_dict(torch_module.state_dict())
        """
        from ..convert import model_from_torch
        model_from_torch(self, state_dict)


def _check_positive_int(value, what, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{what}: {name} must be a positive int, got {value!r}")


def _check_verbose(verbose, what):
    if isinstance(verbose, (bool, np.bool_)) or verbose not in (0, 1, 2, "auto"):
        raise ValueError(f"{what}: verbose must be 0, 1, 2 or \"auto\", got {verbose!r}")


def _num_batches(x, batch_size):
    """Batches per pass over x (arrays, or a dataset with a length); None when unknown."""
    if _data.is_arrays(x):
        return -(-_data.num_samples(x, "fit") // batch_size)
    return len(x) if hasattr(x, "__len__") else None


def _sum(tensors):
    total = tensors[0]
    for t in tensors[1:]:
        total = total + t
    return total


def _concatenate(batches):
    """Per-batch outputs (arrays, or lists/dicts of arrays) -> one output over all samples."""
    first = batches[0]
    if isinstance(first, dict):
        return {k: np.concatenate([b[k] for b in batches]) for k in first}
    if isinstance(first, (list, tuple)):
        return [np.concatenate([b[i] for b in batches]) for i in range(len(first))]
    return np.concatenate(batches)


def _loss_name(spec) -> str:
    return spec if isinstance(spec, str) else getattr(spec, "__name__", "loss")
