"""Thing painters: each draws one kind of object (vehicle, plane, ship, tank, court, field,
building, road, roundabout, pier, ...) into a canvas and writes its concept into the concept map.

Objects are drawn in their local frame (u along the object's axis, v across) at sizes written for
128 px and scaled by ``cv.s``. :func:`place` scatters a painter over a mask; :func:`parking_lot`
lays out rows of cars. The scene recipes (:mod:`aeroseg.mini.scenes`) call these.
"""
from __future__ import annotations

import math

import numpy as np

from .canvas import rgb
from .textures import stuff_texture


_CAR_COLOURS = (rgb(0.93, 0.93, 0.93), rgb(0.75, 0.14, 0.13), rgb(0.12, 0.12, 0.14),
                rgb(0.70, 0.72, 0.76), rgb(0.20, 0.30, 0.68))


def small_vehicle(cv, cy, cx, ang, key='small vehicle'):
    L, Wd = 3.2 * cv.s, 1.6 * cv.s
    f = cv.frame(cy, cx, L + 1, ang)
    if f is None:
        return
    win, u, v = f
    body = (np.abs(u) < L) & (np.abs(v) < Wd)
    cv.put(win, body, _CAR_COLOURS[cv.rng.integers(len(_CAR_COLOURS))], key)
    cv.put(win, body & (u > 0.3 * L) & (u < 0.75 * L), rgb(0.2, 0.22, 0.26))


def large_vehicle(cv, cy, cx, ang):
    L, Wd = cv.rng.uniform(6, 9) * cv.s, cv.rng.uniform(2.0, 2.6) * cv.s
    f = cv.frame(cy, cx, L + 1, ang)
    if f is None:
        return
    win, u, v = f
    body = (np.abs(u) < L) & (np.abs(v) < Wd)
    sh = cv.frame(cy + 1.5 * cv.s, cx + 1.5 * cv.s, L + 1, ang)
    if sh is not None:
        cv.shade(sh[0], (np.abs(sh[1]) < L) & (np.abs(sh[2]) < Wd), 0.7)
    cv.put(win, body, rgb(0.86, 0.84, 0.74) * cv.rng.uniform(0.9, 1.05), 'large vehicle')
    cv.put(win, body & (u > L - 2.2 * cv.s), rgb(0.45, 0.47, 0.55))
    cv.put(win, body & (np.abs(u - (L - 2.2 * cv.s)) < 0.5), rgb(0.25, 0.25, 0.25))


def plane(cv, cy, cx, ang, key='plane'):
    L = cv.rng.uniform(8, 12) * cv.s
    f = cv.frame(cy, cx, L * 1.05 + 1, ang)
    if f is None:
        return
    win, u, v = f
    fus = (np.abs(u) < L) & (np.abs(v) < 0.13 * L + 0.6)
    wing = (np.abs(v) < 0.95 * L) & (u > 0.05 * L - 0.25 * np.abs(v)) & (u < 0.3 * L - 0.25 * np.abs(v))
    tail = (np.abs(v) < 0.38 * L) & (u > -0.95 * L) & (u < -0.78 * L + 0.0 * v)
    m = fus | wing | tail
    cv.put(win, m, rgb(0.91, 0.91, 0.93), key)
    cv.put(win, fus & (u > 0.8 * L), rgb(0.35, 0.38, 0.45))  # cockpit
    cv.put(win, wing & (np.abs(np.abs(v) - 0.45 * L) < 0.7), rgb(0.6, 0.6, 0.65))  # engines


