"""Before/after parity of the analysis tools: every number they write, on
the same two Fashion-MNIST checkpoints, in one JSON digest.

    # once: a tiny CT and a tiny ST++ ResNet-20 (1024 training images,
    # 2 epochs, tools/train.py), skipped when the checkpoints exist
    python benchmarks/analysis_parity.py make /work/golden/ckpt
    # the tools, as command lines only, on those checkpoints (~2-4 min)
    python benchmarks/analysis_parity.py run /work/golden/ckpt \\
        --work /tmp/parity_base --out /work/golden/base.json
    # every difference (key path, A, B); exit status 1 if any
    python benchmarks/analysis_parity.py compare base.json after.json

``run`` calls, with ``sys.executable`` and one CPU thread each:
tools/analysis_tools/loafing.py (both checkpoints, the CT config; the ST++
checkpoint again under its own ST++ config), logit_magnitude.py,
depth_menu.py (metric, parameters, FLOPs; latency of 1 run, left out),
tools/model_converters/extract_subnet.py (``--onnx``) and tools/test.py on
the extracted sub-network. The digest holds the parsed JSON/CSV/MD files
they write, the numbers of their printed summaries, the SHA-256 of each
tensor of the exported checkpoint and of the ONNX Runtime outputs on a
fixed input. Left out (different on every run or every machine):
latencies, timings, machine and software info, dates; absolute paths
become ``<WORK>``/``<CKPT>``/``<REPO>``. Numbers are compared exactly.
The tools run are those of the repository holding this file: for the
code after a change, run the same file from that checkout, on the same
checkpoints and machine.
"""

import argparse
import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FMNIST = REPO / 'configs' / 'mmpretrain' / 'fashion_mnist'
# config and learning rate: ST++ at 0.3 stays near chance (13% top-1) after
# 32 steps, at 0.1 it gets 27%; CT at 0.3 (as tests/test_analysis) 46%
CONFIGS = dict(
    ct=('resnet20_ct_fmnist.py', 0.3), stpp=('resnet20_stpp_fmnist.py', 0.1)
)
TRAIN_IMAGES, VAL_IMAGES, EPOCHS, RECAL = 1024, 200, 2, 128
SUBNET = '1,2,3'
# JSON keys and CSV/MD columns left out, as they change from run to run or
# machine to machine: measured latencies (depth_menu.py's members and its
# latency frontier, CSV ``*_ms_*``/``pareto_latency``, MD ``ms (b=1)``),
# phase timings (tools/test.py's ``time``, ``data_time``), the start date,
# the machine and its software versions
VOLATILE = re.compile(
    r'^(latency|onnxruntime_latency|timings|time|data_time|started|machine)$'
    r'|(^|[_ ])ms($|[_ ])|pareto_latency'
)
# the machine in depth_menu.py's MD prose: '(AMD EPYC, 1 thread(s), torch
# 2.x)'
MACHINE = re.compile(r'\([^()]*(\([^()]*\))?[^()]*torch [^()]*\)')
TINY = """_base_ = [{base!r}]
data_root = {data!r}
train_dataloader = dict(batch_size=64,
                        dataset=dict(data_root=data_root, indices={train}))
val_dataloader = dict(batch_size=100,
                      dataset=dict(data_root=data_root, indices={val}))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs={epochs})
param_scheduler = dict(T_max={epochs})
optim_wrapper = dict(optimizer=dict(lr={lr}))
default_hooks = dict(checkpoint=dict(interval={epochs}),
                     logger=dict(interval=8))
log_level = 'WARNING'
"""


def tool(*args, log: Path) -> str:
    """Run ``python tools/ARGS`` in the repository on one CPU thread; its
    output (also written to ``log``); exits on failure."""
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    env['PYTHONPATH'] = os.pathsep.join(
        [str(REPO), *filter(None, [env.get('PYTHONPATH')])]
    )
    cmd = [sys.executable, str(REPO / 'tools' / args[0]), *map(str, args[1:])]
    print('$', ' '.join(cmd[1:]), flush=True)
    proc = subprocess.run(
        cmd, cwd=REPO, env=env, capture_output=True, text=True
    )
    log.write_text(proc.stdout + proc.stderr)
    if proc.returncode:
        sys.exit(
            f'failed ({proc.returncode}), see {log}:\n{proc.stderr[-3000:]}'
        )
    return proc.stdout


