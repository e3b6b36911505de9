"""What BackupAndRestore writes after each epoch and reads back: one .npz (written to a
temporary name and renamed) with the weights, the optimizer's variables, the random
generators' state and the epoch to resume at."""
from __future__ import annotations

import json
import zipfile

import numpy as np

from .. import random as random_module
from .saving import atomic_write

FORMAT = 1


class UnreadableBackup(ValueError):
    """The backup file is truncated, corrupt or not a backup (another may still be good)."""


def save(model, path, epoch) -> None:
    """Write model's training state at the end of epoch `epoch - 1` to path."""
    arrays = {f"weight_{i}": w for i, w in enumerate(model.get_weights())}
    store = {}
    model.optimizer.save_own_variables(store)
    arrays.update({f"optimizer_{k}": v for k, v in store.items()})
    meta = {"format": FORMAT, "epoch": epoch, "random": random_module.get_state(),
            "layers": [[path, rng.bit_generator.state] for path, rng in _layer_generators(model)]}
    with atomic_write(path) as f:
        np.savez(f, state=np.array(json.dumps(meta)), **arrays)


def load(model, path) -> int:
    """Put the state saved at path back into model (built and compiled); returns the epoch to
    resume at."""
    try:
        # Our own file object: np.load leaves the file it opened open when the zip is broken.
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as data:
            meta = json.loads(str(data["state"]))
            weights = [data[f"weight_{i}"] for i in range(sum(k.startswith("weight_") for k in data.files))]
            store = {k[len("optimizer_"):]: data[k] for k in data.files if k.startswith("optimizer_")}
        epoch = int(meta["epoch"])
    except (OSError, EOFError, KeyError, TypeError, ValueError, zipfile.BadZipFile) as exc:
        raise UnreadableBackup(f"BackupAndRestore: {path} is not a readable backup ({exc})") from None
    if meta.get("format") != FORMAT:
        raise UnreadableBackup(f"BackupAndRestore: {path} has format {meta.get('format')!r}, expected {FORMAT}")
    if not model.weights:
        raise ValueError("BackupAndRestore: the model has no weights yet; build it (call it on a batch "
                         "or model.build(input_shape)) before restoring a backup")
    # Matched by position: automatic layer names differ between models built in one process.
    generators = _layer_generators(model)
    if len(generators) != len(meta["layers"]):
        raise ValueError(f"BackupAndRestore: {path} holds the random generators of layers "
                         f"{[p for p, _ in meta['layers']]}, this model has them in {[p for p, _ in generators]}: "
                         "not the model that was backed up")
    try:
        model.set_weights(weights)
        model.optimizer.build(model.trainable_weights)
        model.optimizer.load_own_variables(store)
    except ValueError as exc:
        raise ValueError(f"BackupAndRestore: {path} does not fit this model and optimizer: {exc}") from None
    random_module.set_state(meta["random"])
    for (_, rng), (_, state) in zip(generators, meta["layers"]):
        rng.bit_generator.state = state
    return epoch


def _layer_generators(model):
    """(path, generator) of the layers that draw from a generator of their own (Dropout(seed=...)),
    nested models and wrapped layers included, in layer order."""
    def walk(layers, prefix):
        for layer in layers:
            path = prefix + layer.name
            rng = getattr(layer, "_rng", None)
            if isinstance(rng, np.random.Generator):
                yield path, rng
            inner = [getattr(layer, a, None) for a in ("layer", "forward_layer", "backward_layer")]
            yield from walk(list(getattr(layer, "layers", [])) + [i for i in inner if i is not None], path + "/")
    return list(walk(model.layers, ""))
