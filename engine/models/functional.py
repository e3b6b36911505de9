"""The Functional API: `Input`, layers called on symbolic tensors, `Model(inputs, outputs)`.

As in Keras (keras/src/models/functional.py): each symbolic tensor remembers the layer call
(Node) that made it; a model is the ordered list of nodes from its inputs to its outputs, and
running it is one walk over that list with a dict from symbolic tensor to value. The same walk
serves fit, evaluate, predict and summary. Layers called twice share their weights.

Example:
    >>> a, b = en.Input((None, 12)), en.Input((None, 12))
    >>> encode = en.layers.LSTM(32)                      # one encoder, two inputs: shared weights
    >>> score = en.layers.Dot(axes=1, normalize=True)([encode(a), encode(b)])
    >>> model = en.Model([a, b], en.layers.Dense(1, activation="sigmoid")(score))
    >>> model.compile("adam", "binary_crossentropy"); model.fit([xa, xb], y)
"""
from __future__ import annotations

import numpy as np

from ..layers import InputLayer, symbolic
from ..layers.base import unique_name
from ..layers.symbolic import KerasTensor
from ..tensor import Tensor
from . import saving
from .model import Model


def Input(shape, dtype=None, name=None) -> KerasTensor:
    """A symbolic input of `shape` (without the batch axis; None = any length).

    dtype defaults to float32; token ids for an Embedding can stay float32 (whole numbers are
    accepted) or be declared "int64".

    Example:
        >>> tokens = en.Input((None,), dtype="int64", name="tokens")
    """
    if isinstance(shape, (int, np.integer)) or shape is None:
        raise TypeError(f"Input: shape must be a tuple such as (None, 12), got {shape!r}")
    return InputLayer(shape=tuple(shape), dtype=dtype or "float32", name=name).output


