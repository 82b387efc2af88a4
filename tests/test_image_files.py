"""Reading image files as factories write them: images deeper than 8 bits (industrial, X-ray and
thermal cameras write 16-bit grey PNG/TIFF) read as their content on the hub and at the edge alike
(core.pixels), and class folders named in Korean."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from axhub.core.pixels import deep_grey_to_uint8
from axhub.edge.vision import image_tensor
from axhub.ml.vision.images import decode_image, is_good_label, labelled_folder


def _gradient(top: int, dtype: str = "<u2") -> np.ndarray:
    return np.linspace(0, top, 40 * 60).reshape(40, 60).round().astype(dtype)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_twelve_bit_camera_images_are_scaled_not_clipped(tmp_path: Path, suffix: str) -> None:
    values = _gradient(4095)  # a 12-bit camera, written as a 16-bit file
    path = tmp_path / f"cam{suffix}"
    Image.fromarray(values).save(path)
    pixels = decode_image(path)
    assert pixels.dtype == np.uint8 and pixels.shape == (40, 60)
    # PIL's convert("L") clipped this image: 94 % of it read as 255
    assert (pixels == 255).mean() < 0.01
    np.testing.assert_allclose(pixels, values / 4095 * 255, atol=0.51)
    # the edge agent reads the same pixels as the hub
    np.testing.assert_array_equal(image_tensor(path)[0, 0], pixels.astype(np.float32))


def test_sixteen_bit_float_and_big_endian_files(tmp_path: Path) -> None:
    full = _gradient(65535)
    Image.fromarray(full).save(tmp_path / "full.png")
    np.testing.assert_allclose(decode_image(tmp_path / "full.png"), full / 257, atol=0.51)
    big = _gradient(4095, ">u2")
    Image.fromarray(big).save(tmp_path / "big.tif")
    np.testing.assert_allclose(decode_image(tmp_path / "big.tif"), big / 4095 * 255, atol=0.51)
    eight = _gradient(200)  # 8-bit values in a 16-bit file stay as they are
    Image.fromarray(eight).save(tmp_path / "eight.png")
    np.testing.assert_array_equal(decode_image(tmp_path / "eight.png"), eight)
    unit = np.linspace(0, 1, 40 * 60, dtype=np.float32).reshape(40, 60)
    Image.fromarray(unit).save(tmp_path / "unit.tif")
    np.testing.assert_allclose(decode_image(tmp_path / "unit.tif"), unit * 255, atol=0.51)


def test_eight_bit_images_are_unchanged(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (30, 20), dtype=np.uint8)
    colour = rng.integers(0, 256, (30, 20, 3), dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "g.png")
    Image.fromarray(colour).save(tmp_path / "c.png")
    np.testing.assert_array_equal(decode_image(tmp_path / "g.png"), grey)
    np.testing.assert_array_equal(decode_image(tmp_path / "c.png"), colour)


def test_broken_values_read_as_black() -> None:
    values = np.array([[np.nan, -5.0], [np.inf, 0.5]], dtype=np.float32)
    assert deep_grey_to_uint8(values).tolist() == [[0, 0], [0, 128]]


def test_korean_class_folders_name_good_parts(tmp_path: Path) -> None:
    for word in ("양품", "정상", "합격", "양품_앞면", "良品", "OK", "ok_front", "good"):
        assert is_good_label(word), word
    for word in ("불량", "NG", "스크래치", "def_front", "crack"):
        assert not is_good_label(word), word
    part = np.full((8, 8), 120, np.uint8)
    # a folder copied from a Mac keeps its Hangul decomposed (NFD): still the same word
    for folder in ("양품", unicodedata.normalize("NFD", "정상"), "불량"):
        (tmp_path / folder).mkdir()
        Image.fromarray(part).save(tmp_path / folder / "0001.png")
    good = {r["path"].parent.name: is_good_label(r["label"]) for r in labelled_folder(tmp_path)}
    assert sorted(good.values()) == [False, True, True]
    assert good["불량"] is False
