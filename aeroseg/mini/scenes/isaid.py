"""iSAID scenes (8 types): harbor, airport, sports grounds, urban blocks, river with bridges,
industrial tank farm, stadium, heliport.

Land, water, roads and buildings are not iSAID classes; the label maps them to 255.
"""
from __future__ import annotations

import math

import numpy as np

from .. import painters as paint
from ..canvas import Canvas, rgb
from ..textures import render_stuff


def _cars_on_road(cv, road, k, mask=None, key='small vehicle'):
    """k cars in the lanes of a road returned by :func:`~aeroseg.mini.painters.road` (optionally
    within mask)."""
    m, a, n, ang, w = road
    pts = cv.sample(m if mask is None else m & mask, k, 3)
    for (y, x) in pts:
        nn = n[min(int(y), cv.H - 1), min(int(x), cv.W - 1)]
        lane = w / 4 if nn > 0 else -w / 4
        # snap across the road to the lane centre
        dy, dx = (lane - nn) * math.cos(ang), -(lane - nn) * math.sin(ang)
        paint.small_vehicle(cv, y + dy, x + dx, ang + (0 if nn > 0 else math.pi), key)


def scene(cv: Canvas, t: int):
    rng, s, H = cv.rng, cv.s, cv.H
    land = ['grass', 'bare soil', 'pavement', 'developed space', 'tree', 'rangeland']
    kind = ('harbor', 'airport', 'sports', 'urban', 'river', 'industrial', 'stadium', 'heliport')[t % 8]
    if kind == 'harbor':
        cv.layout(['pavement', 'developed space', 'bare soil', 'grass'], [3, 2, 1, 1])
        ang, a, n, off = cv.shore('water', wavy=0.0)
        render_stuff(cv)
        axes, length, spacing, fw = paint.piers(cv, ang, a, n, 'harbor')
        for ax in axes:
            for side in (-1, 1):
                if rng.uniform() < 0.6:
                    y, x = cv.point(ang, ax + side * (fw + rng.uniform(2.5, 3.5) * s),
                                    off + rng.uniform(0.3, 0.8) * length)
                    paint.ship(cv, y, x, ang + math.pi / 2 * (1 if rng.uniform() < 0.5 else -1),
                          a=rng.uniform(5, 8), wake=False)
        paint.place(cv, paint.ship, (n > length + 6 * s), rng.integers(0, 3))
        if rng.uniform() < 0.4:
            paint.place(cv, paint.storage_tank,
                        (n < -12 * s) & cv.mask_of('pavement', 'bare soil', 'developed space'), 3)
        if rng.uniform() < 0.6:
            paint.place(cv, paint.small_vehicle, (n < -8 * s), rng.integers(2, 7))
        if rng.uniform() < 0.4:
            paint.place(cv, paint.large_vehicle, (n < -8 * s), rng.integers(1, 3))
    elif kind == 'airport':
        cv.layout(['pavement', 'grass', 'bare soil'], [4, 2, 1])
        cv.band('pavement', rng.uniform(0, math.pi), rng.uniform(20, 34) * s, H / 2, H / 2)
        render_stuff(cv)
        paint.place(cv, paint.plane, cv.mask_of('pavement'), rng.integers(2, 5), margin=8)
        if rng.uniform() < 0.3:
            paint.place(cv, paint.helicopter, cv.mask_of('pavement', 'grass'), 1, margin=8)
        paint.place(cv, paint.small_vehicle, cv.mask_of('pavement'), rng.integers(0, 5))
        paint.place(cv, paint.large_vehicle, cv.mask_of('pavement'), rng.integers(0, 3))
    elif kind == 'heliport':
        cv.layout(['grass', 'pavement', 'developed space'], [2, 2, 1])
        render_stuff(cv)
        for (y, x) in cv.sample(np.ones_like(cv.ignore), rng.integers(1, 4), 12 * s):
            f = cv.frame(y, x, 10 * s, 0.0)
            win, u, v = f
            cv.put(win, u ** 2 + v ** 2 < (9 * s) ** 2, rgb(0.78, 0.78, 0.74))  # helipad (bg)
            paint.helicopter(cv, y, x, rng.uniform(0, 2 * math.pi))
        for _ in range(rng.integers(1, 4)):
            paint.building(cv, *rng.uniform(0, H, 2), rng.uniform(0, math.pi))
        if rng.uniform() < 0.3:
            paint.place(cv, paint.pool, cv.mask_of('grass'), 1)
        paint.place(cv, paint.small_vehicle, cv.mask_of('pavement'), rng.integers(1, 6))
    elif kind in ('sports', 'stadium'):
        cv.layout(['grass', 'developed space', 'tree', 'pavement'], [4, 2, 1, 1])
        render_stuff(cv)
        if rng.uniform() < 0.6:
            _cars_on_road(cv, paint.road(cv, rng.uniform(0, math.pi), *rng.uniform(0, H, 2)), rng.integers(1, 6))
        choices = ([paint.ground_track_field, paint.soccer_field, paint.tennis_court,
                    paint.baseball_diamond]
                   if kind == 'stadium' else
                   [paint.tennis_court, paint.basketball_court, paint.baseball_diamond, paint.pool,
                    paint.soccer_field, paint.tennis_court, paint.basketball_court])
        for painter in rng.choice(np.array(choices, dtype=object), size=rng.integers(2, 4), replace=False):
            y, x = rng.uniform(0.2, 0.8, 2) * H
            ang = rng.uniform(0, math.pi)
            if painter is paint.tennis_court and rng.uniform() < 0.6:  # courts side by side
                for k in range(rng.integers(2, 4)):
                    painter(cv, y + k * 13.5 * s * math.cos(ang), x - k * 13.5 * s * math.sin(ang), ang)
            else:
                painter(cv, y, x, ang)
        if rng.uniform() < 0.5:
            paint.place(cv, paint.small_vehicle, cv.mask_of('pavement', 'developed space'), rng.integers(1, 5))
    elif kind == 'urban':
        cv.layout(['developed space', 'grass', 'tree'], [3, 1, 1])
        render_stuff(cv)
        ang0 = rng.uniform(0, math.pi)
        roads = [paint.road(cv, ang0 + k * math.pi / 2, *rng.uniform(0.2, 0.8, 2) * H)
                 for k in range(rng.integers(1, 3))]
        for _ in range(rng.integers(2, 6)):
            y, x = rng.uniform(0, H, 2)
            if not cv.mask_of('road')[int(y), int(x)]:
                paint.building(cv, y, x, ang0)
        if rng.uniform() < 0.6:
            paint.roundabout(cv, *rng.uniform(0.25, 0.75, 2) * H)
        for road in roads:
            _cars_on_road(cv, road, rng.integers(2, 8), mask=cv.mask_of('road'))
            if rng.uniform() < 0.5:
                paint.place(cv, paint.large_vehicle, cv.mask_of('road') & road[0], 1)
        if rng.uniform() < 0.5:
            paint.place(cv, paint.pool, cv.mask_of('grass', 'developed space'), rng.integers(1, 3))
        if rng.uniform() < 0.3:
            paint.place(cv, paint.basketball_court, cv.mask_of('grass', 'developed space'), 1, margin=10)
        if rng.uniform() < 0.5:
            paint.parking_lot(cv, *rng.uniform(0.2, 0.8, 2) * H, rng.uniform(0, math.pi), 2, rng.integers(3, 6))
    elif kind == 'river':
        cv.layout(['grass', 'field', 'tree', 'bare soil'], [2, 2, 1, 1])
        rang, a, n, w = cv.river('water')
        render_stuff(cv)
        water = cv.mask_of('water')
        for _ in range(rng.integers(1, 3)):
            # a road perpendicular to the river; its span over the water (+2 px) is the bridge
            bang = rang + math.pi / 2 + rng.uniform(-0.3, 0.3)
            pts = cv.sample(water, 1, 20 * s) or [(H / 2, H / 2)]
            road = paint.road(cv, bang, *pts[0], width=rng.uniform(6, 9))
            m, ra, rn, _, rw = road
            bridge = m & (np.abs(n) < w + 2 * s)
            full = (slice(0, H), slice(0, H))
            cv.put(full, bridge, rgb(0.68, 0.66, 0.62) + 0.02 * rng.standard_normal((H, H, 1)).astype(np.float32), 'bridge')
            cv.put(full, bridge & (np.abs(np.abs(rn) - (rw / 2 - 0.7)) < 0.6), rgb(0.3, 0.3, 0.3))  # railings
            _cars_on_road(cv, road, rng.integers(1, 5))
        paint.place(cv, paint.ship, cv.mask_of('water'), rng.integers(1, 4), margin=6, a=rng.uniform(4, 7))
    else:  # industrial
        cv.layout(['bare soil', 'pavement', 'developed space'], [2, 2, 1])
        render_stuff(cv)
        y0, x0 = rng.uniform(0.15, 0.55, 2) * H
        r = rng.uniform(4.5, 8)
        step = 2 * r * s + rng.uniform(2, 5) * s
        nr, nc = rng.integers(1, 4), rng.integers(2, 4)
        for i in range(nr):
            for j in range(nc):
                if rng.uniform() < 0.85:
                    paint.storage_tank(cv, y0 + i * step, x0 + j * step, r=r)
        if rng.uniform() < 0.7:
            _cars_on_road(cv, paint.road(cv, rng.uniform(0, math.pi), *rng.uniform(0, H, 2)), rng.integers(0, 4))
        paint.place(cv, paint.large_vehicle, cv.mask_of('pavement', 'bare soil'), rng.integers(1, 4))
        paint.place(cv, paint.small_vehicle, cv.mask_of('pavement', 'developed space'), rng.integers(0, 5))
