"""Does the gallery-size threshold model (device/open_set.py) hold on every face of the shared data?

`OpenSetPolicy.thresholds(N)` raises the greeting and payment thresholds with the number of templates
so that N * FAR(t) stays within the target share of strangers, FAR(t) coming from an exponential model
of the upper tail of single-pair impostor scores (`ImpostorTail`). This study embeds every usable face
of ../shared/data through the device's own detector and embedder and prints:

(a) the tail fitted on all impostor pairs, modelled against empirical FAR at 0.90 ... 0.97;
(b) a held-out check: identities (not pairs) split in two halves, the tail fitted on pairs within one
    half and its expected exceedance counts compared with the other half's observed ones;
(c) an open-set simulation on real faces: galleries of M members (one flip-averaged template each,
    members drawn at random), strangers = every face of every other identity; the share of strangers
    whose best member clears the fixed 0.93 and `OpenSetPolicy.thresholds(M).greet`, against 1 %;
(d) greet and payment thresholds for N = 10 ... 1,000,000 templates and the genuine 1:1 acceptance at
    each: what a site of that size gets on the face alone (without the phone digits).

Who is who. Labelled: lfw_original_10id, dlib_johns_5id and the single-person photos of
``device.evaluation.shared_distractors`` (obama*, clapton-1/2, lennon-1/2, kit/johnsnow and
alex-lacamoire* each one person). Multi-face photos (full-range BlazeFace, faces >= 40 px): the PASCAL
photos, the Friends cast, the Azure family and celebrities, a stage photo, one frame of the arcade crowd
clip and one of the head-turn GIF are all different people, each face its own identity. The collage
bald_guys.jpg (four actors), the Jolie/Pitt couple and selfie and the two-person photos of labelled people
are labelled by hand from face positions (points below, checked by eye on the detections); a detected face
with no labelled point is dropped, never counted as a new person (two_people.jpg is left out: its two faces
are knn biden.jpg and obama3.jpg again). Relatives stay impostors (the Azure family's sisters score 0.957, a
PASCAL mother and daughter 0.93): a mall has families too.

    .venv/bin/python bench/gallery_scaling.py [--data ../shared/data] [--splits 10] [--json]

About 10 s on 2 cores (247 faces, each embedded twice). A study like bench/open_set_variants.py, not part
of `make test` or `make bench`; figures in bench/RESULTS.md "Gallery size and the greeting threshold".
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from device.config import IdentityConfig  # noqa: E402
from device.errors import DeviceError  # noqa: E402
from device.evaluation import FaceEncoder, list_identities, shared_distractors  # noqa: E402
from device.open_set import ImpostorTail, OpenSetPolicy  # noqa: E402

MIN_FACE_PX = 40
FAR_THRESHOLDS = (0.90, 0.91, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97)
HELD_OUT_THRESHOLDS = (0.92, 0.93, 0.94, 0.95)
GALLERY_MEMBERS = (10, 30, 100)  # plus "all": every identity but the stranger's
SITE_TEMPLATES = (10, 100, 1_000, 10_000, 100_000, 1_000_000)
FIXED_THRESHOLD = 0.93
# Two faces of one person scoring this high are one image twice (obama-720p / obama_small / knn obama.jpg
# are one photo at three sizes, some dlib Johns are adjacent video frames): keep the first only, so that
# copies neither inflate the genuine acceptance nor weigh one photo's impostor scores several times.
DUPLICATE_SCORE = 0.995

# Single-person photos of shared_distractors: a stem or folder prefix -> the person.
DISTRACTOR_PEOPLE = {
    "alex": "alex_lacamoire", "johnsnow": "kit_harington", "kit": "kit_harington", "obama": "obama",
    "biden": "biden", "rose": "rose_leslie", "lin-manuel": "lin_manuel_miranda", "adams": "amy_adams",
    "carell": "steve_carell", "clapton": "eric_clapton", "lennon": "john_lennon", "tom_cruise": "tom_cruise",
    "silentface": "silentface_live",
}
# Hand labels: photo -> person -> face centres (fractions of width, height) of that person.
HAND_LABELLED: dict[str, dict[str, list[tuple[float, float]]]] = {
    "multi_face/dlib_faces/bald_guys.jpg": {
        "vin_diesel": [(0.069, 0.102), (0.313, 0.127), (0.067, 0.294), (0.324, 0.339), (0.064, 0.891),
                       (0.199, 0.177)],
        "jason_statham": [(0.481, 0.123), (0.481, 0.318), (0.204, 0.340), (0.066, 0.502), (0.252, 0.599),
                          (0.195, 0.047)],
        "bruce_willis": [(0.430, 0.585), (0.573, 0.552), (0.064, 0.688), (0.599, 0.740), (0.227, 0.873),
                         (0.436, 0.856)],
        "dwayne_johnson": [(0.809, 0.167), (0.583, 0.894), (0.945, 0.300), (0.848, 0.480), (0.763, 0.913),
                           (0.940, 0.900)],
    },
    "multi_face/deepface_couple.jpg": {"angelina_jolie": [(0.303, 0.598)], "brad_pitt": [(0.767, 0.473)]},
    "multi_face/deepface_selfie-many-people.jpg": {
        "angelina_jolie": [(0.258, 0.620)], "brad_pitt": [(0.662, 0.347)],
        "selfie_bearded_man": [(0.427, 0.315)], "selfie_blonde_woman": [(0.068, 0.504)]},
    "face_recognition_examples/knn_test/obama_and_biden.jpg": {"biden": [(0.419, 0.364)],
                                                               "obama": [(0.613, 0.339)]},
    "face_recognition_examples/knn_test/kit_with_rose.jpg": {"kit_harington": [(0.595, 0.213)],
                                                             "rose_leslie": [(0.229, 0.234)]},
    "openface_examples/longoria-cooper.jpg": {"eva_longoria": [(0.305, 0.355)],
                                              "bradley_cooper": [(0.660, 0.187)]},
}
# Photos (or one frame of a clip) in which every face is a different person seen nowhere else.
ALL_DISTINCT = [f"multi_face/dlib_faces/{n}.jpg" for n in (
    "2007_007763", "2008_001009", "2008_001322", "2008_002079", "2008_002470", "2008_002506", "2008_004176",
    "2008_007676", "2009_004587")] + [
    "multi_face/facenet-pytorch_multiface.jpg", "multi_face/azure_faces.jpg", "multi_face/azure_celebrities.jpg",
    "pedestrians/paddleclas_objects365_02035329.jpg"]
# One frame per clip, so that no person is counted twice: the crowd clip's frame with the most faces.
CLIP_FRAMES = {"video/facenet-pytorch_video.mp4": 19, "video/intel_head-pose-face-detection-female.gif": 0}


@dataclass
class FaceSet:
    """Every face kept: plain embedding (probe), flip-averaged template (enrolment), who, from where."""

    plain: np.ndarray
    template: np.ndarray
    identity: np.ndarray
    source: list[str]
    dropped: list[str] = field(default_factory=list)

    def identities(self) -> dict[str, np.ndarray]:
        """Identity -> indices of its faces."""
        return {k: np.flatnonzero(self.identity == k) for k in sorted(set(self.identity.tolist()))}


def _distractor_person(path: Path) -> str:
    for key in (path.parent.name.lower(), path.stem.lower()):
        for prefix, person in DISTRACTOR_PEOPLE.items():
            if key.startswith(prefix):
                return person
    raise DeviceError(f"{path}: no person known for this distractor; add it to DISTRACTOR_PEOPLE")


def _embed_box(encoder: FaceEncoder, rgb: np.ndarray, box: Any) -> tuple[np.ndarray, np.ndarray]:
    chip = encoder.embedder.align(rgb, box)
    plain = np.asarray(encoder.embedder.embed_chip(chip), dtype=np.float32)
    both = plain + encoder.embedder.embed_chip(np.ascontiguousarray(chip[:, ::-1]))
    return plain, (both / np.linalg.norm(both)).astype(np.float32)


def _frame(path: Path, index: int) -> np.ndarray:
    if path.suffix.lower() == ".gif":
        from PIL import Image, ImageSequence

        with Image.open(path) as im:
            for i, fr in enumerate(ImageSequence.Iterator(im)):
                if i == index:
                    return np.asarray(fr.convert("RGB"))
    else:
        import cv2

        cap = cv2.VideoCapture(str(path))
        try:  # read up to the frame rather than seek: seeking is not frame-exact for every codec
            for _ in range(index + 1):
                ok, bgr = cap.read()
                if not ok:
                    break
        finally:
            cap.release()
        if ok:
            return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    raise DeviceError(f"{path}: cannot read frame {index}")


def collect_faces(data: Path, encoder: FaceEncoder | None = None) -> FaceSet:
    """Embed every usable face of ``data`` (../shared/data) with its identity; see the module docstring."""
    from inference.image import load_image

    enc = encoder or FaceEncoder.from_store(accelerator="cpu")
    full = enc.detector if enc.detector.variant == "full" else enc.fallback_detector
    plain: list[np.ndarray] = []
    tmpl: list[np.ndarray] = []
    who: list[str] = []
    src: list[str] = []
    dropped: list[str] = []

    def add(p: np.ndarray, t: np.ndarray, person: str, where: str) -> None:
        for q, other, there in zip(plain, who, src, strict=True):
            if other == person and float(p @ q) >= DUPLICATE_SCORE:
                dropped.append(f"{where}: a copy of {there} ({float(p @ q):.4f})")
                return
        plain.append(p)
        tmpl.append(t)
        who.append(person)
        src.append(where)

    photos: list[tuple[Path, str]] = []
    for folder, tag in (("lfw_original_10id", "lfw"), ("dlib_johns_5id", "johns")):
        photos += [(p, f"{tag}:{person}") for person, imgs in list_identities(data / folder).items() for p in imgs]
    photos += [(p, _distractor_person(p)) for p in shared_distractors(data) if "dlib_johns_5id" not in str(p)]
    for path, person in photos:
        pair = enc.encode_pair(path, flip=True)
        if pair is None:
            dropped.append(f"{path.relative_to(data)}: no face")
        else:
            add(pair[0], pair[1], person, str(path.relative_to(data)))

    scenes = [(rel, load_image(data / rel)) for rel in [*HAND_LABELLED, *ALL_DISTINCT]]
    scenes += [(f"{rel}#{i}", _frame(data / rel, i)) for rel, i in CLIP_FRAMES.items()]
    for name, rgb in scenes:
        h, w = rgb.shape[:2]
        labels = HAND_LABELLED.get(name)
        for k, det in enumerate(full.detect(rgb)):
            where = f"{name}:{k}"
            if det.width < MIN_FACE_PX:
                continue
            if labels is None:
                person = f"crowd:{name}:{k}"
            else:
                x0, y0, x1, y1 = det.box
                inside = {p for p, pts in labels.items() for x, y in pts if x0 <= x * w <= x1 and y0 <= y * h <= y1}
                if len(inside) != 1:
                    dropped.append(f"{where}: {'no' if not inside else 'several'} labelled points in the box")
                    continue
                person = inside.pop()
            add(*_embed_box(enc, rgb, det.box), person, where)
    return FaceSet(np.stack(plain), np.stack(tmpl), np.array(who), src, dropped)


def pair_scores(faces: FaceSet) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(genuine, impostor, i, j): all plain x plain 1:1 scores; i, j index the impostor pairs."""
    sims = faces.plain @ faces.plain.T
    i, j = np.triu_indices(len(faces.identity), 1)
    same = faces.identity[i] == faces.identity[j]
    return sims[i, j][same], sims[i, j][~same], i[~same], j[~same]


