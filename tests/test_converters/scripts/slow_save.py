"""Test harness: ``save_checkpoint_atomic(obj, DST)`` whose ``torch.save``
writes the file, prints ``WRITING`` and then sleeps, so that the test can
kill this process (kill -9) while the temporary file exists.

    python slow_save.py DST

Imports only torch, and ``mmst/converters/st_weights.py`` by its path (as
tools/model_converters/st_to_mmpretrain.py does).
"""

import importlib.util
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[3]


def main() -> None:
    path = REPO / 'mmst' / 'converters' / 'st_weights.py'
    spec = importlib.util.spec_from_file_location('_st_weights', path)
    st_weights = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(st_weights)
    save = torch.save

    def slow_save(obj, f, *args, **kwargs):
        save(obj, f, *args, **kwargs)
        f.flush()
        print('WRITING', flush=True)
        time.sleep(120)  # killed here

    torch.save = slow_save
    st_weights.save_checkpoint_atomic({'x': torch.zeros(4)}, sys.argv[1])


if __name__ == '__main__':
    main()
