"""Make the mini world's tiny SAM: segment_anything's own classes at small width, briefly pretrained
on SAM's task (class-agnostic point-prompted segmentation) on mini-world scenes, saved as a full
SAM checkpoint (``image_encoder.*``, ``prompt_encoder.*``, ``mask_decoder.*`` like the official
``sam_vit_*.pth``) so the guidance encoder loads it through the same path as real SAM.

Why pretrain: AerOSeg's guidance encoder is a *frozen* SAM whose features carry segment structure
learnt from promptable segmentation; a randomly initialised encoder would make the mini world's
guidance ablations meaningless. The objective is SAM's (segment_anything paper, Sec. 3 / App. A:
point prompt -> 3 masks, loss on the best one, IoU-head MSE) on class-agnostic masks (connected
regions of one concept, "anything" as in SA-1B): it never sees class names. The mask loss is
BCE + dice instead of SAM's focal x20 + dice (see ``losses``).

Architecture (mirrors segment_anything/build_sam.py ``_build_sam``; our sizes, the paper is silent):
* ``ImageEncoderViT``: img_size 256 (mini images, 128 px, upsampled 2x as SAM upsamples to 1024),
  patch 16 -> 16 x 16 embedding grid (= the tiny CLIP's 16 x 16 tokens at 128 px), embed_dim 128,
  depth 6, 4 heads, window 4, global attention in blocks [1, 3, 5] (ViT-L: [5, 11, 17, 23], the
  last block of each quarter; here the last of each third), rel-pos, neck out_chans 64.
  Guidance taps as in AerOSeg's SAM-L layers 8 / 16 / 24 (of 24): blocks 2 / 4 / 6 (1-based),
  i.e. ``image_encoder.blocks[1]``, ``[3]``, ``[5]`` outputs (and the neck output).
* ``PromptEncoder`` / ``MaskDecoder`` / ``TwoWayTransformer`` at prompt dim 64 (mlp 256, 4 heads).

Reproduce::

    .venv/bin/python tools/make_tiny_sam.py --steps 300 --seed 0
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aeroseg.datasets import mini  # noqa: E402

NAME = 'sam_vit_tiny_mini'
SAM_CFG = {
    'img_size': 256, 'patch_size': 16, 'encoder_embed_dim': 128, 'encoder_depth': 6,
    'encoder_num_heads': 4, 'encoder_global_attn_indexes': [1, 3, 5], 'window_size': 4,
    'prompt_embed_dim': 64, 'decoder_mlp_dim': 256, 'decoder_num_heads': 4,
    'iou_head_hidden_dim': 64, 'guidance_taps_1based': [2, 4, 6],
}
SAM_MEAN = (123.675, 116.28, 103.53)  # segment_anything/build_sam.py pixel_mean / pixel_std
SAM_STD = (58.395, 57.12, 57.375)
PRETRAIN_STREAM = 8888  # disjoint from the mini datasets' and the tiny CLIP's seed streams


def build_tiny_sam(cfg=SAM_CFG):
    """segment_anything's Sam at the sizes above (same constructor calls as ``_build_sam``)."""
    from segment_anything.modeling import (ImageEncoderViT, MaskDecoder, PromptEncoder, Sam,
                                           TwoWayTransformer)
    grid = cfg['img_size'] // cfg['patch_size']
    return Sam(
        image_encoder=ImageEncoderViT(
            depth=cfg['encoder_depth'], embed_dim=cfg['encoder_embed_dim'], img_size=cfg['img_size'],
            mlp_ratio=4, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=cfg['encoder_num_heads'], patch_size=cfg['patch_size'], qkv_bias=True,
            use_rel_pos=True, global_attn_indexes=cfg['encoder_global_attn_indexes'],
            window_size=cfg['window_size'], out_chans=cfg['prompt_embed_dim']),
        prompt_encoder=PromptEncoder(
            embed_dim=cfg['prompt_embed_dim'], image_embedding_size=(grid, grid),
            input_image_size=(cfg['img_size'], cfg['img_size']), mask_in_chans=16),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=cfg['prompt_embed_dim'],
                                          mlp_dim=cfg['decoder_mlp_dim'], num_heads=cfg['decoder_num_heads']),
            transformer_dim=cfg['prompt_embed_dim'], iou_head_depth=3,
            iou_head_hidden_dim=cfg['iou_head_hidden_dim']),
        pixel_mean=list(SAM_MEAN), pixel_std=list(SAM_STD))


