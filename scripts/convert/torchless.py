"""Shared pieces of the torch-free converters in this folder.

- Reading a PyTorch checkpoint without torch: both the zip format (torch >= 1.6: `data.pkl` plus
  raw little-endian storages under `data/`) and the legacy format (magic, protocol, sys info,
  pickle, then the storages' bytes). Tensors become numpy arrays; classes the pickle names that
  we do not know (Lightning hyper-parameters, ...) become harmless stubs.
- `state_dict`: the tensors of a plain or wrapped (`model_state` / `state_dict`) checkpoint.
- `torch_to_onnx_gates`: LSTM gate blocks in torch order (i,f,g,o) -> ONNX order (i,o,f,c).
- `finish_model` / `save_model`: an opset-17 model from a graph, checked; written with its sha256.
"""

import collections
import hashlib
import pickle
import struct
import zipfile

import numpy as np
import onnx
from onnx import helper

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _DType:
    def __init__(self, name):
        self.name = name
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _Stub:
    def __init__(self, *args, **kwargs):
        self.args = args

    def __setstate__(self, state):
        self.state = state

    def __call__(self, *args, **kwargs):
        return _Stub(*args)


class _Storage:
    """A storage whose bytes may arrive after unpickling (legacy format)."""

    def __init__(self, dtype, numel):
        self.dtype = dtype
        self.numel = numel
        self.data = None


class _LazyTensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset = storage, int(offset)
        self.size = tuple(int(s) for s in size)
        self.stride = tuple(int(s) for s in stride)

    def materialize(self):
        arr = self.storage.data
        if len(self.size) == 0:
            return np.array(arr[self.offset])
        view = np.lib.stride_tricks.as_strided(
            arr[self.offset:], shape=self.size,
            strides=tuple(s * arr.itemsize for s in self.stride), writeable=False)
        return np.ascontiguousarray(view)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, *args, **kwargs):
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *args, **kwargs):
    return data


class _Unpickler(pickle.Unpickler):
    def __init__(self, fobj, read_storage=None):
        super().__init__(fobj)
        self._read_storage = read_storage  # zip: key -> raw bytes; legacy: None
        self.storages = {}

    def find_class(self, module, name):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _DType(name)
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module in ("builtins", "__builtin__") and name in (
                "dict", "list", "set", "tuple", "frozenset", "int", "float", "str",
                "bool", "bytes", "slice", "complex", "object"):
            return getattr(__import__("builtins"), name)
        return type(name, (_Stub,), {"__module__": "stub." + module})

    def persistent_load(self, pid):
        assert pid[0] == "storage", pid
        stype, key = pid[1], str(pid[2])
        dtype = stype.dtype if isinstance(stype, _DType) else np.dtype(np.float32)
        if self._read_storage is not None:  # zip: ('storage', type, key, location, numel)
            numel = int(pid[4])
            if key not in self.storages:
                st = _Storage(dtype, numel)
                st.data = np.frombuffer(self._read_storage(key), dtype=dtype.newbyteorder("<"))[:numel]
                self.storages[key] = st
            return self.storages[key]
        # legacy: ('storage', type, root_key, location, numel, view_metadata)
        numel, view = int(pid[4]), pid[5]
        if key not in self.storages:
            self.storages[key] = _Storage(dtype, numel)
        if view is not None:
            raise NotImplementedError("legacy storage views are not supported")
        return self.storages[key]


def _materialize(obj):
    if isinstance(obj, _LazyTensor):
        return obj.materialize()
    if isinstance(obj, dict):
        return type(obj)((k, _materialize(v)) for k, v in obj.items()) \
            if isinstance(obj, collections.OrderedDict) else {k: _materialize(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialize(v) for v in obj)
    return obj


def load_checkpoint(path):
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            pkl = [n for n in zf.namelist() if n.endswith("data.pkl")]
            assert len(pkl) == 1, pkl
            prefix = pkl[0][: -len("data.pkl")]
            with zf.open(pkl[0]) as f:
                obj = _Unpickler(f, lambda k: zf.read(f"{prefix}data/{k}")).load()
        return _materialize(obj)
    with open(path, "rb") as f:
        magic = pickle.load(f)
        assert magic == 0x1950A86A20F9469CFC6C, f"not a torch checkpoint (magic {magic!r})"
        protocol = pickle.load(f)
        assert protocol == 1001, protocol
        pickle.load(f)  # sys_info
        up = _Unpickler(f)
        obj = up.load()
        keys = pickle.load(f)
        for key in keys:
            st = up.storages[str(key)]
            (n,) = struct.unpack("<q", f.read(8))
            assert n == st.numel, (key, n, st.numel)
            raw = f.read(n * st.dtype.itemsize)
            assert len(raw) == n * st.dtype.itemsize, "truncated checkpoint"
            st.data = np.frombuffer(raw, dtype=st.dtype.newbyteorder("<"))
    return _materialize(obj)


def state_dict(path):
    """The checkpoint's tensors by name (unwrapping `model_state` or `state_dict`)."""
    obj = load_checkpoint(path)
    if isinstance(obj, dict):
        for wrap in ("model_state", "state_dict"):
            if wrap in obj and isinstance(obj[wrap], dict):
                obj = obj[wrap]
                break
    return {k: v for k, v in obj.items() if isinstance(v, np.ndarray)}


def torch_to_onnx_gates(m, H):
    """torch gate blocks i,f,g,o -> ONNX i,o,f,c along axis 0."""
    i, f, g, o = m[0:H], m[H:2 * H], m[2 * H:3 * H], m[3 * H:4 * H]
    return np.concatenate([i, o, f, g], axis=0)


def finish_model(graph, producer, full_check=False):
    """An opset-17, IR-8 model around `graph`, passed through the ONNX checker."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name=producer)
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=full_check)
    return model


def save_model(model, path):
    """Writes the model and prints its size and sha256."""
    onnx.save(model, path)
    data = open(path, "rb").read()
    print(f"wrote {path}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")
