"""Make the mini world's tiny SAM: segment_anything's own classes at small width, with an image
encoder briefly pretrained on mini-world scenes to be segment-aware, saved as a full SAM checkpoint
(``image_encoder.*``, ``prompt_encoder.*``, ``mask_decoder.*`` like the official ``sam_vit_*.pth``)
so the guidance encoder loads it through the same path as real SAM.

Why pretrain: AerOSeg's guidance encoder is a *frozen* SAM whose features carry segment structure
("more semantic and less noisy" than CLIP's, paper Sec. 3.1); a randomly initialised encoder would
make the mini world's guidance ablations measure extra random features instead.

Objective (``--objective``):
* ``segcontrast`` (default, used for the committed checkpoint): a class-agnostic segment-contrastive
  loss on the encoder's neck output (16 x 16 x 64): tokens lying in the same connected region of
  one concept ("anything" masks, as SA-1B's masks are class-agnostic) are pulled together, tokens
  of other regions of the image pushed apart (supervised-contrastive loss within each image,
  temperature 0.1). It never sees class names or class identities across images. Only the image
  encoder is trained; prompt encoder and mask decoder stay at their (seeded) initialisation.
* ``prompt``: SAM's own task (segment_anything paper Sec. 3: a point prompt -> 3 masks, loss on
  the best, IoU-head MSE; BCE + dice instead of focal x20 + dice). Faithful, but on this CPU
  budget it did not leave the degenerate "one mask = everything" solution (train IoU ~0.05 after
  200 steps; ~0.2 after 60 steps overfitting 8 images with box prompts), so it is kept only as an
  option for a machine with more compute.

Architecture (mirrors segment_anything/build_sam.py ``_build_sam``; our sizes, the paper is silent):
* ``ImageEncoderViT``: img_size 256 (mini images, 128 px, upsampled 2x as SAM upsamples to 1024),
  patch 16 -> 16 x 16 embedding grid (= the tiny CLIP's 16 x 16 tokens at 128 px), embed_dim 128,
  depth 6, 4 heads, window 4, global attention in blocks [1, 3, 5] (ViT-L: [5, 11, 17, 23], the
  last block of each quarter; here the last of each third), rel-pos, neck out_chans 64.
  Guidance taps as in AerOSeg's SAM-L layers 8 / 16 / 24 (of 24): blocks 2 / 4 / 6 (1-based),
  i.e. the outputs of ``image_encoder.blocks[1]``, ``[3]``, ``[5]`` (and the neck output).
* ``PromptEncoder`` / ``MaskDecoder`` / ``TwoWayTransformer`` at prompt dim 64 (mlp 256, 4 heads).

Reproduce (1 CPU thread)::

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

from aeroseg import mini  # noqa: E402

NAME = 'sam_vit_tiny_mini'  # read by configs/_base_/scale/mini.py
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
    """segment_anything's Sam at the sizes of ``cfg`` (same constructor calls as ``_build_sam``)."""
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


# ------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------
def components(cmap: np.ndarray) -> np.ndarray:
    """4-connected components of equal concept ids (vectorised min-label propagation)."""
    H, W = cmap.shape
    lab = np.arange(H * W, dtype=np.int64).reshape(H, W)
    big = np.iinfo(np.int64).max
    same_v = cmap[1:] == cmap[:-1]
    same_h = cmap[:, 1:] == cmap[:, :-1]
    while True:
        new = lab.copy()
        np.minimum(new[1:], np.where(same_v, lab[:-1], big), out=new[1:])
        np.minimum(new[:-1], np.where(same_v, lab[1:], big), out=new[:-1])
        np.minimum(new[:, 1:], np.where(same_h, lab[:, :-1], big), out=new[:, 1:])
        np.minimum(new[:, :-1], np.where(same_h, lab[:, 1:], big), out=new[:, :-1])
        new = new.ravel()[new.ravel()].reshape(H, W)  # pointer jumping
        if np.array_equal(new, lab):
            return lab
        lab = new


def build_pool(n: int, seed: int, stream: int, size: int = 128):
    """n scenes (thirds iSAID / DLRSD / OEM worlds) and their class-agnostic region maps."""
    imgs, comps = [], []
    for i in range(n):
        rng = np.random.default_rng([seed, stream, i])
        img, cmap, _ = mini.render_scene(mini.MINI_DATASETS[i % 3], rng, size=size)
        imgs.append(img)
        comps.append(components(cmap))
    return np.stack(imgs), np.stack(comps)


