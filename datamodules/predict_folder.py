"""``--data.predict_dir``: every readable image under a folder as uint8 arrays, and every file that was not.

A folder of photos is not a data set: it holds a 64x64 thumbnail, a half-copied JPEG, a ``notes.txt``.
One such file must not cost the predictions for all the others, and none may vanish silently: each
skipped file comes back with its reason, for the console and for ``skipped.csv`` beside the predictions.

Every file under the folder is tried (any format PIL reads, not only .png/.jpg). With ``resize`` off, only
32x32 images are classified; with it on, any size is resized to 32x32 (see :func:`to_cifar_rgb`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from datamodules.sources import DataError

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

RESIZE_FLAG = "--data.predict_resize true"
WRONG_SIZE = "not 32x32"


@dataclass
class PredictFolder:
    """The images to classify (uint8 NCHW), their paths relative to the folder, and (path, reason) per skipped file."""

    images: np.ndarray
    names: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def skipped_report(self, folder: Path) -> str:
        """The console listing: a count by reason, then one line per skipped file."""
        head = f"Skipped {len(self.skipped)} of {len(self.skipped) + len(self.names)} files under '{folder}' ({_counts(self.skipped)}):"
        return "\n".join([head, *(f"  {name}: {reason}" for name, reason in self.skipped)])


def _counts(skipped: list[tuple[str, str]]) -> str:
    """'not 32x32: 2, not an image: 1': how many files were skipped for each kind of reason."""
    kinds = Counter(reason.split(":", 1)[0] for _, reason in skipped)
    return ", ".join(f"{kind}: {n}" for kind, n in kinds.items())


def to_cifar_rgb(im: PILImage, resize: bool) -> np.ndarray | str:
    """A PIL image as a 32x32x3 uint8 array, or the reason it is skipped.

    Resizing (``resize``) keeps the whole picture, aspect ratio not kept, with PIL's bicubic filter, which
    is antialiased when shrinking (it averages over each output pixel's whole footprint). Large JPEGs are
    decoded at a reduced scale first (PIL ``draft``, at least 64x64: 2x the target). EXIF orientation is
    applied, as any photo viewer does; grayscale, palette and RGBA images become RGB (alpha is dropped).
    """
    from PIL import Image, ImageOps

    width, height = im.size
    if (width, height) != (32, 32):
        if not resize:
            return f"{WRONG_SIZE}: {width}x{height} ({RESIZE_FLAG} resizes it)"
        im.draft("RGB", (64, 64))
    im = ImageOps.exif_transpose(im).convert("RGB")
    if im.size != (32, 32):
        im = im.resize((32, 32), Image.Resampling.BICUBIC)
    return np.asarray(im)


def read_predict_folder(folder: Path, resize: bool) -> PredictFolder:
    """Decode every file under ``folder`` that is an image; a one-line DataError if none is usable."""
    from PIL import Image, UnidentifiedImageError
    from tqdm.auto import tqdm

    if not folder.is_dir():
        raise DataError(f"--data.predict_dir '{folder}' is not a folder.")
    files = sorted(str(p) for p in folder.rglob("*") if p.is_file())
    if not files:
        raise DataError(f"--data.predict_dir '{folder}' holds no files.")
    arrays: list[np.ndarray] = []
    names: list[str] = []
    skipped: list[tuple[str, str]] = []
    for path in tqdm(files, desc=f"decoding {folder}", unit="file", mininterval=1.0, disable=len(files) < 2000):
        name = str(Path(path).relative_to(folder))
        try:
            with Image.open(path) as im:
                out = to_cifar_rgb(im, resize)
        except UnidentifiedImageError:
            out = "not an image: PIL cannot identify its format"
        except Exception as exc:  # noqa: BLE001 - truncated/corrupt data surfaces as OSError, SyntaxError, ValueError, ...
            out = f"unreadable image: {type(exc).__name__}: {exc}"
        if isinstance(out, str):
            skipped.append((name, out))
        else:
            arrays.append(out)
            names.append(name)
    if not arrays:
        hint = f"; {RESIZE_FLAG} resizes other sizes" if any(r.startswith(WRONG_SIZE) for _, r in skipped) else ""
        raise DataError(f"--data.predict_dir '{folder}': none of its {len(files)} files can be classified ({_counts(skipped)}){hint}.")
    return PredictFolder(np.ascontiguousarray(np.stack(arrays).transpose(0, 3, 1, 2)), names, skipped)
