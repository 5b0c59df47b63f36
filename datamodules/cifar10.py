"""The one DataModule every model shares: CIFAR-10, or vugrad's synthetic points (``source: synthetic``).

Data is decoded once into uint8 tensors (see ``datamodules.sources``; the synthetic points are drawn as
float32 features, see ``datamodules.synthetic``), split deterministically, moved as a whole to the device
the model trains on, and served by :class:`InMemoryLoader`, which normalises and augments whole batches there.

Validation, test and predict visit their images in a fixed, seeded, class-mixed order: any prefix
(``--trainer.limit_val_batches 2``) is an unbiased sample, not the first classes of a class-ordered folder.
The normalisation statistics and the training loader's position are part of the checkpoint, so a
checkpoint is evaluated with exactly the preprocessing it was trained with and resumes mid-epoch exactly.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from jsonargparse.typing import NonNegativeInt, PositiveInt
from lightning.pytorch.trainer.states import TrainerFn
from torch import Tensor

from datamodules import synthetic
from datamodules.augment import normalize
from datamodules.in_memory_loader import InMemoryLoader
from datamodules.model_fit import check_model_fits
from datamodules.predict_folder import read_predict_folder
from datamodules.shared_data import shared
from datamodules.sources import CLASSES, OFFICIAL_MD5, DataError, Location, RawCIFAR10, load_cifar10, locate
from datamodules.splits import ordered_split, random_split

Preprocessing = Literal["standardize", "mean_image", "minus_one_one", "fixed_channel_stats"]
Source = Literal["cifar10", "synthetic"]
Split = Literal["random", "ordered"]
# CIFAR-10's per-channel mean and std on 0..1 pixels as the UvA 2022 / BGU 2023 assignment gives them (3 digits).
CIFAR10_MEAN = (0.491, 0.482, 0.447)
CIFAR10_STD = (0.247, 0.243, 0.262)


class CIFAR10DataModule(L.LightningDataModule):
    """CIFAR-10 from an official archive/batches or an image folder, served from memory.

    Args:
        data_dir: folder with ``cifar-10-batches-py/``, ``cifar-10-python.tar.gz`` or ``train/<class>/*``
            (+ ``test/<class>/*``); ``test/`` alone serves ``test``/``predict`` from a checkpoint.
        download: fetch the official archive (MD5-verified) when ``data_dir`` holds nothing usable.
        val_size: images held out of the training set for validation.
        split: ``random`` = ``val_size`` images drawn with ``split_seed``; ``ordered`` = the last ``val_size`` in
            file order validate, the ones before them train (Sapienza 2020: the first 49,000 train, the next
            1,000 validate). File order: the official batches row by row; the synthetic points as drawn; an
            image folder, read class by class, has none across classes, so there the classes are interleaved
            by position within each class (every class's first file, then every class's second, ...): the
            validation split is the last ``val_size / 10`` files of each class, not ``val_size`` trucks.
        split_seed: seed of the random split (and of the order validation is visited in); fixed so
            checkpoints stay comparable.
        batch_size: training batch size (per process under DDP).
        eval_batch_size: batch size for validation, test and predict.
        preprocessing: ``standardize`` = per-channel mean/std of the training split on 0..1 pixels;
            ``mean_image`` = the course's: subtract the mean training image, keep 0..255 units;
            ``minus_one_one`` = torchvision's ``ToTensor()`` + ``Normalize(0.5, 0.5)``: x / 255 * 2 - 1 in [-1, 1]
            (Sapienza 2020's PyTorch MLPs, the PyTorch CIFAR-10 tutorial);
            ``fixed_channel_stats`` = ``ToTensor()`` + ``Normalize(channel_mean, channel_std)``, by default
            CIFAR-10's published (0.491, 0.482, 0.447) / (0.247, 0.243, 0.262) (UvA 2022, BGU 2023).
            The synthetic points take none (they are N(0, I) already): ``standardize`` leaves them as drawn.
        channel_mean: ``fixed_channel_stats`` only: the per-channel mean on 0..1 pixels (default CIFAR-10's).
        channel_std: ``fixed_channel_stats`` only: the per-channel std on 0..1 pixels (default CIFAR-10's).
        source: ``cifar10`` (from ``data_dir``), or ``synthetic``: vugrad's 2-D points (``datamodules.synthetic``),
            classes ``"0"``/``"1"``, for models with ``--model.input_size 2 --model.num_classes 2``.
        synthetic_size: the synthetic training pool, split by ``val_size``/``split`` (70,000 with val_size
            10,000 and ``split: ordered`` is vugrad's 60,000 + 10,000).
        synthetic_test_size: synthetic points of the test split (``test``, ``predict``).
        synthetic_seed: the synthetic draw's seed (vugrad's draw is unseeded).
        augment: random crop (``crop_padding``) and horizontal flip (``flip``) on training batches.
        flip: ``true`` mirrors a random half of each batch; ``alternate`` mirrors each image in every
            other epoch (a seeded half in even epochs, the rest in odd ones); ``false`` never.
        crop_padding_mode: ``zeros`` (the mean colour) or ``reflect`` (mirrored border pixels).
        drop_last: drop the last incomplete training batch.
        shuffle_seed: seed of the per-epoch shuffle; None follows ``seed_everything``.
        archive_md5: expected MD5 of ``cifar-10-python.tar.gz``; null skips the check.
        data_on_device: keep the whole data set on the training device (GPU); False keeps it on the CPU.
        predict_dir: ``predict`` classifies every image under this folder (no class folders needed)
            instead of the test split; files it cannot classify are listed (console and ``skipped.csv``).
        predict_resize: resize ``predict_dir`` images of other sizes to 32x32 (bicubic, antialiased, the
            whole picture); off, only 32x32 images are classified and the others are listed as skipped.
        cache_dir: where the decoded-image cache (~185 MB for the official 60,000 images) is kept: ``true`` = in ``data_dir``,
            a path = that folder (created if needed), ``false``/``null`` = no cache.
    """

    def __init__(
        self,
        data_dir: str = "data/cifar10",
        download: bool = True,
        val_size: NonNegativeInt = 5000,
        split_seed: int = 0,
        batch_size: PositiveInt = 128,
        eval_batch_size: PositiveInt = 1000,
        preprocessing: Preprocessing = "standardize",
        augment: bool = False,
        crop_padding: NonNegativeInt = 4,
        flip: bool | Literal["alternate"] = True,
        drop_last: bool = False,
        shuffle_seed: int | None = None,
        archive_md5: str | None = OFFICIAL_MD5,
        data_on_device: bool = True,
        predict_dir: str | None = None,
        crop_padding_mode: Literal["zeros", "reflect"] = "zeros",
        predict_resize: bool = False,
        cache_dir: bool | str | None = True,
        split: Split = "random",
        channel_mean: list[float] | None = None,
        channel_std: list[float] | None = None,
        source: Source = "cifar10",
        synthetic_size: PositiveInt = 70_000,
        synthetic_test_size: PositiveInt = 10_000,
        synthetic_seed: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self._check_settings()
        points = source == "synthetic"
        self.classes = synthetic.CLASSES if points else CLASSES
        self.input_shape: tuple[int, ...] = (synthetic.FEATURES,) if points else (3, 32, 32)
        self.item_name = "points" if points else "images"
        self.images: Tensor | None = None
        self.mean: Tensor | None = None
        self.std: Tensor | None = None
        self.test_names: list[str] | None = None
        self.train_idx: Tensor | None = None
        self.val_idx: Tensor | None = None
        self.source: str | None = None
        self._location: Location | None = None
        self._loaded = False
        self.predict_x: Tensor | None = None
        self.predict_skipped: list[tuple[str, str]] = []
        self._device_copies: dict[tuple[torch.device, int], tuple[Tensor, Tensor]] = {}
        self._train_loader: InMemoryLoader | None = None
        self._pending_loader_state: dict[str, int] | None = None

    def _check_settings(self) -> None:
        """Settings that cannot work together, refused in one line before any data is read."""
        hp = self.hparams
        for name in ("channel_mean", "channel_std"):
            value = hp[name]
            if value is None:
                continue
            if hp.preprocessing != "fixed_channel_stats":
                raise ValueError(f"--data.{name} applies to --data.preprocessing fixed_channel_stats only (it is {hp.preprocessing})")
            if len(value) != 3 or (name == "channel_std" and min(value) <= 0):
                raise ValueError(f"--data.{name} must be three {'positive ' if name == 'channel_std' else ''}numbers (R, G, B on 0..1 pixels), got {list(value)}")
        if hp.source != "synthetic":
            return
        why = "the synthetic data set has 2-D points, not images"
        if hp.augment:
            raise ValueError(f"--data.augment true crops and flips images; {why} (--data.source synthetic)")
        if hp.preprocessing != "standardize":
            raise ValueError(f"--data.preprocessing {hp.preprocessing} is an image preprocessing; {why}: --data.source synthetic serves them as drawn (N(0, I) already)")
        if hp.predict_dir is not None:
            raise ValueError(f"--data.predict_dir classifies image files; {why} (--data.source synthetic predicts its test split)")

    # ------------------------------------------------------------------ data
    def _predicting_a_folder(self) -> bool:
        return self.hparams.predict_dir is not None and self.trainer is not None and self.trainer.state.fn == TrainerFn.PREDICTING

    def _note(self, message: str) -> None:
        """One-line notes (cache written or impossible, files skipped): printed once, by rank 0."""
        if self._rank_world()[0] == 0:
            print(message, flush=True)

    def _load(self, prepare_only: bool = False) -> RawCIFAR10 | None:
        if self.hparams.source == "synthetic":  # drawn in milliseconds: nothing to download or cache
            return None if prepare_only else synthetic.synthetic_raw(self.hparams.synthetic_size, self.hparams.synthetic_test_size, self.hparams.synthetic_seed)
        cache = self.hparams.cache_dir
        if (inherited := shared(self.hparams.data_dir, cache, self.hparams.archive_md5)) is not None:  # a run forked by a study that read them
            self._location = inherited[0]
            return None if prepare_only else inherited[1]
        if self._location is None:  # found once: prepare_data and setup both load, and fingerprinting stats every file
            self._location = locate(self.hparams.data_dir, self.hparams.download, self.hparams.archive_md5)
        return load_cifar10(
            self.hparams.data_dir, self.hparams.download, self.hparams.archive_md5, prepare_only=prepare_only,
            use_cache=cache not in (False, None), cache_dir=cache if isinstance(cache, str) else None, notify=self._note,
            location=self._location,
        )

    def prepare_data(self) -> None:
        # Runs on one process per node: downloads, extracts and builds the cache before ranks read it.
        if not self._predicting_a_folder() and self.hparams.source != "synthetic":
            self._load(prepare_only=True)

    def setup(self, stage: str | None = None) -> None:
        if self.trainer is not None:  # before any data is read: a model with the wrong inputs or outputs is one line
            check_model_fits(self.trainer.lightning_module, self.classes, self.input_shape, self._data_name())
        if stage == "predict" and self.hparams.predict_dir is not None:
            self._setup_predict_folder()
            return  # the normalisation statistics come with the checkpoint (load_state_dict)
        if not self._loaded:
            self._load_splits()
        if stage in ("fit", "validate"):
            self._require_train(stage)

    def _load_splits(self) -> None:
        raw = self._load()
        assert raw is not None
        self.test_x = None if raw.test_x is None else torch.from_numpy(raw.test_x)
        self.test_y = None if raw.test_y is None else torch.from_numpy(raw.test_y)
        self.test_names = raw.test_names
        self.source = raw.source
        n = len(raw.train_x)
        if n == 0:  # test/ alone: `test` and `predict` need only it, with the checkpoint's statistics
            self._loaded = True
            return
        if self.hparams.val_size >= n:
            raise DataError(f"--data.val_size={self.hparams.val_size} leaves no training {self.item_name}: '{raw.source}' has only {n}.")
        self.images, self.labels = torch.from_numpy(raw.train_x), torch.from_numpy(raw.train_y)
        # Train and validation are index sets into one tensor (no copies: the data set is held once). Validation
        # is visited in a seeded random order: class-mixed, so any prefix of it is an unbiased sample.
        if self.hparams.split == "ordered":
            self.val_idx, self.train_idx = ordered_split(self.labels, self.hparams.val_size, self.hparams.split_seed, raw.class_folders)
        else:
            self.val_idx, self.train_idx = random_split(n, self.hparams.val_size, self.hparams.split_seed)
        if self.mean is None:  # a restored checkpoint's statistics take precedence
            self.mean, self.std = self._fixed_statistics() or self._statistics(self.images, self.train_idx)
        self._loaded = True

    def _data_name(self) -> str:
        return "--data.source synthetic" if self.hparams.source == "synthetic" else "CIFAR-10"

    def _require_train(self, need: str) -> None:
        """One line saying why ``need`` cannot run on a folder without train/ (only test/)."""
        if self.images is not None:
            return
        root = self.hparams.data_dir
        reasons = {
            "fit": "fit trains on",
            "validate": f"validate evaluates the validation split (--data.val_size {self.hparams.val_size} images drawn with --data.split_seed {self.hparams.split_seed}) out of",
            "statistics": "without --ckpt_path (whose checkpoint carries them) the normalisation statistics come from",
        }
        tail = " Evaluate test/ with `python train.py test --ckpt_path X`." if need == "validate" else ""
        raise DataError(f"{reasons[need]} the training images, '{root}/train/<class>/', but '{root}' has none (only test/).{tail}")

    def _setup_predict_folder(self) -> None:
        folder = Path(self.hparams.predict_dir).expanduser()
        found = read_predict_folder(folder, resize=self.hparams.predict_resize)
        self.predict_x = torch.from_numpy(found.images)
        self.predict_names, self.predict_skipped = found.names, found.skipped
        self.source = str(folder)
        if found.skipped:
            self._note(found.skipped_report(folder))

    def _mixed_order(self, n: int, salt: int) -> Tensor:
        """A fixed, seeded order of n evaluation images (class-mixed for a class-ordered folder)."""
        return torch.randperm(n, generator=torch.Generator().manual_seed(self.hparams.split_seed * 1_000_003 + salt))

    # ------------------------------------------------------------------ checkpoint state
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"mean": self.mean, "std": self.std}
        if self._train_loader is not None:
            state["train_loader"] = self._train_loader.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("mean") is not None:
            self.mean, self.std = state["mean"], state.get("std")
        # Lightning also hands this state to the loader itself, except when ``trainer.estimated_stepping_batches``
        # was read first (OneCycleLR's total_steps; Lightning issue #20550): then only this copy resumes it.
        self._pending_loader_state = state.get("train_loader")

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if self._train_loader is not None and self.trainer is not None and self.trainer.training:
            self._train_loader.mark_consumed()
        return batch

    # Copies of the splits, for inspection and tests; the loaders use index sets instead.
    @property
    def train_x(self) -> Tensor:
        return self.images[self.train_idx]

    @property
    def train_y(self) -> Tensor:
        return self.labels[self.train_idx]

    @property
    def val_x(self) -> Tensor:
        return self.images[self.val_idx]

    @property
    def val_y(self) -> Tensor:
        return self.labels[self.val_idx]

    def train_images(self, max_n: int | None = None) -> Tensor:
        """Up to ``max_n`` training-split images (a subset fixed by ``split_seed``), normalised exactly as the
        training loader normalises them, before augmentation: float32 NCHW on the CPU. For models that
        initialise layers from data (the fast CNN's whitening); never touches validation or test images."""
        self.setup("fit")  # keeps statistics restored from a checkpoint (load_state_dict)
        idx = self.train_idx
        if max_n is not None and max_n < len(idx):
            idx = idx[torch.randperm(len(idx), generator=torch.Generator().manual_seed(self.hparams.split_seed))[:max_n]].sort().values
        return normalize(self.images.index_select(0, idx), self.mean, self.std)

    def _fixed_statistics(self) -> tuple[Tensor, Tensor | None] | None:
        """The modes whose constants need no data (in 0..255 units, as ``normalize`` takes them); None for the others."""
        mode = self.hparams.preprocessing
        if self.hparams.source == "synthetic":
            return torch.zeros(1), None  # the points as drawn: x - 0
        if mode == "minus_one_one":  # (x / 255 - 0.5) / 0.5 = (x - 127.5) / 127.5
            return torch.full((3, 1, 1), 127.5), torch.full((3, 1, 1), 127.5)
        if mode == "fixed_channel_stats":
            mean = torch.tensor(self.hparams.channel_mean or CIFAR10_MEAN, dtype=torch.float64)
            std = torch.tensor(self.hparams.channel_std or CIFAR10_STD, dtype=torch.float64)
            return (mean * 255).float().view(3, 1, 1), (std * 255).float().view(3, 1, 1)
        return None

    def _statistics(self, images: Tensor, train_idx: Tensor) -> tuple[Tensor, Tensor | None]:
        """Normalisation constants from the training split only (never validation or test).

        Exact integer arithmetic over chunks: per-pixel sums in int64 for the mean image, per-channel
        value histograms for mean/std (casting the split to float64 would take ~1 GB and seconds).
        """
        if self.hparams.preprocessing == "mean_image":
            return (_pixel_sum(images, train_idx).double() / len(train_idx)).float(), None
        histogram = torch.zeros(images.shape[1], 256, dtype=torch.int64)
        for chunk in train_idx.split(4096):
            c = images[chunk].transpose(0, 1).reshape(images.shape[1], -1)
            for ch in range(len(c)):
                histogram[ch] += torch.bincount(c[ch], minlength=256)
        values = torch.arange(256, dtype=torch.float64)
        count = histogram.sum(1).double()
        mean = (histogram.double() * values).sum(1) / count
        var = ((histogram.double() * values.square()).sum(1) - count * mean.square()) / (count - 1)  # unbiased, as torch.std
        # In 0..255 units, so that normalize(x) = (x - mean) / std works on raw uint8 values.
        return mean.float().view(3, 1, 1), var.sqrt().float().view(3, 1, 1)

    # ------------------------------------------------------------------ loaders
    def _device(self) -> torch.device:
        if self.hparams.data_on_device and self.trainer is not None:
            return self.trainer.strategy.root_device
        return torch.device("cpu")

    def _rank_world(self) -> tuple[int, int]:
        if self.trainer is None:
            return 0, 1
        return self.trainer.global_rank, self.trainer.world_size

    def _shuffle_seed(self) -> int:
        if self.hparams.shuffle_seed is not None:
            return self.hparams.shuffle_seed
        return int(os.environ.get("PL_GLOBAL_SEED", 0))

    def _ensure_statistics(self) -> None:
        """Evaluation without a checkpoint's statistics: the fixed constants, or the training split's if there is one."""
        if self.mean is None and (fixed := self._fixed_statistics()) is not None:
            self.mean, self.std = fixed
        if self.mean is None:
            if not self._loaded:
                self._load_splits()
            self._require_train("statistics")

    def _on_device(self, x: Tensor, y: Tensor, device: torch.device) -> tuple[Tensor, Tensor]:
        """One copy per device of each tensor pair, shared by all loaders (train and val use one tensor)."""
        key = (device, x.data_ptr())
        if key not in self._device_copies:
            self._device_copies[key] = (x.to(device), y.to(device))
        return self._device_copies[key]

    def _loader(self, x: Tensor, y: Tensor, train: bool, subset: Tensor | None = None, with_index: bool = False) -> InMemoryLoader:
        device = self._device()
        rank, world = self._rank_world()
        x, y = self._on_device(x, y, device)
        return InMemoryLoader(
            x,
            y,
            batch_size=self.hparams.batch_size if train else self.hparams.eval_batch_size,
            mean=self.mean,
            std=self.std,
            shuffle=train,
            augment=train and self.hparams.augment,
            crop_padding=self.hparams.crop_padding,
            flip=self.hparams.flip,
            drop_last=train and self.hparams.drop_last,
            seed=self._shuffle_seed(),
            rank=rank,
            world_size=world,
            subset=subset,
            with_index=with_index,
            padding_mode=self.hparams.crop_padding_mode,
        )

    def train_dataloader(self) -> InMemoryLoader:
        self.setup("fit")
        loader = self._loader(self.images, self.labels, train=True, subset=self.train_idx)
        if self._pending_loader_state is not None:
            loader.load_state_dict(self._pending_loader_state)
            self._pending_loader_state = None
        self._train_loader = loader
        return loader

    def val_dataloader(self) -> InMemoryLoader:
        if self.hparams.val_size == 0:
            return []  # type: ignore[return-value]  # Lightning skips validation on an empty iterable
        self.setup("validate")
        return self._loader(self.images, self.labels, train=False, subset=self.val_idx)

    def test_dataloader(self) -> InMemoryLoader:
        return self._test_loader(with_index=False)

    def predict_dataloader(self) -> InMemoryLoader:
        """The ``predict_dir`` images if set, else the test split; batches carry image indices for the CSV."""
        if self.hparams.predict_dir is not None:
            if self.predict_x is None:
                self._setup_predict_folder()
            self._ensure_statistics()
            unknown = torch.full((len(self.predict_x),), -1, dtype=torch.int64)
            return self._loader(self.predict_x, unknown, train=False, subset=self._mixed_order(len(self.predict_x), 2), with_index=True)
        return self._test_loader(with_index=True)

    def prediction_skipped_files(self) -> list[tuple[str, str]]:
        """(path relative to ``predict_dir``, reason) of each file ``predict`` could not classify."""
        return self.predict_skipped if self.hparams.predict_dir is not None else []

    def prediction_targets(self) -> tuple[list[str], list[int] | None]:
        """Names of the images ``predict`` classifies, and their labels where known (None for a folder)."""
        if self.hparams.predict_dir is not None:
            return self.predict_names, None
        return self.test_names or [str(i) for i in range(len(self.test_y))], self.test_y.tolist()

    def _test_loader(self, with_index: bool) -> InMemoryLoader:
        if not self._loaded:
            self.setup("test")
        if self.test_x is None:
            raise DataError(
                f"No test split in '{self.hparams.data_dir}': the image folder has no 'test/<class>/' folders. "
                "Add them (or use the official archive), or evaluate the validation split with `validate`."
            )
        self._ensure_statistics()
        return self._loader(self.test_x, self.test_y, train=False, subset=self._mixed_order(len(self.test_x), 1), with_index=with_index)


def _pixel_sum(images: Tensor, idx: Tensor) -> Tensor:
    """Per-pixel int64 sum of ``images[idx]`` (uint8, on the CPU), exact.

    NumPy sums uint8 rows into int64 without a widened copy; the whole array minus the rows left out
    (validation) reads memory in order instead of gathering the split. torch's ``sum(0, dtype=int64)`` over
    gathered chunks took ~10x as long for the 35,000 course images.
    """
    flat = images.numpy().reshape(len(images), -1)
    if 2 * len(idx) < len(images):
        total = np.add.reduce(flat[idx.numpy()], axis=0, dtype=np.int64)
    else:
        left_out = np.ones(len(images), dtype=bool)
        left_out[idx.numpy()] = False
        total = np.add.reduce(flat, axis=0, dtype=np.int64) - np.add.reduce(flat[left_out], axis=0, dtype=np.int64)
    return torch.from_numpy(total).view(images.shape[1:])
