"""UniformAugment (LingChen et al., 2020), used by the ST++ A2 recipe."""

from typing import List, Optional, Union

import numpy as np
from mmcv.transforms import Compose
from mmcv.transforms.utils import cache_randomness
from mmpretrain.datasets.transforms import RandAugment

from mmst.registry import TRANSFORMS


@TRANSFORMS.register_module()
class UniformAugment(RandAugment):
    """Search-free augmentation: ``num_ops`` operations drawn uniformly (with
    replacement) from ``policies``, each applied with probability ``prob``
    at a magnitude drawn uniformly from its whole range.

    Built on mmpretrain's RandAugment operations (same policies and
    ``hparams``): the magnitude is ``Uniform(min, max)`` of each policy's
    ``magnitude_range``.

    Args:
        policies (str | list[dict]): RandAugment policies or a preset name
            (``'timm_increasing'``, ``'simple_increasing'``). Defaults to
            ``'timm_increasing'``.
        num_ops (int): Operations per image. Defaults to 2.
        prob (float): Probability of applying each drawn operation.
            Defaults to 0.5.
        hparams (dict): Shared policy arguments (e.g. ``pad_val``).
    """

    def __init__(
        self,
        policies: Union[str, List[dict]] = 'timm_increasing',
        num_ops: int = 2,
        prob: float = 0.5,
        hparams: Optional[dict] = None,
    ) -> None:
        if not isinstance(num_ops, int) or num_ops < 1:
            raise ValueError(
                f'UniformAugment: num_ops={num_ops!r} is '
                'invalid; allowed: an integer >= 1'
            )
        if not 0 <= prob <= 1:
            raise ValueError(
                f'UniformAugment: prob={prob!r} is invalid; '
                'allowed: 0 <= prob <= 1'
            )
        total_level = 10
        super().__init__(
            policies=policies,
            num_policies=num_ops,
            magnitude_level=total_level,  # 'inf': Uniform(min, max)
            magnitude_std='inf',
            total_level=total_level,
            hparams=hparams or dict(pad_val=128),
        )
        self.prob = prob

    @cache_randomness
    def random_ops(self) -> List[int]:
        indices = np.random.randint(
            len(self.transforms), size=self.num_policies
        )
        applied = np.random.rand(self.num_policies) < self.prob
        return [int(i) for i, a in zip(indices, applied) if a]

    def transform(self, results: dict) -> Optional[dict]:
        ops = self.random_ops()
        if not ops:
            return results
        return Compose([self.transforms[i] for i in ops])(results)

    def __repr__(self) -> str:
        return (
            f'{self.__class__.__name__}(num_ops={self.num_policies}, '
            f'prob={self.prob}, policies='
            f'{[p["type"] for p in self.policies]})'
        )