def write_configs(folder: Path) -> dict:
    """The tiny CT and ST++ configs, written into ``folder``: name -> path.
    Their content holds no path of ``folder`` or of the repository (the
    data path is resolved), so depth_menu.py's config hash is the same in
    every scratch folder and worktree."""
    data = (REPO / 'data' / 'fashion_mnist').resolve()
    paths = {}
    for name, (base, lr) in CONFIGS.items():
        paths[name] = folder / f'tiny_{name}.py'
        paths[name].write_text(
            TINY.format(
                base=str(FMNIST / base),
                data=str(data),
                train=TRAIN_IMAGES,
                val=VAL_IMAGES,
                epochs=EPOCHS,
                lr=lr,
            )
        )
    return paths


def make(ckpt_dir: Path) -> None:
    """Train the tiny CT and ST++ checkpoints into ``ckpt_dir``
    (``ct.pth``, ``stpp.pth``); an existing one is kept."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    for name, config in write_configs(ckpt_dir).items():
        ckpt = ckpt_dir / f'{name}.pth'
        if ckpt.exists():
            print(f'{ckpt} exists, skipped')
            continue
        work = ckpt_dir / f'train_{name}'
        log = ckpt_dir / f'train_{name}.log'
        start = time.perf_counter()
        tool('train.py', config, '--work-dir', work, '--no-validate', log=log)
        shutil.copy(work / f'epoch_{EPOCHS}.pth', ckpt)
        print(f'{ckpt}: {time.perf_counter() - start:.0f} s')


# -- normalization ----------------------------------------------------------
def text(value: str, places: dict) -> str:
    """``value`` with the run's folders as placeholders, no machine."""
    for path, name in places.items():
        value = value.replace(path, name)
    return MACHINE.sub('(<machine>)', value)


def clean(obj, places: dict):
    """A JSON value without its volatile keys; a list of dicts with a
    ``name`` becomes a dict by name (readable key paths)."""
    if isinstance(obj, dict):
        return {
            k: clean(v, places)
            for k, v in obj.items()
            if not VOLATILE.search(str(k))
        }
    if isinstance(obj, list):
        if obj and all(isinstance(v, dict) and 'name' in v for v in obj):
            return {v['name']: clean(v, places) for v in obj}
        return [clean(v, places) for v in obj]
    return text(obj, places) if isinstance(obj, str) else obj


def rows(table: list) -> dict:
    """Rows (header first) as {row key: {column: cell}}; the key is the
    first cell, or the first two where the first repeats; volatile
    columns left out. Keys, not positions: depth_menu.py's MD rows are in
    the order of their measured latency."""
    header, body = table[0], table[1:]
    width = 1 if len({r[0] for r in body}) == len(body) else 2
    out = {}
    for row in body:
        cells = {h: c for h, c in zip(header, row) if not VOLATILE.search(h)}
        out[' '.join(row[:width])] = cells
    return out


def markdown(value: str, places: dict) -> dict:
    """Printed or MD text: its prose lines and its tables (by row key);
    ``*`` (depth_menu.py's mark of the latency frontier) dropped."""
    lines, tables, table = [], [], None
    for line in text(value, places).splitlines():
        if not line.startswith('|'):
            table = None
            if line.strip():
                lines.append(line)
            continue
        cells = [
            c.replace('*', '').strip() for c in line.strip('|').split('|')
        ]
        if set(''.join(cells)) <= set('-: '):
            continue  # the separator row
        if table is None:
            table = []
            tables.append(table)
        table.append(cells)
    return dict(lines=lines, tables=[rows(t) for t in tables])


def csv_file(path: Path, places: dict) -> dict:
    with open(path, newline='') as f:
        return rows([[text(c, places) for c in r] for r in csv.reader(f)])


def sha(array) -> str:
    """SHA-256 of an array's bytes, with its dtype and shape."""
    import numpy as np

    array = np.ascontiguousarray(array)
    head = f'{array.dtype}{list(array.shape)}'.encode()
    return hashlib.sha256(head + array.tobytes()).hexdigest()


