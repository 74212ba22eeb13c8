"""A strict stand-in for CuPy on the CPU: "device" arrays that refuse every implicit trip to the host.

``install(monkeypatch)`` makes ``minseg.backend`` believe a GPU is present:
``to_device(x, "gpu")`` returns a ``DeviceArray``, ``get_array_module`` returns
the fake module ``cupy`` below, ``scatter_add`` finds a fake ``cupyx``. Every
computation still runs in NumPy underneath, so results can be compared with
the NumPy path, but a ``DeviceArray`` behaves like a ``cupy.ndarray`` in the
ways that matter for host round-trips, only stricter:

- ``np.asarray(d)``, ``np.<function>(d)`` and ``np.<ufunc>(d)`` raise
  ``HostRoundTrip`` (CuPy refuses ``np.asarray`` too; it would accept NumPy
  ufuncs through ``__array_ufunc__``, which minseg's rule forbids anyway);
- mixing a ``numpy.ndarray`` with a device array in an operator or in an
  ``xp`` function raises (CuPy raises a TypeError there);
- iterating over a device array raises (a Python loop over device elements);
- reductions and scalar indexing return 0-d device arrays, as CuPy does, so
  ``float(d.sum())`` is visible as a scalar synchronisation;
- a write ``d[idx] = v`` or ``d[idx] += v`` whose integer indices repeat
  raises ``RepeatedIndexWrite`` (on a GPU their order is undefined);
- ``get()``, ``tolist()``, ``xp.asnumpy`` (device -> host) and ``xp.asarray``
  of a NumPy array (host -> device) are allowed but counted in ``log``, with
  the minseg function that asked for each, so a test can require that a whole
  training step moves no array to the host.
"""
from __future__ import annotations

import operator
import sys
import types
from collections import Counter

import numpy as np


class HostRoundTrip(TypeError):
    """A device array was turned into, or mixed with, a host (NumPy) array implicitly."""


class TransferLog:
    """Counts of explicit transfers and scalar synchronisations, by kind and by the minseg function that asked."""

    def __init__(self):
        self.counts = Counter()
        self.sites = Counter()

    def record(self, kind: str) -> None:
        self.counts[kind] += 1
        self.sites[(kind, _minseg_caller())] += 1

    def clear(self) -> None:
        self.counts.clear()
        self.sites.clear()

    def where(self, kind: str) -> dict:
        """``{minseg function: count}`` for one kind of event."""
        return {site: n for (k, site), n in self.sites.items() if k == kind}


def _minseg_caller() -> str:
    """``module.function`` of the innermost minseg frame outside ``minseg.backend`` (``?`` when there is none)."""
    frame = sys._getframe(2)
    while frame is not None:
        path = frame.f_code.co_filename.replace("\\", "/")
        if "/minseg/" in path and not path.endswith("/minseg/backend.py"):
            mod = path.split("/minseg/")[-1].removesuffix(".py").replace("/", ".")
            name = getattr(frame.f_code, "co_qualname", frame.f_code.co_name).split(".<locals>")[0]
            return f"{mod}.{name}"                         # a comprehension counts as its function
        frame = frame.f_back
    return "?"


log = TransferLog()


def _refuse_host(value, where: str):
    if isinstance(value, np.ndarray):
        raise HostRoundTrip(f"{where}: got a numpy.ndarray of shape {value.shape} mixed with device arrays; "
                            "move it with minseg.backend.to_device first")


def _unwrap(value, where: str):
    """The NumPy arrays inside ``value`` (recursing into tuples, lists, dicts); refuses host arrays."""
    if isinstance(value, DeviceArray):
        return value._a
    _refuse_host(value, where)
    if isinstance(value, tuple):
        return tuple(_unwrap(v, where) for v in value)
    if isinstance(value, list):
        return [_unwrap(v, where) for v in value]
    if isinstance(value, dict):
        return {k: _unwrap(v, where) for k, v in value.items()}
    return value


def _wrap(value):
    """NumPy arrays and NumPy scalars in ``value`` as device arrays (0-d for scalars, as CuPy returns)."""
    if isinstance(value, np.ndarray):
        return DeviceArray(value)
    if isinstance(value, np.generic):
        return DeviceArray(np.asarray(value))
    if isinstance(value, tuple):
        return type(value)(*map(_wrap, value)) if hasattr(value, "_fields") else tuple(map(_wrap, value))
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


class RepeatedIndexWrite(ValueError):
    """A write ``a[idx] = v`` (or ``a[idx] += v``) whose integer indices repeat: undefined order on a GPU."""


