"""CIFAR-10 loading: sources (files -> uint8 arrays), augmentation, in-memory loader, DataModule."""

from datamodules.cifar10 import CIFAR10DataModule
from datamodules.sources import CLASSES, DataError

__all__ = ["CIFAR10DataModule", "CLASSES", "DataError"]
