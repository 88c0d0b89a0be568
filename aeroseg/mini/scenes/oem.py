"""OpenEarthMap scenes (5 types): urban, rural, riverine, suburban, barren. About 30% of images
get blobs of OEM's ``unknown`` (label 255) over land cover that still shows.
"""
from __future__ import annotations

import math

from .. import painters as paint
from ..canvas import Canvas
from ..textures import render_stuff


def scene(cv: Canvas, t: int):
    rng, s, H = cv.rng, cv.s, cv.H
    kind = ('urban', 'rural', 'riverine', 'suburban', 'barren')[t % 5]
    if kind == 'urban':
        cv.layout(['developed space', 'rangeland', 'tree'], [3, 1, 1])
    elif kind == 'rural':
        cv.layout(['field', 'rangeland', 'tree', 'bare soil'], [4, 2, 1, 1])
    elif kind == 'riverine':
        cv.layout(['rangeland', 'tree', 'field'], [2, 2, 1])
        cv.river('water', width=(16, 34))
    elif kind == 'suburban':
        cv.layout(['rangeland', 'tree', 'developed space'], [2, 2, 1])
    else:
        cv.layout(['bare soil', 'rangeland', 'developed space'], [3, 2, 0.5])
        if rng.uniform() < 0.5:
            cv.pond('water', thr=1.2)
    render_stuff(cv)
    nroads = {'urban': 2, 'rural': 1, 'riverine': 1, 'suburban': 2, 'barren': 1}[kind]
    ang = rng.uniform(0, math.pi)
    for k in range(rng.integers(1, nroads + 1)):
        paint.road(cv, ang + k * math.pi / 2, *rng.uniform(0.2, 0.8, 2) * H)
    nb = {'urban': (10, 20), 'rural': (0, 4), 'riverine': (0, 3), 'suburban': (5, 12), 'barren': (0, 3)}[kind]
    free = ~cv.mask_of('road', 'water')
    for (y, x) in cv.sample(free, rng.integers(*nb), 5):
        paint.building(cv, y, x, ang + rng.choice([0, math.pi / 2]))
    if rng.uniform() < 0.3:
        paint.unknown_blobs(cv)
