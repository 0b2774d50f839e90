"""sweeper.data.dataset: the torch Dataset (worker-independent augmentation, picklable) and the
light import of the data modules."""

from __future__ import annotations

import pickle
import subprocess
import sys

from cocofiles import H, W, base_dataset, load


def test_dataset_returns_float_image_and_long_mask_and_is_worker_independent(tmp_path):
    import torch
    from torch.utils.data import DataLoader

    from sweeper.augment import build_transforms
    from sweeper.data import SegmentationDataset

    ds = base_dataset()
    ds["images"] += [
        {"id": 20 + i, "file_name": f"c{i}.png", "width": W, "height": H} for i in range(6)
    ]
    data = load(tmp_path, ds)
    train, _ = build_transforms(size=8)
    dataset = SegmentationDataset(data, [0, 2, 3, 4, 5, 6, 7], train, seed=3)
    assert isinstance(dataset, torch.utils.data.Dataset) and len(dataset) == 7
    image, mask = dataset[0]
    assert image.dtype == torch.float32 and image.shape == (3, 8, 8)
    assert mask.dtype == torch.int64 and mask.shape == (8, 8)
    assert set(mask.unique().tolist()) <= {0, 1, 3}

    def epoch(workers):
        return torch.cat([m for _, m in DataLoader(dataset, batch_size=2, num_workers=workers)])

    clone = pickle.loads(pickle.dumps(dataset))  # what spawn/forkserver workers receive
    assert type(clone) is type(dataset) and torch.equal(clone[3][1], dataset[3][1])

    first = epoch(0)
    assert torch.equal(first, epoch(2))  # same draws whichever worker serves a sample
    dataset.set_epoch(1)
    assert not torch.equal(first, epoch(0))  # a new epoch, new augmentations


def test_importing_the_modules_does_not_import_heavy_libraries():
    code = (
        "import sys, sweeper.data, sweeper.augment, sweeper.splits, sweeper.demo\n"
        "heavy = {'torch', 'albumentations', 'pycocotools', 'sklearn', 'PIL'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
