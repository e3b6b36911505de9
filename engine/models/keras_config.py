"""Model configs between seqfuse and Keras 3 (the config.json of a `.keras` archive).

Our get_config already has Keras's shape (Sequential's layer list, Functional's layers with
inbound nodes as `__keras_tensor__` histories); what differs is each layer's own config, mapped
here per class by tables: options both have (same meaning), options seqfuse lacks (accepted
only at the value that leaves them off, else a ValueError naming layer, option and value),
and options that cannot change a loaded model (initializers, the dropout seed).

Nothing here imports or runs anything named by the file: classes are looked up in `_OPTIONS`.
"""
from __future__ import annotations

from ..layers.core import ACTIVATIONS
from .saving import bad_file

_RNN = ("units", "dropout", "recurrent_dropout", "return_sequences", "return_state",
        "go_backwards", "use_bias", "zero_output_for_mask")
# Keras class -> the options it shares with our layer of the same name (same meaning).
_OPTIONS = {
    "Dense": ("units", "activation", "use_bias"),
    "Activation": ("activation",),
    "Dropout": ("rate", "noise_shape", "seed"),
    "Flatten": (),
    "Masking": ("mask_value",),
    "Embedding": ("input_dim", "output_dim", "mask_zero"),
    "SimpleRNN": _RNN,
    "LSTM": _RNN + ("unit_forget_bias",),
    "GRU": _RNN + ("reset_after",),
    "Bidirectional": ("merge_mode",),
    "Conv1D": ("filters", "kernel_size", "strides", "padding", "dilation_rate", "activation", "use_bias"),
    "MaxPooling1D": ("pool_size", "strides", "padding"),
    "GlobalMaxPooling1D": (),
    "GlobalAveragePooling1D": (),
    "Concatenate": ("axis",),
    "Add": (), "Subtract": (), "Multiply": (), "Average": (),
    "Dot": ("axes", "normalize"),
    "RepeatVector": ("n",),
    "TimeDistributed": (),
}
# Options seqfuse does not have, accepted at the value that leaves them off.
_OFF = {
    **dict.fromkeys(("kernel_regularizer", "recurrent_regularizer", "bias_regularizer",
                     "activity_regularizer", "embeddings_regularizer", "kernel_constraint",
                     "recurrent_constraint", "bias_constraint", "embeddings_constraint",
                     "quantization_config", "lora_rank"), None),
    "stateful": False, "data_format": "channels_last", "groups": 1, "keepdims": False,
    "sparse": False, "ragged": False, "optional": False,
}
_OFF_BY_CLASS = {"SimpleRNN": {"activation": "tanh"},
                 "LSTM": {"activation": "tanh", "recurrent_activation": "sigmoid"},
                 "GRU": {"activation": "tanh", "recurrent_activation": "sigmoid"}}
# Options that only choose starting weights (the file has the weights), the dropout stream,
# or how Keras runs the loop: any value gives the same model here.
_IGNORED = {"kernel_initializer", "recurrent_initializer", "bias_initializer",
            "embeddings_initializer", "unroll", "seed", "lora_alpha"}
_TUPLES = ("kernel_size", "strides", "dilation_rate", "pool_size")   # Keras (3,), ours 3
MODEL_CLASSES = ("Sequential", "Functional")
RECURRENT_CLASSES = ("SimpleRNN", "LSTM", "GRU")


def model_to_keras(model) -> dict:
    """The Keras 3 config.json dict of `model`: Sequential or Functional, nested models too."""
    kind = type(model).__name__
    if kind == "Sequential":
        return _sequential_to_keras(model)
    if kind == "Functional":
        return _functional_to_keras(model)
    raise ValueError(f"save: cannot write a {kind} model as .keras (Sequential or Functional only)")


def _sequential_to_keras(model) -> dict:
    config = model.get_config()
    shape = config["input_shape"]
    if not shape:
        raise ValueError(f"save: {model.name} is not built yet; call it on data or "
                         "model.build(input_shape) before saving as .keras")
    first = model.layers[0] if model.layers else None
    # Our Sequential keeps no input dtype; ids for an Embedding are declared int32, as Keras users do.
    dtype = "int32" if first is not None and not first._takes_floats() else "float32"
    layers = [_input_layer_to_keras({"batch_shape": shape, "dtype": dtype, "name": "input_layer"})]
    layers += [_entry_to_keras(layer, entry) for layer, entry in zip(model.layers, config["layers"])]
    return {"module": "keras", "class_name": "Sequential", "registered_name": None,
            "config": {"name": config["name"], "trainable": True, "dtype": _policy("float32"),
                       "layers": layers, "build_input_shape": shape},
            "build_config": {"input_shape": shape}}


