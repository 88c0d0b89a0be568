"""Peak memory of ``aeroseg.infer`` on a large scene (a benchmark, not a test: minutes of CPU).

    python -m benchmarks.infer_memory [--size 10000] [--tile 512] [--overlap 64] [--keep DIR]

Writes a synthetic ``size`` x ``size`` 3-band uint8 GeoTIFF (tiled, deflate; smooth patterns),
written window by window so making it needs no memory either, then segments it with the mini
CAT-Seg model (``--scale mini``; no checkpoint: random head, the memory does not depend on the
weights) through :func:`aeroseg.infer.segment_file`, class map + confidence + overlay, and prints
the peak resident set size (``getrusage`` ``ru_maxrss``) after loading the model and at the end,
beside what holding the scene in memory would take. The strip blender holds about
``(N + 4) * tile * size * 4`` bytes (N classes), independent of the scene's height.

Measured (2-core machine, OMP_NUM_THREADS=1, defaults: 10,000 x 10,000, tile 512, overlap 64,
batch 4, 4 classes, 529 tiles): peak RSS 1,189 MiB after imports and the mini model, 1,690 MiB at
the end (+501 MiB for inference; the scene's float32 class scores alone would be 1,526 MiB);
segmented in 57 s. Two fixes found by this benchmark: GDAL's block cache capped (its default,
5% of RAM, had the peak at 2,645 MiB) with rows written in whole rows of blocks (a block written
in two parts is recompressed: 6x the CPU), and decimated reads done as subsampled strips (GDAL's
``out_shape`` read took 40 s for a 3,000 x 3,000 scene).
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time

import numpy as np

CONFIG = 'configs/catseg/catseg_vitb16_isaid.py'
CLASSES = ['water', 'tree', 'road', 'building|house']


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def make_scene(path: str, size: int, strip: int = 1024) -> None:
    """A ``size`` x ``size`` RGB GeoTIFF of smooth stripes and blobs, written strip by strip."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window
    with rasterio.open(path, 'w', driver='GTiff', width=size, height=size, count=3, dtype='uint8',
                       crs='EPSG:32633', transform=from_origin(400000, 5000000, 0.3, 0.3),
                       tiled=True, blockxsize=512, blockysize=512, compress='deflate',
                       BIGTIFF='IF_SAFER') as dst:
        x = np.arange(size, dtype=np.float32)[None, :]
        for r0 in range(0, size, strip):
            n = min(strip, size - r0)
            y = np.arange(r0, r0 + n, dtype=np.float32)[:, None]
            bands = [127 + 120 * np.sin(x / 97.0 + k) * np.cos(y / (61.0 + 17 * k)) for k in range(3)]
            dst.write(np.stack(bands).astype(np.uint8), window=Window(0, r0, size, n))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--size', type=int, default=10000)
    p.add_argument('--tile', type=int, default=512)
    p.add_argument('--overlap', type=int, default=64)
    p.add_argument('--batch-size', type=int, default=4)
    p.add_argument('--keep', default=None, help='folder to keep the scene and outputs in')
    args = p.parse_args(argv)
    from aeroseg.apis import init_model
    from aeroseg.infer import segment_file
    from aeroseg.tiling import count_tiles
    work = args.keep or tempfile.mkdtemp(prefix='aeroseg-infer-memory-')
    os.makedirs(work, exist_ok=True)
    scene = os.path.join(work, f'synthetic_{args.size}.tif')
    t0 = time.time()
    if not os.path.exists(scene):
        make_scene(scene, args.size)
    t_scene = time.time() - t0
    rss_scene = peak_rss_mb()
    model = init_model(CONFIG, None, device='cpu', scale='mini')
    rss_model = peak_rss_mb()
    t0 = time.time()
    paths = segment_file(model, scene, work, CLASSES, tile=args.tile, overlap=args.overlap,
                         batch_size=args.batch_size, confidence=True, overlay=True,
                         progress=sys.stderr.isatty())
    t_infer = time.time() - t0
    rss_end = peak_rss_mb()
    n, s = len(CLASSES), args.size
    print(f'scene {s} x {s} x 3 uint8 ({s * s * 3 / 2**20:.0f} MiB as uint8, '
          f'{s * s * n * 4 / 2**20:.0f} MiB for {n} float32 class-score maps), '
          f'{count_tiles(s, s, args.tile, args.overlap)} tiles of {args.tile} (overlap '
          f'{args.overlap}, batch {args.batch_size}); made in {t_scene:.0f} s, segmented in {t_infer:.0f} s')
    print(f'peak RSS: {rss_scene:.0f} MiB after writing the scene, {rss_model:.0f} MiB after loading '
          f'the mini model, {rss_end:.0f} MiB at the end (+{rss_end - rss_model:.0f} MiB for inference)')
    print('outputs: ' + ', '.join(f'{k}={os.path.getsize(v) / 2**20:.1f} MiB' for k, v in paths.items()))
    if not args.keep:
        for f in os.listdir(work):
            os.remove(os.path.join(work, f))
        os.rmdir(work)
    return 0


if __name__ == '__main__':
    sys.exit(main())
