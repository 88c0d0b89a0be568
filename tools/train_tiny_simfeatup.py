"""Train the mini world's tiny SimFeatUp (``jbu_one``) on the tiny CLIP's SegEarth features, FeatUp's way.

Why: SegEarth-OV upsamples CLIP's dense features with SimFeatUp, a JBU trained by FeatUp's
multi-view reconstruction objective. The mini world's tiny CLIP has no such upsampler; this script
trains one on CPU and saves it in the official checkpoint layout, so the mini row can run the same
code path as the full one (whether it should is measured: ``docs/measurements.md``, "SegEarth-OV
mini: the tiny SimFeatUp").

Objective (facts from likyoo/SimFeatUp@78a0ba7 ``featup/train_upsampler.py`` and
``featup/configs/upsampler_aid.yaml``, which extend mhamilton723/FeatUp's
``featup/train_jbu_upsampler.py``; MIT; read, not copied). Per image x (CLIP-normalised) with
frozen low-res features f = CLIP(x) (16 x 16 here) and hr = up(f, x) at pixel resolution, for
each of ``n_jitters`` random jitters T (reflect pad, zoom, crop, flip)::

    down  = AttentionDownsampler(T(hr), T(x))                     # learned, back to 16 x 16
    P     = random projection (C x 30, unit columns), drawn per sample and jitter
    s     = ScaleNet(CLIP(T(x)))                                  # predicted uncertainty
    rec   = mean( |P^T down - P^T CLIP(T(x))|^2 / (2 s^2) + log s ) / n_jitters
    img   = mean( |ImageHead(T(hr)) - T(x)|^2 ) / n_jitters       # SimFeatUp's image reconstruction
    loss  = rec + 0.1 * img                                       # crf / tv / entropy weights are 0

NAdam over upsampler + downsampler + ScaleNet + ImageHead, lr 1e-3, gradient norm clipped to
1e-4 for the first 10 steps. Only the upsampler is saved (the official ``on_save_checkpoint`` keeps
the ``upsampler`` keys).

Differences, all our choice and CPU-driven: 128-px scenes of the mini world (stream
``[seed, 9999, i]``, disjoint from the mini datasets' ``[seed, dataset, split, i]`` and from the
CLIP / SAM pretraining streams 7777 / 8888) instead of 224 crops of Million-AID; CLIP statistics
for the image (SegEarth-OV's inference passes the CLIP-normalised crop as guidance; FeatUp's loader
normalises with ImageNet's); 3 x2 stages (patch 8 -> pixels, as 4 for patch 16), downsampler kernel
= patch 8, output 16 x 16 (official: kernel 16, output 14 at 224 px); ``max_pad`` scaled by
128 / 224; hr is computed once per step and reused by all jitters (the official recomputes it per
jitter, which only redraws the upsampler's dropout masks: the loss is otherwise the same sum, at a
fifth of the cost). Batch and steps fit ~15 min of one CPU thread.

Output (``--out``, default ``aeroseg/assets/mini``): ``simfeatup_jbu_one_mini.ckpt``
(``{'state_dict': {'upsampler.<key>': tensor}}``, float32, loads with ``weights_only=True`` into
``SimFeatUp(128, 'jbu_one')``) and ``simfeatup_jbu_one_mini_train_log.txt``. Reproduce::

    OMP_NUM_THREADS=1 .venv/bin/python tools/train_tiny_simfeatup.py --seed 0
"""
from __future__ import annotations

import argparse
import io
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tools.train_tiny_clip import log  # noqa: E402  (timestamped line to stdout and the log file)