def _functional_to_keras(model) -> dict:
    # Our get_config already follows Keras's functional format (inbound nodes as
    # __keras_tensor__ histories); only each layer's own config needs translating.
    config = model.get_config()["config"]
    by_name = {layer.name: layer for layer in model.layers}
    layers = []
    for entry in config["layers"]:
        if entry["class_name"] == "InputLayer":
            keras_entry = _input_layer_to_keras(entry["config"])
        else:
            keras_entry = _entry_to_keras(by_name[entry["name"]], entry)
        layers.append({**keras_entry, "name": entry["name"], "inbound_nodes": entry["inbound_nodes"]})
    return {"module": "keras.src.models.functional", "class_name": "Functional",
            "registered_name": "Functional",
            "config": {"name": config["name"], "trainable": True, "layers": layers,
                       "input_layers": config["input_layers"], "output_layers": config["output_layers"]},
            "build_config": {"input_shape": None}}


def _entry_to_keras(layer, entry) -> dict:
    return model_to_keras(layer) if type(layer).__name__ in MODEL_CLASSES else _layer_to_keras(entry)


def _input_layer_to_keras(ours) -> dict:
    return {"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
            "config": {"batch_shape": list(ours["batch_shape"]), "dtype": ours["dtype"], "sparse": False,
                       "ragged": False, "name": ours["name"], "optional": False}}


def model_from_keras(config, path) -> dict:
    """Our model config (as get_config makes it) for a Keras 3 config.json dict."""
    kind = config.get("class_name")
    if kind == "Sequential":
        return _sequential_from_keras(config, path)
    if kind == "Functional":
        return _functional_from_keras(config, path)
    raise bad_file(path, f"holds a Keras {kind!r} model; seqfuse reads Sequential and Functional "
                         "models (a subclassed model's code is not in the file)")


def _sequential_from_keras(config, path) -> dict:
    inner = config.get("config", {})
    entries = list(inner.get("layers", []))
    shape = inner.get("build_input_shape") or (config.get("build_config") or {}).get("input_shape")
    if entries and entries[0].get("class_name") == "InputLayer":
        shape = _input_layer_from_keras(entries.pop(0), path)["config"]["batch_shape"]
    if not shape:
        raise bad_file(path, "holds a Keras model that was never built (no input shape)")
    return {"class_name": "Sequential", "name": inner.get("name", "sequential"),
            "input_shape": list(shape), "layers": [_entry_from_keras(e, path) for e in entries]}


def _functional_from_keras(config, path) -> dict:
    inner = config.get("config", {})
    entries = inner.get("layers", [])
    by_name = {entry.get("name"): entry for entry in entries}
    masks = _mask_ops(entries, inner.get("output_layers"), path)
    layers = []
    for entry in entries:
        if entry.get("name") in masks:
            continue
        if entry.get("class_name") == "InputLayer":
            ours = _input_layer_from_keras(entry, path)
        else:
            ours = _entry_from_keras(entry, path)
        nodes = [_node_from_keras(node, entry, masks, by_name, path) for node in entry.get("inbound_nodes", [])]
        layers.append({**ours, "name": entry.get("name"), "inbound_nodes": nodes})
    return {"class_name": "Functional",
            "config": {"name": inner.get("name", "functional"), "layers": layers,
                       "input_layers": inner.get("input_layers"), "output_layers": inner.get("output_layers")}}


def _tensors(item) -> list:
    """The __keras_tensor__ entries anywhere inside a node's args or kwargs."""
    if isinstance(item, dict) and item.get("class_name") == "__keras_tensor__":
        return [item]
    values = item.values() if isinstance(item, dict) else item if isinstance(item, list) else []
    return [t for value in values for t in _tensors(value)]


def _history(tensor) -> tuple:
    return tuple(tensor["config"]["keras_history"])


def _mask_ops(entries, outputs, path) -> dict:
    """{name: history of ids} of the `not_equal(ids, 0)` ops Keras 3 writes into a functional
    graph to carry an Embedding(mask_zero=True) mask to the layers after it (as their mask=).
    seqfuse carries that mask itself, so these ops are dropped; used for anything else, they
    are refused."""
    masks = {}
    for entry in entries:
        nodes = entry.get("inbound_nodes") or []
        if entry.get("class_name") == "NotEqual" and len(nodes) == 1:
            args = nodes[0].get("args", [])
            if len(args) == 2 and args[1] == 0 and len(_tensors(args[0])) == 1:
                masks[entry.get("name")] = _history(_tensors(args[0])[0])
    for entry in entries:
        for node in entry.get("inbound_nodes") or []:
            kwargs = {k: v for k, v in (node.get("kwargs") or {}).items() if k != "mask"}
            for tensor in _tensors([node.get("args"), kwargs]):
                if _history(tensor)[0] in masks:
                    raise bad_file(path, f"has layer {entry.get('name')!r} taking {_history(tensor)[0]!r} "
                                         "(not_equal) as an input, which seqfuse does not support")
    for name in set(masks) & set(_history_names(outputs)):
        raise bad_file(path, f"has {name!r} (not_equal) among its outputs, which seqfuse does not support")
    return masks


