"""`joyedge eval …` subcommands (identification and detection evaluation). Registered by device.cli.

    joyedge eval identify --gallery DIR [--distractors DIR] --enroll-per-id K [--plot DET.png] [--json]
    joyedge eval calibrate --gallery DIR --distractors DIR --enroll-per-id K [--fpir 0.01] [--json]
    joyedge eval detect --images DIR --boxes FILE.xml [--boxes FILE2.xml] [--no-face DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-dir", type=Path, help="model directory (default: $JOYEDGE_MODEL_DIR or ~/.local/share)")
    p.add_argument("--accelerator", choices=["auto", "cpu", "edgetpu"], default="auto")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _identify_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gallery", type=Path, required=True, help="one sub-folder of photos per identity")
    p.add_argument("--distractors", type=Path, help="photos of people never enrolled (open set)")
    p.add_argument("--enroll-per-id", type=int, default=3, help="enroll the first K photos of each identity")
    p.add_argument("--detector", choices=["short", "full"], default="short", help="BlazeFace range")
    p.add_argument("--no-flip", action="store_true", help="enroll without mirror-image averaging")
    _common(p)


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's subcommands to the `joyedge` parser."""
    ev = sub.add_parser("eval", help="measure identification and detection accuracy on labelled photos")
    evsub = ev.add_subparsers(dest="eval_cmd", required=True)

    p = evsub.add_parser("identify", help="rank-1, TAR@FAR, open-set FNIR@FPIR=1%% on a photo folder")
    _identify_args(p)
    p.add_argument("--plot", type=Path, help="write the DET curve to this PNG file")
    p.set_defaults(func=cmd_identify)

    p = evsub.add_parser("calibrate", help="open-set match and payment thresholds from labelled photos, "
                                           "and the impostor-score tail for larger galleries")
    _identify_args(p)
    p.add_argument("--fpir", type=float, default=0.01, help="false-alarm rate for the match threshold")
    p.add_argument("--payment-fpir", type=float, default=0.001, help="false-alarm rate for payment")
    p.set_defaults(func=cmd_calibrate)

    p = evsub.add_parser("detect", help="recall/precision at IoU 0.5 against dlib/imglab XML boxes")
    p.add_argument("--images", type=Path, required=True, help="folder the XML's file names are relative to")
    p.add_argument("--boxes", type=Path, action="append", required=True, help="imglab XML (repeatable)")
    p.add_argument("--no-face", type=Path, help="folder of photos without faces: any detection is counted")
    p.add_argument("--detector", choices=["short", "full"], default="full", help="BlazeFace range")
    p.add_argument("--min-face", type=float, default=40, help="labelled faces smaller than this are ignored")
    _common(p)
    p.set_defaults(func=cmd_detect)


def _store(args: argparse.Namespace) -> Any:
    from inference.store import ModelStore

    return ModelStore(args.model_dir) if args.model_dir else ModelStore()


def _print(args: argparse.Namespace, report: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(report, sort_keys=True))
        return
    for key, value in report.items():
        print(f"{key}: {value}")


def _run_identify(args: argparse.Namespace) -> Any:
    from device.evaluation import FaceEncoder, evaluate_identify

    encoder = FaceEncoder.from_store(_store(args), variant=args.detector, accelerator=args.accelerator)
    return evaluate_identify(encoder, args.gallery, args.enroll_per_id, args.distractors,
                             flip_enroll=not args.no_flip)


def cmd_identify(args: argparse.Namespace) -> int:
    """`joyedge eval identify`."""
    from device.evaluation import plot_det

    run = _run_identify(args)
    report = run.report()
    if args.plot:
        plot_det(run, args.plot)
        report["plot"] = str(args.plot)
    _print(args, report)
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    """`joyedge eval calibrate`: prints thresholds and the `[identity]` lines for the device config."""
    from device.errors import DeviceError
    from device.evaluation import calibrate

    if args.distractors is None:
        raise DeviceError("calibration needs never-enrolled people: pass --distractors DIR")
    result = calibrate(_run_identify(args), fpir=args.fpir, payment_fpir=args.payment_fpir)
    config = (f"[identity]\nmatch_threshold = {result['match_threshold']}\n"
              f"payment_threshold = {result['payment_threshold']}\n")
    tail = result["impostor_tail"]
    if tail is not None:  # the site's own score tail: thresholds then rise with its gallery (device/open_set.py)
        config += "\n[identity.impostor_tail]\n" + "".join(f"{k} = {v}\n" for k, v in tail.items())
    result["config"] = config
    if args.json:
        _print(args, result)
        return 0
    for key, value in result.items():
        if key not in ("gallery_thresholds", "config"):
            print(f"{key}: {value}")
    if result["gallery_thresholds"]:
        print("gallery_thresholds (greet on the face alone / pay without the phone digits; tar_greet = "
              "genuine 1:1 pairs at or above greet):")
        print("  templates   greet  payment  tar_greet")
        for row in result["gallery_thresholds"]:
            print(f"  {row['templates']:9d}  {row['greet']}  {row['payment']}  {row['tar_greet']}")
    print(f"paste into device.toml:\n{config}", end="")
    return 0


def cmd_detect(args: argparse.Namespace) -> int:
    """`joyedge eval detect`."""
    from device.errors import DeviceError
    from device.evaluation import IMAGE_SUFFIXES, count_faces, evaluate_detect
    from inference.detector import BlazeFaceDetector
    from inference.errors import InferenceError

    try:
        detector = BlazeFaceDetector.from_store(_store(args), variant=args.detector, accelerator=args.accelerator)
    except InferenceError as err:
        raise DeviceError(str(err)) from err
    parts = [evaluate_detect(detector, args.images, b, min_face_px=args.min_face) for b in args.boxes]
    faces = sum(p["faces"] for p in parts)
    hits = sum(p["detected"] for p in parts)
    fps = sum(p["false_positives"] for p in parts)
    report: dict[str, Any] = {
        "recall": round(hits / faces, 4) if faces else None,
        "precision": round(hits / (hits + fps), 4) if hits + fps else None,
        "false_positives": fps, "faces": faces, "detected": hits,
        "images": sum(p["images"] for p in parts), "detector": args.detector,
        "iou": 0.5, "min_face_px": args.min_face,
    }
    if args.no_face:
        if not args.no_face.is_dir():
            raise DeviceError(f"--no-face {args.no_face} is not a folder")
        paths = sorted(p for p in args.no_face.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        report["no_face_detections"] = sum(count_faces(detector, paths).values())
        report["no_face_images"] = len(paths)
    _print(args, report)
    return 0