def to_input(imgs: np.ndarray, size: int) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(imgs)).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(size, size), mode='bilinear', align_corners=False)
    return (x - torch.tensor(SAM_MEAN).view(1, 3, 1, 1)) / torch.tensor(SAM_STD).view(1, 3, 1, 1)


def token_regions(comps: np.ndarray, grid: int, min_purity: float = 0.75):
    """Per token (B, grid*grid): the region under its centre and whether >= min_purity of the
    token's pixels belong to it (boundary tokens are left out of the loss)."""
    B, H, _ = comps.shape
    p = H // grid
    blocks = comps.reshape(B, grid, p, grid, p).transpose(0, 1, 3, 2, 4).reshape(B, grid * grid, p * p)
    centre = blocks[:, :, (p // 2) * p + p // 2]
    purity = (blocks == centre[..., None]).mean(-1)
    return torch.from_numpy(centre), torch.from_numpy(purity >= min_purity)


def segcontrast_loss(feat: torch.Tensor, regions: torch.Tensor, valid: torch.Tensor, tau: float = 0.1):
    """Supervised-contrastive loss within each image over valid tokens; positives = same region."""
    z = F.normalize(feat.flatten(2).transpose(1, 2), dim=-1)  # B, N, C
    losses = []
    for zb, rb, vb in zip(z, regions, valid):
        zb, rb = zb[vb], rb[vb]
        if len(rb) < 2:
            continue
        sim = zb @ zb.T / tau
        eye = torch.eye(len(rb), dtype=torch.bool)
        logp = sim.masked_fill(eye, -1e9).log_softmax(1)
        pos = (rb[:, None] == rb[None, :]) & ~eye
        has = pos.any(1)
        if has.any():
            losses.append(-(logp * pos).sum(1)[has] / pos.sum(1)[has])
    return torch.cat(losses).mean()


@torch.no_grad()
def pair_auc(sam, imgs, comps, seed: int, pairs: int = 4000) -> float:
    """Class-agnostic segment awareness of the neck features on held-out scenes: probability that
    two tokens of the same region are more similar than two tokens of different regions."""
    sam.eval()
    g = SAM_CFG['img_size'] // SAM_CFG['patch_size']
    feat = F.normalize(sam.image_encoder(to_input(imgs, SAM_CFG['img_size'])).flatten(2), dim=1)
    reg, val = token_regions(comps, g)
    rng = np.random.default_rng([seed, 99])
    same, diff = [], []
    for f, r, v in zip(feat, reg, val):
        idx = np.flatnonzero(v.numpy())
        a, b = rng.choice(idx, pairs // len(imgs)), rng.choice(idx, pairs // len(imgs))
        keep = a != b
        s = (f[:, a[keep]] * f[:, b[keep]]).sum(0)
        eq = (r[a[keep]] == r[b[keep]]).numpy()
        same.append(s[eq]), diff.append(s[~eq])
    same, diff = torch.cat(same), torch.cat(diff)
    sam.train()
    return float((same[:, None] > diff[None, :]).float().mean())


# ------------------------------------------------------------------------------------------
# the 'prompt' objective (SAM's task; see the module docstring)
# ------------------------------------------------------------------------------------------
def sample_prompts(comp: np.ndarray, rng, k: int, min_px: int = 12, out: int = 64):
    ids, cnt = np.unique(comp, return_counts=True)
    ids = ids[cnt >= min_px]
    pts, tgts = [], []
    for c in rng.choice(ids, size=k, replace=len(ids) < k):
        m = comp == c
        ys, xs = np.nonzero(m)
        j = rng.integers(len(ys))
        pts.append((xs[j] * 2 + 1.0, ys[j] * 2 + 1.0))
        tgts.append(m)
    t = F.interpolate(torch.from_numpy(np.stack(tgts)).float()[:, None], size=(out, out), mode='area')[:, 0]
    return torch.tensor(pts, dtype=torch.float32), t


def prompt_loss(sam, emb, comps, rng, k):
    total = 0.0
    for e, comp in zip(emb, comps):
        pts, tgt = sample_prompts(comp, rng, k)
        sparse, dense = sam.prompt_encoder(points=(pts[:, None], torch.ones(len(pts), 1)), boxes=None, masks=None)
        logits, iou_pred = sam.mask_decoder(image_embeddings=e[None], image_pe=sam.prompt_encoder.get_dense_pe(),
                                            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                            multimask_output=True)
        t = tgt[:, None].expand_as(logits)
        p = logits.sigmoid()
        per = F.binary_cross_entropy_with_logits(logits, t, reduction='none').mean((2, 3)) + \
            1 - (2 * (p * t).sum((2, 3)) + 1) / (p.sum((2, 3)) + t.sum((2, 3)) + 1)
        best = per.argmin(1)
        ar = torch.arange(len(best))
        hard, tt = logits[ar, best] > 0, t[ar, best] > 0.5
        iou = (hard & tt).sum((1, 2)) / ((hard | tt).sum((1, 2)) + 1e-6)
        total = total + (per[ar, best].mean() + F.mse_loss(iou_pred[ar, best], iou.float())) / len(emb)
    return total


# ------------------------------------------------------------------------------------------
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', type=Path, default=REPO / 'aeroseg' / 'assets' / 'mini')
    ap.add_argument('--objective', choices=('segcontrast', 'prompt'), default='segcontrast')
    ap.add_argument('--steps', type=int, default=300)
    ap.add_argument('--images', type=int, default=8, help='images per step')
    ap.add_argument('--prompts', type=int, default=6, help="point prompts per image ('prompt')")
    ap.add_argument('--lr', type=float, default=1e-3)
    ap.add_argument('--wd', type=float, default=0.05)
    ap.add_argument('--warmup', type=int, default=20)
    ap.add_argument('--pool', type=int, default=1500)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--threads', type=int, default=1)
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
    vimgs, vcomps = build_pool(48, args.seed, PRETRAIN_STREAM + 1)  # held-out scenes
    log(f'pools in {time.time() - t0:.0f}s')
    log(f'random init: held-out same-region token-pair AUC {pair_auc(sam, vimgs, vcomps, args.seed):.3f}')

    params = sam.image_encoder.parameters() if args.objective == 'segcontrast' else sam.parameters()
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.wd)
    rng = np.random.default_rng([args.seed, PRETRAIN_STREAM, 10 ** 9])
    g = SAM_CFG['img_size'] // SAM_CFG['patch_size']
    t0, c0, ema = time.time(), time.process_time(), None
    for step in range(args.steps):
        lr = args.lr * ((step + 1) / args.warmup if step < args.warmup else
                        0.5 * (1 + math.cos(math.pi * (step - args.warmup) / max(1, args.steps - args.warmup))))
        for grp in opt.param_groups:
            grp['lr'] = lr
        idx = rng.integers(0, len(imgs), args.images)
        ks = rng.integers(0, 4, args.images)
        bimg = np.stack([np.rot90(imgs[i], k) for i, k in zip(idx, ks)])
        bcomp = np.stack([np.rot90(comps[i], k) for i, k in zip(idx, ks)])
        emb = sam.image_encoder(to_input(bimg, SAM_CFG['img_size']))
        if args.objective == 'segcontrast':
            loss = segcontrast_loss(emb, *token_regions(bcomp, g))
        else:
            loss = prompt_loss(sam, emb, bcomp, rng, args.prompts)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        if step % 20 == 0 or step == args.steps - 1:
            el = time.time() - t0
            log(f'step {step}/{args.steps} loss {loss.item():.3f} (ema {ema:.3f}) {el / (step + 1):.2f}s/step '
                f'elapsed {el / 60:.1f} min (CPU {(time.process_time() - c0) / 60:.1f} min)')
    log(f'trained {args.steps} steps in {(time.time() - t0) / 60:.1f} min wall, '
        f'{(time.process_time() - c0) / 60:.1f} min CPU; held-out token-pair AUC {pair_auc(sam, vimgs, vcomps, args.seed):.3f}')
    sd = {k: v.detach().to(torch.float16).clone() for k, v in sam.state_dict().items()}
    path = out / f'{NAME}.pth'
    torch.save(sd, path)
    (out / f'{NAME}.json').write_text(json.dumps(SAM_CFG, indent=4) + '\n')
    sam2 = build_tiny_sam()
    sam2.load_state_dict(torch.load(path, map_location='cpu', weights_only=True))
    log(f'saved {path} ({path.stat().st_size / 1e6:.1f} MB, fp16); reloaded: held-out token-pair AUC '
        f'{pair_auc(sam2, vimgs, vcomps, args.seed):.3f}')
    fh.close()


if __name__ == '__main__':
    main()