NAME = 'simfeatup_jbu_one_mini'
# featup/configs/upsampler_aid.yaml (likyoo/SimFeatUp@78a0ba7)
N_JITTERS = 5             # n_jitters
MAX_ZOOM = 2.0            # max_zoom
RANDOM_PROJECTION = 30    # random_projection
REC_IMG_WEIGHT = 0.1      # rec_img_weight (crf_weight, tv_weight, filter_ent_weight: 0)
LR = 1e-3                 # lr (NAdam: train_upsampler.py configure_optimizers)
OFFICIAL_MAX_PAD, OFFICIAL_SIZE = 20, 224   # max_pad at load_size 224 (train_upsampler.py)
# train_upsampler.py training_step: clip_gradients(norm 1e-4) while global_step < 10
CLIP_STEPS, CLIP_NORM = 10, 1e-4
# kornia gaussian_blur2d(hr, 5, (1.0, 1.0)) in the official AttentionDownsampler(blur_attn=True)
BLUR_SIZE, BLUR_SIGMA = 5, 1.0
TRAIN_STREAM, HELDOUT_STREAM = 9999, 9998   # our seed-sequence markers (module docstring)


# ------------------------------------------------------------------------------------------
# FeatUp's training pieces (ours, after the official descriptions)
# ------------------------------------------------------------------------------------------
def sample_jitter(rng: np.random.Generator, max_pad: int, max_zoom: float, h: int, w: int) -> dict:
    """FeatUp ``sample_transform(use_flips=True)``: flip w.p. 1/2; zoom ~ U[1, max_zoom] w.p. 1/2
    (else 1); a crop offset anywhere in the padded, zoomed image."""
    flip = bool(rng.random() > 0.5)
    zoom = float(rng.random() * (max_zoom - 1) + 1) if rng.random() > 0.5 else 1.0
    vh = int((h + 2 * max_pad) * zoom) - h + 1
    vw = int((w + 2 * max_pad) * zoom) - w + 1
    return dict(x=int(rng.integers(0, vh)), y=int(rng.integers(0, vw)), zoom=zoom, flip=flip)


def apply_jitter(t: torch.Tensor, max_pad: int, p: dict) -> torch.Tensor:
    """FeatUp ``apply_jitter``: reflect pad, bilinear zoom, crop back to (h, w), optional h-flip."""
    h, w = t.shape[-2:]
    t = F.pad(t, [max_pad] * 4, mode='reflect')
    if p['zoom'] > 1.0:
        t = F.interpolate(t, scale_factor=p['zoom'], mode='bilinear')
    t = t[:, :, p['x']:p['x'] + h, p['y']:p['y'] + w]
    return torch.flip(t, [3]) if p['flip'] else t


