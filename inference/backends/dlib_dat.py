"""A reader for dlib's own serialization of its face-recognition ResNet (``*.dat``), in numpy.

dlib writes a network outside-in: the loss layer, then one version number per layer from the outermost
layer down to the input layer, then the input layer's settings, and then each layer's details from the
innermost layer back out (its parameters, and the bookkeeping flags and tensors ``add_layer`` keeps).
Tag and skip layers carry only their version number. The reader therefore needs the network's layer
list, which :func:`face_recognition_v1_layers` spells out from the type in dlib's
``examples/dnn_face_recognition_ex.cpp``. It checks every layer name and version against it and that
the file ends exactly where the last layer does, so a different network fails loudly instead of
loading wrong weights.

Primitive encodings (dlib ``serialize.h``, ``dnn/tensor.h``):

- integer: one control byte (low 4 bits: number of bytes, bit 7: negative), then the magnitude,
  little-endian;
- ``float``/``double``: two integers, mantissa and exponent (value = mantissa * 2**exponent);
- ``bool``: the character ``'1'`` or ``'0'``;
- string: its length as an integer, then the bytes;
- tensor version 2: num_samples, k, nr, nc, then little-endian IEEE float32 values (version 1 wrote
  each value as a dlib float);
- alias_tensor: version, num_samples, k, nr, nc.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from inference.errors import InferenceError

# dlib encodes a non-finite float as a reserved exponent (serialize.h, float_details).
_SPECIAL_EXPONENTS = {32000: np.inf, 32001: -np.inf, 32002: np.nan}


class DatFormatError(InferenceError):
    """The ``.dat`` file is not the dlib network this reader expects."""


@dataclass(frozen=True)
class Conv:
    """``con_``: cross-correlation with bias; weight is (filters, channels, rows, cols)."""

    weight: np.ndarray
    bias: np.ndarray
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class Affine:
    """``affine_`` in CONV mode: y = x * gamma[channel] + beta[channel] (batch norm frozen after training)."""

    gamma: np.ndarray
    beta: np.ndarray


@dataclass(frozen=True)
class Relu:
    """``relu_``."""


@dataclass(frozen=True)
class Pool:
    """``max_pool_`` / ``avg_pool_``; size (0, 0) means the whole input (``avg_pool_everything``)."""

    kind: str  # "max" or "avg"
    size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class Fc:
    """``fc_`` without bias: y = x @ weight, weight is (inputs, outputs)."""

    weight: np.ndarray


@dataclass(frozen=True)
class Tag:
    """``tagN``: remembers the value flowing through it."""

    tag: int


@dataclass(frozen=True)
class Skip:
    """``skipN``: continues from the value remembered by ``tagN``."""

    tag: int


@dataclass(frozen=True)
class AddPrev:
    """``add_prevN``: adds the value remembered by ``tagN``; a smaller operand counts as zero-padded."""

    tag: int


Layer = Conv | Affine | Relu | Pool | Fc | Tag | Skip | AddPrev


@dataclass
class DlibNet:
    """A parsed network: input normalisation and the layers in forward order (input side first)."""

    input_size: tuple[int, int]
    mean_rgb: tuple[float, float, float]
    layers: list[Layer] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# The network type, outermost layer first, as tokens ("con", 32, 7, 2) ... built from the aliases
# of dnn_face_recognition_ex.cpp so the list reads like the C++ type.

Token = tuple


def _block(n: int, stride: int) -> list[Token]:
    # block<N,BN,stride> = BN<con<N,3,3,1,1,relu<BN<con<N,3,3,stride,stride,SUBNET>>>>>
    return [("affine",), ("con", n, 3, 1), ("relu",), ("affine",), ("con", n, 3, stride)]


def _ares(n: int) -> list[Token]:
    # ares = relu<add_prev1<block<N,affine,1,tag1<SUBNET>>>>
    return [("relu",), ("add_prev", 1), *_block(n, 1), ("tag", 1)]


def _ares_down(n: int) -> list[Token]:
    # ares_down = relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,affine,2,tag1<SUBNET>>>>>>>
    return [("relu",), ("add_prev", 2), ("avg_pool", 2, 2), ("skip", 1), ("tag", 2), *_block(n, 2), ("tag", 1)]


def face_recognition_v1_layers() -> list[Token]:
    """The layers of ``dlib_face_recognition_resnet_model_v1`` (``anet_type``), outermost first."""
    return [
        ("fc", 128),
        ("avg_pool", 0, 1),
        *_ares_down(256),                                        # alevel0
        *_ares(256), *_ares(256), *_ares_down(256),              # alevel1
        *_ares(128), *_ares(128), *_ares_down(128),              # alevel2
        *_ares(64), *_ares(64), *_ares(64), *_ares_down(64),     # alevel3
        *_ares(32), *_ares(32), *_ares(32),                      # alevel4
        ("max_pool", 3, 2),
        ("relu",),
        ("affine",),
        ("con", 32, 7, 2),
    ]


# ---------------------------------------------------------------------------------------------


class _Reader:
    """Sequential reader of dlib's primitive encodings over an in-memory file."""

    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def _take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise DatFormatError(f"the file ends early at byte {self.pos} (wanted {n} more bytes)")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def int(self) -> int:
        ctrl = self._take(1)[0]
        size = ctrl & 0x0F
        if size > 8 or ctrl & 0x70:
            raise DatFormatError(f"bad integer control byte {ctrl:#x} at byte {self.pos - 1}")
        value = int.from_bytes(self._take(size), "little")
        return -value if ctrl & 0x80 else value

    def float(self) -> float:
        mantissa, exponent = self.int(), self.int()
        if exponent in _SPECIAL_EXPONENTS:
            return float(_SPECIAL_EXPONENTS[exponent])
        return float(np.ldexp(np.float64(mantissa), exponent))

    def bool(self) -> bool:
        ch = bytes(self._take(1))
        if ch not in (b"0", b"1"):
            raise DatFormatError(f"bad bool {ch!r} at byte {self.pos - 1}")
        return ch == b"1"

    def string(self) -> str:
        n = self.int()
        if not 0 <= n <= 256:
            raise DatFormatError(f"implausible string length {n} at byte {self.pos}")
        return bytes(self._take(n)).decode("ascii", errors="replace")

    def expect(self, *names: str) -> str:
        got = self.string()
        if got not in names:
            raise DatFormatError(f"expected {' or '.join(names)} at byte {self.pos}, found {got!r}")
        return got

    def tensor(self) -> np.ndarray:
        version = self.int()
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        if version == 2:
            values = np.frombuffer(self._take(4 * count), dtype="<f4").astype(np.float32)
        elif version == 1:
            values = np.array([self.float() for _ in range(count)], dtype=np.float32)
        else:
            raise DatFormatError(f"unknown tensor version {version} at byte {self.pos}")
        return values.reshape(shape)

    def alias_tensor(self) -> tuple[int, ...]:
        if (version := self.int()) != 1:
            raise DatFormatError(f"unknown alias_tensor version {version} at byte {self.pos}")
        return tuple(self.int() for _ in range(4))


