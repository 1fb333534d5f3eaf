"""Paper augmentation: albumentations 2.x names (no warnings), seeded, shapes kept, masks binary and aligned."""

from __future__ import annotations

import warnings

import albumentations as A
import numpy as np
import pytest

from bench.datasets.augment import ROTATIONS, augment_batch, paper_augmentation


def _batch(channels: int, b: int = 4, s: int = 32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    masks = np.zeros((b, s, s), bool)
    masks[:, 4:14, 6:20] = True
    images = 0.2 + 0.6 * masks[:, None].repeat(channels, 1) + 0.05 * rng.random((b, channels, s, s))
    return images.astype(np.float32), masks


@pytest.fixture(autouse=True)
def _warnings_are_errors() -> None:
    warnings.filterwarnings("error", category=UserWarning)
    warnings.filterwarnings("error", category=RuntimeWarning)


@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_types_binary_masks(channels: int) -> None:
    images, masks = _batch(channels)
    out_i, out_m = augment_batch(images, masks, paper_augmentation(0))
    assert out_i.shape == images.shape and out_i.dtype == np.float32
    assert out_m.shape == masks.shape and out_m.dtype == bool
    assert out_i.min() >= 0 and out_i.max() <= 1 and np.isfinite(out_i).all()


def test_same_seed_same_result() -> None:
    images, masks = _batch(3)
    a = augment_batch(images, masks, paper_augmentation(5))
    b = augment_batch(images, masks, paper_augmentation(5))
    c = augment_batch(images, masks, paper_augmentation(6))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_image_and_mask_get_the_same_geometry() -> None:
    # Only the geometric part of the pipeline; the bright square must stay on the mask.
    transform = paper_augmentation(1)
    geometric = A.Compose(transform.transforms[:5], strict=True, seed=1)
    images, masks = _batch(1, b=8)
    out_i, out_m = augment_batch(images, masks, geometric)
    for image, mask in zip(out_i[:, 0], out_m):
        assert mask.any()
        assert image[mask].mean() > 0.6 and (image[~mask] < 0.5).mean() > 0.95


def test_pipeline_names_the_papers_transforms() -> None:
    t = paper_augmentation(0)
    names = [type(x).__name__ for x in t.transforms]
    assert names == [
        "OneOf",
        "HorizontalFlip",
        "VerticalFlip",
        "Affine",
        "ElasticTransform",
        "ColorJitter",
        "GaussianBlur",
        "GaussNoise",
    ]
    assert t.strict and len(t.transforms[0].transforms) == len(ROTATIONS)
    noise = t.transforms[-1]
    assert noise.std_range == pytest.approx((10**0.5 / 255, 50**0.5 / 255))


def test_mismatched_shapes() -> None:
    images, masks = _batch(3)
    with pytest.raises(ValueError, match="do not match"):
        augment_batch(images, masks[:, :-1], paper_augmentation(0))


def _changed_mask_fraction(transform: A.BasicTransform, n: int = 20) -> float:
    yy, xx = np.mgrid[:64, :64]
    mask = ((yy - 32) ** 2 + (xx - 32) ** 2 < 18**2).astype(np.uint8)
    image = np.random.default_rng(0).random((64, 64, 3)).astype(np.float32)
    return float(
        np.mean([(A.Compose([transform], seed=s)(image=image, mask=mask)["mask"] != mask).mean() for s in range(n)])
    )


def test_elastic_transform_actually_deforms() -> None:
    """2.x's default ElasticTransform is a no-op; the pipeline's one moves mask pixels (about 3% of a disk)."""
    assert _changed_mask_fraction(A.ElasticTransform(p=1.0)) == 0.0
    elastic = next(t for t in paper_augmentation(0).transforms if isinstance(t, A.ElasticTransform))
    changed = _changed_mask_fraction(A.ElasticTransform(alpha=elastic.alpha, sigma=elastic.sigma, p=1.0))
    assert 0.01 < changed < 0.10
