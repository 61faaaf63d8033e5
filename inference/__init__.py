"""Face inference for JoyEdge devices: model store, runtimes, detector, embedder, tracker, pipeline.

Importing this package is cheap: LiteRT, ONNX Runtime and dlib are imported only when a model of
theirs is loaded.
"""

from inference.backends.base import Model
from inference.backends.litert import LiteRTModel
from inference.backends.onnx import OnnxModel
from inference.detector import BlazeFaceDetector, Detection
from inference.embedder import EMBEDDING_MODEL, FaceEmbedder
from inference.errors import (
    AcceleratorError,
    ImageError,
    InferenceError,
    ModelCorruptError,
    ModelMissingError,
)
from inference.image import decode_image, load_image
from inference.pipeline import FacePipeline, PipelineEvent, StageTimings, TrackEmbedded, TrackEnded
from inference.quality import face_quality
from inference.store import FetchResult, ModelEntry, ModelSource, ModelStore, VerifyResult, default_model_dir
from inference.tracker import Track, Tracker

__all__ = [
    "EMBEDDING_MODEL",
    "AcceleratorError",
    "BlazeFaceDetector",
    "Detection",
    "FaceEmbedder",
    "FacePipeline",
    "FetchResult",
    "ImageError",
    "InferenceError",
    "LiteRTModel",
    "Model",
    "ModelCorruptError",
    "ModelEntry",
    "ModelMissingError",
    "ModelSource",
    "ModelStore",
    "OnnxModel",
    "PipelineEvent",
    "StageTimings",
    "Track",
    "TrackEmbedded",
    "TrackEnded",
    "Tracker",
    "VerifyResult",
    "decode_image",
    "default_model_dir",
    "face_quality",
    "load_image",
]
