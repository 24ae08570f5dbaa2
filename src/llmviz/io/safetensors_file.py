"""Reading safetensors files, memory-mapped, one tensor at a time, with errors that name the file and the tensor.

The format: an 8-byte little-endian header length, a JSON header mapping each tensor name to its
dtype, shape and [start, end) byte offsets in the data that follows, and an optional __metadata__.
The whole header is checked before anything is read, so a truncated or corrupt file is refused
before a single weight is loaded. `view` maps a tensor in place, in the file's dtype: nothing is read until a
number is used, and the pages read are the operating system's file cache, shared, not the process's memory.
"""

from __future__ import annotations

import itertools
import json
import mmap
import os
import threading
from pathlib import Path

import numpy as np

from ..core.errors import BadModelFile
from ..core.weights import bf16_to_f32

# File dtype -> (numpy dtype of the stored bits, bytes per element). BF16 is read as its uint16 bits.
DTYPES = {
    "F64": (np.float64, 8), "F32": (np.float32, 4), "F16": (np.float16, 2), "BF16": (np.uint16, 2),
    "I64": (np.int64, 8), "I32": (np.int32, 4), "I16": (np.int16, 2), "I8": (np.int8, 1), "U8": (np.uint8, 1),
    "BOOL": (np.bool_, 1),
}
FLOAT_DTYPES = ("F32", "F16", "BF16", "F64")  # what a weight may be stored as
MAX_HEADER = 100 * 1024 * 1024


def f32_to_bf16(x: np.ndarray) -> np.ndarray:
    """Round float32 to bfloat16 (nearest, ties to even), as uint16 bits."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


WRITE_DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.int32): "I32", np.dtype(np.float16): "F16"}


def _header(specs: dict[str, tuple], metadata: dict[str, str] | None) -> bytes:
    """The 8-byte length and the JSON header of tensors given as name -> (dtype, shape) (padded so that the data
    starts 8-byte aligned)."""
    header: dict = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for name, (dtype, shape) in specs.items():
        size = np.dtype(dtype).itemsize * int(np.prod(shape, dtype=np.int64))
        header[name] = {"dtype": WRITE_DTYPES[np.dtype(dtype)], "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    return len(head).to_bytes(8, "little") + head


def _specs(tensors: dict[str, np.ndarray]) -> dict[str, tuple]:
    return {n: (a.dtype, a.shape) for n, a in tensors.items()}


def allocate(specs: dict[str, tuple], metadata: dict[str, str] | None = None) -> tuple[memoryview, dict[str, np.ndarray]]:
    """A safetensors buffer of its final size for tensors given as name -> (dtype, shape), its header written, and
    each tensor's place in it as an array to fill (little-endian; float32, float16 or int32)."""
    head = _header(specs, metadata)
    out = bytearray(len(head) + sum(np.dtype(d).itemsize * int(np.prod(s, dtype=np.int64)) for d, s in specs.values()))
    out[:len(head)] = head
    views, start = {}, len(head)
    for name, (dtype, shape) in specs.items():
        dtype = np.dtype(dtype)
        views[name] = np.frombuffer(out, dtype.newbyteorder("<"), int(np.prod(shape, dtype=np.int64)), start).reshape(shape)
        start += views[name].nbytes
    return memoryview(out), views


