"""DataLoader (batching, seeded shuffling, exact resume) and batch transforms."""

import numpy as np
import pytest

import tinycnn
from tinycnn.data import (
    ArrayDataset, Compose, DataLoader, Normalize, RandomCrop, RandomHorizontalFlip, ToFloat,
)


def numbered(n, h=4, w=4, c=1):
    """A dataset whose label is the sample index and whose pixels encode it."""
    images = (np.arange(n, dtype=np.uint8)[:, None, None, None] + np.zeros((1, h, w, c), np.uint8))
    return ArrayDataset(images, np.arange(n) % 256, classes=[str(i) for i in range(256)])


class ItemOnly:
    """A dataset with only __len__/__getitem__ (HW images)."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return np.full((4, 4), i, np.uint8), i


def collect(loader):
    return [(x.copy(), y.copy()) for x, y in loader]


# ------------------------------------------------------------------ loader


def test_batching_len_and_drop_last():
    ds = numbered(10)
    loader = DataLoader(ds, batch_size=4)
    batches = collect(loader)
    assert len(loader) == 3 and [len(y) for _, y in batches] == [4, 4, 2]
    assert np.concatenate([y for _, y in batches]).tolist() == list(range(10))
    x, y = batches[0]
    assert x.dtype == np.float32 and x.shape == (4, 4, 4, 1) and y.dtype == np.int64
    assert x[3, 0, 0, 0] == 3.0  # cast, not rescaled, without a transform
    dropped = DataLoader(ds, batch_size=4, drop_last=True)
    assert len(dropped) == 2 and [len(y) for _, y in collect(dropped)] == [4, 4]
    assert len(DataLoader(ds, batch_size=5)) == 2 and len(DataLoader(ds, batch_size=11, drop_last=True)) == 0


def test_seeded_shuffle_reproducible_and_changes_each_epoch():
    ds = numbered(50)
    a, b = DataLoader(ds, 8, shuffle=True, seed=7), DataLoader(ds, 8, shuffle=True, seed=7)
    epochs_a = [np.concatenate([y for _, y in collect(a)]) for _ in range(3)]
    epochs_b = [np.concatenate([y for _, y in collect(b)]) for _ in range(3)]
    for ea, eb in zip(epochs_a, epochs_b):
        np.testing.assert_array_equal(ea, eb)
        assert sorted(ea.tolist()) == list(range(50))  # every sample exactly once
    assert not np.array_equal(epochs_a[0], epochs_a[1]) and not np.array_equal(epochs_a[1], epochs_a[2])
    assert not np.array_equal(epochs_a[0], np.arange(50))
    other = DataLoader(ds, 8, shuffle=True, seed=8)
    assert not np.array_equal(np.concatenate([y for _, y in collect(other)]), epochs_a[0])
    # The order of epoch k depends only on (seed, k).
    np.testing.assert_array_equal(DataLoader(ds, 3, shuffle=True, seed=7).order(2), epochs_a[2])


def test_seed_none_follows_manual_seed():
    tinycnn.manual_seed(123)
    s1 = DataLoader(numbered(5), shuffle=True).seed
    tinycnn.manual_seed(123)
    assert DataLoader(numbered(5), shuffle=True).seed == s1


def test_drop_last_shuffled_each_epoch_serves_distinct_samples():
    loader = DataLoader(numbered(10), 3, shuffle=True, drop_last=True, seed=0)
    for _ in range(2):
        ys = np.concatenate([y for _, y in collect(loader)])
        assert len(ys) == 9 and len(set(ys.tolist())) == 9


def augment():
    return Compose([RandomCrop(4, padding=1), RandomHorizontalFlip(), ToFloat(), Normalize(0.5, 0.25)])


def test_resume_mid_epoch_yields_identical_batches():
    rng = np.random.default_rng(0)
    ds = ArrayDataset(rng.integers(0, 256, (37, 4, 4, 3), dtype=np.uint8), rng.integers(0, 10, 37))
    reference = DataLoader(ds, 5, shuffle=True, seed=11, transform=augment())
    expected = collect(reference) + collect(reference)  # epochs 0 and 1

    run = DataLoader(ds, 5, shuffle=True, seed=11, transform=augment())
    seen = collect(run)  # epoch 0
    it = iter(run)
    for _ in range(3):
        x, y = next(it)
        seen.append((x.copy(), y.copy()))
    state = run.state_dict()
    assert state == {"seed": 11, "epoch": 1, "batch": 3}

    resumed = DataLoader(ds, 5, shuffle=True, seed=999, transform=augment())  # seed comes from the state
    resumed.load_state_dict(state)
    rest = collect(resumed)
    assert len(seen) + len(rest) == len(expected) == 16
    for (x, y), (ex, ey) in zip(seen + rest, expected):
        np.testing.assert_array_equal(y, ey)
        np.testing.assert_array_equal(x, ex)  # augmentation included
    assert resumed.state_dict() == {"seed": 11, "epoch": 2, "batch": 0}
    # Consuming the last batch without finishing the loop also lands on the next epoch.
    run2 = DataLoader(ds, 5, seed=1)
    it = iter(run2)
    for _ in range(len(run2)):
        next(it)
    assert run2.state_dict() == {"seed": 1, "epoch": 1, "batch": 0}


def test_load_state_dict_checks():
    loader = DataLoader(numbered(10), 4)
    with pytest.raises(ValueError, match="missing keys"):
        loader.load_state_dict({"epoch": 0})
    with pytest.raises(ValueError, match="batch 9 out of range"):
        loader.load_state_dict({"seed": 0, "epoch": 0, "batch": 9})


def test_item_only_dataset_matches_array_dataset():
    items = collect(DataLoader(ItemOnly(10), 4, shuffle=True, seed=3))
    arrays = collect(DataLoader(numbered(10), 4, shuffle=True, seed=3))
    for (xi, yi), (xa, ya) in zip(items, arrays):
        np.testing.assert_array_equal(yi, ya)
        np.testing.assert_array_equal(xi, xa)


def test_array_dataset_uses_get_batch_not_items():
    class NoItems(ArrayDataset):
        def __getitem__(self, index):
            raise AssertionError("per-item access")

    ds = NoItems(np.zeros((9, 2, 2, 1), np.uint8), np.arange(9))
    images = ds.images
    assert sum(len(y) for _, y in DataLoader(ds, 4, shuffle=True, seed=0)) == 9
    assert ds.images is images  # the dataset itself is untouched


def test_loader_argument_errors():
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        DataLoader(numbered(3), batch_size=0)
    with pytest.raises(TypeError, match="must have __len__ and __getitem__"):
        DataLoader(object())
    with pytest.raises(ValueError, match="ArrayDataset: labels must be \\(3,\\)"):
        ArrayDataset(np.zeros((3, 2, 2, 1)), np.zeros(2, np.int64))


# -------------------------------------------------------------- transforms


def test_to_float():
    x = np.array([0, 51, 255], np.uint8).reshape(1, 1, 3, 1)
    y = ToFloat()(x)
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y.ravel(), [0.0, 0.2, 1.0], rtol=1e-6)
    np.testing.assert_allclose(ToFloat(scale=1 / 16)(x.clip(0, 16)).ravel(), [0, 1, 1])


def test_normalize_gives_zero_mean_unit_std_per_channel():
    rng = np.random.default_rng(0)
    x = rng.normal([3.0, -2.0, 10.0], [2.0, 0.5, 4.0], size=(64, 8, 8, 3)).astype(np.float32)
    mean, std = x.mean(axis=(0, 1, 2)), x.std(axis=(0, 1, 2))
    y = Normalize(mean, std)(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(y.std(axis=(0, 1, 2)), 1, atol=1e-4)
    np.testing.assert_allclose(y[..., 1], (x[..., 1] - mean[1]) / std[1], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="mean has 2 values, the batch has C=3 channels"):
        Normalize([0, 0], [1, 1])(x)
    with pytest.raises(ValueError, match="std must be positive"):
        Normalize(0, 0)


def test_flip_really_flips():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (200, 3, 5, 2), dtype=np.uint8)
    before = x.copy()
    np.testing.assert_array_equal(RandomHorizontalFlip(1.0)(x, rng), x[:, :, ::-1])
    np.testing.assert_array_equal(RandomHorizontalFlip(0.0)(x, rng), x)
    y = RandomHorizontalFlip(0.5)(x, np.random.default_rng(1))
    flipped = np.array([np.array_equal(y[i], x[i, :, ::-1]) for i in range(200)])
    kept = np.array([np.array_equal(y[i], x[i]) for i in range(200)])
    assert np.all(flipped ^ kept) and 70 < flipped.sum() < 130
    np.testing.assert_array_equal(x, before)  # input untouched


def test_crop_with_padding_shifts_content():
    N, H, W = 300, 6, 7
    x = (np.arange(H * W, dtype=np.float32).reshape(1, H, W, 1) + 1) * np.ones((N, 1, 1, 2), np.float32)
    y = RandomCrop((H, W), padding=2)(x, np.random.default_rng(0))
    assert y.shape == x.shape and y.dtype == x.dtype
    padded = np.pad(x[0], ((2, 2), (2, 2), (0, 0)))
    offsets = set()
    for i in range(N):
        # Recover the offset from the top-left-most non-zero pixel, then check the whole window.
        matches = [(t, l) for t in range(5) for l in range(5)
                   if np.array_equal(y[i], padded[t:t + H, l:l + W])]
        assert len(matches) == 1
        offsets.add(matches[0])
    assert offsets == {(t, l) for t in range(5) for l in range(5)}  # all 25 shifts occur
    assert any(y[i, 0, 0, 0] == 0 for i in range(N))  # zero padding shows
    small = RandomCrop(3)(x[:4], np.random.default_rng(0))
    assert small.shape == (4, 3, 3, 2)
    with pytest.raises(ValueError, match="larger than padded image"):
        RandomCrop(9)(x)
    with pytest.raises(ValueError, match=r"expected a batch \(N, H, W, C\)"):
        RandomCrop(3)(x[0])


def test_transforms_reproducible_from_generator():
    x = np.random.default_rng(0).integers(0, 256, (16, 8, 8, 3), dtype=np.uint8)
    t = Compose([RandomCrop(8, padding=2), RandomHorizontalFlip(), ToFloat()])
    a, b = t(x, np.random.default_rng(5)), t(x, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, t(x, np.random.default_rng(6)))
    assert a.dtype == np.float32 and a.shape == (16, 8, 8, 3) and a.max() <= 1.0
    wide = x.astype(np.int32)
    np.testing.assert_array_equal(Compose([lambda v: v + 1])(wide), wide + 1)  # plain callables work


def test_loader_with_digits_pipeline():
    from tinycnn.data import get_dataset

    train = get_dataset("digits", "train")
    loader = DataLoader(train, 64, shuffle=True, seed=0, transform=Compose([RandomCrop(8, 1), ToFloat()]))
    x, y = next(iter(loader))
    assert x.shape == (64, 8, 8, 1) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert y.dtype == np.int64 and len(loader) == 23
