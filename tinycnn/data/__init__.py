"""Datasets, readers, downloads, batching and batch transforms (all NHWC).

- ``get_dataset(name_or_path, split)``: 'digits' (bundled, no network), 'mnist',
  'fashion-mnist', 'kmnist', 'cifar10', 'cifar100', or a path to an IDX folder,
  a CIFAR folder or an image-folder tree; returns an :class:`ArrayDataset`.
- ``load_digits()`` and the fixed ``stratified_split``; readers ``read_idx``,
  ``load_mnist``, ``load_cifar10``, ``load_cifar100``, ``load_image_folder``,
  ``open_image`` (only the decoders in ``IMAGE_FORMATS``, under a pixel cap).
- ``download(name, root)``: checksum-verified, atomic.
- ``DataLoader`` with seeded, resumable shuffling, and the transforms
  ``ToFloat``, ``Normalize``, ``RandomCrop``, ``RandomHorizontalFlip``, ``Compose``.
"""

from .datasets import (
    ArrayDataset, detect_format, digits_dataset, get_dataset, load_digits, split_dataset, stratified_split,
)
from .downloads import ChecksumError, DownloadError, download, download_file
from .loader import DataLoader
from .images import IMAGE_FORMATS, load_image_folder, open_image
from .pickles import safe_pickle_load
from .readers import load_cifar10, load_cifar100, load_mnist, read_cifar_batch, read_idx
from .transforms import Compose, Normalize, RandomCrop, RandomHorizontalFlip, ToFloat, Transform

__all__ = [
    "IMAGE_FORMATS", "ArrayDataset", "ChecksumError", "Compose", "DataLoader", "DownloadError", "Normalize", "RandomCrop",
    "RandomHorizontalFlip", "ToFloat", "Transform", "detect_format", "digits_dataset", "download",
    "download_file", "get_dataset", "load_cifar10", "load_cifar100", "load_digits", "load_image_folder",
    "load_mnist", "open_image", "read_cifar_batch", "read_idx", "safe_pickle_load", "split_dataset", "stratified_split",
]
