"""Product of a fixed int8 matrix with a float vector on ONNX Runtime's int8 kernels (MLAS).

numpy has no fast int8 matrix-vector product. ONNX Runtime's ``MatMulNBits`` (com.microsoft, 8 bits,
``accuracy_level=4``) is the kernel MLAS tunes for LLM decoding, i.e. exactly a GEMV against a constant,
pre-packed int8 matrix: the vector is quantised to int8 once per call, the dot products run on int8 SIMD
(AVX2/AVX512-VNNI on x86, NEON dot product on ARM) with int32 accumulation, one float scale at the end.
Measured here at 100k x 128 on one thread: 0.8 ms, against 2.1 ms for numpy's float32 product; the plain
``MatMulInteger`` op is slower (1.0-1.5 ms: it packs the matrix again on every call).

The caller passes a vector whose entries are already integers times one scale, with the largest
magnitude exactly 127 times it, so the kernel's own quantisation of the vector loses nothing. The
session checks that at build time against an exact integer product; a runtime that answers otherwise
(or lacks the op) raises :class:`KernelUnavailableError` and the caller keeps its float path.
"""

from __future__ import annotations

import numpy as np

from inference.backends.onnx_proto import FLOAT, Graph, value_info
from inference.errors import InferenceError

# Intra-op threads of the kernel: one, so a search never competes with capture and inference on a
# 2-core device (and the benchmark compares single-threaded peers).
GEMV_THREADS = 1
# Error of the kernel against the exact integer product, relative to scale * 255 * sum |p_j|: the
# kernel works on unsigned codes (code + 128) and removes the zero point in float32 after scaling, so
# its rounding is relative to that sum, not to the result (all-zero codes give ~1e-7 of it, not 0).
# The build-time check enforces the bound; callers add it to theirs (`error_bound`).
KERNEL_RTOL = 1e-5
_BLOCKS = (16, 32, 64, 128, 256)  # row lengths MatMulNBits accepts as one block


class KernelUnavailableError(InferenceError):
    """ONNX Runtime or its int8 kernel is missing or answered wrongly on this machine."""


class Int8Gemv:
    """``codes @ (scale * p)`` for a constant int8 matrix ``codes`` (N x K) and int8 ``p``."""

    def __init__(self, codes: np.ndarray, threads: int = GEMV_THREADS) -> None:
        try:
            import onnxruntime as ort
        except ImportError as err:  # a dependency, but the caller must survive a broken install
            raise KernelUnavailableError("onnxruntime is not importable: pip install onnxruntime") from err
        codes = np.asarray(codes)
        if codes.dtype != np.int8 or codes.ndim != 2 or codes.shape[0] == 0 or codes.shape[1] not in _BLOCKS:
            raise KernelUnavailableError(f"int8 codes of shape N x {_BLOCKS} needed, got {codes.dtype} {codes.shape}")
        n, k = (int(d) for d in codes.shape)
        self.rows, self.dims = n, k
        # MatMulNBits stores unsigned codes with an implicit zero point of 128 (2^(bits-1)).
        packed = (codes.view(np.uint8) ^ np.uint8(0x80)).reshape(n, 1, k)
        g = Graph("int8_gemv")
        b = g.const(packed, "codes")
        s = g.const(np.ones(n, dtype=np.float32), "scales")
        g.node("MatMulNBits", ["vector", b, s], "out", domain="com.microsoft",
               K=k, N=n, bits=8, block_size=k, accuracy_level=4)
        model = g.model([value_info("vector", FLOAT, [1, k])], [value_info("out", FLOAT, [1, n])],
                        "joyedge-int8-gemv", extra_opsets=[("com.microsoft", 1)])
        del packed
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        except Exception as err:  # ORT raises its own exception types (Fail, NotImplemented, ...)
            raise KernelUnavailableError(f"ONNX Runtime cannot build the int8 kernel: {err}") from err
        self._check(codes)

    def __call__(self, p: np.ndarray, scale: float) -> np.ndarray:
        """Float32 ``codes @ (scale * p)`` (length N, a fresh array) for integer ``p`` with max |p| == 127."""
        vector = (np.asarray(p, dtype=np.float64) * scale).astype(np.float32).reshape(1, self.dims)
        return self._session.run(None, {"vector": vector})[0].reshape(self.rows)

    @staticmethod
    def error_bound(p: np.ndarray, scale: float) -> float:
        """Largest |kernel - exact| for any row, given the vector (checked at build time)."""
        return KERNEL_RTOL * scale * 255.0 * float(np.abs(p).sum())

    def _check(self, codes: np.ndarray) -> None:
        """Compare with the exact integer product on sampled rows: the caller's error bound relies on it."""
        rng = np.random.default_rng(0)
        sample = np.unique(np.concatenate([np.arange(min(self.rows, 64)),
                                           rng.integers(0, self.rows, size=min(self.rows, 448))]))
        ints = codes[sample].astype(np.int64)
        for sign in (1, -1):
            p = rng.integers(-127, 128, size=self.dims)
            p[rng.integers(0, self.dims)] = 127 * sign
            scale = 3.0517578125e-05  # 2^-15: any scale; a power of two keeps the reference exact
            got = self(p, scale)[sample].astype(np.float64)
            want = (ints @ p) * scale
            err = np.abs(got - want)
            if not bool(np.all(err <= self.error_bound(p, scale))):
                raise KernelUnavailableError(
                    f"the int8 kernel of this ONNX Runtime is off by {float(err.max()):.3g} (expected exact int8 "
                    "products): the gallery keeps its float32 search")