def components(cmap: np.ndarray) -> np.ndarray:
    """4-connected components of equal concept ids (vectorised min-label propagation)."""
    H, W = cmap.shape
    lab = np.arange(H * W, dtype=np.int64).reshape(H, W)
    big = np.iinfo(np.int64).max
    same_v = cmap[1:] == cmap[:-1]
    same_h = cmap[:, 1:] == cmap[:, :-1]
    while True:
        new = lab.copy()
        up = np.where(same_v, lab[:-1], big)
        np.minimum(new[1:], up, out=new[1:])
        np.minimum(new[:-1], np.where(same_v, lab[1:], big), out=new[:-1])
        np.minimum(new[:, 1:], np.where(same_h, lab[:, :-1], big), out=new[:, 1:])
        np.minimum(new[:, :-1], np.where(same_h, lab[:, 1:], big), out=new[:, :-1])
        new = new.ravel()[new.ravel()].reshape(H, W)  # pointer jumping
        if np.array_equal(new, lab):
            return lab
        lab = new


def build_pool(n: int, seed: int, stream: int, size: int = 128):
    imgs, comps = [], []
    for i in range(n):
        ds = mini.MINI_DATASETS[i % 3]
        rng = np.random.default_rng([seed, stream, i])
        img, cmap, _ = mini.render_scene(ds, rng, size=size)
        imgs.append(img)
        comps.append(components(cmap))
    return np.stack(imgs), np.stack(comps)


def sample_prompts(comp: np.ndarray, rng, k: int, min_px: int = 12, out: int = 64):
    """k (point (x, y) in the 256 frame, target mask at out x out) pairs, components >= min_px."""
    ids, cnt = np.unique(comp, return_counts=True)
    ids = ids[cnt >= min_px]
    pts, tgts = [], []
    for c in rng.choice(ids, size=k, replace=len(ids) < k):
        m = comp == c
        ys, xs = np.nonzero(m)
        j = rng.integers(len(ys))
        pts.append(((xs[j] + 0.5) * 2, (ys[j] + 0.5) * 2))
        tgts.append(m)
    t = torch.from_numpy(np.stack(tgts)).float()[:, None]
    t = F.interpolate(t, size=(out, out), mode='area')[:, 0]
    return torch.tensor(pts, dtype=torch.float32), t


def to_input(imgs: np.ndarray, size: int) -> torch.Tensor:
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(size, size), mode='bilinear', align_corners=False)
    return (x - torch.tensor(SAM_MEAN).view(1, 3, 1, 1)) / torch.tensor(SAM_STD).view(1, 3, 1, 1)


def predict(sam, emb, pts):
    """Masks (P, 3, 64, 64) logits and IoU predictions (P, 3) for single positive points."""
    sparse, dense = sam.prompt_encoder(points=(pts[:, None], torch.ones(len(pts), 1)), boxes=None, masks=None)
    return sam.mask_decoder(image_embeddings=emb[None], image_pe=sam.prompt_encoder.get_dense_pe(),
                            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                            multimask_output=True)


def losses(logits, iou_pred, tgt):
    """SAM's recipe (best of 3 masks, IoU-head MSE) with BCE + dice as the mask loss.

    SAM uses focal x20 + dice; in a first run here (220 steps) focal's down-weighting of
    positives kept the tiny decoder predicting empty masks (train IoU < 0.1), so the quick
    pretraining uses BCE + dice (our choice, recorded in the README)."""
    t = tgt[:, None].expand_as(logits)
    p = logits.sigmoid()
    bce = F.binary_cross_entropy_with_logits(logits, t, reduction='none').mean((2, 3))
    dice = 1 - (2 * (p * t).sum((2, 3)) + 1) / (p.sum((2, 3)) + t.sum((2, 3)) + 1)
    per = bce + dice
    best = per.argmin(1)
    ar = torch.arange(len(best))
    hard = (logits > 0).float()
    iou = ((hard * (t > 0.5)).sum((2, 3)) / ((hard + (t > 0.5).float()).clamp(max=1).sum((2, 3)) + 1e-6))
    return per[ar, best].mean() + F.mse_loss(iou_pred[ar, best], iou[ar, best].detach()), iou[ar, best]