def lfw_genuine(faces: FaceSet) -> np.ndarray:
    """Genuine pairs of the LFW identities only: different photos taken years apart, the hardest case."""
    keep = np.char.startswith(faces.identity.astype(str), "lfw:")
    sub = FaceSet(faces.plain[keep], faces.template[keep], faces.identity[keep], [])
    return pair_scores(sub)[0]


def far_table(tail: ImpostorTail, impostor: np.ndarray) -> list[dict[str, Any]]:
    """(a) modelled against empirical FAR, with counts."""
    out = []
    for t in FAR_THRESHOLDS:
        k = int((impostor >= t).sum())
        out.append({"t": t, "model_far": tail.far(t), "empirical_far": k / impostor.size, "observed": k,
                    "expected": round(tail.far(t) * impostor.size, 2)})
    return out


def _poisson_sf(k: int, lam: float) -> float:
    """P(X >= k) for X ~ Poisson(lam)."""
    if k <= 0:
        return 1.0
    term = cdf = math.exp(-lam)
    for n in range(1, k):
        term *= lam / n
        cdf += term
    return max(0.0, 1.0 - cdf)


def held_out(faces: FaceSet, impostor: np.ndarray, i: np.ndarray, j: np.ndarray, splits: int,
             seed: int) -> dict[str, Any]:
    """(b) fit on the impostor pairs within half A of the identities, count exceedances within half B."""
    people = np.array(sorted(set(faces.identity.tolist())))
    person = np.unique(faces.identity, return_inverse=True)[1]  # each face's person as an integer
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(splits):
        half_a = set(rng.permutation(people)[: people.size // 2].tolist())
        in_a = np.array([p in half_a for p in faces.identity])
        a_pairs, b_pairs = in_a[i] & in_a[j], ~in_a[i] & ~in_a[j]
        tail = ImpostorTail.fit(impostor[a_pairs], seed=s, sides=(person[i][a_pairs], person[j][a_pairs]))
        b = impostor[b_pairs]
        row: dict[str, Any] = {"split": s, "pairs_a": int(a_pairs.sum()), "pairs_b": int(b.size),
                               "tail_a": tail.as_dict(), "by_t": {}}
        for t in HELD_OUT_THRESHOLDS:
            lam, k = tail.far(t) * b.size, int((b >= t).sum())
            row["by_t"][f"{t:.2f}"] = {"expected": round(lam, 3), "observed": k,
                                       "p_at_least_observed": round(_poisson_sf(k, lam), 4)}
        rows.append(row)
    summary = {}
    for t in HELD_OUT_THRESHOLDS:
        cells = [r["by_t"][f"{t:.2f}"] for r in rows]
        summary[f"{t:.2f}"] = {
            "splits_expected_ge_observed": sum(c["expected"] >= c["observed"] for c in cells),
            "expected_total": round(sum(c["expected"] for c in cells), 2),
            "observed_total": sum(c["observed"] for c in cells),
            "min_p_at_least_observed": min(c["p_at_least_observed"] for c in cells)}
    return {"splits": splits, "summary": summary, "rows": rows}


def open_set(faces: FaceSet, policy: OpenSetPolicy, repeats: int, seed: int) -> list[dict[str, Any]]:
    """(c) strangers against galleries of M real members: observed FPIR at 0.93 and at greet(M)."""
    people = faces.identities()
    names = list(people)
    rng = np.random.default_rng(seed)
    sizes = [m for m in GALLERY_MEMBERS if m < len(names)] + [len(names) - 1]
    out = []
    for m in sizes:
        greet = policy.thresholds(m).greet
        probes = hits_fixed = hits_greet = mated = mated_ok = 0
        # "All": every identity in turn is the stranger, the others' templates drawn a few times each.
        draws = ([[n for n in names if n != s] for s in names for _ in range(max(2, repeats // 40))]
                 if m == len(names) - 1 else
                 [list(rng.choice(names, size=m, replace=False)) for _ in range(repeats)])
        for members in draws:
            chosen = {p: int(rng.choice(people[p])) for p in members}
            gallery = faces.template[list(chosen.values())]
            member_set = set(members)
            strangers = np.flatnonzero([p not in member_set for p in faces.identity])
            best = (faces.plain[strangers] @ gallery.T).max(axis=1)
            probes += strangers.size
            hits_fixed += int((best >= FIXED_THRESHOLD).sum())
            hits_greet += int((best >= greet).sum())
            # The other faces of members: greeted as the right person on the face alone?
            own = np.array([k for p in members for k in people[p] if k != chosen[p]], dtype=int)
            if own.size:
                sims = faces.plain[own] @ gallery.T
                top = sims.argmax(axis=1)
                right = np.array([members.index(faces.identity[k]) for k in own])
                mated += own.size
                mated_ok += int(((top == right) & (sims.max(axis=1) >= greet)).sum())
        tail = policy.tail
        assert tail is not None
        out.append({"members": m, "draws": len(draws), "stranger_probes": probes, "greet": round(greet, 4),
                    "fpir_at_0.93": hits_fixed / probes, "fpir_at_greet": hits_greet / probes,
                    "strangers_at_0.93": hits_fixed, "strangers_at_greet": hits_greet,
                    "modelled_fpir_at_0.93": min(1.0, m * tail.far(FIXED_THRESHOLD)),
                    "modelled_fpir_at_greet": min(1.0, m * tail.far(greet)),
                    "mated_probes": mated, "mated_greeted": mated_ok / mated if mated else None})
    return out


def site_table(policy: OpenSetPolicy, genuine: np.ndarray, genuine_lfw: np.ndarray) -> list[dict[str, Any]]:
    """(d) thresholds by number of templates and the 1:1 genuine acceptance at each (all labelled, LFW)."""
    rows = []
    for n in SITE_TEMPLATES:
        th = policy.thresholds(n)
        rows.append({"templates": n, "greet": round(th.greet, 4), "payment": round(th.payment, 4),
                     "tar_greet": round(float((genuine >= th.greet).mean()), 4),
                     "tar_payment": round(float((genuine >= th.payment).mean()), 4),
                     "tar_greet_lfw": round(float((genuine_lfw >= th.greet).mean()), 4),
                     "tar_payment_lfw": round(float((genuine_lfw >= th.payment).mean()), 4)})
    return rows


def run(data: Path, splits: int = 10, repeats: int = 200, seed: int = 0) -> dict[str, Any]:
    """The whole study as one JSON-able object."""
    faces = collect_faces(data)
    genuine, impostor, i, j = pair_scores(faces)
    person = np.unique(faces.identity, return_inverse=True)[1]
    tail = ImpostorTail.fit(impostor, sides=(person[i], person[j]))  # bootstrap by people, not by pair
    cfg = IdentityConfig()
    policy = OpenSetPolicy.from_config(cfg, ImpostorTail(**tail.as_dict()))
    tsims = faces.template @ faces.plain.T  # device-like pairs: enrolment template x probe
    tmask = faces.identity[i] != faces.identity[j]
    top = np.argsort(-impostor)[:6]
    return {
        "faces": len(faces.identity), "identities": len(faces.identities()),
        "genuine_pairs": int(genuine.size), "impostor_pairs": int(impostor.size), "dropped": faces.dropped,
        "tail": tail.as_dict(), "exceedances": int(round(tail.p_u * impostor.size)),
        "tail_template_x_probe": ImpostorTail.fit(np.concatenate([tsims[i, j][tmask], tsims[j, i][tmask]])).as_dict(),
        "top_impostors": [[round(float(impostor[k]), 4), faces.source[i[k]], faces.source[j[k]]] for k in top],
        "far": far_table(tail, impostor),
        "held_out": held_out(faces, impostor, i, j, splits, seed),
        "open_set": open_set(faces, policy, repeats, seed),
        "sites": site_table(policy, genuine, lfw_genuine(faces)),
        "largest_gallery_at_0.93": policy.largest_gallery(FIXED_THRESHOLD, cfg.greeting_fpir),
    }


def _print(r: dict[str, Any]) -> None:
    print(f"{r['faces']} faces, {r['identities']} identities: {r['genuine_pairs']} genuine and "
          f"{r['impostor_pairs']} impostor pairs; dropped {len(r['dropped'])}: {r['dropped']}")
    t = r["tail"]
    print(f"tail (all pairs): u {t['u']}  p_u {t['p_u']}  beta {t['beta']}  ({r['exceedances']} exceedances); "
          f"template x probe pairs: {r['tail_template_x_probe']}")
    print("top impostor pairs:", *(f"  {s} {a} | {b}" for s, a, b in r["top_impostors"]), sep="\n")
    print("(a) t     model FAR  empirical FAR  expected  observed")
    for row in r["far"]:
        print(f"    {row['t']:.2f}  {row['model_far']:.2e}  {row['empirical_far']:.2e}     {row['expected']:8.2f}  "
              f"{row['observed']:5d}  model/empirical "
              f"{row['model_far'] / row['empirical_far'] if row['observed'] else float('nan'):.2f}")
    h = r["held_out"]
    print(f"(b) held out, {h['splits']} identity splits (fit on half A, count on half B):")
    for tk, s in h["summary"].items():
        print(f"    {tk}: expected >= observed in {s['splits_expected_ge_observed']}/{h['splits']} splits, "
              f"expected {s['expected_total']} vs observed {s['observed_total']} in total, "
              f"lowest P(X >= observed) {s['min_p_at_least_observed']}")
    print(f"(c) galleries of M members out of {r['identities']} identities (M = 100 needs more than that)")
    print("    members  greet   FPIR@0.93 (model)   FPIR@greet (model)   strangers  members' other faces greeted")
    for o in r["open_set"]:
        print(f"    {o['members']:7d}  {o['greet']:.4f}  {o['fpir_at_0.93']:.4f} ({o['modelled_fpir_at_0.93']:.4f})"
              f"   {o['fpir_at_greet']:.4f} ({o['modelled_fpir_at_greet']:.4f})   {o['stranger_probes']:9d}"
              f"  {o['mated_greeted'] if o['mated_greeted'] is None else round(o['mated_greeted'], 3)}"
              f" of {o['mated_probes']}  ({o['draws']} draws)")
    print("(d) templates  greet   payment  TAR@greet  TAR@payment  (1:1 genuine pairs: all labelled | LFW only)")
    for s in r["sites"]:
        print(f"    {s['templates']:9d}  {s['greet']:.4f}  {s['payment']:.4f}   {s['tar_greet']:.4f} | "
              f"{s['tar_greet_lfw']:.4f}   {s['tar_payment']:.4f} | {s['tar_payment_lfw']:.4f}")
    print(f"    0.93 alone keeps FPIR <= 1 % up to {r['largest_gallery_at_0.93']} templates")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: print the study, or one JSON object with --json."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--splits", type=int, default=10, help="identity splits for the held-out check")
    ap.add_argument("--repeats", type=int, default=200, help="random galleries per size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        raise SystemExit(f"{args.data} not found: the shared test data must sit beside the repository")
    result = run(args.data, args.splits, args.repeats, args.seed)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        _print(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