def gaussian_blur(x: torch.Tensor, size: int = BLUR_SIZE, sigma: float = BLUR_SIGMA) -> torch.Tensor:
    """Separable normalised Gaussian, reflect border (kornia ``gaussian_blur2d`` defaults)."""
    r = torch.arange(size, dtype=x.dtype, device=x.device) - (size - 1) / 2
    g = torch.exp(-r ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    c = x.shape[1]
    x = F.pad(x, [size // 2] * 4, mode='reflect')
    x = F.conv2d(x, g.view(1, 1, 1, size).expand(c, 1, 1, size), groups=c)
    return F.conv2d(x, g.view(1, 1, size, 1).expand(c, 1, size, 1), groups=c)


class AttentionDownsampler(nn.Module):
    """FeatUp's learned downsampler: per output token, a softmax over its k x k window of the
    (blurred) high-res features, logits = (Linear(dropout(feature)) * token dropout) * w + b."""

    def __init__(self, dim: int, kernel_size: int, final_size: int):
        super().__init__()
        self.kernel_size, self.final_size = kernel_size, final_size
        # official: Dropout(p=.2) -> Linear(dim, 1); w = 1 + .01 N(0,1), b = .01 N(0,1) (k x k)
        self.attention_net = nn.Sequential(nn.Dropout(p=0.2), nn.Linear(dim, 1))
        self.w = nn.Parameter(torch.ones(kernel_size, kernel_size) + 0.01 * torch.randn(kernel_size, kernel_size))
        self.b = nn.Parameter(0.01 * torch.randn(kernel_size, kernel_size))

    def forward(self, hr: torch.Tensor, guidance=None) -> torch.Tensor:
        b, c, h, w = hr.shape
        k, n = self.kernel_size, self.final_size
        stride = (h - k) // (n - 1)
        patches = F.unfold(gaussian_blur(hr), k, stride=stride).reshape(b, c, k * k, n, n * (w // h))
        patches = patches.permute(0, 3, 4, 2, 1)                      # (B, n, n, k*k, C)
        logits = self.attention_net(patches).squeeze(-1)              # (B, n, n, k*k)
        keep = torch.rand(*logits.shape[:3], 1, device=hr.device) > 0.2   # official token dropout
        attn = torch.softmax(logits * keep * self.w.flatten() + self.b.flatten(), dim=-1)
        return torch.einsum('bhwpc,bhwp->bchw', patches, attn)


class ScaleNet(nn.Module):
    """FeatUp's predicted uncertainty: exp(conv1x1(f) + 0.1), clamped at 1e-4 (init weights x 0.1)."""

    def __init__(self, dim: int):
        super().__init__()
        self.net = nn.Conv2d(dim, 1, 1)
        with torch.no_grad():
            self.net.weight.mul_(0.1)
            self.net.bias.mul_(0.1)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.net(f) + 0.1).clamp_min(1e-4)


class LayerNorm2d(nn.Module):
    """Channel LayerNorm of (B, C, H, W), eps 1e-6 (SimFeatUp ``upsamplers.LayerNorm2d``)."""

    def __init__(self, c: int, eps: float = 1e-6):
        super().__init__()
        self.weight, self.bias, self.eps = nn.Parameter(torch.ones(c)), nn.Parameter(torch.zeros(c)), eps

    def forward(self, x):
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        return self.weight[:, None, None] * (x - u) / torch.sqrt(s + self.eps) + self.bias[:, None, None]


def image_head(dim: int) -> nn.Module:
    """SimFeatUp's ``projection_img``: conv1x1 -> LayerNorm2d -> GELU -> conv1x1 to RGB -> tanh."""
    return nn.Sequential(nn.Conv2d(dim, dim, 1), LayerNorm2d(dim), nn.GELU(), nn.Conv2d(dim, 3, 1), nn.Tanh())


def project(f: torch.Tensor, proj) -> torch.Tensor:
    return f if proj is None else torch.einsum('bchw,bcd->bdhw', f, proj)


# ------------------------------------------------------------------------------------------
# data and features
# ------------------------------------------------------------------------------------------
def render(seed: int, stream: int, i: int, size: int = 128) -> np.ndarray:
    """One mini-world scene (datasets in turn, random scene type); DLRSD's through JPEG as stored."""
    from PIL import Image
    from aeroseg import mini
    from aeroseg.mini.io import JPEG_QUALITY
    ds = mini.MINI_DATASETS[i % 3]
    img, _, _ = mini.render_scene(ds, np.random.default_rng([seed, stream, i]), size=size)
    if mini.FORMATS[ds][0] == '.jpg':
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format='JPEG', quality=JPEG_QUALITY)
        img = np.asarray(Image.open(buf).convert('RGB'))
    return img


def build_clip():
    """The tiny CLIP exactly as ``SegEarthOV.mini_scale`` configures it (SegEarth last block)."""
    from mmengine.config import Config
    from mmseg.registry import MODELS
    import baselines  # noqa: F401  (registers SegEarthCLIP / SimFeatUp)
    from aeroseg.config import MINI_OVERLAY, _resolve_assets
    from baselines.segearthov.segmentor import SegEarthOV
    overlay = Config.fromfile(str(MINI_OVERLAY))
    _resolve_assets(overlay._cfg_dict)
    cfg = SegEarthOV.mini_scale(dict(clip={}, test_cfg={}), overlay)
    clip = MODELS.build(cfg['clip']).eval()
    for p in clip.parameters():
        p.requires_grad_(False)
    return clip


def batch_tensor(clip, imgs) -> torch.Tensor:
    x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float()
    return clip.normalize_only(x)  # guidance and CLIP input, as SegEarthOV.crop_logits


# ------------------------------------------------------------------------------------------
# training
# ------------------------------------------------------------------------------------------
class Trainer:
    def __init__(self, clip, up, max_pad: int, n_jitters: int, rng: np.random.Generator):
        dim = clip.embed_dim
        patch = clip.patch_size[0]
        grid = clip.image_size[0] // patch
        self.clip, self.up, self.max_pad, self.n_jitters, self.rng = clip, up, max_pad, n_jitters, rng
        self.down = AttentionDownsampler(dim, kernel_size=patch, final_size=grid)
        self.scale_net = ScaleNet(dim)
        self.img_head = image_head(dim)
        params = [*self.down.parameters(), *self.up.parameters(), *self.scale_net.parameters(),
                  *self.img_head.parameters()]
        self.params = params
        self.opt = torch.optim.NAdam(params, lr=LR)

    def modules(self):
        return (self.up, self.down, self.scale_net, self.img_head)

    def step(self, x: torch.Tensor, step: int) -> dict:
        for m in self.modules():
            m.train()
        self.opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            lr_feats = self.clip.encode_dense(x)['dense']
        hr = self.up(lr_feats, x)
        if hr.shape[-2:] != x.shape[-2:]:  # official: bilinear to the image size
            hr = F.interpolate(hr, x.shape[-2:], mode='bilinear')
        total = {'rec': 0.0, 'rec_img': 0.0, 'total': 0.0}
        loss = 0.0
        for _ in range(self.n_jitters):
            p = sample_jitter(self.rng, self.max_pad, MAX_ZOOM, *x.shape[-2:])
            with torch.no_grad():
                jit_img = apply_jitter(x, self.max_pad, p)
                lr_jit = self.clip.encode_dense(jit_img)['dense']
            proj = torch.randn(x.shape[0], lr_feats.shape[1], RANDOM_PROJECTION)
            proj = proj / proj.square().sum(1, keepdim=True).sqrt()
            hr_jit = apply_jitter(hr, self.max_pad, p)
            down = project(self.down(hr_jit, jit_img), proj)
            scales = self.scale_net(lr_jit)
            mse = (down - project(lr_jit, proj)).square()
            rec = (mse / (2 * scales ** 2) + scales.log()).mean() / self.n_jitters
            rec_img = (jit_img - self.img_head(hr_jit)).square().mean() / self.n_jitters
            jl = rec + REC_IMG_WEIGHT * rec_img
            loss = loss + jl
            total['rec'] += rec.item()
            total['rec_img'] += rec_img.item()
            total['total'] += jl.item()
        loss.backward()
        if step < CLIP_STEPS:
            torch.nn.utils.clip_grad_norm_(self.params, CLIP_NORM)
        self.opt.step()
        return total

    @torch.no_grad()
    def heldout(self, imgs, seed: int) -> dict:
        """Plain reconstruction MSE (all channels, no projection / uncertainty) of the jittered
        low-res features through the learned downsampler, for this upsampler and for bicubic
        upsampling of the same features; eval mode, fixed jitters."""
        for m in self.modules():
            m.eval()
        rng = np.random.default_rng([seed, HELDOUT_STREAM, 10 ** 9])
        torch.manual_seed(seed)
        out = {'jbu': 0.0, 'bicubic': 0.0}
        n = 0
        for im in imgs:
            x = batch_tensor(self.clip, [im])
            f = self.clip.encode_dense(x)['dense']
            cands = {'jbu': self.up(f, x), 'bicubic': F.interpolate(f, x.shape[-2:], mode='bicubic',
                                                                     align_corners=False)}
            for _ in range(self.n_jitters):
                p = sample_jitter(rng, self.max_pad, MAX_ZOOM, *x.shape[-2:])
                jit = apply_jitter(x, self.max_pad, p)
                target = self.clip.encode_dense(jit)['dense']
                for k, hr in cands.items():
                    out[k] += (self.down(apply_jitter(hr, self.max_pad, p), jit) - target).square().mean().item()
                n += 1
        return {k: v / n for k, v in out.items()}


def save_checkpoint(up: nn.Module, path: Path) -> None:
    """Official layout: a Lightning-like dict whose ``state_dict`` holds ``upsampler.*`` tensors."""
    sd = {f'upsampler.{k}': v.detach().to(torch.float32).clone() for k, v in up.state_dict().items()}
    torch.save({'state_dict': sd}, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', type=Path, default=REPO / 'aeroseg' / 'assets' / 'mini')
    ap.add_argument('--steps', type=int, default=150, help='~6 s each on the shared CPU (1 thread)')
    ap.add_argument('--batch', type=int, default=1, help='official 4 per GPU; 1 fits the CPU budget')
    ap.add_argument('--n-jitters', type=int, default=N_JITTERS)
    ap.add_argument('--max-pad', type=int, default=round(OFFICIAL_MAX_PAD * 128 / OFFICIAL_SIZE))
    ap.add_argument('--heldout', type=int, default=12, help='held-out scenes for the reconstruction check')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--log-every', type=int, default=10)
    ap.add_argument('--no-save', action='store_true')
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    from baselines.segearthov.simfeatup import SimFeatUp
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    fh = None if args.no_save else open(out / f'{NAME}_train_log.txt', 'w')
    log(f'args: {vars(args)}', fh)
    t_start = time.time()
    clip = build_clip()
    patch, size = clip.patch_size[0], clip.image_size[0]
    stages = int(math.log2(patch))  # x2 stages from tokens to pixels (official 4 for patch 16)
    up = SimFeatUp(clip.embed_dim, 'jbu_one', num_stages=stages)
    tr = Trainer(clip, up, args.max_pad, args.n_jitters, np.random.default_rng([args.seed, TRAIN_STREAM, 10 ** 9]))
    log(f'tiny CLIP: {size} px, patch {patch}, embed {clip.embed_dim}; SimFeatUp jbu_one x{2 ** stages} '
        f'({sum(p.numel() for p in up.parameters())} params); downsampler kernel {patch} -> {size // patch}; '
        f'trainable in all {sum(p.numel() for p in tr.params)}', fh)
    held = [render(args.seed, HELDOUT_STREAM, i, size) for i in range(args.heldout)]
    h0 = tr.heldout(held, args.seed)
    log(f'held-out rec MSE at init: jbu {h0["jbu"]:.4f}, bicubic {h0["bicubic"]:.4f}', fh)
    t0, c0 = time.time(), time.process_time()
    hist, i_img = [], 0
    for step in range(args.steps):
        imgs = [render(args.seed, TRAIN_STREAM, i_img + j, size) for j in range(args.batch)]
        i_img += args.batch
        r = tr.step(batch_tensor(clip, imgs), step)
        hist.append(r)
        if step % args.log_every == 0 or step == args.steps - 1:
            w = hist[-args.log_every:]
            el = time.time() - t0
            log(f'step {step}/{args.steps} loss {r["total"]:.4f} (rec {r["rec"]:.4f}, rec_img {r["rec_img"]:.4f}); '
                f'mean of last {len(w)}: total {np.mean([h["total"] for h in w]):.4f} rec '
                f'{np.mean([h["rec"] for h in w]):.4f} rec_img {np.mean([h["rec_img"] for h in w]):.4f}; '
                f'range_temp {up.up.range_temp.exp().item():.3f} sigma {up.up.sigma_spatial.item():.3f}; '
                f'{el / (step + 1):.2f}s/step, {el / 60:.1f} min (CPU {(time.process_time() - c0) / 60:.1f})', fh)
    train_min, train_cpu = (time.time() - t0) / 60, (time.process_time() - c0) / 60
    h1 = tr.heldout(held, args.seed)
    log(f'trained {args.steps} steps x {args.batch} images in {train_min:.1f} min wall, {train_cpu:.1f} min CPU '
        f'(total {(time.time() - t_start) / 60:.1f} min)', fh)
    log(f'held-out rec MSE trained: jbu {h1["jbu"]:.4f}, bicubic {h1["bicubic"]:.4f} (same learned downsampler)', fh)
    if not args.no_save:
        path = out / f'{NAME}.ckpt'
        save_checkpoint(up, path)
        check = SimFeatUp(clip.embed_dim, 'jbu_one', checkpoint=str(path), num_stages=stages)
        same = all(torch.equal(a, b) for a, b in zip(check.state_dict().values(), up.state_dict().values()))
        log(f'saved {path.name} ({path.stat().st_size / 1e3:.0f} kB); reloaded through SimFeatUp(checkpoint=...): '
            f'{"identical" if same else "DIFFERENT"}', fh)
        fh.close()


if __name__ == '__main__':
    main()