class Functional(Model):
    """A model defined by its inputs and outputs (what `en.Model(inputs, outputs)` returns)."""

    def __init__(self, inputs, outputs, name=None):
        super().__init__(name=name or unique_name("Functional"))
        for t in symbolic.flatten(inputs) + symbolic.flatten(outputs):
            if not isinstance(t, KerasTensor):
                raise TypeError(f"Model: inputs and outputs must be symbolic tensors (from en.Input and "
                                f"layer calls), got {type(t).__name__}")
        for t in symbolic.flatten(inputs):
            if not isinstance(t._history[0], InputLayer):
                raise ValueError(f"Model: every input must come from en.Input, got {t.name} made by "
                                 f"{t._history[0].name}")
        self._inputs_struct, self._outputs_struct = inputs, outputs
        self.inputs, self.outputs = symbolic.flatten(inputs), symbolic.flatten(outputs)
        self._nodes, self._layers = _graph(self.inputs, self.outputs)
        self._input_names = (list(inputs) if isinstance(inputs, dict)
                             else [t._history[0].name for t in self.inputs])

    @property
    def layers(self):
        return list(self._layers)

    @property
    def output_names(self) -> list[str]:
        if isinstance(self._outputs_struct, dict):
            return list(self._outputs_struct)
        return [t._history[0].name for t in self.outputs]

    def call(self, x, training=False):
        values = {}
        for t, value in zip(self.inputs, self._flat_inputs(x)):
            if not isinstance(value, Tensor):
                value = Tensor(value, dtype=t.dtype if t.dtype.kind == "f" else None)
            values[id(t)] = value
        for node in self._nodes:
            if isinstance(node.layer, InputLayer):
                continue
            args = symbolic.map_tensors(lambda t: values[id(t)], node.args)
            kwargs = symbolic.map_tensors(lambda t: values[id(t)], node.kwargs)
            out = node.layer(args, training=training, **kwargs)
            for t, value in zip(node.outputs, symbolic.flatten(out)):
                values[id(t)] = value
        return symbolic.map_tensors(lambda t: values[id(t)], self._outputs_struct)

    def _flat_inputs(self, x) -> list:
        """x (one array, a list in input order, or a dict keyed by input name) -> input order."""
        if isinstance(x, dict):
            missing = [n for n in self._input_names if n not in x]
            if missing:
                raise ValueError(f"{self.name}: inputs {missing} are missing; got keys {sorted(x)}")
            return [x[n] for n in self._input_names]
        flat = list(x) if isinstance(x, (list, tuple)) else [x]
        if len(flat) != len(self.inputs):
            raise ValueError(f"{self.name}: expected {len(self.inputs)} inputs {self._input_names}, "
                             f"got {len(flat)}")
        for t, value in zip(self.inputs, flat):
            shape = np.shape(value.data if isinstance(value, Tensor) else value)
            if len(shape) != len(t.shape) or any(d is not None and d != s for d, s in zip(t.shape, shape)):
                raise ValueError(f"{self.name}: input {t.name} must have shape {t.shape}, got {shape}")
        return flat

    def summary(self, print_fn=print):
        """Layer, output shape, parameter count and inputs of every layer, as Keras prints it."""
        rows = [("Layer (type)", "Output Shape", "Param #", "Connected to")]
        for layer in self._layers:
            nodes = [n for n in self._nodes if n.layer is layer]
            shapes = {str([t.shape for t in n.outputs]) if len(n.outputs) > 1 else str(n.outputs[0].shape)
                      for n in nodes}
            inbound = [f"{t._history[0].name}[{t._history[1]}][{t._history[2]}]"
                       for n in nodes for t in n.inputs]
            rows.append((f"{layer.name} ({type(layer).__name__})",
                         shapes.pop() if len(shapes) == 1 else "multiple",
                         str(layer.count_params()), ", ".join(inbound) or "-"))
        self._print_table(rows, print_fn)

    def get_config(self) -> dict:
        """Keras 3's functional config: each layer with its inbound nodes, as symbolic tensors
        named by [layer name, node index, tensor index]; node indices count this model's calls."""
        local = {}  # id(node) -> index among this model's calls of its layer
        for node in self._nodes:
            local[id(node)] = sum(1 for n in self._nodes if n.layer is node.layer and id(n) in local)

        def history(t):
            layer, index, tensor = t._history
            return [layer.name, local[id(layer._inbound_nodes[index])], tensor]

        def tensor_config(t):
            return {"class_name": "__keras_tensor__",
                    "config": {"shape": list(t.shape), "dtype": t.dtype.name, "keras_history": history(t)}}

        layers = []
        for layer in self._layers:
            nodes = [n for n in self._nodes if n.layer is layer]
            inbound = [] if isinstance(layer, InputLayer) else [
                {"args": [symbolic.map_tensors(tensor_config, n.args)],
                 "kwargs": symbolic.map_tensors(tensor_config, n.kwargs)} for n in nodes]
            layers.append({**saving.layer_config(layer), "name": layer.name, "inbound_nodes": inbound})
        return {"class_name": "Functional",
                "config": {"name": self.name, "layers": layers,
                           "input_layers": symbolic.map_tensors(history, self._inputs_struct),
                           "output_layers": symbolic.map_tensors(history, self._outputs_struct)}}

    @classmethod
    def from_config(cls, config, layer_from_config):
        """Rebuild the graph of get_config(): every layer made once, its calls replayed in order."""
        config = config["config"]
        made, pending = {}, []  # (layer name, local node index) -> outputs
        layers = {}
        for entry in config["layers"]:
            if entry["class_name"] == "InputLayer":
                layer = InputLayer(**entry["config"])
                made[(layer.name, 0)] = [layer.output]
            else:
                layer = layer_from_config(entry)
                pending += [(layer, i, node) for i, node in enumerate(entry["inbound_nodes"])]
            layers[entry["name"]] = layer

        def resolve(item):
            if isinstance(item, dict) and item.get("class_name") == "__keras_tensor__":
                name, index, tensor = item["config"]["keras_history"]
                return made[(name, index)][tensor]
            if isinstance(item, dict):
                return {k: resolve(v) for k, v in item.items()}
            if isinstance(item, list):
                return [resolve(v) for v in item]
            return item

        def ready(item):
            if isinstance(item, dict) and item.get("class_name") == "__keras_tensor__":
                name, index, _ = item["config"]["keras_history"]
                return (name, index) in made
            if isinstance(item, dict):
                return all(ready(v) for v in item.values())
            if isinstance(item, list):
                return all(ready(v) for v in item)
            return True

        while pending:
            progress = [p for p in pending if ready(p[2]) and (p[1] == 0 or (p[0].name, p[1] - 1) in made)]
            if not progress:
                raise ValueError(f"load_model: the graph cannot be rebuilt; layers "
                                 f"{sorted({p[0].name for p in pending})} wait on inputs that never come")
            layer, index, node = progress[0]
            out = layer(resolve(node["args"][0]), **resolve(node["kwargs"]))
            made[(layer.name, index)] = symbolic.flatten(out)
            pending.remove(progress[0])

        def history(h):
            return made[(h[0], h[1])][h[2]]

        inputs = _map_histories(history, config["input_layers"])
        outputs = _map_histories(history, config["output_layers"])
        return cls(inputs, outputs, name=config["name"])


