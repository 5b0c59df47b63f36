"""DataModule: shapes, splits, normalisation, augmentation, DDP sharding and mid-epoch resume state."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from datamodules import CIFAR10DataModule, DataError
from datamodules.augment import random_crop
from datamodules.in_memory_loader import EpochSampler, InMemoryLoader
from tests.conftest import N_TEST, PER_BATCH, write_image_folder


def _dm(data_dir: Path, **kw: object) -> CIFAR10DataModule:
    dm = CIFAR10DataModule(str(data_dir), download=False, val_size=30, batch_size=16, eval_batch_size=20, **kw)
    dm.setup("fit")
    return dm


def test_shapes_dtypes_and_split_sizes(batches_dir: Path) -> None:
    dm = _dm(batches_dir)
    assert dm.train_x.dtype == torch.uint8 and dm.train_x.shape == (5 * PER_BATCH - 30, 3, 32, 32)
    assert dm.val_x.shape[0] == 30 and dm.test_x.shape[0] == N_TEST
    x, y = next(iter(dm.train_dataloader()))
    assert x.dtype == torch.float32 and x.shape == (16, 3, 32, 32) and y.dtype == torch.int64
    assert len(dm.train_dataloader()) == -(-(5 * PER_BATCH - 30) // 16)
    assert sum(len(b[1]) for b in dm.test_dataloader()) == N_TEST


def test_split_is_deterministic_and_disjoint(batches_dir: Path) -> None:
    a, b, c = _dm(batches_dir), _dm(batches_dir), _dm(batches_dir, split_seed=1)
    assert torch.equal(a.val_x, b.val_x) and torch.equal(a.train_y, b.train_y)
    assert not torch.equal(a.val_x, c.val_x)
    flat = lambda t: {bytes(img.numpy().tobytes()) for img in t}  # noqa: E731
    assert not flat(a.train_x) & flat(a.val_x), "train and validation share images"


def test_standardize_gives_zero_mean_unit_std_on_train(batches_dir: Path) -> None:
    dm = _dm(batches_dir)
    x = torch.cat([b[0] for b in InMemoryLoader(dm.train_x, dm.train_y, 1000, dm.mean, dm.std)])
    assert torch.allclose(x.mean((0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(x.std((0, 2, 3)), torch.ones(3), atol=1e-3)


def test_mean_image_preprocessing_is_the_course_one(batches_dir: Path) -> None:
    dm = _dm(batches_dir, preprocessing="mean_image")
    assert dm.std is None and dm.mean.shape == (3, 32, 32)
    x, _ = next(iter(InMemoryLoader(dm.train_x, dm.train_y, 10, dm.mean, dm.std)))
    expected = dm.train_x[:10].double() - dm.train_x.double().mean(0)
    assert torch.allclose(x.double(), expected, atol=1e-3), "pixels minus mean image, 0..255 units"


@pytest.mark.parametrize("kept", [200, 3])
def test_mean_image_sum_is_exact_for_a_large_or_a_small_split(kept: int) -> None:
    """The per-pixel sum takes the whole array minus the rows left out, or the rows kept: both exact."""
    from datamodules.cifar10 import _pixel_sum

    images = torch.randint(0, 256, (250, 3, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    idx = torch.randperm(250, generator=torch.Generator().manual_seed(1))[:kept]
    assert torch.equal(_pixel_sum(images, idx), images[idx].to(torch.int64).sum(0))


def test_prepare_data_then_setup_find_the_source_once(image_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding an image folder stats every file (50,000 for CIFAR-10): prepare_data's answer serves setup."""
    import datamodules.sources as sources

    calls: list[Path] = []
    real = sources._detect_source
    monkeypatch.setattr(sources, "_detect_source", lambda root, *a: (calls.append(root), real(root, *a))[1])
    dm = CIFAR10DataModule(str(image_folder), download=False, val_size=10)
    dm.prepare_data()  # decodes and writes the cache
    dm.setup("fit")  # reads it
    assert calls == [image_folder] and dm.source == str(image_folder) and len(dm.train_idx) == 50


def test_validation_and_test_batches_are_not_augmented_or_shuffled(batches_dir: Path) -> None:
    dm = _dm(batches_dir, augment=True)
    v1 = torch.cat([b[0] for b in dm.val_dataloader()])
    v2 = torch.cat([b[0] for b in dm.val_dataloader()])
    assert torch.equal(v1, v2)
    assert torch.equal(torch.cat([b[1] for b in dm.val_dataloader()]), dm.val_y)


