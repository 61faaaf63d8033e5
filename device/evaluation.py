"""Accuracy evaluation on labelled photo folders: identification (closed/open set, 1:1) and detection.

Identification runs the device's own code path: BlazeFace finds the face, the dlib embedder embeds
it, templates go into a :class:`~device.gallery.Gallery` and each probe is searched 1:N exactly as on
a device. Enrolment photos are embedded with their mirror image too (both chips averaged): that
costs nothing at probe time and makes each template less pose-specific. No face image is written.
"""

from __future__ import annotations

import logging
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from device.config import IdentityConfig
from device.errors import DeviceError
from device.eval_metrics import OpenSetScores, impostor_sides, pair_scores, tar_at_far
from device.gallery import Gallery
from device.open_set import ImpostorTail, OpenSetPolicy

_LOG = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}
FARS = {"1e-2": 1e-2, "1e-3": 1e-3, "1e-4": 1e-4}
OPEN_SET_FPIR = 0.01
# The payment threshold is calibrated for this much stricter false-alarm rate.
PAYMENT_FPIR = 0.001
# Gallery sizes (templates) for which `joyedge eval calibrate` gives the tail's greet/payment thresholds.
GALLERY_SIZES = (10, 100, 1_000, 10_000, 100_000)
# A tight face crop (an aligned chip) leaves BlazeFace no context: pad by this fraction and retry.
RETRY_PAD = 0.5


