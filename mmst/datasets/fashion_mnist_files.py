"""Prepare Debian's Fashion-MNIST (package ``dataset-fashion-mnist``) for
mmpretrain's ``FashionMNIST`` dataset, which reads the extracted idx files.

    python -m mmst.datasets.fashion_mnist_files SRC DST

Debian re-compressed the ``.gz`` files, so their MD5s differ from the
published ones although the decoded images are the real ones; this
decompresses them and checks the decoded contents (magic numbers, counts)
instead. Existing extracted files that already match are left alone.
"""

import gzip
import os
import shutil
import struct
import sys
import tempfile
from pathlib import Path

FILES = {
    'train-images-idx3-ubyte': (2051, 60000),
    'train-labels-idx1-ubyte': (2049, 60000),
    't10k-images-idx3-ubyte': (2051, 10000),
    't10k-labels-idx1-ubyte': (2049, 10000),
}


def _check(path: Path, magic: int, count: int) -> None:
    with open(path, 'rb') as f:
        got_magic, got_count = struct.unpack('>II', f.read(8))
    if (got_magic, got_count) != (magic, count):
        raise ValueError(
            f'{path}: magic/count {got_magic}/{got_count}, '
            f'expected {magic}/{count}'
        )


def prepare(src: str, dst: str) -> Path:
    """Decompress the four idx files from ``src`` into ``dst``."""
    src_dir, dst_dir = Path(src), Path(dst)
    dst_dir.mkdir(parents=True, exist_ok=True)
    for name, (magic, count) in FILES.items():
        out = dst_dir / name
        if out.exists():
            _check(out, magic, count)
            continue
        gz = src_dir / f'{name}.gz'
        if not gz.exists():
            raise FileNotFoundError(
                f"{gz} not found: install Debian's dataset-fashion-mnist "
                '(apt-get install dataset-fashion-mnist)'
            )
        fd, tmp = tempfile.mkstemp(dir=dst_dir, prefix=f'.{name}.')
        try:
            with gzip.open(gz, 'rb') as fin, os.fdopen(fd, 'wb') as fout:
                shutil.copyfileobj(fin, fout)
            _check(Path(tmp), magic, count)
            os.replace(tmp, out)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    return dst_dir


if __name__ == '__main__':
    if len(sys.argv) != 3:
        sys.exit('usage: python -m mmst.datasets.fashion_mnist_files SRC DST')
    print(f'Fashion-MNIST ready in {prepare(sys.argv[1], sys.argv[2])}')