def outputs(folder: Path, places: dict) -> dict:
    """Every JSON, CSV and MD file of a tool's output folder, parsed."""
    out = {}
    for f in sorted(folder.iterdir()):
        if f.suffix == '.json':
            out[f.name] = clean(json.loads(f.read_text()), places)
        elif f.suffix == '.csv':
            out[f.name] = csv_file(f, places)
        elif f.suffix == '.md':
            out[f.name] = markdown(f.read_text(), places)
    return out


def export_digest(folder: Path, places: dict) -> dict:
    """extract_subnet.py's files: the state_dict tensors (SHA-256 each),
    the checkpoint's meta, the config text, and the ONNX Runtime outputs
    on a fixed input (4 images of N(0, 1), seed 0; one thread)."""
    import numpy as np
    import onnxruntime as ort
    import torch

    ckpt = torch.load(
        folder / 'subnet.pth', map_location='cpu', weights_only=False
    )
    tensors = {k: sha(v.numpy()) for k, v in ckpt['state_dict'].items()}
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(folder / 'subnet.onnx'), options)
    (inp,) = session.get_inputs()
    shape = [4, *inp.shape[1:]]
    x = np.random.RandomState(0).standard_normal(shape).astype(np.float32)
    (logits,) = session.run(None, {inp.name: x})
    return dict(
        meta=clean(ckpt['meta'], places),
        state_dict=tensors,
        config=text((folder / 'config.py').read_text(), places).splitlines(),
        onnx=dict(
            input=[inp.name, *map(str, inp.shape)],
            output_sha256=sha(logits),
            output=logits.round(6).tolist(),
        ),
    )


def test_digest(folder: Path, places: dict) -> dict:
    """tools/test.py's metrics (``<timestamp>/<timestamp>.json``) and its
    predictions (``--out preds.pkl``: SHA-256 of the stacked scores)."""
    import pickle

    import torch

    (metrics,) = [
        f for f in folder.glob('*/*.json') if f.stem == f.parent.name
    ]
    with open(folder / 'preds.pkl', 'rb') as f:
        preds = pickle.load(f)
    scores = torch.stack([p['pred_score'] for p in preds]).numpy()
    labels = [int(p['pred_label'].view(-1)[0]) for p in preds]
    return dict(
        metrics=clean(json.loads(metrics.read_text()), places),
        images=len(preds),
        pred_score_sha256=sha(scores),
        pred_labels=''.join(map(str, labels)),
    )