def _refuse_repeated(index, shape) -> None:
    """Raise ``RepeatedIndexWrite`` when the integer-array part of ``index`` names one element twice.

    On a GPU the writes of repeated indices race: which one survives is
    undefined, and ``a[idx] += v`` adds only one of them. Accumulate with
    ``minseg.backend.scatter_add`` instead.
    """
    parts = index if isinstance(index, tuple) else (index,)
    arrays = [(axis, p) for axis, p in enumerate(parts)
              if isinstance(p, np.ndarray) and p.dtype.kind in "iu" and p.size > 1]
    if not arrays:
        return
    dims = [shape[axis] for axis, _ in arrays if axis < len(shape)]
    wrapped = [np.mod(p, d) for (_, p), d in zip(arrays, dims)]                # negative indices count too
    flat = np.ravel_multi_index(tuple(np.broadcast_arrays(*wrapped)), dims).reshape(-1)
    if np.unique(flat).size != flat.size:
        raise RepeatedIndexWrite(f"a write into a device array of shape {shape} with {flat.size - np.unique(flat).size} "
                                 "repeated integer indices (undefined on a GPU); use minseg.backend.scatter_add")


def _binary(name):
    np_op = getattr(operator, name)

    def method(self, other):
        return _wrap(np_op(self._a, _unwrap(other, f"device array {name}")))

    return method


def _reflected(name):
    np_op = getattr(operator, name)

    def method(self, other):
        return _wrap(np_op(_unwrap(other, f"device array {name}"), self._a))

    return method


def _inplace(name):
    np_op = getattr(operator, name)

    def method(self, other):
        np_op(self._a, _unwrap(other, f"device array {name}"))
        return self

    return method


class DeviceArray:
    """An array "on the device": a NumPy array inside that only ``xp`` functions and methods may touch."""

    __slots__ = ("_a",)
    __array_ufunc__ = None          # np.exp(d), np.add(d, ...): TypeError; ndarray + d: d.__radd__ refuses the host array
    __hash__ = None

    def __init__(self, a: np.ndarray):
        self._a = a

    # ------------------------------------------------------------------ what CuPy has, strictly
    @property
    def __cuda_array_interface__(self):
        return {"shape": self._a.shape, "typestr": self._a.dtype.str, "version": 3}

    def __array__(self, *args, **kwargs):
        raise HostRoundTrip("implicit conversion of a device array to a NumPy array (np.asarray or a NumPy "
                            "function on it); use minseg.backend.to_numpy, or xp = get_array_module(x) and xp.*")

    def __array_function__(self, func, types_, args, kwargs):
        raise HostRoundTrip(f"numpy.{func.__name__} called on a device array; use xp = get_array_module(x) and "
                            f"xp.{func.__name__}")

    def __iter__(self):
        raise HostRoundTrip(f"a Python loop over a device array of shape {self._a.shape} (one transfer per element)")

    def get(self):
        log.record("to_host")
        return self._a.copy()

    def tolist(self):
        log.record("to_host")
        return self._a.tolist()

    def _scalar(self, convert):
        if self._a.size != 1:
            raise TypeError(f"only a device array of one element converts to a Python scalar, got shape {self._a.shape}")
        log.record("scalar_sync")
        return convert(self._a.reshape(()).item())

    def __bool__(self):
        return self._scalar(bool)

    def __float__(self):
        return self._scalar(float)

    def __int__(self):
        return self._scalar(int)

    def __index__(self):
        if self._a.dtype.kind not in "iu" or self._a.ndim:
            raise TypeError(f"only a 0-d integer device array can be an index, got {self._a.dtype} {self._a.shape}")
        return self._scalar(int)

    def item(self):
        return self._scalar(lambda v: v)

    def __len__(self):
        return len(self._a)

    def __repr__(self):
        return f"DeviceArray({self._a!r})"

    # ------------------------------------------------------------------ attributes, methods, indexing
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: DeviceArray(self._a.T))
    device = property(lambda self: "<fake device 0>")

    def __getattr__(self, name):
        if name.startswith("__"):              # __array_interface__, __array_struct__, ...: no back door to NumPy
            raise AttributeError(name)
        attr = getattr(self._a, name)
        if not callable(attr):
            return _wrap(attr)

        def method(*args, **kwargs):
            where = f"device array .{name}()"
            return _wrap(attr(*_unwrap(args, where), **_unwrap(kwargs, where)))

        return method

    def __getitem__(self, index):
        return _wrap(self._a[_unwrap(index, "device array indexing")])

    def __setitem__(self, index, value):
        index = _unwrap(index, "device array indexing")
        _refuse_repeated(index, self._a.shape)
        self._a[index] = _unwrap(value, "device array assignment")

    def __copy__(self):
        return DeviceArray(self._a.copy())

    def __deepcopy__(self, memo):
        return DeviceArray(self._a.copy())

    def __neg__(self):
        return DeviceArray(-self._a)

    def __pos__(self):
        return DeviceArray(+self._a)

    def __abs__(self):
        return DeviceArray(abs(self._a))

    def __invert__(self):
        return DeviceArray(~self._a)


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and_", "or_", "xor",
              "lshift", "rshift", "lt", "le", "eq", "ne", "gt", "ge"):
    _dunder = _name.rstrip("_")
    setattr(DeviceArray, f"__{_dunder}__", _binary(_name))
    if _name not in ("lt", "le", "eq", "ne", "gt", "ge"):
        setattr(DeviceArray, f"__r{_dunder}__", _reflected(_name))
        setattr(DeviceArray, f"__i{_dunder}__", _inplace(f"i{_dunder}"))
