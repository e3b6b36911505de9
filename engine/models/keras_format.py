"""Keras 3 files: `.keras` archives and `.weights.h5` weights, read and written with h5py.

A `.keras` file is a zip of metadata.json, config.json (the model's Keras config) and
model.weights.h5. In the h5 each layer's weights lie in `layers/<group>/vars/0..N-1`, where
<group> is the layer's snake_case class name made unique in the model's layer order (dense,
dense_1, ...; never the layer's own name). Recurrent layers keep theirs in `cell/vars`,
Bidirectional in `forward_layer/` and `backward_layer/`, TimeDistributed in `layer/`; every
object also gets a `vars` group carrying its name. A `.weights.h5` file is that h5 alone.
Our weights already use Keras's order and shapes, so they map 1:1.

Reading never executes code from the file: config.json is parsed as JSON, each class name is
looked up in the fixed table below (no imports by name, no Lambda, no pickles), and the h5
holds plain arrays. A Keras class or option seqfuse lacks is a ValueError naming the layer,
the option and its value.

Example:
    >>> model.save("model.keras")                       # keras.saving.load_model opens it
    >>> model = en.load_model("trained_in_keras.keras")
    >>> model.save_weights("model.weights.h5"); model.load_weights("model.weights.h5")
"""
from __future__ import annotations

import io
import json
import os
import zipfile
from datetime import datetime, timezone

import numpy as np

from ..layers.base import snake_case
from ..layers.core import ACTIVATIONS
from .saving import atomic_write, bad_file, describe_head, model_from_config

KERAS_VERSION = "3.15.1"     # written to metadata.json: the Keras release this layout was checked on
_CONFIG, _METADATA, _WEIGHTS = "config.json", "metadata.json", "model.weights.h5"

_RNN = ("units", "dropout", "recurrent_dropout", "return_sequences", "return_state",
        "go_backwards", "use_bias", "zero_output_for_mask")
# Keras class -> the options it shares with our layer of the same name (same meaning).
_OPTIONS = {
    "InputLayer": (),
    "Dense": ("units", "activation", "use_bias"),
    "Activation": ("activation",),
    "Dropout": ("rate", "noise_shape", "seed"),
    "Flatten": (),
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
_WRAPPERS = ("Bidirectional", "TimeDistributed")
_RECURRENT = ("SimpleRNN", "LSTM", "GRU")


def save_keras(model, path) -> None:
    """Write `model` as a Keras 3 `.keras` archive (config.json + model.weights.h5)."""
    config = model_to_keras(model)
    metadata = {"keras_version": KERAS_VERSION,
                "date_saved": datetime.now(timezone.utc).strftime("%Y-%m-%d@%H:%M:%S")}
    weights = _h5_bytes(model)
    with atomic_write(path) as f, zipfile.ZipFile(f, "w") as zf:
        zf.writestr(_METADATA, json.dumps(metadata))
        zf.writestr(_CONFIG, json.dumps(config))
        zf.writestr(_WEIGHTS, weights)


def load_keras(path):
    """The model a Keras 3 `.keras` archive holds, with its weights (ValueError if unsupported)."""
    zf = _open_archive(path)
    with zf:
        names = set(zf.namelist())
        missing = {_CONFIG, _WEIGHTS} - names
        if missing:
            raise bad_file(path, f"is not a Keras 3 archive (it lacks {', '.join(sorted(missing))})")
        try:
            config = json.loads(zf.read(_CONFIG))
            weights = zf.read(_WEIGHTS)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError):
            raise bad_file(path, "is corrupt (an entry of the archive cannot be read back intact)") from None
    if not isinstance(config, dict):
        raise bad_file(path, "is corrupt (config.json is not a JSON object)")
    ours = model_from_keras(config, path)
    try:
        model = model_from_config(ours)
    except (ValueError, TypeError, KeyError) as e:
        raise bad_file(path, f"describes a model seqfuse cannot build ({e})") from None
    with _open_h5(io.BytesIO(weights), path) as h5:
        _read_weights(model, h5, path)
    return model


def save_weights(model, path) -> None:
    """Write the weights in Keras 3's `.weights.h5` layout (keras `model.load_weights` reads it)."""
    _check_weights_suffix(path, "save_weights")
    data = _h5_bytes(model)
    with atomic_write(path) as f:
        f.write(data)


def load_weights(model, path) -> None:
    """Read a Keras 3 `.weights.h5` file into `model` (built, with the same layers)."""
    _check_weights_suffix(path, "load_weights")
    with open(path, "rb") as f:              # a missing file stays FileNotFoundError
        data = f.read()
    if not data.startswith(b"\x89HDF"):
        raise bad_file(path, f"is not a Keras .weights.h5 file ({describe_head(data[:8])})")
    with _open_h5(io.BytesIO(data), path) as h5:
        _read_weights(model, h5, path)


def model_to_keras(model) -> dict:
    """The Keras 3 config.json dict of `model` (Sequential now)."""
    config = model.get_config()
    if config["class_name"] != "Sequential":
        raise ValueError(f"save: cannot write a {config['class_name']} model as .keras")
    shape = config["input_shape"]
    if not shape:
        raise ValueError(f"save: {model.name} is not built yet; call it on data or "
                         "model.build(input_shape) before saving as .keras")
    first = model.layers[0] if model.layers else None
    dtype = "int32" if first is not None and not first._takes_floats() else "float32"
    layers = [{"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
               "config": {"batch_shape": shape, "dtype": dtype, "sparse": False, "ragged": False,
                          "name": "input_layer", "optional": False}}]
    layers += [_layer_to_keras(entry) for entry in config["layers"]]
    return {"module": "keras", "class_name": "Sequential", "registered_name": None,
            "config": {"name": config["name"], "trainable": True, "dtype": _policy("float32"),
                       "layers": layers, "build_input_shape": shape},
            "build_config": {"input_shape": shape}}


