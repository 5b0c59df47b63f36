"""Does the model fit the data? Checked when the Trainer sets the data up, before any of it is read.

A model built for ten CIFAR-10 classes on the two-class synthetic points (or a 3072-input MLP on 2-D
points, or a CNN on points) would otherwise fail deep inside a matmul, a convolution or a metric, with a
traceback naming neither flag. The model is not built from the data (its shape is set by its own flags,
which the checkpoint records), so a mismatch is refused with the flag and the value that fits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from datamodules.sources import DataError

IMAGE_SHAPE = (3, 32, 32)
INPUT_SIZE_MODELS = "MLPClassifier, AutogradMLPClassifier, NumpyMLPClassifier"


def check_model_fits(model: Any, classes: Sequence[str], input_shape: tuple[int, ...], data: str) -> None:
    """Raise :class:`DataError` (one line) when ``model``'s outputs or inputs do not fit the data.

    ``model``: a LightningModule (or None: nothing to check); its ``hparams`` say ``num_classes`` and, for the
    models that take any input size, ``input_size``. A model without ``input_size`` takes 3x32x32 images.
    ``data`` names the data in the message (``CIFAR-10``, ``--data.source synthetic``).
    """
    hparams = getattr(model, "hparams", None)
    if hparams is None:
        return
    k = hparams.get("num_classes")
    if k is not None and k != len(classes):
        raise DataError(f"--model.num_classes {k} does not fit the data: {data} has {len(classes)} classes ({', '.join(classes)}); pass --model.num_classes {len(classes)}")
    features = math.prod(input_shape)
    unit = "image" if tuple(input_shape) == IMAGE_SHAPE else "point"
    size = hparams.get("input_size")
    if size is not None:
        if size != features:
            raise DataError(f"--model.input_size {size} does not fit the data: {data} gives {features} features per {unit}; pass --model.input_size {features}")
    elif tuple(input_shape) != IMAGE_SHAPE:
        raise DataError(
            f"--model {type(model).__name__} takes 3x32x32 images; {data} gives {features} features per point: use a model "
            f"with --model.input_size ({INPUT_SIZE_MODELS})"
        )
    if tuple(input_shape) != IMAGE_SHAPE and hparams.get("tta", "none") != "none":
        raise DataError(f"--model.tta {hparams['tta']} mirrors and shifts images; {data} gives {features} features per point: use --model.tta none")
