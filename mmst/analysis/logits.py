"""Average L2 norm of the raw logits of the main network and its
sub-networks (BN re-estimated as in the loafing table) with top-1 accuracy
(ST++ paper, Fig. 4; ``docs/analysis.md``); classifiers only."""

import copy
import os.path as osp
from typing import Dict, List, Sequence

import torch
import torch.nn as nn

from mmst.models.tasks import infer_task

from . import report
from .loafing import sweep_networks
from .sweep import Measure


def check_classifier(arch: nn.Module) -> None:
    """Raise a ValueError unless ``arch`` is an image classifier."""
    try:
        task = infer_task(arch)
    except TypeError:
        task = None
    if task != 'classification':
        raise ValueError(
            'logit_magnitude needs a classifier (an mmpretrain '
            'ImageClassifier, plain or inside mmst.StimulativeTraining); '
            'the config builds '
            f'{type(arch).__name__} (task: {task or "unknown"})'
        )


class LogitMagnitude(Measure):
    """Per member: mean / std of the per-image L2 norm of the raw logits
    (the head's ``mode='tensor'`` output before any softmax or ST++ logit
    normalisation) and the top-1 accuracy of the same pass; results:
    ``dict(mean_l2, std_l2, top1, images)``."""

    def begin(self, sweep, count: int) -> None:
        super().begin(sweep, count)
        # per member: sum of norms, sum of squared norms, correct, count
        self.sums = [[0.0, 0.0, 0, 0] for _ in range(count)]

    def process(self, index: int, data: dict) -> None:
        data = self.sweep.model.data_preprocessor(copy.deepcopy(data), False)
        arch = self.sweep.arch
        logits = arch(data['inputs'], data.get('data_samples'), 'tensor')
        if isinstance(logits, (tuple, list)):
            logits = logits[-1]
        logits = logits.float().flatten(1)
        norms = logits.norm(dim=1)
        acc = self.sums[index]
        acc[0] += norms.sum().item()
        acc[1] += (norms**2).sum().item()
        acc[3] += norms.numel()
        samples = data.get('data_samples')
        if samples and 'gt_label' in samples[0]:
            labels = torch.cat([s.gt_label.view(-1)[:1] for s in samples])
            pred = logits.argmax(dim=1).cpu()
            acc[2] += int((pred == labels.cpu()).sum())

    def results(self) -> List[dict]:
        out = []
        for total, total_sq, correct, count in self.sums:
            mean = total / max(count, 1)
            var = max(total_sq / max(count, 1) - mean**2, 0.0)
            top1 = 100.0 * correct / max(count, 1)
            std = var**0.5
            out.append(dict(mean_l2=mean, std_l2=std, top1=top1, images=count))
        return out


def run_logit_magnitude(
    config: str, checkpoints: Sequence[str], **options
) -> dict:
    """Logit statistics of the main network and the sub-networks
    (:func:`mmst.analysis.loafing.sweep_networks`, ``options`` as there).

    Returns:
        dict: ``config``, ``split``, ``eval_images``, ``bn_recal_images``,
        ``seed``, ``strict``, ``checkpoints`` and ``networks`` (``name``,
        ``subnet``, ``bn_stats``, ``stats``: per label the
        :class:`LogitMagnitude` dict).

    Raises:
        ValueError: Not a classifier, or an invalid argument.
        CheckpointError: As :func:`mmst.analysis.run_loafing`.
    """
    kw = dict(options, check=check_classifier, desc='logit_magnitude')
    networks, facts = sweep_networks(
        LogitMagnitude, 'stats', config, checkpoints, **kw
    )
    keys = 'config split eval_images bn_recal_images seed strict checkpoints'
    return dict({k: facts[k] for k in keys.split()}, networks=networks)


def write_logit_magnitude(result: dict, out_dir: str) -> Dict[str, str]:
    """Write ``logit_magnitude.json`` and ``.png``; return their paths."""
    return report.write_outputs(
        result, out_dir, 'logit_magnitude', png=plot_logit_magnitude
    )


def logit_table(result: dict) -> str:
    """A Markdown table: mean L2 norm and top-1 per network and label."""
    labels = report.labels_of(result)
    header = ['network']
    rows = [[net['name']] for net in result['networks']]
    for label in labels:
        header += [f'{label} mean L2', f'{label} top-1']
        for row, net in zip(rows, result['networks']):
            stats = net['stats'][label]
            row += [f'{stats["mean_l2"]:.3f}', f'{stats["top1"]:.2f}']
    return report.markdown_table(header, rows)


def plot_logit_magnitude(result: dict, path: str) -> None:
    """Mean L2 norm of the logits (bars, std as error bars) per network,
    one series per checkpoint; the main network hatched."""
    labels = report.labels_of(result)
    nets = result['networks']
    fig, (ax,) = report.figure(1, (max(6.0, 0.45 * len(nets) + 2), 4.2))
    width = 0.8 / len(labels)
    for i, label in enumerate(labels):
        offset = (i - (len(labels) - 1) / 2) * width
        xs = [j + offset for j in range(len(nets))]
        ys = [n['stats'][label]['mean_l2'] for n in nets]
        err = [n['stats'][label]['std_l2'] for n in nets]
        kw = dict(yerr=err, capsize=2, label=label, alpha=0.8)
        bars = ax.bar(xs, ys, width, color=report.style(i)[0], **kw)
        bars[0].set_hatch('//')  # the main network
    ax.set_xticks(range(len(nets)))
    ax.set_xticklabels(
        [n['name'] for n in nets], rotation=60, ha='right', fontsize=8
    )
    ax.set_ylabel('mean L2 norm of the logits')
    ax.set_title(
        f'{osp.basename(result["config"])}: logit magnitude '
        f'({result["eval_images"]} {result["split"]} images)',
        fontsize=10,
    )
    ax.grid(axis='y', alpha=0.3)
    ax.legend(fontsize=8)
    report.save_figure(fig, path, dpi=110)
