"""The offline image dataset chapter 4 trains on: shapes, range, labels, captions, the online/offline switch."""

from __future__ import annotations

import pytest
import torch

from curriculum.utils import image_data


def test_digits_upscaled_in_range():
    ds = image_data.digits(16)
    assert ds.images.shape == (1797, 1, 16, 16) and ds.images.dtype == torch.float32
    assert ds.images.min() >= -1 and ds.images.max() <= 1 and ds.images.min() < -0.99 and ds.images.max() > 0.99
    assert sorted(ds.labels.unique().tolist()) == list(range(10))
    # Upscaling keeps each image's content: its 8x8 average-pool is close to the native image.
    native = image_data.digits(8).images
    pooled = torch.nn.functional.avg_pool2d(ds.images, 2)
    assert (pooled - native).abs().mean() < 0.15


def test_captions_and_prompts():
    ds = image_data.digits(8)
    assert ds.prompt(7) == "a handwritten seven"
    caps = ds.captions(torch.tensor([0, 7, 7]), seed=1)
    assert caps == ds.captions(torch.tensor([0, 7, 7]), seed=1), "captions must be reproducible for a seed"
    assert "zero" in caps[0] and all("seven" in c for c in caps[1:])


def test_split_is_disjoint_and_complete():
    ds = image_data.digits(8)
    train, test = ds.split(n_test=300, seed=0)
    assert len(test.labels) == 300 and len(train.labels) == 1797 - 300
    assert not (train.images[:, None] == test.images[None, :50]).flatten(2).all(-1).any(), "a test image leaked into train"


def test_offline_loader_returns_stand_in(monkeypatch):
    monkeypatch.setenv("CURRICULUM_OFFLINE", "1")
    image_data.use_real_resources.cache_clear()
    try:
        loaded = image_data.load_image_dataset("cifar10", offline_size=8)
    finally:
        image_data.use_real_resources.cache_clear()
    assert not loaded.real and "stand-in for cifar10" in loaded.description
    with pytest.raises(ValueError, match="online_name"):
        image_data.load_image_dataset("imagenet")


def test_online_without_torchvision_falls_back_naming_the_install(monkeypatch):
    import sys

    monkeypatch.setattr(image_data, "use_real_resources", lambda: True)
    monkeypatch.setitem(sys.modules, "torchvision", None)  # `import torchvision` now raises ImportError
    with pytest.warns(UserWarning, match=r'pip install -e "\.\[vision\]"'):
        loaded = image_data.load_image_dataset("mnist", offline_size=8)
    assert not loaded.real and loaded.value.images.shape[1:] == (1, 8, 8)
    assert "torchvision is not installed" in loaded.description
