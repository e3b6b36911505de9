"""Model inputs and targets as structures: one array, a list/tuple of arrays, or a dict of
arrays (several inputs or outputs, Keras-style). The helpers here slice, count and convert
them, so the training loop never cares which form it was given."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..layers.symbolic import flatten
from ..tensor import Tensor


def is_arrays(x) -> bool:
    """True for an array, a Tensor, or a list/tuple/dict of them (not for an iterable of batches)."""
    if isinstance(x, (np.ndarray, Tensor)):
        return True
    if isinstance(x, dict):
        return bool(x) and all(is_arrays(v) for v in x.values())
    if isinstance(x, (list, tuple)):
        return bool(x) and all(isinstance(v, (np.ndarray, Tensor, dict, list, tuple)) and is_arrays(v)
                               for v in x)
    return False


def map_structure(fn, x):
    if isinstance(x, dict):
        return {k: map_structure(fn, v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(map_structure(fn, v) for v in x)
    return fn(x)


def num_samples(x, what, name="x") -> int:
    """The common first dimension of every array in x."""
    sizes = {len(a) for a in flatten(x)}
    if len(sizes) != 1:
        raise ValueError(f"{what}: every array in {name} must have the same number of samples, "
                         f"got {sorted(sizes)}")
    return sizes.pop()


def take(x, index):
    """x with every array indexed by `index` along the first axis."""
    return map_structure(lambda a: a[index], x)


def as_arrays(x, y, what):
    """x and y as (structures of) numpy arrays with the same number of samples."""
    def convert(a):
        return a.numpy() if isinstance(a, Tensor) else np.asarray(a)
    x = map_structure(convert, x)
    if y is None:
        raise ValueError(f"{what}: y is required with array inputs")
    y = map_structure(convert, y)
    n, m = num_samples(x, what), num_samples(y, what, "y")
    if n != m:
        raise ValueError(f"{what}: x and y must have the same number of samples, got {n} and {m}")
    return x, y


class LossTerm(NamedTuple):
    """One output's loss on a batch: its log name, the loss Tensor, the count of entries it
    averages (samples, or the kept entries of a masked output) and whether it is masked."""
    name: str
    value: object
    count: int
    masked: bool


def by_name(values, names, what, name, broadcast=False):
    """A list in `names`' order from a dict keyed by name, a list of len(names), or one value
    (repeated for every name when `broadcast`, e.g. one loss for every output)."""
    if isinstance(values, dict):
        unknown = set(values) - set(names)
        if unknown:
            raise ValueError(f"{what}: {name} names unknown outputs {sorted(unknown)}; the outputs are {names}")
        return [values.get(n) for n in names]
    if isinstance(values, (list, tuple)) and len(names) > 1:
        if len(values) != len(names):
            raise ValueError(f"{what}: {name} must have one entry per output ({len(names)}: {names}), "
                             f"got {len(values)}")
        return list(values)
    if len(names) > 1 and not broadcast:
        raise ValueError(f"{what}: the model has {len(names)} outputs {names}; pass {name} as a list "
                         f"or a dict keyed by output name")
    return [values] * len(names)