def list_identities(root: Path) -> dict[str, list[Path]]:
    """Sub-folder name → its image files sorted by name; a flat folder gives one label per file."""
    root = Path(root)
    if not root.is_dir():
        raise DeviceError(f"{root} is not a folder: pass a folder with one sub-folder per identity")
    people: dict[str, list[Path]] = {}
    for entry in sorted(root.iterdir()):
        if entry.is_dir():
            images = sorted(p for p in entry.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if images:
                people[entry.name] = images
        elif entry.suffix.lower() in IMAGE_SUFFIXES:
            people[f"{entry.stem}"] = [entry]
    if not people:
        raise DeviceError(f"{root} has no images (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return people


def shared_distractors(shared: Path) -> list[Path]:
    """The never-enrolled people of ``../shared/data`` for the lfw_original_10id split.

    Every single-person photo of a person outside the 10 LFW identities: the dlib "johns" chips, the
    face_recognition examples, the openface examples, Tom Cruise and the live spoof sample.
    """
    shared = Path(shared)
    fr = shared / "face_recognition_examples"
    paths = sorted((shared / "dlib_johns_5id").glob("*/*.jpg"))
    paths += sorted((fr / "knn_train").glob("*/*.jpg"))
    paths += [fr / "knn_test" / n for n in ("alex_lacamoire1.jpg", "johnsnow_test1.jpg", "obama1.jpg")]
    paths += [fr / "misc" / n for n in ("alex-lacamoire.png", "lin-manuel-miranda.png", "obama-720p.jpg",
                                        "obama3.jpg", "obama_small.jpg")]
    paths += [shared / "openface_examples" / f"{n}.jpg" for n in
              ("adams", "carell", "clapton-1", "clapton-2", "lennon-1", "lennon-2")]
    paths += [shared / "multi_face" / "dlib_faces" / "Tom_Cruise_avp_2014_4.jpg",
              shared / "spoof" / "silentface_image_T1.jpg"]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DeviceError(f"shared data is incomplete, missing {missing[:3]}: check ../shared/data")
    return paths


class FaceEncoder:
    """Photo → embedding of its main (largest) face, through the device's detector and embedder."""

    def __init__(self, detector: Any, embedder: Any, fallback_detector: Any | None = None) -> None:
        """``fallback_detector`` (e.g. full range) is tried when ``detector`` finds no face."""
        self.detector = detector
        self.embedder = embedder
        self.fallback_detector = fallback_detector

    @classmethod
    def from_store(cls, store: Any = None, variant: str = "short", accelerator: str = "auto") -> FaceEncoder:
        """Load the BlazeFace ``variant`` (full range as fallback) and the embedder from the model store."""
        from inference.detector import BlazeFaceDetector
        from inference.embedder import FaceEmbedder
        from inference.errors import InferenceError
        from inference.store import ModelStore

        try:
            store = store or ModelStore()
            det = BlazeFaceDetector.from_store(store, variant=variant, accelerator=accelerator)  # type: ignore[arg-type]
            other = "full" if variant == "short" else "short"
            fallback = BlazeFaceDetector.from_store(store, variant=other, accelerator=accelerator)  # type: ignore[arg-type]
            return cls(det, FaceEmbedder.from_store(store), fallback)
        except InferenceError as err:
            raise DeviceError(str(err)) from err

    def main_face(self, rgb: np.ndarray) -> tuple[np.ndarray, tuple[float, float, float, float]] | None:
        """(image, box) of the largest face, padding tight crops; None when no face is found."""
        for det in (self.detector, self.fallback_detector):
            if det is None:
                continue
            faces = det.detect(rgb)
            if faces:
                best = max(faces, key=lambda d: d.width * d.height)
                return rgb, best.box
        h, w = rgb.shape[:2]
        py, px = int(h * RETRY_PAD), int(w * RETRY_PAD)
        padded = np.pad(rgb, ((py, py), (px, px), (0, 0)), mode="edge")
        faces = self.detector.detect(padded)
        if faces:
            return padded, max(faces, key=lambda d: d.width * d.height).box
        return None

    def encode(self, path: Path, flip: bool = False) -> np.ndarray | None:
        """Unit embedding of the photo's main face; with ``flip``, averaged with its mirror chip.

        Returns None when no face is found; raises DeviceError naming the file for an unreadable image.
        """
        both = self.encode_pair(path, flip)
        return None if both is None else both[1]

    def encode_pair(self, path: Path, flip: bool = False) -> tuple[np.ndarray, np.ndarray] | None:
        """(plain embedding, template): the template is the flip average when ``flip``, else the plain one."""
        from inference.errors import ImageError, InferenceError
        from inference.image import load_image

        try:
            rgb = load_image(path)
            found = self.main_face(rgb)
            if found is None:
                return None
            image, box = found
            if not flip:
                plain = np.asarray(self.embedder.embed(image, box), dtype=np.float32)
                return plain, plain
            chip = self.embedder.align(image, box)
            plain = np.asarray(self.embedder.embed_chip(chip), dtype=np.float32)
            both = plain + self.embedder.embed_chip(np.ascontiguousarray(chip[:, ::-1]))
        except ImageError as err:
            raise DeviceError(str(err)) from err
        except InferenceError as err:
            raise DeviceError(f"{path}: {err}") from err
        return plain, (both / max(float(np.linalg.norm(both)), 1e-12)).astype(np.float32)


@dataclass
class IdentifyRun:
    """Everything an identification evaluation produced (scores for plots, counts, failures)."""

    open_set: OpenSetScores
    genuine: np.ndarray
    impostor: np.ndarray
    images: int
    failures_to_detect: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    enrolled_ids: int = 0
    probe_ms: list[float] = field(default_factory=list)  # load + detect + embed, per plain photo
    search_ms: list[float] = field(default_factory=list)  # 1:N search, per mated probe
    impostor_sides: tuple[np.ndarray, np.ndarray] | None = None  # person ids of each impostor pair

    def report(self, fpir: float = OPEN_SET_FPIR) -> dict[str, Any]:
        """The JSON report of `joyedge eval identify`."""
        has_distractors = bool(self.open_set.nonmated_scores.size)
        threshold = self.open_set.threshold_at_fpir(fpir) if has_distractors else None
        return {
            "rank1": _round(self.open_set.rank1()),
            "tar_at_far": {k: _round(tar_at_far(self.genuine, self.impostor, v)) for k, v in FARS.items()},
            "fnir_at_fpir_1pct": _round(self.open_set.fnir_at_fpir(fpir)) if has_distractors else None,
            "threshold": _round(threshold) if threshold is not None and np.isfinite(threshold) else None,
            "images": self.images,
            "failures_to_detect": len(self.failures_to_detect),
            "unreadable": len(self.unreadable),
            "enrolled_ids": self.enrolled_ids,
            "mated_probes": int(self.open_set.mated_scores.size),
            "nonmated_probes": int(self.open_set.nonmated_scores.size),
            "pairs": {"genuine": int(self.genuine.size), "impostor": int(self.impostor.size)},
        }


def _round(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 4)


def _encode_all(
    encoder: FaceEncoder, paths: Iterable[Path], run: IdentifyRun, flip: Iterable[Path] = ()
) -> dict[Path, tuple[np.ndarray, np.ndarray]]:
    """(plain, template) per photo with a face; photos in ``flip`` get flip-averaged templates."""
    flip = set(flip)
    out = {}
    for path in paths:
        run.images += 1
        t0 = time.perf_counter()
        try:
            emb = encoder.encode_pair(path, flip=path in flip)
        except DeviceError as err:
            _LOG.warning("skipping %s", err)
            run.unreadable.append(str(path))
            continue
        if emb is None:
            run.failures_to_detect.append(str(path))
        else:
            out[path] = emb
            if path not in flip:
                run.probe_ms.append((time.perf_counter() - t0) * 1000.0)
    return out


def evaluate_identify(
    encoder: FaceEncoder,
    gallery_dir: Path,
    enroll_per_id: int,
    distractors: Path | Sequence[Path] | None = None,
    flip_enroll: bool = True,
) -> IdentifyRun:
    """Enroll the first ``enroll_per_id`` photos of each identity, probe with the rest and the distractors.

    ``distractors`` is a folder (sub-folders or photos) or a list of photo paths of never-enrolled people.
    """
    if enroll_per_id < 1:
        raise DeviceError("--enroll-per-id must be at least 1")
    people = list_identities(gallery_dir)
    if distractors is None:
        extra_paths: list[Path] = []
        overlap: set[str] = set()
    elif isinstance(distractors, (str, Path)):
        by_person = list_identities(Path(distractors))
        extra_paths = [p for imgs in by_person.values() for p in imgs]
        has_dirs = any(p.is_dir() for p in Path(distractors).iterdir())
        overlap = set(people) & set(by_person) if has_dirs else set()
    else:
        extra_paths, overlap = [Path(p) for p in distractors], set()
    if overlap:
        raise DeviceError(f"distractors must be never-enrolled people, but these are in the gallery: {sorted(overlap)}")
    run = IdentifyRun(OpenSetScores(np.zeros(0), np.zeros(0, bool), np.zeros(0)), np.zeros(0), np.zeros(0), 0)
    rows: list[tuple[str, np.ndarray, float]] = []
    missed_probes = 0
    probes: list[tuple[str, np.ndarray]] = []
    labelled: list[tuple[str, np.ndarray]] = []  # one plain embedding per labelled photo, for 1:1 pairs
    for person, images in people.items():
        enroll, rest = images[:enroll_per_id], images[enroll_per_id:]
        found = _encode_all(encoder, images, run, flip=enroll if flip_enroll else ())
        labelled += [(person, plain) for plain, _ in found.values()]
        rows += [(person, found[p][1], 1.0) for p in enroll if p in found]
        probes += [(person, found[p][0]) for p in rest if p in found]
        # A probe photo whose face was not found is a miss (ISO/IEC 19795: failures to acquire count).
        missed_probes += sum(1 for p in rest if p not in found)
    run.enrolled_ids = len({m for m, _, _ in rows})
    gallery = Gallery()
    gallery.load(rows)
    mated_scores, mated_ok = [], []
    for person, emb in probes:
        t0 = time.perf_counter()
        top = gallery.search(emb, k=1)
        run.search_ms.append((time.perf_counter() - t0) * 1000.0)
        mated_scores.append(top[0].score if top else -1.0)
        mated_ok.append(bool(top) and top[0].member_id == person)
    mated_scores += [float("-inf")] * missed_probes
    mated_ok += [False] * missed_probes
    extra = {p: plain for p, (plain, _) in _encode_all(encoder, extra_paths, run).items()}
    nonmated = [gallery.search(e, k=1)[0].score for e in extra.values()] if len(gallery) else []
    run.open_set = OpenSetScores(np.array(mated_scores), np.array(mated_ok, dtype=bool), np.array(nonmated))
    if labelled:
        run.genuine, run.impostor = pair_scores(
            np.stack([e for _, e in labelled]), [p for p, _ in labelled],
            np.stack(list(extra.values())) if extra else None,
        )
        run.impostor_sides = impostor_sides([p for p, _ in labelled], len(extra))
    return run


def calibrate(run: IdentifyRun, fpir: float = OPEN_SET_FPIR, payment_fpir: float = PAYMENT_FPIR) -> dict[str, Any]:
    """Open-set thresholds from data: match at ``fpir``, payment at ``payment_fpir`` (never below match).

    Also fits the impostor-score tail on the run's 1:1 impostor pairs and gives the greet and payment
    thresholds it implies for larger galleries (``gallery_thresholds``); too few pairs for the fit
    leave both empty and say why in ``note``.
    """
    if not run.open_set.nonmated_scores.size:
        raise DeviceError("calibration needs never-enrolled people: pass --distractors DIR")
    match = run.open_set.threshold_at_fpir(fpir)
    payment = max(run.open_set.threshold_at_fpir(payment_fpir), match)
    n = run.open_set.nonmated_scores.size
    notes = []
    if n * payment_fpir < 1:
        notes.append(f"only {n} never-enrolled probes: the payment threshold sits above every one of them; "
                     f"{int(np.ceil(1 / payment_fpir))}+ are needed to measure an FPIR of {payment_fpir:g}")
    tail: dict[str, float] | None = None
    table: list[dict[str, Any]] = []
    try:
        tail = ImpostorTail.fit(run.impostor, sides=run.impostor_sides).as_dict()
    except DeviceError as err:
        notes.append(f"no impostor tail, so no gallery thresholds: {err}")
    else:
        table = gallery_thresholds(ImpostorTail(**tail), match, payment, run.genuine)
    return {
        "match_threshold": _round(match), "payment_threshold": _round(payment),
        "fpir": fpir, "payment_fpir": payment_fpir,
        "fnir_at_match": _round(run.open_set.fnir_at(match)), "fnir_at_payment": _round(run.open_set.fnir_at(payment)),
        "nonmated_probes": int(n), "mated_probes": int(run.open_set.mated_scores.size),
        "impostor_pairs": int(run.impostor.size), "impostor_tail": tail, "gallery_thresholds": table,
        "note": "; ".join(notes),
    }


def gallery_thresholds(tail: ImpostorTail, match: float, payment: float, genuine: np.ndarray,
                       sizes: Sequence[int] = GALLERY_SIZES) -> list[dict[str, Any]]:
    """Greet and payment thresholds per gallery size (the device's own policy and FPIR defaults), and
    the share of genuine 1:1 pairs that still clear the greeting threshold (``tar_greet``)."""
    policy = OpenSetPolicy.from_config(IdentityConfig(), tail, match_threshold=match, payment_threshold=payment)
    rows = []
    for size in sizes:
        th = policy.thresholds(size)
        tar = float(np.mean(genuine >= th.greet)) if genuine.size else float("nan")
        rows.append({"templates": size, "greet": _round(th.greet), "payment": _round(th.payment),
                     "tar_greet": _round(tar)})
    return rows


def plot_det(run: IdentifyRun, path: Path, label: str = "JoyEdge") -> None:
    """Draw the open-set DET curve (FNIR against FPIR, log axes) to a PNG file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fpir, fnir = run.open_set.det_curve()
    fig, ax = plt.subplots(figsize=(5, 4))
    floor = 1.0 / max(run.open_set.nonmated_scores.size, 1) / 2
    ax.step(np.maximum(fpir, floor), np.maximum(fnir, 1e-3), where="post", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("FPIR (never-enrolled probes matched)")
    ax.set_ylabel("FNIR (enrolled probes missed)")
    ax.axvline(OPEN_SET_FPIR, color="grey", linestyle=":")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# -- detection ------------------------------------------------------------------------------


def read_imglab(xml_path: Path) -> dict[str, list[tuple[float, float, float, float]]]:
    """dlib/imglab XML → image file → boxes (x0, y0, x1, y1); ``ignore='1'`` boxes are dropped."""
    try:
        root = ET.parse(xml_path).getroot()
    except (OSError, ET.ParseError) as err:
        raise DeviceError(f"cannot read boxes file {xml_path} ({err}): pass a dlib/imglab XML file") from err
    out: dict[str, list[tuple[float, float, float, float]]] = {}
    for image in root.iter("image"):
        boxes = []
        for b in image.iter("box"):
            if b.get("ignore", "0") == "1":
                continue
            x, y, w, h = (float(b.get(k, "0")) for k in ("left", "top", "width", "height"))
            boxes.append((x, y, x + w, y + h))
        out[image.get("file", "")] = boxes
    return out


def evaluate_detect(
    detector: Any, images_dir: Path, boxes_file: Path, min_face_px: float = 40, iou: float = 0.5
) -> dict[str, Any]:
    """Recall, precision and false positives at IoU ``iou``, counting labelled faces >= ``min_face_px``.

    Smaller labelled faces are "don't care": detecting them is neither a hit nor a false positive.
    """
    from inference.errors import ImageError
    from inference.image import load_image
    from inference.tracker import iou_matrix

    truth = read_imglab(boxes_file)
    hits = total = false_pos = detections = 0
    missing = []
    for name, boxes in sorted(truth.items()):
        path = Path(images_dir) / name
        try:
            rgb = load_image(path)
        except ImageError as err:
            missing.append(str(err))
            continue
        found = [d.box for d in detector.detect(rgb)]
        detections += len(found)
        big = [b for b in boxes if min(b[2] - b[0], b[3] - b[1]) >= min_face_px]
        small = [b for b in boxes if b not in big]
        ious = iou_matrix(big, found)
        matched: set[int] = set()
        for i in range(len(big)):  # greedy: each labelled face takes its best free detection
            order = np.argsort(-ious[i]) if found else []
            for j in order:
                if ious[i, j] >= iou and j not in matched:
                    matched.add(int(j))
                    hits += 1
                    break
        total += len(big)
        small_iou = iou_matrix(small, found)
        for j in range(len(found)):
            if j in matched:
                continue
            if small and float(small_iou[:, j].max()) >= iou:
                continue
            false_pos += 1
    if missing:
        raise DeviceError("; ".join(missing))
    counted = hits + false_pos
    return {
        "recall": _round(hits / total) if total else None,
        "precision": _round(hits / counted) if counted else None,
        "false_positives": false_pos,
        "faces": total,
        "detected": hits,
        "detections": detections,
        "images": len(truth),
        "iou": iou,
        "min_face_px": min_face_px,
    }


def count_faces(detector: Any, paths: Iterable[Path]) -> dict[str, int]:
    """Faces found per image (for false-positive checks on photos without faces)."""
    from inference.image import load_image

    return {str(p): len(detector.detect(load_image(p))) for p in paths}