def to_bytes(tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> memoryview:
    """The tensors in safetensors format, written straight into one buffer of the final size (see allocate)."""
    out, views = allocate(_specs(tensors), metadata)
    for name, a in tensors.items():
        views[name][...] = a
    return out


def write(path, tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> None:
    """The same file as to_bytes, written one tensor at a time (no copy of the whole)."""
    with open(path, "wb") as f:
        f.write(_header(_specs(tensors), metadata))
        for a in tensors.values():
            f.write(np.ascontiguousarray(a, a.dtype.newbyteorder("<")).data)


def _whole(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _entry(info):
    """(dtype, shape, offsets) of a well-formed header entry, else None."""
    if not isinstance(info, dict):
        return None
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in DTYPES:
        return None
    if not isinstance(shape, list) or len(shape) > 8 or not all(_whole(d) for d in shape):
        return None
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_whole(o) for o in offsets) or offsets[0] > offsets[1]:
        return None
    return dtype, shape, offsets


class SafetensorsFile:
    def __init__(self, path):
        self.path = Path(path)
        try:
            size = os.path.getsize(self.path)
            with open(self.path, "rb") as f:
                head = f.read(8)
                if len(head) < 8:
                    raise BadModelFile(f"{self.path}: not a safetensors file (only {len(head)} bytes)")
                n = int.from_bytes(head, "little")
                if n > min(MAX_HEADER, size - 8):
                    raise BadModelFile(f"{self.path}: not a safetensors file, or truncated (header of {n} bytes "
                                       f"in a file of {size})")
                header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
            reason = "nested too deeply" if isinstance(e, RecursionError) else str(e)
            raise BadModelFile(f"{self.path}: corrupt safetensors header ({reason})") from None
        except OSError as e:
            raise BadModelFile(f"{self.path}: cannot read it ({e.strerror})") from None
        if not isinstance(header, dict):
            raise BadModelFile(f"{self.path}: corrupt safetensors header (not a JSON object)")
        meta = header.pop("__metadata__", None) or {}
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            raise BadModelFile(f"{self.path}: corrupt safetensors header (__metadata__ must map names to strings)")
        self.metadata: dict[str, str] = meta
        self.size = size
        self.base = 8 + n
        self._map: mmap.mmap | None = None
        self._map_lock = threading.Lock()
        self.tensors: dict[str, dict] = header
        ranges = []
        for name, info in header.items():
            entry = _entry(info)
            if entry is None:
                raise BadModelFile(f"{self.path}: tensor {name!r} has an unsupported dtype or a corrupt entry "
                                   "(dtype, shape of whole numbers, two whole-number data_offsets)")
            dtype, shape, (start, end) = entry
            count = 1
            for d in shape:
                count *= d
            if end - start != count * DTYPES[dtype][1]:
                raise BadModelFile(f"{self.path}: tensor {name!r}: its byte range does not match its shape {shape}")
            if self.base + end > size:
                raise BadModelFile(f"{self.path}: the file is truncated: tensor {name!r} ends at byte "
                                   f"{self.base + end:,} but the file has {size:,} bytes")
            ranges.append((start, end, name))
        ranges.sort()
        for (_, end, a), (start, _, b) in itertools.pairwise(ranges):
            if start < end:
                raise BadModelFile(f"{self.path}: tensors {a!r} and {b!r} overlap in the file")

    def keys(self) -> list[str]:
        return list(self.tensors)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.tensors[name]["shape"])

    def view(self, name: str) -> np.ndarray:
        """A weight mapped in place, in the file's dtype (BF16 as its uint16 bits; F64 is read and cast to float32,
        which it is checked before: see `read`). Read-only; no byte of it is read until a number is used."""
        info = self.tensors[name]
        if info["dtype"] == "F64":
            return self.read(name)
        self._float(name)
        np_dtype, itemsize = DTYPES[info["dtype"]]
        start, end = info["data_offsets"]
        with self._map_lock:
            if self._map is None:
                try:
                    with open(self.path, "rb") as f:
                        self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
                except (OSError, ValueError) as e:
                    raise BadModelFile(f"{self.path}: cannot map it ({getattr(e, 'strerror', None) or e})") from None
                if len(self._map) != self.size:
                    raise BadModelFile(f"{self.path}: the file changed while it was read")
        a = np.frombuffer(self._map, np.dtype(np_dtype).newbyteorder("<"), (end - start) // itemsize, self.base + start)
        return a.reshape(info["shape"])

    def _float(self, name: str) -> None:
        dtype = self.tensors[name]["dtype"]
        if dtype not in FLOAT_DTYPES:
            raise BadModelFile(f"{self.path}: tensor {name!r} is {dtype}; weights must be floating point "
                               f"({', '.join(FLOAT_DTYPES[:-1])} or {FLOAT_DTYPES[-1]})")

    def read(self, name: str) -> np.ndarray:
        """A weight: float32 (from F32, F16 or BF16), or float64 as stored (so that a value beyond float32 is named by
        convert.check_weight, never cast to inf). A tensor of another dtype (integers, booleans) is refused before
        its bytes are read: llmviz reads tensors only as weights, and a weight is a floating-point number."""
        info = self.tensors[name]
        self._float(name)
        np_dtype, itemsize = DTYPES[info["dtype"]]
        start, end = info["data_offsets"]
        with open(self.path, "rb") as f:
            f.seek(self.base + start)
            a = np.fromfile(f, dtype=np.dtype(np_dtype).newbyteorder("<"), count=(end - start) // itemsize)
        a = a.reshape(info["shape"])
        if info["dtype"] == "BF16":
            return bf16_to_f32(a)
        return a.astype(np.float32) if info["dtype"] == "F16" else a
