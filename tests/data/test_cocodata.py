"""sweeper.data.cocodata: images decoded to RGB on demand, truncated files caught when decoded,
pycocotools kept quiet."""

from __future__ import annotations

import numpy as np
import pytest
from cocofiles import H, W, base_dataset, load, write
from PIL import Image

from sweeper.data import load_coco
from sweeper.errors import SweeperError


def test_image_without_annotations_is_all_background(tmp_path):
    data = load(tmp_path, base_dataset())
    assert data.images[1].image_id == 11
    assert (data.read_mask(1) == 0).all()


@pytest.mark.parametrize("mode", ["L", "RGBA", "P"])
def test_grayscale_rgba_and_palette_images_become_rgb(tmp_path, mode):
    data = load(tmp_path, base_dataset(), modes={10: mode})
    image = data.read_image(0)
    assert image.shape == (H, W, 3) and image.dtype == np.uint8
    if mode == "L":
        assert (image == 77).all()
    if mode == "RGBA":
        assert (image == [1, 2, 3]).all()


def test_pycocotools_prints_are_silenced(tmp_path, capfd):
    data = load(tmp_path, base_dataset())
    data.read_mask(0)
    coco = data.coco()
    assert sorted(coco.anns) == [1, 2] and coco.imgToAnns[11] == []
    assert capfd.readouterr().out == ""


def test_truncated_image_is_caught_when_decoded(tmp_path):
    ann = write(tmp_path, base_dataset())
    path = tmp_path / "img" / "a.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:-120])  # header intact, pixel data cut
    data = load_coco(ann, tmp_path / "img")
    with pytest.raises(SweeperError, match=r"a\.png: image id 10: corrupt or unreadable"):
        data.read_image(0)


def _png16(path, pixels: np.ndarray, color_type: int) -> None:
    """A 16-bit PNG written byte by byte (PIL writes 16-bit grey only): colour type 2 is RGB
    (48 bits a pixel), 4 grey + alpha."""
    import struct
    import zlib

    h, w = pixels.shape[:2]
    raw = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))


def test_a_16_bit_grey_png_is_scaled_to_8_bits_not_read_as_white(tmp_path):
    """PIL opens a 16-bit grey PNG as ``I;16``, and ``convert("RGB")`` clips it at 255: every
    pixel above 255 of 65535 would be white. sweeper scales 0..65535 to 0..255 linearly."""
    ann = write(tmp_path, base_dataset())
    levels = np.array([0, 1000, 4095, 16384, 32768, 65535], dtype=np.uint16)
    pixels = np.resize(levels, (H, W)).astype(np.uint16)
    path = tmp_path / "img" / "a.png"
    Image.fromarray(pixels).save(path)
    with Image.open(path) as im:
        assert im.mode == "I;16" and (np.asarray(im.convert("RGB")) == 255).mean() > 0.8  # the bug
    image = load_coco(ann, tmp_path / "img").read_image(0)
    assert image.shape == (H, W, 3) and image.dtype == np.uint8
    expected = np.round(pixels.astype(float) * 255 / 65535)
    assert (np.abs(image[..., 0] - expected) <= 0.5).all()
    assert (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all()
    assert sorted(np.unique(image)) == [0, 4, 16, 64, 128, 255]


@pytest.mark.parametrize("color_type", [2, 4], ids=["rgb-48-bit", "grey-alpha-16-bit"])
def test_other_16_bit_pngs_keep_their_high_byte(tmp_path, color_type):
    """16-bit RGB and grey + alpha PNGs are reduced to 8 bits by PIL itself (the high byte)."""
    ann = write(tmp_path, base_dataset())
    channels = 3 if color_type == 2 else 2
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 65536, (H, W, channels)).astype(np.uint16)
    _png16(tmp_path / "img" / "a.png", pixels, color_type)
    image = load_coco(ann, tmp_path / "img").read_image(0)
    assert image.shape == (H, W, 3) and image.dtype == np.uint8
    high = (pixels >> 8).astype(np.uint8)
    colour = high if color_type == 2 else np.repeat(high[..., :1], 3, axis=2)  # alpha dropped
    assert (image == colour).all()


def test_32_bit_integer_pixels_beyond_16_bits_are_one_line_error(tmp_path):
    """A 32-bit integer image (mode ``I``, here a TIFF) whose values do not fit 16 bits has no
    scale sweeper could guess: refused, naming the file and the range."""
    write(tmp_path, base_dataset())
    pixels = np.full((H, W), 70_000, dtype=np.int32)
    Image.fromarray(pixels).save(tmp_path / "img" / "big.tif")
    ds = base_dataset()
    ds["images"][0]["file_name"] = "big.tif"
    ann = write(tmp_path, ds)
    data = load_coco(ann, tmp_path / "img")
    with pytest.raises(SweeperError, match=r"big\.tif: image id 10: 32-bit integer pixels \(70000\.\.70000\)") as err:
        data.read_image(0)
    assert "\n" not in str(err.value)