def _map_histories(fn, item):
    """input_layers / output_layers: one [name, node, tensor] triple, a list or a dict of them."""
    if isinstance(item, dict):
        return {k: _map_histories(fn, v) for k, v in item.items()}
    if isinstance(item, list) and len(item) == 3 and isinstance(item[0], str):
        return fn(item)
    return [_map_histories(fn, v) for v in item]


def _graph(inputs, outputs):
    """(nodes, layers) from `inputs` to `outputs`, in Keras 3's order (keras/src/ops/function.py
    map_graph): a depth-first walk from the outputs, then nodes and layers by decreasing depth,
    ties in walk order. Nodes run in that order; layers (and so weights) are listed in it, so
    get_weights/set_weights line up with a Keras model built the same way."""
    input_ids = {id(t) for t in inputs}
    finished, in_progress, post_order, walk_index = set(), set(), [], {}

    def parent(t):
        layer, index, _ = t._history
        return layer._inbound_nodes[index]

    def visit(t):
        node = parent(t)
        if id(node) in in_progress:
            raise ValueError("Model: the layer graph has a cycle")
        if id(node) in finished:
            return
        walk_index.setdefault(node.layer, len(walk_index))
        in_progress.add(id(node))
        if isinstance(node.layer, InputLayer) and id(t) not in input_ids:
            raise ValueError(f"Model: the outputs depend on input {t.name}, which is not among the model's inputs")
        if id(t) not in input_ids:
            for p in node.inputs:
                visit(p)
        in_progress.discard(id(node))
        finished.add(id(node))
        post_order.append(node)

    for t in outputs:
        visit(t)
    unused = [t.name for t in inputs if id(parent(t)) not in finished]
    if unused:
        raise ValueError(f"Model: inputs {unused} are not connected to the outputs")
    node_depth, layer_depth = {}, {}
    for node in reversed(post_order):
        depth = max(node_depth.setdefault(id(node), 0), layer_depth.get(node.layer, 0))
        layer_depth[node.layer] = node_depth[id(node)] = depth
        if not isinstance(node.layer, InputLayer):
            for p in node.inputs:
                key = id(parent(p))
                node_depth[key] = max(depth + 1, node_depth.get(key, 0))
    position = {id(node): i for i, node in enumerate(post_order)}
    nodes = sorted(post_order, key=lambda n: (-node_depth[id(n)], position[id(n)]))
    layers = sorted(layer_depth, key=lambda layer: (-layer_depth[layer], walk_index[layer]))
    return nodes, layers