def test_random_crop_is_a_shifted_window_and_flip_mirrors_it() -> None:
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4) + 1
    out = random_crop(x, padding=1, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    windows = lambda i: [padded[i, :, dy : dy + 4, dx : dx + 4] for dy in range(3) for dx in range(3)]  # noqa: E731
    for i in range(2):
        assert any(torch.equal(out[i], w) for w in windows(i))
    many = x.repeat(50, 1, 1, 1)
    flipped = random_crop(many, padding=1, generator=torch.Generator().manual_seed(0), flip=True)
    plain = random_crop(many, padding=1, generator=torch.Generator().manual_seed(0), flip=False)
    mirrored = (flipped != plain).flatten(1).any(1)
    assert 20 < int(mirrored.sum()) < 80, "about half the batch is mirrored"
    for i in range(100):
        assert any(torch.equal(flipped[i], w.flip(2) if mirrored[i] else w) for w in windows(i % 2))


def test_random_crop_matches_a_per_image_reference_on_rgb_batches() -> None:
    """The fast index arithmetic (rows per channel plane, then columns) against the obvious slicing loop."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(16, 3, 8, 6, generator=g)
    pad = 2
    out = random_crop(x, padding=pad, generator=torch.Generator().manual_seed(5), flip=True)
    ref_gen = torch.Generator().manual_seed(5)  # same draws, same order: dy, dx, mirrored
    dy = torch.randint(0, 2 * pad + 1, (16,), generator=ref_gen)
    dx = torch.randint(0, 2 * pad + 1, (16,), generator=ref_gen)
    mirrored = torch.rand(16, generator=ref_gen) < 0.5
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    for i in range(16):
        window = padded[i, :, dy[i] : dy[i] + 8, dx[i] : dx[i] + 6]
        assert torch.equal(out[i], window.flip(2) if mirrored[i] else window), i


def test_augmentation_changes_train_batches_only_by_epoch_seed(batches_dir: Path) -> None:
    dm = _dm(batches_dir, augment=True, shuffle_seed=3)
    l1, l2 = dm.train_dataloader(), dm.train_dataloader()
    assert all(torch.equal(a[0], b[0]) for a, b in zip(l1, l2)), "same seed+epoch -> same batches"
    l2.sampler.set_epoch(1)
    assert not torch.equal(next(iter(l1))[0], next(iter(l2))[0])


@pytest.mark.parametrize("n,world", [(150, 2), (151, 2), (100, 3)])
def test_ddp_shards_are_disjoint_and_cover_the_epoch(n: int, world: int) -> None:
    shards = [EpochSampler(n, shuffle=True, seed=5, rank=r, world_size=world).indices() for r in range(world)]
    assert len({len(s) for s in shards}) == 1, "every rank takes the same number of steps"
    allidx = torch.cat(shards)
    assert set(allidx.tolist()) == set(range(n))
    assert len(allidx) - len(set(allidx.tolist())) < world, "only the wrap-around padding repeats"
    eval_shards = [EpochSampler(n, shuffle=False, seed=5, rank=r, world_size=world, pad=False).indices() for r in range(world)]
    assert sorted(torch.cat(eval_shards).tolist()) == list(range(n)), "evaluation sees each image exactly once"


def test_epoch_changes_order_identically_on_all_ranks() -> None:
    s0, s1 = EpochSampler(40, True, 0, 0, 2), EpochSampler(40, True, 0, 1, 2)
    e0 = torch.cat([s0.indices(), s1.indices()])
    s0.set_epoch(1), s1.set_epoch(1)
    e1 = torch.cat([s0.indices(), s1.indices()])
    assert sorted(e0.tolist()) == sorted(e1.tolist()) == list(range(40)) and not torch.equal(e0, e1)


def test_start_batch_resumes_mid_epoch_identically(batches_dir: Path) -> None:
    dm = _dm(batches_dir, augment=True)
    full = list(dm.train_dataloader())
    resumed = dm.train_dataloader()
    resumed.start_batch = 3
    rest = list(resumed)
    assert len(rest) == len(full) - 3
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(rest, full[3:]))
    assert len(list(resumed)) == len(full), "the next epoch is whole again"


def test_no_test_split_is_reported_clearly(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "f", per_class=4, splits=("train",))
    dm = CIFAR10DataModule(str(root), download=False, val_size=10)
    dm.setup("test")
    with pytest.raises(DataError, match=r"No test split in '.*'.*test/<class>/"):
        dm.test_dataloader()


def test_val_size_larger_than_data(batches_dir: Path) -> None:
    dm = CIFAR10DataModule(str(batches_dir), download=False, val_size=10_000)
    with pytest.raises(DataError, match=r"val_size=10000 leaves no training images: .* has only 150"):
        dm.setup("fit")


def test_evaluation_order_is_seeded_and_class_mixed_so_any_prefix_is_unbiased(tmp_path: Path) -> None:
    """An image folder is read class by class; validation, test and predict must not follow that order."""
    root = write_image_folder(tmp_path / "f", per_class=10)
    dm = CIFAR10DataModule(str(root), download=False, val_size=40, eval_batch_size=10)
    dm.setup("fit")
    for name, loader in (("val", dm.val_dataloader()), ("test", dm.test_dataloader()), ("predict", dm.predict_dataloader())):
        first = next(iter(loader))[1]
        assert len(set(first.tolist())) >= 5, f"{name}: the first batch of 10 holds classes {sorted(set(first.tolist()))}"
    again = CIFAR10DataModule(str(root), download=False, val_size=40, eval_batch_size=10)
    again.setup("fit")
    assert torch.equal(torch.cat([b[1] for b in dm.test_dataloader()]), torch.cat([b[1] for b in again.test_dataloader()])), "fixed order"
    assert sorted(torch.cat([b[1] for b in dm.test_dataloader()]).tolist()) == sorted(dm.test_y.tolist()), "each image once"


def test_loader_state_resumes_after_the_consumed_batches() -> None:
    images, labels = torch.zeros(50, 3, 32, 32, dtype=torch.uint8), torch.arange(50) % 10
    loader = InMemoryLoader(images, labels, batch_size=10, mean=torch.zeros(3, 1, 1), std=None, shuffle=True, seed=1)
    it = iter(loader)
    seen = [next(it)[1] for _ in range(3)]  # Lightning fetches one batch ahead: only two reached the model
    loader.mark_consumed(), loader.mark_consumed()
    resumed = InMemoryLoader(images, labels, batch_size=10, mean=torch.zeros(3, 1, 1), std=None, shuffle=True, seed=1)
    resumed.load_state_dict(loader.state_dict())
    rest = [b[1] for b in resumed]
    assert len(rest) == 3 and torch.equal(rest[0], seen[2]), "resumes with the first batch the model had not consumed"
