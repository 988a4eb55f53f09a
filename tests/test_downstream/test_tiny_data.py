"""The generated data sets are what the task libraries' datasets read, and
``tools/misc/make_tiny_coco.py`` writes them with numpy and Pillow only."""

import json
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image

from .data import COCO_SIZE, run_python


def test_coco_files_are_consistent(tiny_coco):
    ann = Path(tiny_coco) / 'annotations'
    instances = json.loads((ann / 'instances_train2017.json').read_text())
    panoptic = json.loads((ann / 'panoptic_train2017.json').read_text())
    keypoints = json.loads(
        (ann / 'person_keypoints_train2017.json').read_text()
    )
    assert len(instances['categories']) == 80
    assert len(panoptic['categories']) == 133
    assert [c['name'] for c in keypoints['categories']] == ['person']
    by_image = {}
    for a in instances['annotations']:
        by_image.setdefault(a['image_id'], []).append(a)
    assert len(by_image) == len(instances['images']) == 4
    for image, pan in zip(instances['images'], panoptic['annotations']):
        assert pan['image_id'] == image['id']
        assert (image['width'], image['height']) == COCO_SIZE
        png = np.asarray(
            Image.open(ann / 'panoptic_train2017' / pan['file_name'])
        ).astype(np.int64)
        ids = png[..., 0] + 256 * png[..., 1] + 65536 * png[..., 2]
        segments = {s['id']: s for s in pan['segments_info']}
        assert set(np.unique(ids)) == set(segments)  # every pixel labelled
        for seg_id, seg in segments.items():
            assert int((ids == seg_id).sum()) == seg['area']
        things = [s for s in segments.values() if s['category_id'] <= 90]
        assert len(things) == len(by_image[image['id']])
        for a in by_image[image['id']]:
            assert a['segmentation'] and a['iscrowd'] == 0
    for a in keypoints['annotations']:
        x, y, w, h = a['bbox']
        kpts = np.asarray(a['keypoints'], dtype=float).reshape(17, 3)
        assert a['num_keypoints'] == 17 and (kpts[:, 2] == 2).all()
        assert (kpts[:, 0] >= x).all() and (kpts[:, 0] <= x + w).all()
        assert (kpts[:, 1] >= y).all() and (kpts[:, 1] <= y + h).all()


def test_task_datasets_read_the_files(tiny_coco, tiny_cityscapes):
    from mmdet.datasets import CocoDataset, CocoPanopticDataset
    from mmpose.datasets import CocoDataset as PoseCocoDataset
    from mmseg.datasets import CityscapesDataset

    root = str(tiny_coco) + '/'
    det = CocoDataset(
        data_root=root,
        ann_file='annotations/instances_val2017.json',
        data_prefix=dict(img='val2017/'),
        test_mode=True,
    )
    assert len(det) == 2
    assert all(inst['mask'] for inst in det[0]['instances'])
    pan = CocoPanopticDataset(
        data_root=root,
        ann_file='annotations/panoptic_val2017.json',
        data_prefix=dict(img='val2017/', seg='annotations/panoptic_val2017/'),
        test_mode=True,
    )
    assert len(pan) == 2
    assert {s['category'] for s in pan[0]['segments_info']} >= {
        pan.metainfo['classes'].index('sky-other-merged'),
        pan.metainfo['classes'].index('grass-merged'),
    }
    pose = PoseCocoDataset(
        data_root=root,
        ann_file='annotations/person_keypoints_val2017.json',
        data_prefix=dict(img='val2017/'),
        test_mode=True,
    )
    assert len(pose) >= 2  # one sample per person
    seg = CityscapesDataset(
        data_root=str(tiny_cityscapes),
        data_prefix=dict(
            img_path='leftImg8bit/val', seg_map_path='gtFine/val'
        ),
        test_mode=True,
    )
    assert len(seg) == 2
    labels = np.asarray(Image.open(seg[0]['seg_map_path']))
    assert set(np.unique(labels)) <= {0, 2, 10, 11, 13, 255}


def test_make_tiny_coco_tool_needs_no_task_library(tmp_path):
    out = tmp_path / 'tiny'
    code = textwrap.dedent(f"""
        import sys
        from tools.misc import make_tiny_coco
        assert make_tiny_coco.main([{str(out)!r}, '--num-val', '1']) == 0
        heavy = ('mmpretrain', 'mmdet', 'mmseg', 'mmpose', 'mmcv.ops')
        loaded = [m for m in heavy if m in sys.modules]
        assert not loaded, loaded
    """)
    proc = run_python(['-c', code], cwd=tmp_path)
    assert 'pipeline.2.scale=(128,96)' in proc.stdout
    assert len(list((out / 'val2017').glob('*.jpg'))) == 1
    assert len(list((out / 'train2017').glob('*.jpg'))) == 4
