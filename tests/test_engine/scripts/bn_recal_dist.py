"""BN re-estimation on 2 CPU ranks (gloo), launched by
``tests/test_engine/test_bn_recal.py`` as::

    python -m torch.distributed.run --nproc_per_node=2 bn_recal_dist.py OUT

Rank ``r`` re-estimates the BN statistics of the tiny ResNet on its own
batches (``rank_batches(r)``) with ``bn_recal_images`` = all batches of
both ranks, and saves them to ``OUT/rank{r}.pth``, together with the
errors two refused runs raised on this rank: one asking for one image more
than the ranks hold, one where rank 1's loader is a batch short.
"""

import sys
from pathlib import Path

import torch.distributed as dist

from mmst.engine import elastic_of, member_bn_stats, recalibrate_bn
from tests.test_engine.test_bn_recal import (
    BATCHES,
    PER_BATCH,
    bn_stats,
    loader,
    rank_batches,
    tiny_model,
)


def refusal(model, batches, num_images) -> str:
    try:
        recalibrate_bn(model, loader(batches), num_images)
    except ValueError as e:
        return str(e)
    return ''


def main() -> None:
    import torch

    out = Path(sys.argv[1])
    dist.init_process_group('gloo')
    rank, world = dist.get_rank(), dist.get_world_size()
    model = tiny_model()
    total = world * BATCHES * PER_BATCH
    used = recalibrate_bn(model, loader(rank_batches(rank)), total)
    stats = bn_stats(model)
    too_many = refusal(model, rank_batches(rank), total + 1)
    short = rank_batches(rank)[: BATCHES - 1 if rank == 1 else BATCHES]
    uneven = refusal(model, short, total)
    unchanged = all(
        torch.equal(v, bn_stats(model)[k]) for k, v in stats.items()
    )
    # several members at once (shared prefixes, one all-reduce) == each
    # member's own distributed re-estimation
    elastic, space = elastic_of(model)
    members = [space.smallest(), space.largest()]
    found, members_used = member_bn_stats(
        model, loader(rank_batches(rank)), total, members, elastic
    )
    members_equal = members_used == total
    for subnet, member in zip(members, found):
        fresh = tiny_model()
        with elastic_of(fresh)[0].activate(subnet):
            recalibrate_bn(fresh, loader(rank_batches(rank)), total)
        own = dict(fresh.named_modules())
        for name, bn in model.named_modules():
            if bn in member:
                mean, var = member[bn]
                members_equal &= torch.equal(mean, own[name].running_mean)
                members_equal &= torch.equal(var, own[name].running_var)
    torch.save(
        dict(
            used=used,
            stats=stats,
            too_many=too_many,
            uneven=uneven,
            unchanged=unchanged,
            members_equal=bool(members_equal),
        ),
        out / f'rank{rank}.pth',
    )
    dist.destroy_process_group()


if __name__ == '__main__':
    main()