def _read_details(r: _Reader, token: Token) -> Layer | None:
    """One layer's own serialization (its ``details``); None for layers without parameters."""
    kind = token[0]
    if kind == "con":
        r.expect("con_4")
        params = r.tensor().ravel()
        filters, rows, cols = r.int(), r.int(), r.int()
        stride = (r.int(), r.int())
        padding = (r.int(), r.int())
        wshape = r.alias_tensor()
        bshape = r.alias_tensor()
        for _ in range(4):  # learning-rate and weight-decay multipliers: training only
            r.float()
        if (filters, rows, stride[0]) != (token[1], token[2], token[3]) or wshape[0] != filters:
            raise DatFormatError(f"con layer is {filters}x{rows}x{cols}/{stride}, expected {token[1:]}")
        nw = int(np.prod(wshape))
        if params.size != nw + int(np.prod(bshape)):
            raise DatFormatError("con layer parameter count does not match its filter shape")
        return Conv(params[:nw].reshape(wshape), params[nw:].copy(), stride, padding)
    if kind == "affine":
        r.expect("affine_")
        params = r.tensor().ravel()
        gshape, bshape = r.alias_tensor(), r.alias_tensor()
        mode = r.int()
        if mode != 0:  # dlib's layer_mode: CONV_MODE = 0 (per channel), FC_MODE = 1 (per element)
            raise DatFormatError(f"affine layer in mode {mode}: only CONV_MODE (0) is expected here")
        n = int(np.prod(gshape))
        if params.size != n + int(np.prod(bshape)):
            raise DatFormatError("affine layer parameter count does not match gamma and beta")
        return Affine(params[:n].copy(), params[n:].copy())
    if kind == "relu":
        r.expect("relu_")
        return Relu()
    if kind in ("max_pool", "avg_pool"):
        r.expect(f"{kind}_2")
        size = (r.int(), r.int())
        stride = (r.int(), r.int())
        padding = (r.int(), r.int())
        if size != (token[1], token[1]) or stride != (token[2], token[2]):
            raise DatFormatError(f"{kind} is {size}/{stride}, expected {token[1:]}")
        return Pool(kind[:3], size, stride, padding)
    if kind == "fc":
        r.expect("fc_2")
        outputs, inputs = r.int(), r.int()
        params = r.tensor().ravel()
        r.alias_tensor()  # weights
        r.alias_tensor()  # biases
        bias_mode = r.int()
        for _ in range(4):
            r.float()
        if outputs != token[1] or bias_mode != 1 or params.size != inputs * outputs:
            raise DatFormatError(f"fc layer {inputs}->{outputs} (bias mode {bias_mode}) is not fc_no_bias<{token[1]}>")
        return Fc(params.reshape(inputs, outputs))
    if kind == "add_prev":
        r.expect("add_prev_")
        return AddPrev(token[1])
    raise DatFormatError(f"no reader for layer {kind}")


