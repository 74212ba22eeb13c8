"""Graded exercises: ``check(name, fn)`` runs a learner's version of a minseg function and says what is wrong.

The learner's function has the same signature as minseg's function of the same
name (its docstring is the spec). The checker calls it on a small grid of
cases (odd and non-square sizes, stride, padding, dilation, groups, batch > 1,
edge pixels, ...), compares every output with minseg's and, for backward
functions, with central differences, and names a known mistake when the
answer equals it::

    from minseg import exercises
    exercises.names()                         # ['cross_entropy_backward', 'im2col', 'conv2d', ...]
    r = exercises.check("conv2d", my_conv2d)
    r.passed                                  # bool
    r.diagnosis                               # e.g. 'kernel flipped (convolution instead of cross-correlation)'
    r                                         # the report: per case, errors, worst element, where errors lie

Forward exercises may return ``y`` alone or ``(y, cache)`` like minseg.
Backward exercises get ``(dy, cache)`` with the cache made by minseg's forward.

Adding an exercise
------------------
A reference (minseg's function), a case generator (``rng -> list of Case``),
the outputs, and each known mistake as a small function with the same
signature that returns the mistaken answer::

    from minseg.ops import conv2d
    from minseg.exercises.core import Case, Output, exercise

    def _cases(rng):
        x, w = rng.standard_normal((2, 3, 7, 9)), rng.standard_normal((4, 3, 3, 3))
        return [Case((x, w), {"padding": 1}, "x 2x3x7x9, w 4x3x3x3, padding=1")]

    ex = exercise("conv2d", reference=conv2d, cases=_cases, outputs=[Output("y")],
                  returns_cache=True, spec="conv2d(x, w, b=None, *, stride, padding, dilation, groups)")

    @ex.mistake("kernel flipped (convolution instead of cross-correlation)",
                hint="y[i, j] uses w[kh, kw] at x_pad[i*s + kh*d, j*s + kw*d]; do not rotate the kernel")
    def _flipped(x, w, b=None, **hyper):
        return conv2d(x, w[..., ::-1, ::-1].copy(), b, **hyper)[0]

A mistake is named when the learner's output equals its answer on every case
(where it applies) and differs from minseg's on at least one. Backward cases
come from ``backward_case(forward, inputs, grads, rng=rng, **hyper)``, which
also adds the central-difference check. An ``extract`` option turns an
unusual return value (a layer, a cache) into the outputs to compare. Put a
topic's exercises in one module here and import it below.
"""
from .core import Case, Output, Result, backward_case, check, describe_wrong, exercise, get, names  # noqa: F401
from . import losses  # noqa: F401,E402  (registers the exercises, in the lessons' order)
from . import conv  # noqa: F401,E402
from . import interpolate  # noqa: F401,E402
from . import transposed  # noqa: F401,E402
from . import fcn  # noqa: F401,E402
from . import pyramid  # noqa: F401,E402
from . import unet  # noqa: F401,E402
from . import metrics  # noqa: F401,E402
from . import gpu  # noqa: F401,E402
from . import checking  # noqa: F401,E402

__all__ = ["check", "names", "get", "Result", "Case", "Output", "exercise", "backward_case", "describe_wrong"]