def _history_names(item) -> list:
    """Layer names in input_layers / output_layers: one [name, node, tensor], a list or a dict."""
    if isinstance(item, list) and len(item) == 3 and isinstance(item[0], str):
        return [item[0]]
    values = item.values() if isinstance(item, dict) else item if isinstance(item, list) else []
    return [name for value in values for name in _history_names(value)]


def _from_embedding_on(tensors, ids, by_name, seen) -> bool:
    """Whether an Embedding(mask_zero=True) called on `ids` lies upstream of `tensors`: then
    the mask seqfuse carries to them is Keras's not_equal(ids, 0)."""
    for tensor in tensors:
        name, index, _ = _history(tensor)
        if (name, index) in seen or name not in by_name:
            continue
        seen.add((name, index))
        entry = by_name[name]
        nodes = entry.get("inbound_nodes") or []
        if index >= len(nodes):
            continue
        args = _tensors(nodes[index].get("args"))
        if entry.get("class_name") == "Embedding" and (entry.get("config") or {}).get("mask_zero"):
            if args and _history(args[0]) == ids:
                return True
        elif _from_embedding_on(args, ids, by_name, seen):
            return True
    return False


def _entry_from_keras(entry, path) -> dict:
    if entry.get("class_name") in MODEL_CLASSES:
        return model_from_keras(entry, path)
    return _layer_from_keras(entry, path)


def _input_layer_from_keras(entry, path) -> dict:
    config = dict(entry.get("config") or {})
    where = f"input {config.get('name')!r}"
    for key in ("sparse", "ragged", "optional"):
        if config.get(key, False):
            raise bad_file(path, f"has {where} with {key}=True, which seqfuse does not support")
    dtype = config.get("dtype", "float32")
    if isinstance(dtype, dict):
        dtype = (dtype.get("config") or {}).get("name")
    shape = config.get("batch_shape") or config.get("batch_input_shape")
    if not shape:
        raise bad_file(path, f"has {where} without a batch_shape")
    return {"class_name": "InputLayer", "config": {"batch_shape": list(shape), "dtype": dtype,
                                                    "name": config.get("name")}}


def _node_from_keras(node, entry, masks, by_name, path) -> dict:
    """One inbound node of a Keras functional layer. Keras records training=False and the
    Embedding masks it propagated (mask=not_equal(ids, 0)); seqfuse decides both when the
    model runs, so those are dropped and any other training= or mask= is refused."""
    where = f"layer {entry.get('name')!r}"
    if not isinstance(node, dict) or "args" not in node:
        raise bad_file(path, f"has {where} with inbound nodes in a pre-Keras-3 format; save the "
                             "model again with Keras 3")
    kwargs = dict(node.get("kwargs") or {})
    training = kwargs.pop("training", None)
    if training not in (None, False):
        raise bad_file(path, f"has {where} called with training={training!r}, which seqfuse does not "
                             "support (the mode is decided when the model runs)")
    mask = kwargs.pop("mask", None)
    if mask is not None:
        tensors = _tensors(mask)
        ok = bool(tensors) and all(
            _history(t)[0] in masks
            and _from_embedding_on(_tensors(node["args"]), masks[_history(t)[0]], by_name, set())
            for t in tensors)
        if not ok:
            raise bad_file(path, f"has {where} called with an explicit mask=, which seqfuse does not "
                                 "support (masks come from Embedding(mask_zero=True), as Keras "
                                 "propagates them)")
    return {"args": node["args"], "kwargs": kwargs}


def _policy(name):
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": name},
            "registered_name": None}


