"""DLRSD scenes (13 types), after UC Merced's land-use categories: agricultural, airplane, beach,
dense / sparse residential, chaparral, forest, harbor, mobile home park, parking lot, river,
storage tanks, tennis court. Every pixel is one of DLRSD's 17 classes.
"""
from __future__ import annotations

import math

import numpy as np

from .. import painters as paint
from ..canvas import Canvas, rgb
from ..concepts import CID
from ..textures import render_stuff


def _streets(cv, key: str = 'pavement') -> float:
    """1-2 perpendicular streets of ``key`` (DLRSD labels streets 'pavement'); returns their angle."""
    rng, s, H = cv.rng, cv.s, cv.H
    ang = rng.uniform(0, math.pi)
    for k in range(rng.integers(1, 3)):
        y, x = rng.uniform(0.25, 0.75, 2) * H
        cv.band(key, ang + k * math.pi / 2, rng.uniform(7, 10) * s, y, x)
    return ang


def scene(cv: Canvas, t: int):
    rng, s, H = cv.rng, cv.s, cv.H
    kind = ('agricultural', 'airplane', 'beach', 'dense residential', 'chaparral', 'forest',
            'harbor', 'mobile home park', 'parking lot', 'river', 'storage tanks', 'tennis court',
            'sparse residential')[t % 13]
    if kind == 'agricultural':
        cv.layout(['field', 'tree', 'grass', 'bare soil'], [5, 1, 1, 1])
        render_stuff(cv)
    elif kind == 'airplane':
        cv.layout(['pavement', 'grass', 'bare soil'], [4, 2, 1])
        cv.band('pavement', rng.uniform(0, math.pi), rng.uniform(24, 40) * s, H / 2, H / 2)
        render_stuff(cv)
        paint.place(cv, paint.plane, cv.mask_of('pavement'), rng.integers(1, 4), margin=10)
        if rng.uniform() < 0.4:
            paint.place(cv, paint.small_vehicle, cv.mask_of('pavement'), rng.integers(1, 4))
    elif kind == 'beach':
        cv.layout(['grass', 'tree', 'pavement'], [2, 2, 1])
        ang, a, n, _ = cv.shore('sea', wavy=5.0, frac=(0.35, 0.6))
        cv.cmap[(n > -rng.uniform(10, 25) * s) & (n <= 0)] = CID['sand']
        cv.cmap[n > 0] = CID['sea']
        render_stuff(cv)
        if rng.uniform() < 0.4:
            paint.place(cv, paint.ship, cv.mask_of('sea'), rng.integers(1, 3), a=rng.uniform(4, 7))
    elif kind in ('dense residential', 'sparse residential'):
        dense = kind == 'dense residential'
        cv.layout(['grass', 'tree', 'bare soil'] if not dense else ['grass', 'tree', 'pavement'],
                  [3, 2, 1] if not dense else [2, 2, 1])
        ang = _streets(cv)
        if not dense and rng.uniform() < 0.6:
            cv.pond('water', thr=1.3, cells=5)
        render_stuff(cv)
        nb = rng.integers(8, 16) if dense else rng.integers(3, 7)
        free = ~cv.mask_of('pavement', 'water')
        for (y, x) in cv.sample(free, nb, 5):
            paint.building(cv, y, x, ang + rng.choice([0, math.pi / 2]))
        paint.place(cv, paint.small_vehicle, cv.mask_of('pavement'), rng.integers(2, 8), margin=3)
        if dense and rng.uniform() < 0.25:
            paint.tennis_court(cv, *rng.uniform(0.25, 0.75, 2) * H, ang, key='court')
        if not dense and rng.uniform() < 0.5:  # backyard pools are DLRSD 'water'
            for (y, x) in cv.sample(free, rng.integers(1, 3), 6):
                f = cv.frame(y, x, 6 * s, ang)
                cv.put(f[0], (np.abs(f[1]) < 4 * s) & (np.abs(f[2]) < 2.5 * s), rgb(0.10, 0.24, 0.36), 'water')
    elif kind == 'chaparral':
        cv.layout(['chaparral', 'bare soil', 'grass', 'tree', 'sand'], [6, 1.5, 1, 0.7, 0.7])
        render_stuff(cv)
    elif kind == 'forest':
        cv.layout(['tree', 'grass', 'bare soil'], [6, 1.5, 0.7])
        render_stuff(cv)
    elif kind == 'harbor':
        cv.layout(['pavement', 'tree', 'grass'], [3, 1, 1])
        ang, a, n, off = cv.shore('water', wavy=0.0, frac=(0.45, 0.7))
        render_stuff(cv)
        axes, length, spacing, fw = paint.piers(cv, ang, a, n, 'dock')
        for ax in axes:
            for side in (-1, 1):
                for pos in np.arange(4 * s, length, 7.5 * s):
                    if rng.uniform() < 0.55:
                        y, x = cv.point(ang, ax + side * (fw + 1.8 * s), off + pos)
                        paint.ship(cv, y, x, ang + math.pi / 2, a=rng.uniform(2.8, 3.4), wake=False)
        for _ in range(rng.integers(1, 4)):
            y, x = rng.uniform(0, H, 2)
            if n[int(y), int(x)] < -8 * s:
                paint.building(cv, y, x, ang)
        paint.place(cv, paint.small_vehicle, (n < -6 * s) & cv.mask_of('pavement'), rng.integers(0, 5))
    elif kind == 'mobile home park':
        cv.layout(['pavement', 'grass', 'tree'], [3, 2, 1])
        render_stuff(cv)
        ang = rng.uniform(0, math.pi)
        c, sn = math.cos(ang), math.sin(ang)
        for r in range(-4, 5):
            for q in range(-6, 7):
                if rng.uniform() < 0.7:
                    lu, lv = q * 13 * s, r * 6 * s
                    paint.mobile_home(cv, H / 2 + lu * sn + lv * c, H / 2 + lu * c - lv * sn, ang)
        paint.place(cv, paint.small_vehicle, cv.mask_of('pavement'), rng.integers(1, 5))
    elif kind == 'parking lot':
        cv.layout(['pavement', 'grass', 'tree'], [5, 1, 1])
        render_stuff(cv)
        ang = rng.uniform(0, math.pi)
        paint.parking_lot(cv, H / 2, H / 2, ang, rng.integers(3, 6), rng.integers(6, 12),
                          fill=rng.uniform(0.5, 0.95))
    elif kind == 'river':
        cv.layout(['grass', 'tree', 'field', 'bare soil'], [2, 2, 1, 1])
        cv.river('water', width=(20, 36))
        render_stuff(cv)
        if rng.uniform() < 0.3:
            paint.place(cv, paint.ship, cv.mask_of('water'), 1, margin=8, a=rng.uniform(4, 6))
    elif kind == 'storage tanks':
        cv.layout(['pavement', 'bare soil', 'grass'], [3, 2, 1])
        render_stuff(cv)
        y0, x0 = rng.uniform(0.15, 0.5, 2) * H
        r = rng.uniform(5, 9)
        step = 2 * r * s + rng.uniform(2, 5) * s
        for i in range(rng.integers(2, 4)):
            for j in range(rng.integers(2, 4)):
                if rng.uniform() < 0.85:
                    paint.storage_tank(cv, y0 + i * step, x0 + j * step, r=r)
        for _ in range(rng.integers(0, 3)):
            paint.building(cv, *rng.uniform(0, H, 2), rng.uniform(0, math.pi), L=rng.uniform(8, 14))
    elif kind == 'tennis court':
        cv.layout(['grass', 'tree', 'pavement'], [3, 2, 1])
        render_stuff(cv)
        ang = rng.uniform(0, math.pi)
        y, x = rng.uniform(0.3, 0.7, 2) * H
        for k in range(rng.integers(1, 4)):
            paint.tennis_court(cv, y + k * 13.5 * s * math.cos(ang), x - k * 13.5 * s * math.sin(ang),
                               ang, key='court')
        for _ in range(rng.integers(1, 4)):
            yy, xx = rng.uniform(0, H, 2)
            if not cv.mask_of('court')[int(yy), int(xx)]:
                paint.building(cv, yy, xx, ang)
        paint.place(cv, paint.small_vehicle, cv.mask_of('pavement'), rng.integers(0, 4))
