"""The paper's training augmentation (Methods) in albumentations 2.x argument names.

Paper (albumentations 1.x wording) -> here (docs/protocols.md, "Augmentation"):
- rotations (0, 60, 120, 180, 270 degrees) -> ``OneOf`` of ``Affine(rotate=(a, a))``, one angle per image;
- horizontal and vertical flips -> ``HorizontalFlip``, ``VerticalFlip``;
- random scale (limit 0.1, interpolation 1) and shear (-45, 45) -> ``Affine(scale=(0.9, 1.1),
  shear=(-45, 45), interpolation=cv2.INTER_LINEAR)``;
- elastic deformation -> ``ElasticTransform(alpha=120, sigma=6)``: the 1.x defaults the paper used
  (alpha 1, sigma 50, alpha_affine 50) deformed through their affine part, which 2.x dropped; 2.x's
  own defaults (alpha 1, sigma 50) move no pixel at all (0% of mask pixels change). alpha 120 with
  sigma 6 (``ELASTIC``; the setting of albumentations' elastic examples, after Simard et al. 2003)
  displaces pixels by about 1-3 px: on a 64 px disk mask it changes about 3% of the pixels per
  application (tests/test_augment.py measures it);
- ``ColorJitter(0.2, 0.2, 0.2, 0.2)``: on 1-channel images only brightness and contrast act;
- ``GaussianBlur(blur_limit=(3, 7), sigma_limit=0)`` -> ``GaussianBlur(blur_limit=(3, 7))``: in 2.x
  ``sigma_limit=0`` gives a NaN kernel, so sigma comes from the 2.x default range (0.5, 3.0);
- ``GaussNoise(var_limit=(10, 50), mean=0)`` (variance on the 0..255 scale) -> ``GaussNoise(std_range=
  (sqrt(10)/255, sqrt(50)/255), mean_range=(0, 0))``: ``std_range`` is a fraction of the image's
  maximum value, so the same numbers hold for uint8 and for float images in [0, 1].
The paper gives no probabilities: each transform uses albumentations' default ``p=0.5`` (the rotation
``OneOf`` always picks one angle, 0 included). Geometric borders are filled with 0 (image and mask).
"""

from __future__ import annotations

import math

import albumentations as A
import cv2
import numpy as np

#: The paper's rotation angles (degrees).
ROTATIONS: tuple[int, ...] = (0, 60, 120, 180, 270)
#: Elastic deformation: displacement scale (pixels) and Gaussian smoothing (pixels) of the random field.
ELASTIC = {"alpha": 120.0, "sigma": 6.0}


def paper_augmentation(seed: int) -> A.Compose:
    """The paper's pipeline; ``strict=True`` (unknown arguments raise), seeded through ``Compose(seed=)``."""
    border = {"border_mode": cv2.BORDER_CONSTANT, "fill": 0, "fill_mask": 0}
    noise_std = (math.sqrt(10.0) / 255.0, math.sqrt(50.0) / 255.0)
    return A.Compose(
        [
            A.OneOf([A.Affine(rotate=(a, a), p=1.0, **border) for a in ROTATIONS], p=1.0),
            A.HorizontalFlip(p=0.5),
            A.VerticalFlip(p=0.5),
            A.Affine(scale=(0.9, 1.1), shear=(-45, 45), interpolation=cv2.INTER_LINEAR, p=0.5, **border),
            A.ElasticTransform(**ELASTIC, p=0.5, **border),
            A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.2, p=0.5),
            A.GaussianBlur(blur_limit=(3, 7), p=0.5),
            A.GaussNoise(std_range=noise_std, mean_range=(0.0, 0.0), p=0.5),
        ],
        strict=True,
        seed=int(seed),
    )


def augment_batch(
    images: np.ndarray, masks: np.ndarray, transform: A.BasicTransform | A.Compose
) -> tuple[np.ndarray, np.ndarray]:
    """Apply ``transform`` to each pair: images B x C x H x W float32 in [0, 1], masks B x H x W bool.

    Returns arrays of the same shapes and dtypes (images clipped to [0, 1], masks boolean). The image
    and its mask get the same geometric transform; one draw of the transform's RNG per image.
    """
    if images.ndim != 4 or masks.shape != (images.shape[0], *images.shape[2:]):
        raise ValueError(
            f"augment_batch: images {images.shape} (B x C x H x W) and masks {masks.shape} (B x H x W) do not match"
        )
    out_images = np.empty(images.shape, np.float32)
    out_masks = np.empty(masks.shape, bool)
    for i in range(images.shape[0]):
        image = np.ascontiguousarray(images[i].transpose(1, 2, 0), dtype=np.float32)
        result = transform(image=image, mask=masks[i].astype(np.uint8))
        out_images[i] = np.clip(result["image"].reshape(image.shape), 0.0, 1.0).transpose(2, 0, 1)
        out_masks[i] = result["mask"] > 0
    return out_images, out_masks