def helicopter(cv, cy, cx, ang):
    s = cv.s * cv.rng.uniform(0.9, 1.2)
    f = cv.frame(cy, cx, 9 * s, ang)
    if f is None:
        return
    win, u, v = f
    body = (u / (4 * s)) ** 2 + (v / (1.9 * s)) ** 2 < 1
    boom = (u < -2 * s) & (u > -8 * s) & (np.abs(v) < 0.6 * s + 0.3)
    tailrot = (np.abs(u + 8 * s) < 0.6 * s + 0.3) & (np.abs(v) < 2 * s)
    c, sn = math.cos(math.pi / 4), math.sin(math.pi / 4)
    ru, rv = u * c + v * sn, -u * sn + v * c
    rotor = ((np.abs(ru) < 0.55 * s) | (np.abs(rv) < 0.55 * s)) & (np.maximum(np.abs(ru), np.abs(rv)) < 7.5 * s)
    cv.put(win, body | boom | tailrot, rgb(0.24, 0.30, 0.24), 'helicopter')
    cv.put(win, rotor, rgb(0.10, 0.10, 0.10), 'helicopter')
    cv.put(win, body & (u > 2.2 * s), rgb(0.5, 0.6, 0.7))


def ship(cv, cy, cx, ang, a=None, wake=True):
    rng = cv.rng
    a = (a if a is not None else rng.uniform(5, 12)) * cv.s
    b = max(1.3, a * rng.uniform(0.2, 0.28))
    f = cv.frame(cy, cx, a * 2.5 + 1, ang)
    if f is None:
        return
    win, u, v = f
    half = np.where(u < 0.35 * a, b, b * (a - u) / (0.65 * a))
    hull = (u > -a) & (u < a) & (np.abs(v) < half)
    if wake:
        wk = (u < -a) & (u > -2.4 * a) & (np.abs(v) < b * (1 + 0.6 * (-a - u) / a))
        cv.img[win][wk] = cv.img[win][wk] * 0.7 + 0.3 * rgb(0.75, 0.85, 0.9)
    cv.put(win, hull, rgb(0.88, 0.88, 0.86) * rng.uniform(0.9, 1.05), 'ship')
    cv.put(win, hull & (u > -0.5 * a) & (u < 0.2 * a) & (np.abs(v) < 0.55 * b), rgb(0.45, 0.47, 0.52))


def storage_tank(cv, cy, cx, ang=0.0, r=None):
    r = (r if r is not None else cv.rng.uniform(4, 8)) * cv.s
    f = cv.frame(cy, cx, r + 3, 0.0)
    if f is None:
        return
    win, u, v = f
    d = np.sqrt(u ** 2 + v ** 2)
    ds = np.sqrt((u - 1.5) ** 2 + (v - 1.5) ** 2)  # shadow, down-right
    cv.shade(win, (ds < r) & (d >= r), 0.55)
    cv.put(win, d < r, rgb(0.87, 0.87, 0.84), 'storage tank')
    cv.put(win, (d < r) & (d > r - 1.3), rgb(0.55, 0.55, 0.55))
    cv.put(win, d < 0.25 * r, rgb(0.7, 0.7, 0.7))


def pool(cv, cy, cx, ang):
    L, Wd = cv.rng.uniform(3.5, 7) * cv.s, cv.rng.uniform(2.2, 3.8) * cv.s
    f = cv.frame(cy, cx, L + 2, ang)
    if f is None:
        return
    win, u, v = f
    outer = (np.abs(u) < L + 1) & (np.abs(v) < Wd + 1)
    cv.put(win, outer, rgb(0.95, 0.95, 0.93), 'swimming pool')
    cv.put(win, (np.abs(u) < L) & (np.abs(v) < Wd), rgb(0.22, 0.78, 0.88))


def _lines_rect(u, v, L, Wd, t=0.55):
    return ((np.abs(np.abs(u) - L) < t) & (np.abs(v) <= Wd + t)) | \
           ((np.abs(np.abs(v) - Wd) < t) & (np.abs(u) <= L + t))


def tennis_court(cv, cy, cx, ang, key='tennis court'):
    s = cv.s * cv.rng.uniform(0.9, 1.15)
    L, Wd, m = 9.5 * s, 4.5 * s, 2.2 * s
    f = cv.frame(cy, cx, L + m + 2, ang)
    if f is None:
        return
    win, u, v = f
    outer = (np.abs(u) < L + m) & (np.abs(v) < Wd + m)
    inner = (np.abs(u) < L) & (np.abs(v) < Wd)
    if key == 'tennis court':
        surround, court = rgb(0.62, 0.33, 0.28), rgb(0.27, 0.55, 0.38)
    else:  # DLRSD 'court': blue hard court on green surround
        surround, court = rgb(0.30, 0.52, 0.36), rgb(0.24, 0.40, 0.70)
    cv.put(win, outer, surround, key)
    cv.put(win, inner, court)
    white = rgb(0.96, 0.96, 0.96)
    lines = _lines_rect(u, v, L, Wd) | ((np.abs(u) < 0.5) & (np.abs(v) < Wd + m * 0.6))
    lines |= (np.abs(np.abs(u) - 0.55 * L) < 0.45) & (np.abs(v) < Wd)
    lines |= (np.abs(v) < 0.45) & (np.abs(u) < 0.55 * L)
    cv.put(win, lines & outer, white)


