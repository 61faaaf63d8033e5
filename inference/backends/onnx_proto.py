"""A minimal writer of ONNX model protobufs, so a graph can be built without the ``onnx`` package.

Only what :mod:`inference.backends.dlib_onnx` needs: nodes with int / ints / float attributes, float32
and int64 initializers, and tensor inputs/outputs with fixed or named dimensions. Field numbers are
those of ``onnx.proto`` (proto2, so repeated scalars are written unpacked). The output is a pure
function of the graph, byte for byte, so a converted model can be hashed and compared.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

IR_VERSION = 8
OPSET = 17
FLOAT, UINT8, INT64 = 1, 2, 7
_DTYPES = {np.dtype(np.float32): FLOAT, np.dtype(np.uint8): UINT8, np.dtype(np.int64): INT64}
_ATTR_FLOAT, _ATTR_INT, _ATTR_INTS = 1, 2, 7


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64 values are written as 10-byte two's complement
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(field_no: int, wire: int) -> bytes:
    return _varint(field_no << 3 | wire)


def _int(field_no: int, value: int) -> bytes:
    return _key(field_no, 0) + _varint(value)


def _bytes(field_no: int, value: bytes | str) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return _key(field_no, 2) + _varint(len(raw)) + raw


def _float(field_no: int, value: float) -> bytes:
    return _key(field_no, 5) + struct.pack("<f", value)


def tensor_proto(name: str, array: np.ndarray) -> bytes:
    """TensorProto: dims (1), data_type (2), name (8), raw_data (9, little-endian)."""
    array = np.ascontiguousarray(array)
    out = b"".join(_int(1, d) for d in array.shape)
    out += _int(2, _DTYPES[array.dtype]) + _bytes(8, name)
    return out + _bytes(9, array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())


def value_info(name: str, elem_type: int, dims: Sequence[int | str]) -> bytes:
    """ValueInfoProto with a tensor type; a str dimension is a named (dynamic) one."""
    shape = b"".join(_bytes(1, _bytes(2, d) if isinstance(d, str) else _int(1, d)) for d in dims)
    tensor_type = _int(1, elem_type) + _bytes(2, shape)
    return _bytes(1, name) + _bytes(2, _bytes(1, tensor_type))


def _attribute(name: str, value: int | float | Sequence[int]) -> bytes:
    if isinstance(value, bool | int):
        return _bytes(1, name) + _int(3, int(value)) + _int(20, _ATTR_INT)
    if isinstance(value, float):
        return _bytes(1, name) + _float(2, value) + _int(20, _ATTR_FLOAT)
    return _bytes(1, name) + b"".join(_int(8, int(v)) for v in value) + _int(20, _ATTR_INTS)


@dataclass
class Graph:
    """An ONNX graph under construction: call :meth:`node` in topological order, then :meth:`model`."""

    name: str
    nodes: list[bytes] = field(default_factory=list)
    initializers: list[bytes] = field(default_factory=list)
    _count: int = 0

    def const(self, array: np.ndarray, hint: str = "c") -> str:
        """Add an initializer and return its name."""
        self._count += 1
        name = f"{hint}_{self._count}"
        self.initializers.append(tensor_proto(name, array))
        return name

    def node(self, op: str, inputs: Sequence[str], output: str | None = None, *, domain: str = "",
             **attrs: int | float | Sequence[int]) -> str:
        """Add a node with one output and return the output's name (`domain` e.g. "com.microsoft")."""
        self._count += 1
        out = output or f"{op.lower()}_{self._count}"
        body = b"".join(_bytes(1, i) for i in inputs) + _bytes(2, out)
        body += _bytes(3, f"{op}_{self._count}") + _bytes(4, op)
        body += b"".join(_bytes(5, _attribute(k, v)) for k, v in sorted(attrs.items()))
        if domain:
            body += _bytes(7, domain)
        self.nodes.append(body)
        return out

    def model(self, inputs: Sequence[bytes], outputs: Sequence[bytes], producer: str,
              extra_opsets: Sequence[tuple[str, int]] = ()) -> bytes:
        """The serialized ModelProto; `extra_opsets` are (domain, version) imports besides the default one."""
        graph = b"".join(_bytes(1, n) for n in self.nodes) + _bytes(2, self.name)
        graph += b"".join(_bytes(5, t) for t in self.initializers)
        graph += b"".join(_bytes(11, v) for v in inputs) + b"".join(_bytes(12, v) for v in outputs)
        opsets = [_bytes(1, "") + _int(2, OPSET)] + [_bytes(1, d) + _int(2, v) for d, v in extra_opsets]
        return _int(1, IR_VERSION) + _bytes(2, producer) + _bytes(7, graph) + b"".join(_bytes(8, o) for o in opsets)
