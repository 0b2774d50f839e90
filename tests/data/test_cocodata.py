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