def basketball_court(cv, cy, cx, ang):
    s = cv.s * cv.rng.uniform(0.9, 1.15)
    L, Wd = 8 * s, 4.6 * s
    f = cv.frame(cy, cx, L + 3, ang)
    if f is None:
        return
    win, u, v = f
    out = (np.abs(u) < L + 1) & (np.abs(v) < Wd + 1)
    cv.put(win, out, rgb(0.82, 0.55, 0.34), 'basketball court')
    key = (np.abs(u) > L - 3 * s) & (np.abs(v) < 1.6 * s) & out
    cv.put(win, key, rgb(0.66, 0.30, 0.24))
    d = np.sqrt(u ** 2 + v ** 2)
    lines = _lines_rect(u, v, L, Wd, 0.5) | (np.abs(u) < 0.45) | (np.abs(d - 2.2 * s) < 0.45)
    lines |= (np.abs(np.sqrt((np.abs(u) - L) ** 2 + v ** 2) - 4.2 * s) < 0.45)
    cv.put(win, lines & out & (np.abs(u) <= L + 0.5) & (np.abs(v) <= Wd + 0.5), rgb(0.96, 0.96, 0.96))


def baseball_diamond(cv, cy, cx, ang):
    R = cv.rng.uniform(14, 20) * cv.s
    f = cv.frame(cy, cx, R + 1, ang)
    if f is None:
        return
    win, u, v = f
    # (cy, cx) is home plate; the field opens along +u within +-45 degrees.
    d = np.sqrt(u ** 2 + v ** 2)
    sector = (d < R) & (u > np.abs(v) - 0.8)
    p, q = (u + v) / math.sqrt(2), (u - v) / math.sqrt(2)
    grass = rgb(0.40, 0.64, 0.30) + (0.03 * np.sin(u / (2.5 * cv.s)))[..., None]
    cv.put(win, sector, grass, 'baseball diamond')
    cv.put(win, sector & (d < 0.6 * R) & (d > 0.42 * R), rgb(0.74, 0.54, 0.38))  # infield arc
    inner = (p > 0.06 * R) & (q > 0.06 * R) & (p < 0.34 * R) & (q < 0.34 * R)
    square = (p > -1) & (q > -1) & (p < 0.42 * R) & (q < 0.42 * R)
    cv.put(win, sector & square, rgb(0.74, 0.54, 0.38))
    cv.put(win, sector & inner, rgb(0.40, 0.64, 0.30))
    cv.put(win, sector & ((np.abs(p) < 0.5) | (np.abs(q) < 0.5)), rgb(0.95, 0.95, 0.95))


def ground_track_field(cv, cy, cx, ang):
    s = cv.s * cv.rng.uniform(0.9, 1.15)
    L, R = 22 * s, 12 * s
    f = cv.frame(cy, cx, L + 1, ang)
    if f is None:
        return
    win, u, v = f
    d = np.sqrt(np.maximum(np.abs(u) - (L - R), 0) ** 2 + v ** 2)
    cv.put(win, d < R, rgb(0.35, 0.62, 0.31) + (0.03 * np.sin(u / (2.5 * s)))[..., None],
           'ground track field')
    cv.put(win, (d < R) & (d > R - 4 * s), rgb(0.72, 0.31, 0.25))
    cv.put(win, (np.abs(d - (R - 2 * s)) < 0.45) | (np.abs(d - (R - 4 * s)) < 0.5), rgb(0.95, 0.93, 0.93))