def _layer_to_keras(entry) -> dict:
    """Our {"class_name", "config"} -> Keras's {"module", "class_name", "config", ...}."""
    cls, ours = entry["class_name"], entry["config"]
    if cls not in _OPTIONS:
        raise ValueError(f"save: layer {ours.get('name')!r} ({cls}) has no Keras counterpart")
    config = {"name": ours["name"], "trainable": ours.get("trainable", True),
              "dtype": _policy(ours.get("dtype", "float32"))}
    for key in _OPTIONS[cls]:
        value = ours[key]
        if key in _TUPLES and value is not None:
            value = [value]
        elif key == "activation" and value is None:
            value = "linear"
        config[key] = value
    if cls == "Bidirectional":
        inner = ours["layer"]
        name = inner["config"]["name"]
        config["layer"] = _layer_to_keras(_renamed(inner, f"forward_{name}"))
        backward = _renamed(inner, f"backward_{name}")
        backward["config"]["go_backwards"] = not inner["config"]["go_backwards"]
        config["backward_layer"] = _layer_to_keras(backward)
    elif cls == "TimeDistributed":
        config["layer"] = _layer_to_keras(ours["layer"])
    return {"module": "keras.layers", "class_name": cls, "config": config, "registered_name": None}


def _renamed(entry, name):
    return {"class_name": entry["class_name"], "config": {**entry["config"], "name": name}}


def _layer_from_keras(entry, path) -> dict:
    """Keras's layer entry -> ours, or a ValueError naming the class or option we lack."""
    cls, config = entry.get("class_name"), dict(entry.get("config") or {})
    where = f"layer {config.get('name')!r} ({cls})"
    if cls not in _OPTIONS or entry.get("module", "keras.layers") != "keras.layers":
        raise bad_file(path, f"has {where}, a Keras layer seqfuse does not have "
                             f"(it has {', '.join(_OPTIONS)})")
    dtype = config.pop("dtype", "float32")
    if isinstance(dtype, dict):
        dtype = (dtype.get("config") or {}).get("name")
    if dtype not in ("float32", "float64"):
        raise bad_file(path, f"has {where} with dtype={dtype!r}, which seqfuse does not support "
                             "(float32 or float64)")
    ours = {"name": config.pop("name"), "trainable": config.pop("trainable", True), "dtype": dtype}
    nested = {key: config.pop(key) for key in ("layer", "backward_layer") if key in config}
    off = {**_OFF, **_OFF_BY_CLASS.get(cls, {})}
    for key, value in config.items():
        if key in _OPTIONS[cls]:
            ours[key] = _option_from_keras(cls, key, value, where, path)
        elif key in off:
            if value != off[key]:
                raise bad_file(path, f"has {where} with {key}={value!r}, which seqfuse does not "
                                     f"support (only {off[key]!r})")
        elif key not in _IGNORED and value is not None:
            raise bad_file(path, f"has {where} with {key}={value!r}, an option seqfuse does not have")
    if cls == "Bidirectional":
        ours["layer"] = _bidirectional_layer(nested, where, path)
    elif cls == "TimeDistributed":
        ours["layer"] = _layer_from_keras(nested["layer"], path)
    return {"class_name": cls, "config": ours}


def _option_from_keras(cls, key, value, where, path):
    if key in _TUPLES and isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise bad_file(path, f"has {where} with {key}={value!r}; a 1-D layer takes one value")
        return value[0]
    if key == "activation":
        if not isinstance(value, str) or value not in ACTIVATIONS:
            raise bad_file(path, f"has {where} with activation={value!r}, which seqfuse does not have "
                                 f"(it has {', '.join(k for k in ACTIVATIONS if k)})")
        if value == "linear" and cls != "Activation":
            return None
    return value


def _bidirectional_layer(nested, where, path) -> dict:
    """The wrapped layer's config: the forward one, checked against the backward one."""
    forward = _layer_from_keras(nested["layer"], path)
    if forward["class_name"] not in RECURRENT_CLASSES:
        raise bad_file(path, f"has {where} wrapping {forward['class_name']}; seqfuse wraps "
                             "SimpleRNN, LSTM or GRU")
    config = forward["config"]
    config["name"] = config["name"].removeprefix("forward_")
    if "backward_layer" in nested:
        backward = _layer_from_keras(nested["backward_layer"], path)
        # seqfuse's Bidirectional makes the backward layer from the forward one, as Keras does
        # when backward_layer is not given; a different one cannot be represented.
        mine = {**config, "go_backwards": not config["go_backwards"]}
        skip = {"name", "zero_output_for_mask"}
        for key in sorted(set(mine) | set(backward["config"])):
            if key not in skip and mine.get(key) != backward["config"].get(key):
                raise bad_file(path, f"has {where} whose backward_layer differs from its layer in {key} "
                                     f"({backward['config'].get(key)!r} vs {mine.get(key)!r}), which "
                                     "seqfuse does not support")
    config["zero_output_for_mask"] = False    # Bidirectional sets its own
    return forward
