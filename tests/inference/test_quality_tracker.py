"""Face quality ordering and tracker id stability."""

from __future__ import annotations

from dataclasses import dataclass

import cv2

from inference.image import load_image
from inference.quality import face_quality, frontal_score
from inference.tracker import Tracker


def test_blurred_copy_scores_lower(detector, lfw):
    img = load_image(lfw["Colin_Powell"][0])
    det = max(detector.detect(img), key=lambda d: d.width)
    blurred = cv2.GaussianBlur(img, (0, 0), 2.5)
    sharp_q, blur_q = face_quality(img, det), face_quality(blurred, det)
    assert 0.0 <= blur_q < sharp_q <= 1.0


def test_smaller_face_scores_lower(detector, lfw):
    img = load_image(lfw["Colin_Powell"][0])
    small = cv2.resize(img, (100, 100), interpolation=cv2.INTER_AREA)
    big_det = max(detector.detect(img), key=lambda d: d.width)
    small_det = max(detector.detect(small), key=lambda d: d.width)
    assert face_quality(small, small_det) < face_quality(img, big_det)
    assert 0.0 <= frontal_score(big_det) <= 1.0


@dataclass
class Box:
    box: tuple[float, float, float, float]


def test_ids_stay_stable_on_a_moving_box_and_end_after_max_missed():
    tracker = Tracker(iou_threshold=0.3, max_missed=5)
    for step in range(10):
        x = 10.0 + 4 * step  # 4 px per frame on an 80 px box: IoU ~0.9
        visible = tracker.update([Box((x, 20.0, x + 80, 100.0)), Box((400.0, 20.0, 480.0, 100.0))], step)
        assert [t.id for t in visible] == [1, 2]
    assert tracker.tracks[0].hits == 10
    for step in range(10, 15):
        assert tracker.update([], step) == []
        assert tracker.ended() == []
    tracker.update([], 15)
    assert sorted(t.id for t in tracker.ended()) == [1, 2]
    assert tracker.ended() == []
    (new,) = tracker.update([Box((10.0, 20.0, 90.0, 100.0))], 16)
    assert new.id == 3


def test_greedy_matching_prefers_higher_iou():
    tracker = Tracker()
    tracker.update([Box((0, 0, 100, 100)), Box((60, 0, 160, 100))], 0)
    visible = tracker.update([Box((58, 0, 158, 100)), Box((2, 0, 102, 100))], 1)
    by_id = {t.id: t.box for t in visible}
    assert by_id[1] == (2, 0, 102, 100) and by_id[2] == (58, 0, 158, 100)


def test_partial_face_scores_lower(detector, lfw):
    from inference.image import load_image
    from inference.quality import face_quality, visible_score

    rgb = load_image(lfw["Colin_Powell"][0])
    whole = detector.detect(rgb)[0]
    assert visible_score(rgb, whole) == 1.0
    x0, y0, x1, y1 = (int(v) for v in whole.box)
    half = rgb[:, (x0 + x1) // 2:]  # the face's left half is out of frame
    quarter = rgb[:, (3 * x0 + x1) // 4:]  # a quarter of the face is out of frame
    (part,) = detector.detect(half)
    (edge,) = detector.detect(quarter)
    assert visible_score(half, part) == 0.0 and face_quality(half, part) == 0.0
    assert visible_score(quarter, edge) == 0.5
    assert face_quality(quarter, edge) < face_quality(rgb, whole)