def soccer_field(cv, cy, cx, ang):
    s = cv.s * cv.rng.uniform(0.85, 1.15)
    L, Wd = 17 * s, 11 * s
    f = cv.frame(cy, cx, L + 2, ang)
    if f is None:
        return
    win, u, v = f
    out = (np.abs(u) < L + 1) & (np.abs(v) < Wd + 1)
    mow = np.where(np.sin(2 * math.pi * u / (6 * s)) > 0, 1.0, 0.86).astype(np.float32)
    cv.put(win, out, rgb(0.33, 0.62, 0.30) * mow[..., None], 'soccer ball field')
    d = np.sqrt(u ** 2 + v ** 2)
    lines = _lines_rect(u, v, L, Wd) | (np.abs(u) < 0.45) | (np.abs(d - 3.2 * s) < 0.45)
    box = ((np.abs(np.abs(u) - (L - 3.5 * s)) < 0.45) & (np.abs(v) < 5 * s)) | \
          ((np.abs(np.abs(v) - 5 * s) < 0.45) & (np.abs(u) > L - 3.5 * s))
    cv.put(win, (lines | box) & out & (np.abs(u) <= L + 0.5) & (np.abs(v) <= Wd + 0.5), rgb(0.96, 0.96, 0.96))


def road(cv, ang, cy, cx, width=None, key='road'):
    """Straight road across the image: dark asphalt with a dashed centre line."""
    w = (width or cv.rng.uniform(7, 10)) * cv.s
    a, n = cv.rotated(ang, cy, cx)
    m = np.abs(n) < w / 2
    full = (slice(0, cv.H), slice(0, cv.W))
    cv.put(full, m, rgb(0.29, 0.29, 0.31) + cv.rng.normal(0, 0.012, (cv.H, cv.W, 1)).astype(np.float32), key)
    cv.put(full, m & (np.abs(n) < 0.5) & ((a % (8 * cv.s)) < 4 * cv.s), rgb(0.88, 0.86, 0.70))
    return m, a, n, ang, w


def roundabout(cv, cy, cx):
    R = cv.rng.uniform(11, 16) * cv.s
    Ri = R * cv.rng.uniform(0.45, 0.6)
    # approach roads first (background 'road'), then the disc on top
    for k in range(cv.rng.integers(2, 5)):
        ang = k * math.pi / 2 + cv.rng.uniform(-0.2, 0.2)
        a, n = cv.rotated(ang, cy, cx)
        m = (np.abs(n) < 3.5 * cv.s) & (a > 0)
        full = (slice(0, cv.H), slice(0, cv.W))
        cv.put(full, m, rgb(0.29, 0.29, 0.31), 'road')
    f = cv.frame(cy, cx, R + 1, 0.0)
    win, u, v = f
    d = np.sqrt(u ** 2 + v ** 2)
    cv.put(win, d < R, rgb(0.33, 0.33, 0.35), 'roundabout')
    cv.put(win, d < Ri + 0.8, rgb(0.85, 0.85, 0.82))
    cv.put(win, d < Ri, rgb(0.38, 0.62, 0.31) + 0.04 * cv.rng.standard_normal(d.shape + (1,)).astype(np.float32))
    cv.put(win, np.abs(d - (R + Ri) / 2) < 0.4, rgb(0.7, 0.7, 0.6))


def building(cv, cy, cx, ang, L=None, Wd=None):
    rng = cv.rng
    L = (L or rng.uniform(4, 9)) * cv.s
    Wd = (Wd or rng.uniform(3, 6)) * cv.s
    f = cv.frame(cy, cx, L + Wd + 3, ang)
    if f is None:
        return
    win, u, v = f
    sh = cv.frame(cy + 2 * cv.s, cx + 2 * cv.s, L + Wd + 3, ang)
    if sh is not None:
        cv.shade(sh[0], (np.abs(sh[1]) < L) & (np.abs(sh[2]) < Wd), 0.5)
    roof = (np.abs(u) < L) & (np.abs(v) < Wd)
    col = (rgb(0.70, 0.36, 0.27), rgb(0.60, 0.58, 0.58), rgb(0.80, 0.78, 0.73))[rng.integers(3)]
    shade = np.where(v > 0, 1.0, 0.86).astype(np.float32)[..., None]  # two roof planes
    cv.put(win, roof, col * rng.uniform(0.92, 1.06) * shade, 'building')
    cv.put(win, roof & (np.abs(v) < 0.45), col * 0.7)  # ridge


