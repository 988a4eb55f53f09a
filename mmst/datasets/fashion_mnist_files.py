"""Prepare Debian's Fashion-MNIST (package ``dataset-fashion-mnist``) for
mmpretrain's ``FashionMNIST`` dataset, which reads the extracted idx files.

    python -m mmst.datasets.fashion_mnist_files SRC DST

Debian re-compressed the ``.gz`` files, so their MD5s differ from the
published ones although the decoded images are the real ones; this
decompresses them and checks the decoded contents (magic numbers, counts)
instead. Existing extracted files that already match are left alone.
"""

import gzip
import shutil
import struct
import sys
from pathlib import Path

from mmst.fileio import write_atomic

FILES = {
    'train-images-idx3-ubyte': (2051, 60000),
    'train-labels-idx1-ubyte': (2049, 60000),
    't10k-images-idx3-ubyte': (2051, 10000),
    't10k-labels-idx1-ubyte': (2049, 10000),
}


def _check(path: Path, head: bytes, magic: int, count: int) -> None:
    """Refuse an idx file whose first 8 bytes ``head`` do not hold the
    expected magic number and item count."""
    got_magic, got_count = struct.unpack('>II', head)
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
            with open(out, 'rb') as f:
                _check(out, f.read(8), magic, count)
            continue
        gz = src_dir / f'{name}.gz'
        if not gz.exists():
            raise FileNotFoundError(
                f"{gz} not found: install Debian's dataset-fashion-mnist "
                '(apt-get install dataset-fashion-mnist)'
            )

        def decompress(fout, gz=gz, magic=magic, count=count) -> None:
            with gzip.open(gz, 'rb') as fin:
                head = fin.read(8)
                _check(gz, head, magic, count)  # before anything is kept
                fout.write(head)
                shutil.copyfileobj(fin, fout)

        write_atomic(decompress, out)
    return dst_dir


if __name__ == '__main__':
    if len(sys.argv) != 3:
        sys.exit('usage: python -m mmst.datasets.fashion_mnist_files SRC DST')
    print(f'Fashion-MNIST ready in {prepare(sys.argv[1], sys.argv[2])}')
