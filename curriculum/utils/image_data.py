"""Small image datasets for chapter 4 (diffusion, CLIP), with captions.

Offline (CI, no internet): scikit-learn's bundled 8x8 handwritten digits (1,797 images, shipped
inside the sklearn wheel), upscaled bilinearly to 16x16. Online: MNIST, Fashion-MNIST or CIFAR-10
through torchvision, resized to 32x32 so a 3-level U-Net divides them evenly.

`curriculum.utils.offline.use_real_resources()` chooses; every image is a float tensor in [-1, 1], shape (C, H, W).
"""

from __future__ import annotations

import random
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from curriculum.utils.offline import Loaded, cache_dir, use_real_resources

DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
FASHION_WORDS = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]
CIFAR_WORDS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

# Caption templates; "{}" is the class word. The first is the zero-shot prompt.
DIGIT_TEMPLATES = ["a handwritten {}", "a drawing of a {}", "the digit {}", "a picture of the number {}", "{}"]
OBJECT_TEMPLATES = ["a photo of a {}", "a picture of a {}", "a small {}", "a blurry photo of a {}", "{}"]


@dataclass
class ImageDataset:
    images: Tensor  # (n, C, H, W) in [-1, 1]
    labels: Tensor  # (n,) int64
    class_names: list[str]
    templates: list[str]
    name: str

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def prompt(self, label: int, template: int = 0) -> str:
        return self.templates[template].format(self.class_names[label])

    def captions(self, labels: Tensor, seed: int | None = None) -> list[str]:
        """One caption per label, each with a random template (seeded for reproducibility)."""
        rng = random.Random(seed)
        return [rng.choice(self.templates).format(self.class_names[int(y)]) for y in labels]

    def split(self, n_test: int, seed: int = 0) -> tuple["ImageDataset", "ImageDataset"]:
        perm = torch.randperm(len(self.labels), generator=torch.Generator().manual_seed(seed))
        test, train = perm[:n_test], perm[n_test:]
        part = lambda idx, tag: ImageDataset(self.images[idx], self.labels[idx], self.class_names, self.templates, f"{self.name} ({tag})")  # noqa: E731
        return part(train, "train"), part(test, "test")


def digits(size: int = 16) -> ImageDataset:
    """sklearn's 8x8 digits (pixel values 0..16), bilinearly upscaled to size x size, scaled to [-1, 1]."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32)[:, None] / 16.0
    if size != 8:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    return ImageDataset(x * 2 - 1, torch.tensor(bunch.target, dtype=torch.long), DIGIT_WORDS, DIGIT_TEMPLATES, f"sklearn digits {size}x{size}")


def torchvision_dataset(name: str, size: int = 32, train: bool = True, limit: int | None = None) -> ImageDataset:
    """MNIST / FashionMNIST / CIFAR10 downloaded into the curriculum cache, resized to size x size."""
    import torchvision  # imported here: offline runs never need it

    cls, words, templates = {
        "mnist": (torchvision.datasets.MNIST, DIGIT_WORDS, DIGIT_TEMPLATES),
        "fashion_mnist": (torchvision.datasets.FashionMNIST, FASHION_WORDS, OBJECT_TEMPLATES),
        "cifar10": (torchvision.datasets.CIFAR10, CIFAR_WORDS, OBJECT_TEMPLATES),
    }[name]
    ds = cls(root=str(cache_dir("torchvision")), train=train, download=True)
    data = torch.as_tensor(ds.data[:limit])
    x = (data.permute(0, 3, 1, 2) if data.ndim == 4 else data[:, None]).float() / 255.0
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    labels = torch.as_tensor(ds.targets[:limit], dtype=torch.long)
    return ImageDataset(x * 2 - 1, labels, words, templates, f"{name} {size}x{size}")


def load_image_dataset(online_name: str = "mnist", offline_size: int = 16, online_limit: int | None = None) -> Loaded:
    """The real dataset online (MNIST by default; "fashion_mnist", "cifar10"), the upscaled digits offline."""
    if online_name not in {"mnist", "fashion_mnist", "cifar10"}:
        raise ValueError(f"online_name must be 'mnist', 'fashion_mnist' or 'cifar10', got {online_name!r}")
    if use_real_resources():
        try:
            import torchvision  # noqa: F401 - only to learn whether it is installed
        except ImportError:
            ds = digits(offline_size)
            why = (f"torchvision is not installed, so {online_name} cannot be loaded; install it with "
                   f"`pip install -e \".[vision]\"` (or `pip install torchvision`) and restart the kernel")
            warnings.warn(why + ". Using the bundled digits instead.", stacklevel=2)
            return Loaded(ds, False, f"{ds.name}: {len(ds.labels)} images (stand-in for {online_name}: {why})")
        ds = torchvision_dataset(online_name, limit=online_limit)
        return Loaded(ds, True, f"{ds.name}: {len(ds.labels)} images")
    ds = digits(offline_size)
    return Loaded(ds, False, f"{ds.name}: {len(ds.labels)} images (offline stand-in for {online_name})")