def mobile_home(cv, cy, cx, ang):
    L, Wd = 5.0 * cv.s, 1.9 * cv.s
    f = cv.frame(cy, cx, L + 1, ang)
    if f is None:
        return
    win, u, v = f
    body = (np.abs(u) < L) & (np.abs(v) < Wd)
    cv.put(win, body, rgb(0.90, 0.90, 0.88) * cv.rng.uniform(0.92, 1.04), 'mobile home')
    cv.put(win, body & (np.abs(v) < 0.4), rgb(0.62, 0.62, 0.62))


def piers(cv, shore_ang, a_map, n_map, key):
    """Harbor (wide concrete quay + jetties) or dock (narrow wooden piers) on a straight shore;
    n_map > 0 is water. Returns the pier axis positions along the shore, the pier length, the
    axis spacing and the pier half-width (for mooring boats)."""
    rng = cv.rng
    if key == 'harbor':
        fw, spacing, length, quay = rng.uniform(2.5, 4) * cv.s, rng.uniform(16, 24) * cv.s, \
            rng.uniform(18, 30) * cv.s, rng.uniform(4, 7) * cv.s
        col = rgb(0.68, 0.64, 0.57)
    else:
        fw, spacing, length, quay = rng.uniform(0.8, 1.2) * cv.s, rng.uniform(9, 13) * cv.s, \
            rng.uniform(14, 24) * cv.s, rng.uniform(1.5, 2.5) * cv.s
        col = rgb(0.52, 0.41, 0.30)
    a0 = rng.uniform(-cv.H, -cv.H / 2)
    extent = rng.uniform(0.5, 1.0) * cv.H * 1.5
    axes = np.arange(a0 + spacing / 2, a0 + extent, spacing)
    m = (n_map > -quay) & (n_map < 0.5) & (a_map > a0) & (a_map < a0 + extent)
    for ax in axes:
        m |= (np.abs(a_map - ax) < fw) & (n_map >= 0) & (n_map < length)
    full = (slice(0, cv.H), slice(0, cv.W))
    tex = col + (0.03 * rng.standard_normal((cv.H, cv.W, 1))).astype(np.float32)
    if key == 'dock':
        tex = tex * np.where((a_map % 2) < 1, 1.0, 0.88).astype(np.float32)[..., None]
    cv.put(full, m, tex, key)
    return axes, length, spacing, fw


def unknown_blobs(cv):
    m = cv.smooth(1, 5)[0] > cv.rng.uniform(1.2, 1.6)
    cv.ignore |= m


def place(cv, painter, mask, k, margin=4, **kw):
    for (y, x) in cv.sample(mask, k, margin):
        painter(cv, y, x, cv.rng.uniform(0, 2 * math.pi), **kw)


def parking_lot(cv, cy, cx, ang, rows, cols, fill=0.8, key='small vehicle'):
    """Pavement lot with rows of cars parked across the row axis."""
    s = cv.s
    f = cv.frame(cy, cx, (max(rows, cols) + 1) * 8 * s, ang)
    if f is None:
        return
    win, u, v = f
    lot = (np.abs(u) < cols * 2.5 * s + 2) & (np.abs(v) < rows * 4.5 * s + 2)
    full_tex = stuff_texture('pavement', cv)
    cv.put(win, lot, full_tex[win], 'pavement')
    c, sn = math.cos(ang), math.sin(ang)
    for r in range(rows):
        for q in range(cols):
            if cv.rng.uniform() > fill:
                continue
            lu = (q - (cols - 1) / 2) * 5 * s
            lv = (r - (rows - 1) / 2) * 9 * s
            small_vehicle(cv, cy + lu * sn + lv * c, cx + lu * c - lv * sn, ang + math.pi / 2, key)