@torch.no_grad()
def evaluate(sam, imgs, comps, seed: int, k: int = 4):
    """Mean IoU of the IoU-head-selected mask for k single-point prompts per held-out image."""
    sam.eval()
    rng = np.random.default_rng([seed, 99])
    emb = sam.image_encoder(to_input(imgs, SAM_CFG['img_size']))
    ious = []
    for e, comp in zip(emb, comps):
        pts, tgt = sample_prompts(comp, rng, k)
        logits, iou_pred = predict(sam, e, pts)
        sel = iou_pred.argmax(1)
        m = logits[torch.arange(len(sel)), sel] > 0
        t = tgt > 0.5
        ious += ((m & t).sum((1, 2)) / ((m | t).sum((1, 2)) + 1e-6)).tolist()
    sam.train()
    return float(np.mean(ious))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', type=Path, default=REPO / 'aeroseg' / 'assets' / 'mini')
    ap.add_argument('--steps', type=int, default=300)
    ap.add_argument('--images', type=int, default=8, help='images per step')
    ap.add_argument('--prompts', type=int, default=6, help='point prompts per image')
    ap.add_argument('--lr', type=float, default=8e-4)
    ap.add_argument('--wd', type=float, default=0.1)
    ap.add_argument('--warmup', type=int, default=30)
    ap.add_argument('--pool', type=int, default=1500)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--threads', type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    fh = open(out / f'{NAME}_train_log.txt', 'w')

    def log(msg):
        line = f'[{time.strftime("%H:%M:%S")}] {msg}'
        print(line, flush=True)
        fh.write(line + '\n')
        fh.flush()

    log(f'args: {vars(args)}')
    log(f'config: {json.dumps(SAM_CFG)}')
    sam = build_tiny_sam()
    log(f'params: {sum(p.numel() for p in sam.parameters()) / 1e6:.2f}M '
        f'(image encoder {sum(p.numel() for p in sam.image_encoder.parameters()) / 1e6:.2f}M)')
    t0 = time.time()
    imgs, comps = build_pool(args.pool, args.seed, PRETRAIN_STREAM)
    vimgs, vcomps = build_pool(60, args.seed, PRETRAIN_STREAM + 1)  # held-out scenes
    log(f'pools in {time.time() - t0:.0f}s')
    log(f'random init: held-out point-prompt mIoU {evaluate(sam, vimgs, vcomps, args.seed):.3f}')

    opt = torch.optim.AdamW(sam.parameters(), lr=args.lr, weight_decay=args.wd)
    rng = np.random.default_rng([args.seed, PRETRAIN_STREAM, 10 ** 9])
    t0, ema = time.time(), None
    for step in range(args.steps):
        lr = args.lr * ((step + 1) / args.warmup if step < args.warmup else
                        0.5 * (1 + math.cos(math.pi * (step - args.warmup) / max(1, args.steps - args.warmup))))
        for g in opt.param_groups:
            g['lr'] = lr
        idx = rng.integers(0, len(imgs), args.images)
        ks = rng.integers(0, 4, args.images)
        bimg = np.stack([np.rot90(imgs[i], k) for i, k in zip(idx, ks)])
        emb = sam.image_encoder(to_input(np.ascontiguousarray(bimg), SAM_CFG['img_size']))
        total, ious = 0.0, []
        for e, i, k in zip(emb, idx, ks):
            pts, tgt = sample_prompts(np.rot90(comps[i], k), rng, args.prompts)
            logits, iou_pred = predict(sam, e, pts)
            l, iou = losses(logits, iou_pred, tgt)
            total = total + l / args.images
            ious += iou.tolist()
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        ema = total.item() if ema is None else 0.95 * ema + 0.05 * total.item()
        if step % 20 == 0 or step == args.steps - 1:
            el = time.time() - t0
            log(f'step {step}/{args.steps} loss {total.item():.3f} (ema {ema:.3f}) train IoU {np.mean(ious):.3f} '
                f'{el / (step + 1):.2f}s/step elapsed {el / 60:.1f} min')
    log(f'trained {args.steps} steps in {(time.time() - t0) / 60:.1f} min; held-out point-prompt mIoU '
        f'{evaluate(sam, vimgs, vcomps, args.seed):.3f}')
    sd = {k: v.detach().to(torch.float16).clone() for k, v in sam.state_dict().items()}
    path = out / f'{NAME}.pth'
    torch.save(sd, path)
    (out / f'{NAME}.json').write_text(json.dumps(SAM_CFG, indent=4) + '\n')
    sam2 = build_tiny_sam()
    sam2.load_state_dict(torch.load(path, map_location='cpu', weights_only=True))
    log(f'saved {path} ({path.stat().st_size / 1e6:.1f} MB, fp16); reloaded: held-out mIoU '
        f'{evaluate(sam2, vimgs, vcomps, args.seed):.3f}')
    fh.close()


if __name__ == '__main__':
    main()
