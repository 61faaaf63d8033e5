"""The BlazeFace -> dlib box mapping before the 5-point predictor, checked on photos held out of its fit."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from inference.embedder import ALIGN_BOX_MAP, map_box_to_dlib

ROOT = Path(__file__).resolve().parents[2]


def _fit_script():
    spec = importlib.util.spec_from_file_location("fit_align_box", ROOT / "bench" / "fit_align_box.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_map_box_moves_and_scales_relative_to_the_box():
    assert map_box_to_dlib((10, 20, 110, 220), (0.0, 0.0, 1.0, 1.0)) == (10, 20, 110, 220)
    # centre (60, 120) + (0.1 * 100, -0.05 * 200); size 100 x 200 -> 50 x 300
    assert map_box_to_dlib((10, 20, 110, 220), (0.1, -0.05, 0.5, 1.5)) == pytest.approx((45, -40, 95, 260))


def test_embedder_constants_are_a_small_correction():
    dx, dy, sx, sy = ALIGN_BOX_MAP
    assert abs(dx) < 0.1 and abs(dy) < 0.1 and 0.8 < sx < 1.2 and 0.8 < sy < 1.2


def test_fit_and_held_out_photos_are_disjoint_from_the_identify_evaluation(shared_data):
    from device.evaluation import shared_distractors

    fit = _fit_script()
    used = {str(shared_data / p) for p in fit.FIT_PHOTOS + fit.HELD_OUT_PHOTOS}
    used |= {str(shared_data / v) for v, *_ in fit.FIT_VIDEOS + fit.HELD_OUT_VIDEOS}
    assert not used & {str(p) for p in shared_distractors(shared_data)}
    assert not any("lfw_original_10id" in p for p in used)
    assert not set(fit.FIT_PHOTOS) & set(fit.HELD_OUT_PHOTOS)


def test_mapped_short_range_box_is_closer_to_dlib_on_held_out_faces(shared_data, model_store, detector):
    """On faces not used for the fit, the mapped box overlaps HOG's more and moves the 5 points less."""
    import dlib

    fit = _fit_script()
    imgs = fit.images(shared_data, fit.HELD_OUT_PHOTOS, fit.HELD_OUT_VIDEOS)
    pairs, crops = fit.pairs({"short": detector}, imgs)["short"]
    assert len(pairs) >= 8, "too few held-out BlazeFace/HOG pairs to judge the mapping"
    raw_iou, mapped_iou = fit.mean_iou(pairs, None), fit.mean_iou(pairs, ALIGN_BOX_MAP)
    assert mapped_iou > raw_iou
    shape = dlib.shape_predictor(str(model_store.path("dlib_shape5")))
    raw_err = fit.landmark_error(shape, pairs, crops, None)
    mapped_err = fit.landmark_error(shape, pairs, crops, ALIGN_BOX_MAP)
    assert mapped_err < raw_err
    assert np.isfinite(mapped_err)