def model_from_keras(config, path) -> dict:
    """Our model config (as get_config makes) for a Keras 3 config.json dict."""
    cls = config.get("class_name")
    if cls != "Sequential":
        raise bad_file(path, f"holds a Keras {cls!r} model; seqfuse reads Sequential models")
    inner = config.get("config", {})
    entries = list(inner.get("layers", []))
    shape = inner.get("build_input_shape") or (config.get("build_config") or {}).get("input_shape")
    if entries and entries[0].get("class_name") == "InputLayer":
        shape = entries.pop(0)["config"].get("batch_shape", shape)
    if not shape:
        raise bad_file(path, "holds a Keras model that was never built (no input shape)")
    return {"class_name": "Sequential", "name": inner.get("name", "sequential"),
            "input_shape": list(shape),
            "layers": [_layer_from_keras(entry, path) for entry in entries]}


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
    if cls not in _OPTIONS or cls == "InputLayer" or entry.get("module", "keras.layers") != "keras.layers":
        raise bad_file(path, f"has {where}, a Keras layer seqfuse does not have "
                             f"(it has {', '.join(k for k in _OPTIONS if k != 'InputLayer')})")
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
    if forward["class_name"] not in _RECURRENT:
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


def _layer_groups(model) -> list[tuple[str, object]]:
    """(h5 group, layer) for each layer, in the order Keras names them (dense, dense_1, ...)."""
    used, out = {}, []
    for layer in model.layers:
        base = snake_case(type(layer).__name__)
        used[base] = used.get(base, -1) + 1
        out.append((f"layers/{base}" if used[base] == 0 else f"layers/{base}_{used[base]}", layer))
    return out


def _saveables(layer, group) -> list[tuple[str, str, list]]:
    """(group, name, weights) for `layer` and the objects Keras saves inside it, in weight order."""
    cls = type(layer).__name__
    if cls in _RECURRENT:
        return [(group, layer.name, []), (f"{group}/cell", f"{snake_case(cls)}_cell", layer.weights)]
    if cls == "Bidirectional":
        return ([(group, layer.name, [])] + _saveables(layer.forward_layer, f"{group}/forward_layer")
                + _saveables(layer.backward_layer, f"{group}/backward_layer"))
    if cls == "TimeDistributed":
        return [(group, layer.name, [])] + _saveables(layer.layer, f"{group}/layer")
    return [(group, layer.name, layer.weights)]


def _h5_bytes(model) -> bytes:
    """model.weights.h5 for `model`, in memory."""
    h5py = _h5py()
    if not all(layer.built for layer in model.layers):
        raise ValueError(f"save: {model.name} is not built yet; call it on data or "
                         "model.build(input_shape) first")
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        h5.create_group("vars").attrs["name"] = model.name
        for group, layer in _layer_groups(model):
            for sub, name, weights in _saveables(layer, group):
                entry = h5.create_group(f"{sub}/vars")
                entry.attrs["name"] = name
                for i, w in enumerate(weights):
                    entry.create_dataset(str(i), data=w.numpy())
    return buffer.getvalue()


def _read_weights(model, h5, path) -> None:
    """Set every layer's weights from an open Keras weights h5 (all checked before any is set)."""
    values = []
    for group, layer in _layer_groups(model):
        arrays = []
        for sub, _, weights in _saveables(layer, group):
            entry = h5.get(f"{sub}/vars")
            found = 0 if entry is None else len(entry)
            if found != len(weights):
                raise bad_file(path, f"has {found} weights in {sub}/vars where layer {layer.name!r} "
                                     f"({type(layer).__name__}) has {len(weights)}")
            try:
                arrays += [np.asarray(entry[str(i)]) for i in range(len(weights))]
            except (KeyError, OSError, TypeError):
                raise bad_file(path, f"is corrupt ({sub}/vars does not hold datasets "
                                     f"0..{len(weights) - 1} that can be read)") from None
        for w, a, name in zip(layer.weights, arrays, layer._weight_names):
            if w.shape != a.shape:
                raise bad_file(path, f"has weight {name} of shape {a.shape}; the model's is {w.shape}")
        values.append((layer, arrays))
    for layer, arrays in values:
        if arrays:
            layer.set_weights(arrays)


def _h5py():
    """h5py, or an ImportError saying which extra brings it."""
    try:
        import h5py
        return h5py
    except ImportError:
        raise ImportError('Keras .keras and .weights.h5 files need h5py: pip install "seqfuse[keras]"') from None


def _open_archive(path):
    with open(path, "rb") as f:               # a missing file stays FileNotFoundError
        head = f.read(8)
    if not head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        raise bad_file(path, f"is not a Keras 3 .keras archive ({describe_head(head)})")
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError):
        raise bad_file(path, "is truncated or corrupt (its zip directory cannot be read)") from None


def _open_h5(buffer, path):
    h5py = _h5py()
    try:
        return h5py.File(buffer, "r")
    except OSError:
        raise bad_file(path, "is corrupt (its weights are not a readable HDF5 file)") from None


def _check_weights_suffix(path, what):
    if not os.fspath(path).lower().endswith(".weights.h5"):
        raise ValueError(f"{what}: the file name must end in .weights.h5 (Keras 3's weights "
                         f"format), got {os.fspath(path)!r}")
