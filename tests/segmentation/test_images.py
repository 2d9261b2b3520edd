"""Image loading: every awkward format becomes upright (H, W, 3) uint8 RGB; broken files are named."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from infoclip.errors import InputError
from infoclip.segmentation.images import array_to_rgb, image_name, load_image
from tests.segmentation.images_on_disk import gradient_rgb, write_exif_rotated_jpeg, write_truncated_png


def test_rgb_png_round_trips_exactly(tmp_path):
    image = gradient_rgb()
    Image.fromarray(image).save(tmp_path / "a.png")
    loaded = load_image(tmp_path / "a.png")
    assert loaded.dtype == np.uint8 and loaded.shape == (40, 60, 3)
    np.testing.assert_array_equal(loaded, image)


def test_exif_orientation_is_applied(tmp_path):
    upright = gradient_rgb(30, 50)
    write_exif_rotated_jpeg(tmp_path / "phone.jpg", upright)
    assert Image.open(tmp_path / "phone.jpg").size == (30, 50)  # stored sideways
    loaded = load_image(tmp_path / "phone.jpg")
    assert loaded.shape == (30, 50, 3)
    assert np.abs(loaded.astype(int) - upright.astype(int)).mean() < 4  # JPEG noise only


def test_grayscale_palette_and_bilevel_become_rgb(tmp_path):
    gray = gradient_rgb()[..., 0]
    Image.fromarray(gray).save(tmp_path / "gray.png")
    loaded = load_image(tmp_path / "gray.png")
    assert loaded.shape == (40, 60, 3)
    np.testing.assert_array_equal(loaded[..., 0], gray)
    np.testing.assert_array_equal(loaded[..., 2], gray)

    palette_image = Image.fromarray(gradient_rgb()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette_image.save(tmp_path / "pal.png")
    np.testing.assert_array_equal(load_image(tmp_path / "pal.png"), np.asarray(palette_image.convert("RGB")))

    Image.fromarray(gray > 128).save(tmp_path / "bits.png")
    assert set(np.unique(load_image(tmp_path / "bits.png"))) <= {0, 255}


def test_rgba_is_composited_over_white(tmp_path):
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :5, 3] = 255  # left half opaque red-ish, right half fully transparent
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "alpha.png")
    loaded = load_image(tmp_path / "alpha.png")
    np.testing.assert_array_equal(loaded[:, :5], np.broadcast_to([200, 0, 0], (10, 5, 3)))
    np.testing.assert_array_equal(loaded[:, 5:], np.full((10, 5, 3), 255))


def test_palette_with_transparency_is_composited(tmp_path):
    image = Image.new("P", (4, 4), 0)
    image.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    image.putpixel((0, 0), 1)
    image.save(tmp_path / "ptrans.png", transparency=0)
    loaded = load_image(tmp_path / "ptrans.png")
    assert tuple(loaded[0, 0]) == (10, 200, 30)
    assert tuple(loaded[3, 3]) == (255, 255, 255)


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
    gray16 = (np.linspace(0, 65535, 40 * 60).reshape(40, 60)).astype(np.uint16)
    Image.fromarray(gray16).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    loaded = load_image(tmp_path / "g16.png")
    np.testing.assert_array_equal(loaded[..., 1], np.rint(gray16 / 257.0).astype(np.uint8))
    assert loaded.max() == 255 and loaded.min() == 0 and (loaded[..., 0] < 255).mean() > 0.9

    rgb16 = gradient_rgb().astype(np.uint16) * 257
    tifffile.imwrite(tmp_path / "rgb16.tif", rgb16)
    np.testing.assert_array_equal(load_image(tmp_path / "rgb16.tif"), gradient_rgb())


def test_arrays_and_pil_images_are_accepted():
    image = gradient_rgb()
    assert load_image(image) is not None
    np.testing.assert_array_equal(load_image(image), image)
    np.testing.assert_array_equal(load_image(Image.fromarray(image)), image)
    np.testing.assert_array_equal(load_image(image[..., 0])[..., 1], image[..., 0])
    floats = image.astype(np.float32) / 255.0
    np.testing.assert_array_equal(load_image(floats), image)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((4, 4, 2), np.uint8), "shape"),
        (np.zeros((0, 4, 3), np.uint8), "empty"),
        (np.full((4, 4, 3), np.nan, np.float32), "NaN"),
        (np.zeros((2, 4, 4, 3), np.uint8), "shape"),
    ],
)
def test_bad_arrays_are_refused(array, message):
    with pytest.raises(InputError, match=message):
        array_to_rgb(array)


def test_missing_truncated_and_non_image_files_are_named(tmp_path):
    with pytest.raises(InputError, match=r"nothere\.png: image not found"):
        load_image(tmp_path / "nothere.png")
    write_truncated_png(tmp_path / "cut.png", gradient_rgb(200, 200))
    with pytest.raises(InputError, match=r"cut\.png: cannot read image"):
        load_image(tmp_path / "cut.png")
    (tmp_path / "notes.jpg").write_text("not an image")
    with pytest.raises(InputError, match=r"notes\.jpg: cannot read image"):
        load_image(tmp_path / "notes.jpg")
    with pytest.raises(InputError, match="is a folder"):
        load_image(tmp_path)
    with pytest.raises(InputError, match="path, a PIL image"):
        load_image(42)


def test_truncated_jpeg_is_named(tmp_path):
    Image.fromarray(gradient_rgb(300, 300)).save(tmp_path / "cut.jpg", quality=95)
    data = (tmp_path / "cut.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(InputError, match=r"cut\.jpg: cannot read image \(image file is truncated"):
        load_image(tmp_path / "cut.jpg")


def test_image_name():
    assert image_name("/a/b/photo.final.jpg") == "photo.final"
    assert image_name(np.zeros((2, 2, 3), np.uint8)) == "image"
