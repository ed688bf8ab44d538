"""Reading pickled data files without running what they name.

A pickle can call any importable function while it loads; a data file planted in the data
directory must not. `load_pickle` (CIFAR's python batches) and `load_joblib` (scikit-learn's
covertype cache) unpickle through `find_class` allowlists: numpy arrays and dtypes, and joblib's
array wrapper. Plain containers (dict, list, tuple, str, bytes, int, float, bool, None) need no
global at all. Anything else fails with `UnsafePickle` (the caller reports one line).
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any


class UnsafePickle(pickle.UnpicklingError):
    pass


def _numpy_globals() -> dict[tuple[str, str], Any]:
    import numpy as np

    try:
        from numpy._core import multiarray as ma, numeric as nu
    except ImportError:  # numpy < 2
        from numpy.core import multiarray as ma, numeric as nu  # type: ignore[no-redef]
    allowed: dict[tuple[str, str], Any] = {}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = ma._reconstruct
        allowed[(mod, "scalar")] = ma.scalar
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        if hasattr(nu, "_frombuffer"):
            allowed[(mod, "_frombuffer")] = nu._frombuffer
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    for name in ("UInt8DType", "Int64DType", "Float64DType", "Float32DType", "Int32DType", "Int8DType",
                 "UInt16DType", "Int16DType", "BoolDType", "UInt32DType", "UInt64DType"):
        dt = getattr(getattr(np, "dtypes", None), name, None)
        if dt is not None:
            allowed[("numpy.dtypes", name)] = dt
    import _codecs

    allowed[("_codecs", "encode")] = _codecs.encode  # bytes pickled by Python 3 with protocol < 3
    return allowed


def _find(allowed: dict, module: str, name: str) -> Any:
    obj = allowed.get((module, name))
    if obj is None:
        raise UnsafePickle(f"refers to {module}.{name}, which a data file may not (allowed: numpy arrays, "
                           f"lists, dicts, str, bytes, numbers)")
    return obj


class _Restricted(pickle.Unpickler):
    def __init__(self, f, allowed: dict, **kw: Any):
        super().__init__(f, **kw)
        self._allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        return _find(self._allowed, module, name)


def load_pickle(path: Path, encoding: str = "latin1") -> Any:
    """pickle.load of a data file (numpy arrays and plain containers only)."""
    with open(path, "rb") as f:
        return _Restricted(f, _numpy_globals(), encoding=encoding).load()


def load_joblib(path: Path) -> Any:
    """joblib.load of a data file (numpy arrays only; e.g. scikit-learn's dataset caches)."""
    import joblib.numpy_pickle as jnp

    allowed = _numpy_globals()
    allowed[("joblib.numpy_pickle", "NumpyArrayWrapper")] = jnp.NumpyArrayWrapper

    class Restricted(jnp.NumpyUnpickler):
        def find_class(self, module: str, name: str) -> Any:
            return _find(allowed, module, name)

    with open(path, "rb") as f:
        with jnp._validate_fileobject_and_memmap(f, str(path), None) as (fobj, _):
            if isinstance(fobj, str):
                raise UnsafePickle("written by joblib < 0.10 (not supported)")
            try:
                u = Restricted(str(path), fobj, ensure_native_byte_order="auto")
            except TypeError:  # joblib < 1.5: (filename, file_handle, mmap_mode=None)
                u = Restricted(str(path), fobj)
            return u.load()
