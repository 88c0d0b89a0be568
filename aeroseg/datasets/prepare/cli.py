"""``python -m aeroseg.datasets.prepare {isaid,dlrsd,oem} --raw DIR --out DIR`` (the CLI).

Writes ``<out>/img_dir/{train,val}`` and ``<out>/ann_dir/{train,val}`` (uint8 labels, ids
0..K-1, 255 = ignore) and ``<out>/prepare_report.json``. Outputs that exist are kept (their
labels are still counted) unless ``--force``; every file is written atomically.
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from . import dlrsd, isaid, oem
from .common import PrepareError, close_bars

TOOLS = {'isaid': isaid, 'dlrsd': dlrsd, 'oem': oem}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='python -m aeroseg.datasets.prepare',
                                description=__doc__.split('\n\n')[1])
    sub = p.add_subparsers(dest='dataset', required=True)
    for name, mod in TOOLS.items():
        sp = sub.add_parser(name, help=mod.__doc__.splitlines()[0],
                            description=mod.__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        sp.add_argument('--raw', required=True, help='the extracted official download')
        sp.add_argument('--out', required=True, help='output data root (e.g. data/%s)' % name)
        sp.add_argument('--limit', type=int, default=0,
                        help='process only the first N source images (per split); 0 = all')
        sp.add_argument('--force', action='store_true', help='rewrite existing outputs')
        mod.add_arguments(sp)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.limit < 0:
        raise SystemExit('--limit must be >= 0')
    try:
        TOOLS[args.dataset].run(args)
    except PrepareError as e:
        close_bars()
        print(f'error: {e}', file=sys.stderr)
        return 1
    finally:
        close_bars()
    return 0


if __name__ == '__main__':
    sys.exit(main())
