"""Small image datasets for chapter 4 (diffusion, CLIP), with captions.

Offline (CI, no internet): scikit-learn's bundled 8x8 handwritten digits (1,797 images, shipped
inside the sklearn wheel), upscaled bilinearly to 16x16. Online: MNIST, Fashion-MNIST or CIFAR-10
through torchvision, resized to 32x32 so a 3-level U-Net divides them evenly. They live in torchvision's
layout under CURRICULUM_TORCHVISION_ROOT (default: the curriculum cache), where the rehearsal puts its copy.

`curriculum.utils.offline.use_real_resources()` chooses; every image is a float tensor in [-1, 1], shape (C, H, W).
"""

from __future__ import annotations

import gzip
import os
import random
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
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


IDX_FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}  # torchvision's folder per dataset
IDX_FILES = {True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"), False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def torchvision_root() -> Path:
    """Where torchvision keeps its datasets: CURRICULUM_TORCHVISION_ROOT, else the curriculum cache."""
    root = os.environ.get("CURRICULUM_TORCHVISION_ROOT")
    return Path(root) if root else cache_dir("torchvision")


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (MNIST's format: a magic number giving the rank, the sizes, then uint8 data), gzipped or not."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    rank = raw[3]
    shape = np.frombuffer(raw, dtype=">i4", count=rank, offset=4)
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * rank).reshape(shape)


def _idx_files(name: str, train: bool) -> tuple[Path, Path] | None:
    """The raw files of an IDX dataset already in torchvision's layout (<root>/MNIST/raw/...), or None."""
    if name not in IDX_FOLDERS:
        return None
    raw = torchvision_root() / IDX_FOLDERS[name] / "raw"
    found = []
    for stem in IDX_FILES[train]:
        candidates = [raw / stem, raw / f"{stem}.gz"]
        if not (hit := next((c for c in candidates if c.is_file()), None)):
            return None
        found.append(hit)
    return found[0], found[1]


def torchvision_dataset(name: str, size: int = 32, train: bool = True, limit: int | None = None) -> ImageDataset:
    """MNIST / FashionMNIST / CIFAR10 downloaded into the curriculum cache, resized to size x size.

    Without torchvision, MNIST and Fashion-MNIST are still read when their files are already in
    torchvision's layout (the format is a few lines of numpy); downloading needs torchvision."""
    words, templates = {"mnist": (DIGIT_WORDS, DIGIT_TEMPLATES), "fashion_mnist": (FASHION_WORDS, OBJECT_TEMPLATES),
                        "cifar10": (CIFAR_WORDS, OBJECT_TEMPLATES)}[name]
    try:
        import torchvision  # imported here: offline runs never need it
    except ImportError:
        files = _idx_files(name, train)
        if files is None:
            raise
        data, targets = torch.as_tensor(read_idx(files[0]).copy()), torch.as_tensor(read_idx(files[1]).copy())
    else:
        cls = {"mnist": torchvision.datasets.MNIST, "fashion_mnist": torchvision.datasets.FashionMNIST,
               "cifar10": torchvision.datasets.CIFAR10}[name]
        ds = cls(root=str(torchvision_root()), train=train, download=True)
        data, targets = torch.as_tensor(ds.data), torch.as_tensor(ds.targets)
    data = data[:limit]
    x = (data.permute(0, 3, 1, 2) if data.ndim == 4 else data[:, None]).float() / 255.0
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    labels = torch.as_tensor(targets[:limit], dtype=torch.long)
    return ImageDataset(x * 2 - 1, labels, words, templates, f"{name} {size}x{size}")


def load_image_dataset(online_name: str = "mnist", offline_size: int = 16, online_limit: int | None = None) -> Loaded:
    """The real dataset online (MNIST by default; "fashion_mnist", "cifar10"), the upscaled digits offline."""
    if online_name not in {"mnist", "fashion_mnist", "cifar10"}:
        raise ValueError(f"online_name must be 'mnist', 'fashion_mnist' or 'cifar10', got {online_name!r}")
    if use_real_resources():
        try:
            import torchvision  # noqa: F401 - only to learn whether it is installed
        except ImportError:
            if _idx_files(online_name, True) is not None:
                ds = torchvision_dataset(online_name, limit=online_limit)
                return Loaded(ds, True, f"{ds.name}: {len(ds.labels)} images (read without torchvision)")
            ds = digits(offline_size)
            why = (f"torchvision is not installed, so {online_name} cannot be loaded; install it with "
                   f"`pip install -e \".[vision]\"` (or `pip install torchvision`) and restart the kernel")
            warnings.warn(why + ". Using the bundled digits instead.", stacklevel=2)
            return Loaded(ds, False, f"{ds.name}: {len(ds.labels)} images (stand-in for {online_name}: {why})")
        ds = torchvision_dataset(online_name, limit=online_limit)
        return Loaded(ds, True, f"{ds.name}: {len(ds.labels)} images")
    ds = digits(offline_size)
    return Loaded(ds, False, f"{ds.name}: {len(ds.labels)} images (offline stand-in for {online_name})")