# -- steps ------------------------------------------------------------------
def run(ckpt_dir: Path, work: Path, out: Path) -> dict:
    """Run the tools on the checkpoints of :func:`make`; the digest."""
    ckpt_dir, work = ckpt_dir.resolve(), work.resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    cfg = write_configs(work)
    ckpts = [ckpt_dir / 'ct.pth', ckpt_dir / 'stpp.pth']
    places = {
        str(work): '<WORK>',
        str(ckpt_dir): '<CKPT>',
        # the data path is resolved (a worktree may link another's data)
        str((REPO / 'data').resolve()): '<DATA>',
        str(REPO): '<REPO>',
    }
    both = [cfg['ct'], *ckpts, '--labels', 'CT', 'ST++']
    stpp = [cfg['stpp'], ckpts[1]]
    printed, start = {}, time.perf_counter()

    def call(name, script, *args, options=''):
        """``tools/SCRIPT ARGS OPTIONS`` (one string, split at spaces)."""
        log = work / f'{name}.log'
        printed[name] = tool(script, *args, *options.split(), log=log)

    val, sweep = VAL_IMAGES, f'--bn-recal-images {RECAL} --no-progress'
    loafing = 'analysis_tools/loafing.py'
    call(
        'loafing', loafing, *both, '--out-dir', work / 'loafing',
        options=f'--subnets all --max-val-images {val} {sweep}',
    )  # fmt: skip
    # the ST model's own space and wrapper: the ST++ checkpoint, ST++ config
    call(
        'loafing_stpp', loafing, *stpp, '--out-dir', work / 'loafing_stpp',
        options=f'--labels ST++ --subnets smallest {SUBNET} largest '
        f'--max-val-images {val} {sweep}',
    )  # fmt: skip
    call(
        'logit_magnitude', 'analysis_tools/logit_magnitude.py', *both,
        '--out-dir', work / 'logit_magnitude',
        options=f'--subnets smallest {SUBNET} full --max-images {val} {sweep}',
    )  # fmt: skip
    # one latency run, no warm-up (latencies are left out of the digest)
    call(
        'depth_menu', 'analysis_tools/depth_menu.py', *both,
        '--out-dir', work / 'depth_menu',
        options=f'--max-images {val} --repeats 1 --warmup 0 --threads 1 '
        + sweep,
    )  # fmt: skip
    call(
        'extract_subnet', 'model_converters/extract_subnet.py', *stpp,
        work / 'extract',
        options=f'--subnet {SUBNET} --bn-recal-images {RECAL} --onnx',
    )  # fmt: skip
    call(
        'test', 'test.py', work / 'extract' / 'config.py',
        work / 'extract' / 'subnet.pth', '--work-dir', work / 'test',
        '--out', work / 'test' / 'preds.pkl',
    )  # fmt: skip
    seconds = time.perf_counter() - start

    digest = {}
    for name in ('loafing', 'loafing_stpp', 'logit_magnitude', 'depth_menu'):
        digest[name] = outputs(work / name, places)
    digest['extract_subnet'] = export_digest(work / 'extract', places)
    digest['test'] = test_digest(work / 'test', places)
    for name, value in printed.items():
        if name != 'test':  # tools/test.py logs (dated lines) only
            digest[name]['stdout'] = markdown(value, places)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(digest, indent=1, sort_keys=True))
    print(f'tools: {seconds:.0f} s; wrote {out}')
    for name, value in digest.items():
        print(f'  {name}: {sum(1 for _ in numbers(value))} numbers')
    return digest


NUMBER = re.compile(r'[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?')


def flatten(obj, path: str = ''):
    """(key path, leaf value) of a digest."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from flatten(v, f'{path}/{k}')
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from flatten(v, f'{path}[{i}]')
    else:
        yield path, obj


def numbers(obj):
    """The numbers of a digest: numeric leaves and the numbers in text
    (printed tables and prose, config lines); SHA-256 digests count as
    one number each."""
    for _, value in flatten(obj):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            yield value
        elif isinstance(value, str) and re.fullmatch('[0-9a-f]{64}', value):
            yield value
        elif isinstance(value, str):
            yield from (m.group() for m in NUMBER.finditer(value))


def compare(a: Path, b: Path) -> int:
    """Print every difference of two digests; 1 if any, else 0."""
    left = dict(flatten(json.loads(a.read_text())))
    right = dict(flatten(json.loads(b.read_text())))
    missing = object()
    diffs = 0
    for key in sorted(set(left) | set(right)):
        x, y = left.get(key, missing), right.get(key, missing)
        if x is missing or y is missing or x != y or type(x) is not type(y):
            diffs += 1
            show = [
                '<missing>' if v is missing else json.dumps(v) for v in (x, y)
            ]
            print(f'{key}: {show[0]} (A) vs {show[1]} (B)')
    print(f'{diffs} difference(s) in {len(left)} vs {len(right)} values')
    return 1 if diffs else 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('step', choices=('make', 'run', 'compare'))
    p.add_argument(
        'paths',
        nargs='+',
        type=Path,
        help='make, run: CKPT_DIR; compare: two digests A B',
    )
    p.add_argument('--work', type=Path, help='run: scratch folder (emptied)')
    p.add_argument('--out', type=Path, help='run: the digest JSON to write')
    args = p.parse_args()
    wanted = 2 if args.step == 'compare' else 1
    if len(args.paths) != wanted:
        p.error(f'{args.step} takes {wanted} path(s)')
    if args.step == 'run' and not (args.work and args.out):
        p.error('run needs --work and --out')
    if args.step == 'make':
        make(args.paths[0])
    elif args.step == 'run':
        run(args.paths[0], args.work, args.out)
    else:
        sys.exit(compare(*args.paths))


if __name__ == '__main__':
    main()