DeviceArray.__module__ = "cupy"     # minseg.backend.is_cupy_array looks at the module name and the interface


class _Ufunc:
    """A NumPy ufunc that takes and returns device arrays (``__call__``, ``reduce``, ``accumulate``, ``outer``, ``at``)."""

    def __init__(self, uf: np.ufunc):
        self._uf = uf
        self.__name__ = uf.__name__

    def __call__(self, *args, **kwargs):
        return _call(self._uf, self.__name__, args, kwargs)

    def __getattr__(self, name):
        attr = getattr(self._uf, name)
        if not callable(attr):
            return attr
        return lambda *args, **kwargs: _call(attr, f"{self.__name__}.{name}", args, kwargs)


def _call(fn, name, args, kwargs):
    where = f"cupy.{name}"
    return _wrap(fn(*_unwrap(args, where), **_unwrap(kwargs, where)))


def _to_device(a, dtype=None, copy=True):
    """``cupy.asarray`` / ``cupy.array``: device arrays stay, host data is copied over (counted)."""
    if isinstance(a, DeviceArray):
        out = a._a.astype(dtype if dtype is not None else a._a.dtype, copy=copy)
        return a if out is a._a else DeviceArray(out)
    if isinstance(a, (list, tuple)) and any(isinstance(v, DeviceArray) for v in a):
        return DeviceArray(np.array(_unwrap(a, "cupy.asarray"), dtype=dtype))
    log.record("to_device")
    return DeviceArray(np.array(a, dtype=dtype))


class _Random(types.ModuleType):
    """``cupy.random``: ``random(size, dtype)`` (CuPy's signature) from a seeded generator."""

    def __init__(self):
        super().__init__("cupy.random")
        self._rng = np.random.default_rng(0)

    def random(self, size=None, dtype=np.float64):
        return DeviceArray(self._rng.random(size, dtype=dtype))

    def seed(self, seed=None):
        self._rng = np.random.default_rng(seed)


class FakeCupy(types.ModuleType):
    """The module ``get_array_module`` returns for device arrays: NumPy's functions on ``DeviceArray`` s."""

    def __init__(self, np_module=np, name="cupy"):
        super().__init__(name)
        self._np = np_module
        self.ndarray = DeviceArray
        if np_module is np:
            self.random = _Random()
            self.__version__ = "fake"
            self.cuda = types.SimpleNamespace(                # what scripts ask of the device
                is_available=lambda: True, Device=lambda *a: types.SimpleNamespace(synchronize=lambda: None),
                runtime=types.SimpleNamespace(getDeviceProperties=lambda i: {"name": b"fake_cupy strict device"}))

    def asarray(self, a, dtype=None):
        return _to_device(a, dtype, copy=False)

    def array(self, a, dtype=None, copy=True):
        return _to_device(a, dtype, copy=copy)

    def asnumpy(self, a):
        if isinstance(a, DeviceArray):
            return a.get()
        return np.asarray(a)

    def __getattr__(self, name):
        obj = getattr(self._np, name)
        if isinstance(obj, types.ModuleType):
            return FakeCupy(obj, f"{self.__name__}.{name}")
        if isinstance(obj, np.ufunc):
            return _Ufunc(obj)
        if isinstance(obj, (type, np.dtype)) or not callable(obj):   # dtypes and constants (nan, inf, newaxis)
            return obj
        return lambda *args, **kwargs: _call(obj, name, args, kwargs)


def _scatter_add(a, slices, value):
    """``cupyx.scatter_add``: unbuffered ``a[slices] += value`` on the device."""
    np.add.at(_unwrap(a, "cupyx.scatter_add"), _unwrap(slices, "cupyx.scatter_add"),
              _unwrap(value, "cupyx.scatter_add"))


def install(monkeypatch) -> FakeCupy:
    """Make ``minseg.backend`` see a GPU whose arrays are ``DeviceArray`` s, for one test; returns the module."""
    from minseg import backend  # noqa: PLC0415

    fake = FakeCupy()
    cupyx = types.ModuleType("cupyx")
    cupyx.scatter_add = _scatter_add
    monkeypatch.setattr(backend, "_cupy", lambda: fake)
    monkeypatch.setattr(backend, "has_gpu", lambda: True)
    monkeypatch.setattr(backend, "has_cupy", lambda: True)
    monkeypatch.setitem(sys.modules, "cupyx", cupyx)
    monkeypatch.setitem(sys.modules, "cupy", fake)          # `import cupy as cp` after has_gpu() gets it too
    log.clear()
    return fake
