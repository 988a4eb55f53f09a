"""Test harness: ``save_checkpoint_atomic(obj, DST)`` whose ``torch.save``
writes the file, prints ``WRITING`` and then sleeps, so that the test can
kill this process (kill -9) while the temporary file exists.

    python slow_save.py DST

Imports torch and ``mmst.converters.st_weights`` (as
tools/model_converters/st_to_mmpretrain.py does; ``import mmst`` imports no
task library).
"""

import sys
import time

import torch


def main() -> None:
    from mmst.converters import st_weights

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