def parse_dlib_net(data: bytes, layers: list[Token] | None = None) -> DlibNet:
    """Parse a serialized ``loss_metric`` network (default: the face-recognition ResNet v1)."""
    tokens = face_recognition_v1_layers() if layers is None else layers
    r = _Reader(data)
    if (version := r.int()) != 1:
        raise DatFormatError(f"loss layer version {version}, expected 1: not a dlib DNN file")
    r.expect("loss_metric_2")
    r.float()  # margin, training only
    r.float()  # distance threshold, training only
    versions = []
    for token in tokens:
        v = r.int()
        ok = {1} if token[0] in ("tag", "skip") else {1, 2}
        if token is tokens[-1]:
            ok = {2, 3}  # the innermost layer is add_layer<..., input layer>
        if v not in ok:
            raise DatFormatError(f"layer {token} has version {v}, expected one of {sorted(ok)}")
        versions.append(v)
    r.expect("input_rgb_image_sized")
    mean = (r.float(), r.float(), r.float())
    size = (r.int(), r.int())

    forward: list[Layer] = []
    for i in range(len(tokens) - 1, -1, -1):
        token = tokens[i]
        if token[0] == "tag":
            forward.append(Tag(token[1]))
            continue
        if token[0] == "skip":
            forward.append(Skip(token[1]))
            continue
        layer = _read_details(r, token)
        for _ in range(3):  # setup called, gradient stale, output disabled
            r.bool()
        r.tensor()  # x_grad
        r.tensor()  # cached_output
        if i == len(tokens) - 1:
            r.tensor()  # grad_final
            if versions[i] >= 3:
                r.int()  # sample_expansion_factor
        elif versions[i] >= 2:
            r.tensor()  # params_grad
        if layer is not None:
            forward.append(layer)
    if r.pos != len(r.data):
        raise DatFormatError(f"{len(r.data) - r.pos} bytes left after the last layer: not the expected network")
    return DlibNet(input_size=size, mean_rgb=mean, layers=forward)
