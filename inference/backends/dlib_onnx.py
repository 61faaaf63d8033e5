"""dlib's face-recognition ResNet run by ONNX Runtime: the same weights, converted in memory.

The ``.dat`` file that the model store fetched and verified is parsed (:mod:`.dlib_dat`) and turned
into an equivalent ONNX graph here, at load time (~0.1 s), so no converted file is downloaded or
cached: the ONNX model is always a deterministic function of the verified ``.dat``.

Equivalence with dlib, layer by layer:

- input ``input_rgb_image_sized<150>``: (pixel - mean[channel]) / 256 in RGB order, means read from
  the file (122.782, 117.001, 104.298); the graph takes uint8 chips as N x 150 x 150 x 3 and does the
  cast, normalisation and NHWC->NCHW transpose itself;
- ``con_``: cross-correlation (ONNX ``Conv``) with the padding and stride stored in the file (dlib's
  default padding is size/2 for stride 1 and 0 otherwise);
- ``affine_`` after a convolution: folded into that convolution's weights and bias
  (w * gamma, b * gamma + beta), in float64 before rounding to float32;
- ``max_pool_``/``avg_pool_``: floor-mode pooling with the stored padding; ``avg_pool_everything``
  is ``GlobalAveragePool``;
- ``add_prev_``: dlib's output has the larger size in every dimension and reads a smaller operand as
  zero beyond its edge. In the down-sampling blocks the shortcut has half the channels, and at 8x8 ->
  3x3 (convolution) vs 4x4 (pooled shortcut) the spatial sizes differ too; both become zero ``Pad``
  at the end of the smaller operand;
- ``fc_no_bias<128>``: ``MatMul`` with the (256, 128) weight. ``loss_metric`` adds nothing at
  inference: the descriptor is the fc output, as ``compute_face_descriptor`` returns it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from inference.backends.base import Model
from inference.backends.dlib_dat import (
    AddPrev,
    Affine,
    Conv,
    DlibNet,
    Fc,
    Pool,
    Relu,
    Skip,
    Tag,
    parse_dlib_net,
)
from inference.backends.onnx_proto import FLOAT, UINT8, Graph, value_info
from inference.errors import InferenceError

INPUT_NAME = "chips"
OUTPUT_NAME = "descriptors"

Shape = tuple[int, int, int]  # channels, rows, cols


def _out_size(size: int, window: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - window) // stride + 1


def _pad_to(g: Graph, name: str, shape: Shape, target: Shape) -> str:
    """Zero-pad ``name`` at the end of each dimension up to ``target`` (dlib's add_prev semantics)."""
    if shape == target:
        return name
    extra = [0, 0, 0, 0, 0, *(t - s for s, t in zip(shape, target, strict=True))]
    pads = g.const(np.array(extra, dtype=np.int64), "pads")
    return g.node("Pad", [name, pads])  # mode defaults to constant, value to 0


def build_onnx(net: DlibNet) -> bytes:
    """The serialized ONNX model equivalent to ``net``: uint8 chips (N, rows, cols, 3) -> (N, 128)."""
    rows, cols = net.input_size
    g = Graph(name="dlib_face_recognition_resnet_model_v1")
    x = g.node("Cast", [INPUT_NAME], to=FLOAT)
    x = g.node("Sub", [x, g.const(np.array(net.mean_rgb, dtype=np.float32), "mean")])
    x = g.node("Mul", [x, g.const(np.array(1.0 / 256.0, dtype=np.float32), "scale")])
    x = g.node("Transpose", [x], perm=[0, 3, 1, 2])
    shape: Shape = (3, rows, cols)
    tags: dict[int, tuple[str, Shape]] = {}
    layers = net.layers
    i = 0
    while i < len(layers):
        layer = layers[i]
        if isinstance(layer, Conv):
            w = layer.weight.astype(np.float64)
            b = layer.bias.astype(np.float64)
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            if isinstance(nxt, Affine):  # fold the frozen batch norm into the convolution
                w = w * nxt.gamma.astype(np.float64)[:, None, None, None]
                b = b * nxt.gamma + nxt.beta
                i += 1
            (py, px), (sy, sx) = layer.padding, layer.stride
            kh, kw = layer.weight.shape[2:]
            x = g.node(
                "Conv", [x, g.const(w.astype(np.float32), "w"), g.const(b.astype(np.float32), "b")],
                kernel_shape=[kh, kw], strides=[sy, sx], pads=[py, px, py, px],
            )
            shape = (layer.weight.shape[0], _out_size(shape[1], kh, sy, py), _out_size(shape[2], kw, sx, px))
        elif isinstance(layer, Affine):  # not after a convolution: an explicit per-channel scale and shift
            x = g.node("Mul", [x, g.const(layer.gamma.reshape(1, -1, 1, 1).astype(np.float32), "gamma")])
            x = g.node("Add", [x, g.const(layer.beta.reshape(1, -1, 1, 1).astype(np.float32), "beta")])
        elif isinstance(layer, Relu):
            x = g.node("Relu", [x])
        elif isinstance(layer, Pool):
            if layer.size == (0, 0):
                if layer.kind != "avg":
                    raise InferenceError("global max pooling is not used by dlib's face network")
                x = g.node("GlobalAveragePool", [x])
                shape = (shape[0], 1, 1)
            else:
                (kh, kw), (sy, sx), (py, px) = layer.size, layer.stride, layer.padding
                op = "MaxPool" if layer.kind == "max" else "AveragePool"
                x = g.node(op, [x], kernel_shape=[kh, kw], strides=[sy, sx], pads=[py, px, py, px])
                shape = (shape[0], _out_size(shape[1], kh, sy, py), _out_size(shape[2], kw, sx, px))
        elif isinstance(layer, Tag):
            tags[layer.tag] = (x, shape)
        elif isinstance(layer, Skip):
            x, shape = tags[layer.tag]
        elif isinstance(layer, AddPrev):
            other, other_shape = tags[layer.tag]
            target: Shape = tuple(max(a, b) for a, b in zip(shape, other_shape, strict=True))  # type: ignore[assignment]
            x = g.node("Add", [_pad_to(g, x, shape, target), _pad_to(g, other, other_shape, target)])
            shape = target
        elif isinstance(layer, Fc):
            x = g.node("Flatten", [x], axis=1)
            x = g.node("MatMul", [x, g.const(layer.weight.astype(np.float32), "fc")], output=OUTPUT_NAME)
            shape = (layer.weight.shape[1], 1, 1)
        else:  # pragma: no cover - the parser yields only the types above
            raise InferenceError(f"no ONNX conversion for dlib layer {layer!r}")
        i += 1
    if x != OUTPUT_NAME:
        raise InferenceError("dlib network does not end in an fc layer: not a face descriptor network")
    return g.model(
        [value_info(INPUT_NAME, UINT8, ["N", rows, cols, 3])],
        [value_info(OUTPUT_NAME, FLOAT, ["N", shape[0]])],
        producer="joyedge-dlib-onnx",
    )


def convert_dat(path: str | Path) -> bytes:
    """Read dlib's ``.dat`` network file and return the equivalent ONNX model bytes."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InferenceError(f"cannot read {path} ({err}): run `joyedge models verify`") from err
    return build_onnx(parse_dlib_net(data))


class DlibOnnxModel(Model):
    """dlib's face ResNet converted from its ``.dat`` and run by ONNX Runtime on the CPU.

    ``run(chips)`` takes uint8 RGB chips (N, 150, 150, 3) and returns ``[descriptors (N, 128)]``,
    the raw (not normalised) descriptors, as dlib's ``compute_face_descriptor`` does.
    """

    backend = "onnx"
    accelerator = "cpu"

    def __init__(self, dat_path: str | Path, intra_op_threads: int = 1, name: str = "dlib_resnet_v1") -> None:
        """Convert ``dat_path`` in memory and load it into an ONNX Runtime session."""
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise InferenceError("ONNX Runtime is not installed: `pip install onnxruntime`") from err
        self.name = name
        model = convert_dat(dat_path)
        self.onnx_sha256 = hashlib.sha256(model).hexdigest()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = intra_op_threads
        opts.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own untyped Fail/InvalidGraph exceptions
            raise InferenceError(f"ONNX Runtime rejects the graph converted from {dat_path} ({err})") from err
        inp = self._session.get_inputs()[0]
        self.input_shapes = [tuple(inp.shape)]

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        """Descriptors of a batch of uint8 chips (N, 150, 150, 3)."""
        if len(inputs) != 1:
            raise InferenceError(f"{self.name} takes one input (a batch of chips), got {len(inputs)}")
        chips = np.ascontiguousarray(inputs[0], dtype=np.uint8)
        if chips.ndim == 3:
            chips = chips[None]
        try:
            return list(self._session.run(None, {INPUT_NAME: chips}))
        except Exception as err:  # onnxruntime's exception types are not importable in a stable way
            raise InferenceError(f"{self.name} inference failed: {err}") from err
