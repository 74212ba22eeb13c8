"""Exercise of lesson 09: scatter_add_flat, a sum into bins by flat indices that may repeat.

``scatter_add_flat(indices, values, size)`` returns ``out`` of shape
``(size,)`` with ``out[i] = sum of values[indices == i]`` in ``values``' dtype
(``minseg.backend.scatter_add_flat``). It is the accumulation behind every
backward pass that scatters (col2im, bilinear, unpooling) and behind the
confusion matrix. The cases repeat indices, leave the last bins empty, use
float32 values (``np.bincount`` returns float64), and include no repeats at
all and no indices at all.
"""
from __future__ import annotations

import numpy as np

from ..backend import scatter_add_flat
from .core import Case, Output, exercise


def _case(indices, values, size, note):
    return Case((np.asarray(indices, dtype=np.int64), np.asarray(values), size), {},
                f"{len(indices)} values into {size} bins, {values.dtype}: {note}")


def _cases(rng):
    return [
        _case([0, 1, 1, 3, 1, 2, 0, 4], np.arange(1.0, 9.0), 5, "index 1 three times, 0 twice"),
        _case(rng.integers(0, 7, size=20), rng.standard_normal(20).astype(np.float32), 10,
              "repeated indices, the last 3 bins empty"),
        _case(rng.permutation(6), rng.standard_normal(6), 6, "no index repeats"),
        _case([], np.zeros(0), 4, "no values at all: every bin 0"),
        _case(rng.integers(0, 37, size=1000), rng.standard_normal(1000), 37, "every bin hit many times"),
    ]


ex_scatter_add_flat = exercise(
    "scatter_add_flat", reference=scatter_add_flat, cases=_cases,
    outputs=[Output("out", axes=("bin",), spatial=None)],
    spec="scatter_add_flat(indices, values, size) -> out (size,): out[i] = sum of values[indices == i], "
         "in values' dtype")


@ex_scatter_add_flat.mistake(
    "out[indices] += values: a repeated index keeps only one of its values",
    hint="fancy-index assignment reads every out[i] first and writes each back once, so repeats do not add up "
         "(on a GPU, which write survives is not even defined); accumulate with np.add.at(out, indices, values) "
         "or np.bincount(indices, weights=values, minlength=size)")
def _fancy_plus_equals(indices, values, size):
    out = np.zeros(size, dtype=values.dtype)
    out[indices] += values
    return out


@ex_scatter_add_flat.mistake(
    "bins end at the largest index (no minlength)",
    hint="np.bincount returns max(indices) + 1 bins unless told more: pass minlength=size, so empty bins at the "
         "end are there, with 0")
def _no_minlength(indices, values, size):
    return np.bincount(indices, weights=values).astype(values.dtype)


@ex_scatter_add_flat.mistake(
    "counted the indices instead of summing the values (bincount without weights)",
    hint="np.bincount(indices) counts how often each index occurs; the sum of the values needs weights=values")
def _counts(indices, values, size):
    return np.bincount(indices, minlength=size).astype(values.dtype)
