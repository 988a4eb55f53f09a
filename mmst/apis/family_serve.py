"""Serving a classifier's depth family under a latency budget that changes
over time (``tools/analysis_tools/family_demo.py``, ``docs/family.md``,
"Demo"): per budget, :meth:`mmst.apis.DepthFamily.for_latency` picks the
member, which then serves test images one batch at a time."""

import math
import statistics
import time
from typing import Iterator, List, Optional, Sequence

import torch


def default_budgets(family) -> List[float]:
    """A budget schedule (ms) from the family's own latencies at the menu's
    batch size: the slowest member's, the median member's, the fastest
    member's, the median's, the slowest's, each rounded up to 0.01 ms (so
    that the printed budget is the budget).

    Raises:
        ValueError: The family has no latencies.
    """
    from mmst.analysis.menu.outputs import member_cost

    batch = family.menu.get('latency_batch_size')
    runtime = family.menu.get('latency_runtime', 'eager')
    times = sorted(
        t
        for t in (
            member_cost(family.row(n), 'latency', batch, runtime)
            for n in family.members
        )
        if t is not None
    )
    if not times:
        raise ValueError(
            'the family has no member latencies; give the budgets (ms)'
        )
    slow, mid, fast = (
        math.ceil(t * 100) / 100
        for t in (times[-1], times[len(times) // 2], times[0])
    )
    return [slow, mid, fast, mid, slow]


@torch.no_grad()
def serve_budgets(
    family,
    budgets_ms: Optional[Sequence[float]] = None,
    images_per_budget: int = 200,
    split: str = 'test',
) -> Iterator[dict]:
    """Serve the config's ``split`` images with ``family`` (a classifier's)
    one batch at a time (the menu's latency batch size), switching member
    as the latency budget changes: budget ``k`` holds for the next
    ``images_per_budget`` images. Each budget is checked against the
    family's rows before the first image is served.

    The latency is that of the member's ``mode='tensor'`` forward (what the
    depth menu measured and the budget bounds), timed per batch; a
    prediction is the top-1 class of the logits.

    Args:
        family (DepthFamily): A classifier's family.
        budgets_ms (Sequence[float], optional): The schedule, in ms
            (default: :func:`default_budgets`).
        images_per_budget (int): Images served per budget (>= 1).
        split (str): ``'test'`` or ``'val'``.

    Yields:
        dict: Per budget: ``step`` (1-based), ``budget_ms``, ``member``,
        ``menu_latency_ms`` (the member's latency in the family),
        ``menu_metric``, ``choice_us`` and ``switch_us`` (the two parts of
        :meth:`~mmst.apis.DepthFamily.for_latency`: the choice over the
        family's rows, :meth:`~mmst.apis.DepthFamily.set_member`),
        ``latency_ms`` (median over the step's batches), ``images``,
        ``accuracy`` (top-1 %, this step) and ``accuracy_so_far`` (top-1
        %, all steps).

    Raises:
        BudgetError: A budget no member fits (the fastest member named).
        ValueError: ``images_per_budget < 1``, an invalid split, a split
            with fewer images than the schedule needs, or a model that is
            no classifier (no ``gt_label``).
    """
    from mmst.analysis.menu.outputs import choose_member, member_cost
    from mmst.deploy.onnx import split_loader

    if images_per_budget < 1:
        raise ValueError(
            f'images_per_budget={images_per_budget!r} is invalid; allowed: '
            '>= 1'
        )
    budgets = list(budgets_ms or default_budgets(family))
    batch = family.menu.get('latency_batch_size') or 1
    runtime = family.menu.get('latency_runtime', 'eager')
    for b in budgets:  # refuse an impossible budget before serving
        choose_member(family.menu, family.label, max_latency_ms=b)
    loader = split_loader(family.model.cfg, split, batch_size=batch)
    need = len(budgets) * images_per_budget
    if len(loader.dataset) < need:
        raise ValueError(
            f'{len(budgets)} budgets x images_per_budget='
            f'{images_per_budget} need {need} images; the {split} split has '
            f'{len(loader.dataset)}'
        )
    batches = iter(loader)
    model = family.model
    correct = seen = 0
    for step, budget in enumerate(budgets, 1):
        # family.for_latency(budget), its two parts timed
        start = time.perf_counter_ns()
        row = choose_member(family.menu, family.label, max_latency_ms=budget)
        chosen = time.perf_counter_ns()
        family.set_member(row['name'])
        choice_us = (chosen - start) / 1e3
        switch_us = (time.perf_counter_ns() - chosen) / 1e3
        times, step_correct, step_seen = [], 0, 0
        while step_seen < images_per_budget:
            data = model.data_preprocessor(next(batches), False)
            samples = data['data_samples']
            if not samples or 'gt_label' not in samples[0]:
                raise ValueError(
                    f'{type(model).__name__}: the data samples have no '
                    'gt_label; allowed: a classifier (mmpretrain)'
                )
            start = time.perf_counter()
            logits = model(data['inputs'], samples, mode='tensor')
            times.append((time.perf_counter() - start) * 1e3)
            labels = torch.cat([s.gt_label for s in samples]).to(logits.device)
            step_correct += int((logits.argmax(1) == labels).sum())
            step_seen += len(samples)
        correct, seen = correct + step_correct, seen + step_seen
        result = row['results'][family.label]
        yield dict(
            step=step,
            budget_ms=budget,
            member=row['name'],
            menu_latency_ms=member_cost(row, 'latency', batch, runtime),
            menu_metric=result['metric'],
            choice_us=choice_us,
            switch_us=switch_us,
            latency_ms=statistics.median(times),
            images=step_seen,
            accuracy=100.0 * step_correct / step_seen,
            accuracy_so_far=100.0 * correct / seen,
        )
