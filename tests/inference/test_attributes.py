"""Attributes: age band/generation and gender on real photos, orientation, clothing colours, aggregation."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from inference.attributes import (
    AttributeCounts,
    AttributeModel,
    age_band,
    clothing_colours,
    colour_name,
    generation,
    head_orientation,
    person_crop_colours,
)
from inference.image import load_image


@pytest.fixture(scope="module")
def attributes(model_store):
    return AttributeModel(model_store)


def test_bands_and_generations():
    assert [age_band(a) for a in (5, 17.9, 18, 60, 61)] == ["<18", "<18", "18-60", "18-60", ">60"]
    today = dt.date(2026, 6, 1)
    assert [generation(a, today) for a in (62, 50, 40, 30, 20, 12, 3, 90)] == [
        "60后", "70后", "80后", "90后", "00后", "10后", "10后", "60后"]


def test_gender_and_age_on_lfw(attributes, detector, lfw):
    males = 0
    faces = 0
    for paths in lfw.values():  # all ten LFW identities are men
        for path in paths[:4]:
            rgb = load_image(path)
            found = detector.detect(rgb)
            if found:
                faces += 1
                males += attributes.face(rgb, found[0].box).gender == "male"
    assert faces >= 36 and males / faces >= 0.9
    # Ariel Sharon (born 1928) was 73-77 in these photos; the estimate should put most of them over 60.
    sharon = []
    for path in lfw["Ariel_Sharon"]:
        rgb = load_image(path)
        sharon.append(attributes.face(rgb, detector.detect(rgb)[0].box, today=dt.date(2003, 1, 1)))
    assert sum(a.age_band == ">60" for a in sharon) >= 6
    assert all(a.generation == "60后" for a in sharon if a.age_band == ">60")  # clamped: born before 1960


def test_female_face(attributes, detector, shared_data):
    rgb = load_image(shared_data / "face_recognition_examples/knn_train/rose_leslie/img1.jpg")
    face = attributes.face(rgb, detector.detect(rgb)[0].box)
    assert face.gender == "female" and face.age_band == "18-60"


def test_orientation(detector, shared_data, lfw):
    rgb = load_image(lfw["George_W_Bush"][0])
    det = detector.detect(rgb)[0]
    assert head_orientation(True, keypoints=det.keypoints) == "front"
    assert head_orientation(True, yaw=0.8) == "side"
    assert head_orientation(False) == "back"  # a body with no face, e.g. PA-100K 090004 ("Back")
    assert detector.detect(load_image(shared_data / "pedestrians/pa100k_090004.jpg")) == []


def test_colour_names():
    def patch(rgb):
        return np.tile(np.array(rgb, np.uint8), (20, 1))

    named = {(200, 30, 30): "red", (30, 40, 200): "blue", (30, 160, 40): "green", (240, 240, 240): "white",
             (15, 15, 15): "black", (128, 128, 128): "gray", (230, 220, 40): "yellow", (110, 60, 20): "brown"}
    assert {k: colour_name(patch(k)) for k in named} == named


def test_clothing_colours_under_a_real_face(detector, lfw):
    face = load_image(lfw["Tony_Blair"][0])
    box = detector.detect(face)[0].box
    h, w = face.shape[:2]
    body = np.zeros((h * 4, w, 3), np.uint8)
    body[:h] = face
    fh = box[3] - box[1]
    body[int(box[3] + 0.3 * fh):int(box[3] + 3.2 * fh)] = (190, 20, 25)  # red shirt
    body[int(box[3] + 3.2 * fh):] = (25, 35, 150)  # blue trousers
    assert clothing_colours(body, box) == {"upper": "red", "lower": "blue"}
    # A face at the bottom edge has no body in frame.
    assert clothing_colours(face, (box[0], h - 40, box[2], h)) == {"upper": None, "lower": None}


def test_person_crop_colours_run_on_pedestrian_crops(shared_data):
    for name in ("pa100k_090004.jpg", "pa100k_090007.jpg", "market1501_0001_c1s1_001051_00.jpg"):
        colours = person_crop_colours(load_image(shared_data / "pedestrians" / name))
        assert set(colours) == {"upper", "lower"} and all(isinstance(v, str) for v in colours.values())


def test_aggregation_keeps_counts_only(attributes, detector, lfw):
    counts = AttributeCounts()
    rgb = load_image(lfw["Colin_Powell"][0])
    det = detector.detect(rgb)[0]
    counts.add(attributes.face(rgb, det.box), head_orientation(True, keypoints=det.keypoints),
               {"upper": "blue", "lower": None})
    counts.add(None, "back", None)
    totals = counts.as_dict()
    assert totals["shoppers"] == 2 and totals["orientations"] == {"front": 1, "back": 1}
    assert totals["genders"] == {"male": 1} and totals["upper_colours"] == {"blue": 1}
    # Nothing per person: only counters of labels, no embeddings, boxes or images.
    assert all(isinstance(v, (int, dict)) for v in totals.values())


def test_pa100k_slot_empty_without_model(attributes, shared_data):
    assert attributes.body_attributes(load_image(shared_data / "pedestrians/pa100k_090004.jpg")) is None
