"""AlexNet PCA lighting that saturates instead of wrapping around."""

import mmcv
import numpy as np
from mmpretrain.datasets.transforms import Lighting

from mmst.registry import TRANSFORMS


@TRANSFORMS.register_module()
class ClippedLighting(Lighting):
    """mmpretrain's :class:`Lighting` (AlexNet PCA noise, Krizhevsky et al.,
    2012), with the result clipped to the range of the image's integer dtype
    ([0, 255] for ``uint8``) before it is cast back.

    mmpretrain's ``Lighting`` casts ``img + shift`` to the input dtype
    without clipping, so on a ``uint8`` image a pixel of 254 shifted by +3
    becomes 1 and a pixel of 1 shifted by -3 becomes 254. Here they become
    255 and 0. The cast still truncates, as mmpretrain's does.

    Required keys: ``img`` (H x W x 3, BGR unless ``to_rgb``).
    Modified keys: ``img`` (same shape and dtype).

    Args:
        eigval (list[float]): Eigenvalues of the pixel covariance, on the
            scale of the image (0-255 images: the AlexNet values x 255).
        eigvec (list[list[float]]): Eigenvectors, one row per channel in
            the image's channel order, one column per eigenvalue.
        alphastd (float): Standard deviation of the random weight of each
            eigenvector. Defaults to 0.1.
        to_rgb (bool): Whether to convert the image to RGB first.
            Defaults to False.
    """

    def transform(self, results: dict) -> dict:
        img = results['img']
        shifted = mmcv.adjust_lighting(
            img,
            self.eigval,
            self.eigvec,
            alphastd=self.alphastd,
            to_rgb=self.to_rgb,
        )
        if np.issubdtype(img.dtype, np.integer):
            info = np.iinfo(img.dtype)
            shifted = np.clip(shifted, info.min, info.max)
        results['img'] = shifted.astype(img.dtype)
        return results
