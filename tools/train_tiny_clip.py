"""Pretrain the mini world's tiny CLIP (open_clip ``CLIP``, ViT 8-px patches) with open_clip's ClipLoss.

``--tower convnext`` trains SED's tiny ConvNeXt CLIP instead (``aeroseg-mini-convnext``: open_clip's
timm tower over ``aeroseg.models.convnext_clip.aeroseg_mini_convnext``, the class of
``convnext_base_w``), with the same data, objective and schedule::

    .venv/bin/python tools/train_tiny_clip.py --tower convnext --crop-steps 700 --full-steps 80 --seed 0

Why: the suite's CPU regression needs a CLIP that knows every class of mini iSAID / DLRSD / OEM by
name, seen and unseen, the way web pretraining made real CLIP know them, so that open-vocabulary
transfer can be measured on the mini datasets. Image-caption pairs come from the same world
generator (``aeroseg.mini``) with a pretraining seed stream disjoint from the mini
datasets' splits; captions name the classes present ("an aerial image of a harbor, a ship and a
bridge") in varied templates, including the paper's four remote-sensing templates and CAT-Seg's
"a photo of a {} in the scene".

Output (``--out``, default ``aeroseg/assets/mini``): ``<name>.json`` (open_clip model config) and
``<name>.pt`` (plain state dict, fp16 storage), loadable the way users load real weights::

    open_clip.add_model_config('aeroseg/assets/mini')
    model = open_clip.create_model('aeroseg-mini-ViT-8', pretrained='aeroseg/assets/mini/aeroseg-mini-ViT-8.pt')

``<name>_train_log.txt`` and ``<name>_eval.md`` (the numbers quoted in ``aeroseg/assets/mini/README.md``).

Training: ClipLoss only; most steps on native-scale 64-px crops whose tokens keep the positional
embeddings of their place in the 128-px image (4x cheaper per step, model unchanged), then a few
steps on full 128-px scenes. Reproduce (15 min of CPU on 1 thread; 31 min wall on the shared,
loaded 2-core machine)::

    .venv/bin/python tools/train_tiny_clip.py --crop-steps 700 --full-steps 80 --seed 0

Evaluation only (image-level top-k precision and per-class AUC, dense value-path and plain-token
zero-shot mIoU on the mini datasets' val splits, never seen in pretraining; the checkpoint and the
seeded random init)::

    .venv/bin/python tools/train_tiny_clip.py --eval-only
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Dict, Sequence

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aeroseg import mini  # noqa: E402
from aeroseg.datasets.splits import get_split  # noqa: E402
from aeroseg.models.clip_backbone import value_path_block  # noqa: E402
from aeroseg.models.convnext_clip import convnext_features  # noqa: E402  (registers aeroseg_mini_convnext)
from aeroseg.models.prompts import prompt_average  # noqa: E402

NAME = 'aeroseg-mini-ViT-8'
# docs/design.md §4 feasibility recipe, at 128 px (mini images) instead of 64 px. The paper is silent
# on any of this (it uses OpenAI CLIP ViT-B/16); every number here is our choice.
MODEL_CFG = {
    'embed_dim': 128,
    'vision_cfg': {'image_size': 128, 'layers': 4, 'width': 128, 'head_width': 32, 'patch_size': 8},
    'text_cfg': {'context_length': 32, 'vocab_size': 49408, 'width': 128, 'heads': 4, 'layers': 4},
}
# --tower convnext: the tiny ConvNeXt CLIP SED needs (open_clip's timm tower, the class of
# convnext_base_w / convnext_base_w_320: open_clip model_configs/convnext_base_w_320.json with
# timm_pool '' and a linear projection); trunk aeroseg.models.convnext_clip.aeroseg_mini_convnext
# (ConvNeXt-B's block and width ratios, 32/64/128/256, depths 1/1/2/1). Same text tower and embed
# width as the ViT, so the two differ only in the image tower.
TOWERS = {
    'vit': (NAME, MODEL_CFG),
    'convnext': ('aeroseg-mini-convnext', {
        'embed_dim': 128,
        'vision_cfg': {'timm_model_name': 'aeroseg_mini_convnext', 'timm_model_pretrained': False,
                       'timm_pool': '', 'timm_proj': 'linear', 'timm_drop': 0.0, 'timm_drop_path': 0.0,
                       'image_size': 128},
        'text_cfg': dict(MODEL_CFG['text_cfg']),
    }),
}
# Prompt sets used to evaluate: the paper's remote-sensing templates (Sec. 3.1) and CAT-Seg/OVRS's.
RS_TEMPLATES = ('a satellite image of a {}.', 'a land use image of a {}.',
                'a remote sensing image of a {}.', 'an aerial image of a {}.')
SCENE_TEMPLATES = ('a photo of a {} in the scene.',)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # open_clip.constants.OPENAI_DATASET_MEAN
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
PRETRAIN_STREAM = 7777  # seed-sequence marker: disjoint from the datasets' [seed, ds, split, i]


def log(msg: str, fh=None):
    line = f'[{time.strftime("%H:%M:%S")}] {msg}'
    print(line, flush=True)
    if fh is not None:
        fh.write(line + '\n')
        fh.flush()


# ------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------
def build_pool(n: int, seed: int, size: int):
    """n pretraining scenes (thirds iSAID / DLRSD / OEM worlds, random scene types)."""
    imgs = np.empty((n, size, size, 3), np.uint8)
    cmaps = np.empty((n, size, size), np.uint8)
    for i in range(n):
        ds = mini.MINI_DATASETS[i % 3]
        rng = np.random.default_rng([seed, PRETRAIN_STREAM, i])
        img, cmap, _ = mini.render_scene(ds, rng, size=size)
        imgs[i] = img
        cmaps[i] = np.where(cmap < 0, 255, cmap).astype(np.uint8)
    return imgs, cmaps


def to_tensor(imgs: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def sample_batch(imgs, cmaps, rng: np.random.Generator, batch: int, crop: int = None, patch: int = 8):
    """Augmented (rot90 / flip) scenes or native-scale crops, with fresh captions of what is in view.

    With ``crop`` (a multiple of ``patch``), each sample is a crop at a random patch-aligned
    offset; ``pos_idx`` (B, (crop/patch)^2) gives the crop's token positions in the full image's
    patch grid, so the crop's tokens get the positional embeddings they have in the full image.
    """
    size = imgs.shape[1]
    g = size // patch
    idx = rng.integers(0, len(imgs), batch)
    xs, caps, pos = [], [], []
    for i in idx:
        k, flip = int(rng.integers(4)), bool(rng.integers(2))
        im, cm = np.rot90(imgs[i], k), np.rot90(cmaps[i], k)
        if flip:
            im, cm = im[:, ::-1], cm[:, ::-1]
        if crop:
            c = crop // patch
            oy, ox = rng.integers(0, g - c + 1, 2)
            im = im[oy * patch:(oy + c) * patch, ox * patch:(ox + c) * patch]
            cm = cm[oy * patch:(oy + c) * patch, ox * patch:(ox + c) * patch]
            pos.append(((oy + np.arange(c))[:, None] * g + (ox + np.arange(c))[None, :]).ravel())
        cm = cm.astype(np.int16)
        cm[cm == 255] = -1
        cap, _ = mini.make_caption(cm, rng)
        xs.append(np.ascontiguousarray(im))
        caps.append(cap)
    pos_idx = torch.from_numpy(np.stack(pos)) if crop else None
    return to_tensor(np.stack(xs)), caps, pos_idx


def encode_image_crops(visual, x: torch.Tensor, pos_idx: torch.Tensor) -> torch.Tensor:
    """open_clip VisionTransformer.forward (``_embeds`` -> transformer -> ``_pool`` -> proj, v3.3.0)
    with the positional embeddings gathered at the crop's token positions (``pos_idx``)."""
    x = visual.conv1(x)
    B, D = x.shape[:2]
    x = x.reshape(B, D, -1).permute(0, 2, 1)
    pe = visual.positional_embedding.to(x.dtype)
    x = x + pe[1:][pos_idx]
    cls = (visual.class_embedding.to(x.dtype) + pe[0]).expand(B, 1, D)
    x = visual.ln_pre(visual.patch_dropout(torch.cat([cls, x], dim=1)))
    x = visual.transformer(x)
    pooled, _ = visual._pool(x)
    return pooled @ visual.proj if visual.proj is not None else pooled


def encode_text_trimmed(model, text: torch.Tensor) -> torch.Tensor:
    """open_clip CLIP.encode_text (v3.3.0) on the text cut after the batch's last EOT token.

    Exactly equal to the full-context result (causal attention: positions after a sequence's EOT
    never reach its pooled EOT feature); saves the padding's compute during training."""
    L = int(text.argmax(dim=-1).max()) + 1  # EOT has the highest token id
    text = text[:, :L]
    x = model.token_embedding(text) + model.positional_embedding[:L]
    x = model.transformer(x, attn_mask=model.attn_mask[:L, :L])
    x = model.ln_final(x)
    x = x[torch.arange(x.shape[0]), text.argmax(dim=-1)]
    return x @ model.text_projection


# ------------------------------------------------------------------------------------------
# evaluation
# ------------------------------------------------------------------------------------------
@torch.no_grad()
def text_classifier(model, tokenizer, classes: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
    """(K, E) prompt-ensembled, L2-normalised class embeddings."""
    return torch.stack([prompt_average(model.encode_text(tokenizer([tpl.format(c) for tpl in templates])))
                        for c in classes])


@torch.no_grad()
def dense_features(visual, x: torch.Tensor, value_path: bool = True, convnext_size: int = 256) -> torch.Tensor:
    """(B, E, h, w) dense embeddings of open_clip's VisionTransformer or timm ConvNeXt tower.

    ViT: value_path=True follows CAT-Seg's last-block ``forward_dense``
    (cat_seg/third_party/model_vpt.py, ResidualAttentionBlock.forward_dense): the last block's
    attention is replaced by its value projection + out_proj, the residual is the CLS token, then
    the block's MLP, ``ln_post`` and ``proj``. value_path=False takes the plain final tokens.
    ConvNeXt: SED's ``clip_vis_dense`` (``convnext_features``) on the image resized to
    ``convnext_size`` (SED's mini input: 8 x 8 at 1/32); value_path is ignored (no attention).
    """
    if not hasattr(visual, 'transformer'):
        x = F.interpolate(x, size=(convnext_size,) * 2, mode='bilinear', align_corners=False)
        return convnext_features(visual, x)['clip_vis_dense']
    B, _, H, W = x.shape
    p = visual.conv1.kernel_size[0]
    h = visual._embeds(x)
    blocks = visual.transformer.resblocks
    for blk in blocks[:-1]:
        h = blk(h)
    blk = blocks[-1]
    if value_path:
        D = h.shape[-1]
        h = value_path_block(blk, h, blk.attn.in_proj_weight[2 * D:], blk.attn.in_proj_bias[2 * D:])
    else:
        h = blk(h)
    tok = visual.ln_post(h[:, 1:]) @ visual.proj
    return tok.transpose(1, 2).reshape(B, -1, H // p, W // p)


def load_split_arrays(name: str, split: str = 'val', limit: int = None):
    from PIL import Image
    root = mini.ensure_mini(name)
    img_suffix, seg_suffix = mini.FORMATS[name]
    files = sorted((root / 'img_dir' / split).glob('*' + img_suffix))[:limit]
    imgs = np.stack([np.asarray(Image.open(f).convert('RGB')) for f in files])
    labs = np.stack([np.asarray(Image.open(root / 'ann_dir' / split / (f.stem + seg_suffix))) for f in files])
    return imgs, labs


def image_topk_precision(scores: torch.Tensor, labs: np.ndarray, subset: Sequence[int], min_px: int = 16):
    """Top-k precision restricted to the class subset: per image with k present subset classes
    (>= min_px pixels), the fraction of the k best-scored subset classes that are present.
    Returns (precision, chance, n_images)."""
    subset = list(subset)
    precs, chance = [], []
    for s, lab in zip(scores, labs):
        ids, cnt = np.unique(lab, return_counts=True)
        present = {int(i) for i, c in zip(ids, cnt) if i != 255 and c >= min_px and int(i) in subset}
        if not present:
            continue
        k = len(present)
        top = torch.topk(s[subset], k).indices.tolist()
        precs.append(len({subset[t] for t in top} & present) / k)
        chance.append(k / len(subset))
    return float(np.mean(precs)), float(np.mean(chance)), len(precs)


def class_auc(scores: torch.Tensor, labs: np.ndarray, subset: Sequence[int], min_px: int = 16):
    """Mean over the subset's classes of the ROC-AUC of ranking images by the class score
    (present = >= min_px pixels); classes present in all or no images are skipped. Unlike top-k
    precision it does not reward a constant, class-frequency ranking (chance = 0.5)."""
    aucs = []
    for k in subset:
        pos = np.array([(lab == k).sum() >= min_px for lab in labs])
        if pos.all() or not pos.any():
            continue
        s = scores[:, k]
        sp, sn = s[torch.from_numpy(pos)], s[torch.from_numpy(~pos)]
        aucs.append(float((sp[:, None] > sn[None, :]).float().mean() + 0.5 * (sp[:, None] == sn[None, :]).float().mean()))
    return float(np.mean(aucs))


def miou(pred: np.ndarray, lab: np.ndarray, k: int):
    m = lab != 255
    cm = np.bincount(lab[m].astype(np.int64) * k + pred[m], minlength=k * k).reshape(k, k)
    inter = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - inter
    with np.errstate(invalid='ignore', divide='ignore'):
        iou = inter / union
    return iou  # nan where a class has no gt and no prediction


@torch.no_grad()
def evaluate(model, tokenizer, limit: int = None, datasets=mini.MINI_DATASETS) -> Dict[str, dict]:
    """Image-level top-k precision (both prompt sets) and dense zero-shot mIoU (value path and plain
    tokens, remote-sensing prompts) on the mini val splits; seen / unseen split per splits.py."""
    model.eval()
    out = {}
    for ds in datasets:
        sp = get_split(ds)
        imgs, labs = load_split_arrays(ds, 'val', limit)
        x = to_tensor(imgs)
        feats = F.normalize(model.encode_image(x), dim=-1)
        res = {}
        for pname, tpls in (('rs', RS_TEMPLATES), ('scene', SCENE_TEMPLATES)):
            txt = text_classifier(model, tokenizer, sp.classes, tpls)
            scores = feats @ txt.T
            for part, ids in (('seen', sp.seen), ('unseen', sp.unseen)):
                p, c, n = image_topk_precision(scores, labs, ids)
                res[f'img_{pname}_{part}'] = p
                res[f'img_chance_{part}'] = c
                res[f'auc_{pname}_{part}'] = class_auc(scores, labs, ids)
                if pname == 'rs':  # constant ranking by the val images' own class frequencies
                    freq = torch.tensor([np.mean([(lab == k).sum() >= 16 for lab in labs])
                                         for k in range(sp.num_classes)]).expand(len(labs), -1)
                    res[f'img_prior_{part}'] = image_topk_precision(freq, labs, ids)[0]
        txt = text_classifier(model, tokenizer, sp.classes, RS_TEMPLATES)
        for path, vp in (('value', True), ('plain', False)):
            d = F.normalize(dense_features(model.visual, x, value_path=vp), dim=1)
            logits = torch.einsum('bchw,kc->bkhw', d, txt)
            logits = F.interpolate(logits, size=labs.shape[1:], mode='bilinear', align_corners=False)
            iou = miou(logits.argmax(1).numpy(), labs, sp.num_classes)
            res[f'dense_{path}_seen'] = float(np.nanmean(iou[list(sp.seen)]) * 100)
            res[f'dense_{path}_unseen'] = float(np.nanmean(iou[list(sp.unseen)]) * 100)
        out[ds] = res
    return out


def format_eval(ev: Dict[str, dict]) -> str:
    """Markdown table; each cell 'seen / unseen'."""
    rows = ['| dataset | img top-k prec., RS prompts | "in the scene" prompt | chance | class-frequency '
            'prior | per-class AUC, RS prompts | "in the scene" | dense mIoU, value path | plain tokens |',
            '|---|---|---|---|---|---|---|---|---|']
    for ds, r in ev.items():
        rows.append(f'| {ds} | {r["img_rs_seen"]:.2f} / {r["img_rs_unseen"]:.2f} | '
                    f'{r["img_scene_seen"]:.2f} / {r["img_scene_unseen"]:.2f} | '
                    f'{r["img_chance_seen"]:.2f} / {r["img_chance_unseen"]:.2f} | '
                    f'{r["img_prior_seen"]:.2f} / {r["img_prior_unseen"]:.2f} | '
                    f'{r["auc_rs_seen"]:.2f} / {r["auc_rs_unseen"]:.2f} | '
                    f'{r["auc_scene_seen"]:.2f} / {r["auc_scene_unseen"]:.2f} | '
                    f'{r["dense_value_seen"]:.1f} / {r["dense_value_unseen"]:.1f} | '
                    f'{r["dense_plain_seen"]:.1f} / {r["dense_plain_unseen"]:.1f} |')
    return '\n'.join(rows)


# ------------------------------------------------------------------------------------------
# model i/o
# ------------------------------------------------------------------------------------------
def create(out_dir: Path, pretrained: str = None):
    import open_clip
    open_clip.add_model_config(out_dir)
    model = open_clip.create_model(NAME, pretrained=pretrained)
    return model, open_clip.get_tokenizer(NAME)


def save_checkpoint(model, path: Path, used_tokens: torch.Tensor):
    """fp16 state dict; token-embedding rows never seen in pretraining captions are zeroed
    (they were never trained; zero rows keep the file small once compressed by git)."""
    sd = {k: v.detach().to(torch.float16).clone() for k, v in model.state_dict().items()}
    keep = torch.zeros(sd['token_embedding.weight'].shape[0], dtype=torch.bool)
    keep[used_tokens] = True
    sd['token_embedding.weight'][~keep] = 0
    torch.save(sd, path)


def param_groups(model, wd: float):
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        # open_clip/training/main.py: no weight decay for gains, biases, embeddings' scale params
        (no_decay if (p.ndim < 2 or 'bn' in n or 'ln' in n or 'bias' in n or 'logit_scale' in n)
         else decay).append(p)
    return [{'params': no_decay, 'weight_decay': 0.0}, {'params': decay, 'weight_decay': wd}]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', type=Path, default=REPO / 'aeroseg' / 'assets' / 'mini')
    ap.add_argument('--tower', choices=sorted(TOWERS), default='vit',
                    help='image tower: vit (aeroseg-mini-ViT-8) or convnext (aeroseg-mini-convnext, for SED)')
    ap.add_argument('--crop-steps', type=int, default=700,
                    help='steps on native-scale crops (cheap: (crop/8)^2 tokens instead of 256)')
    ap.add_argument('--full-steps', type=int, default=80, help='final steps on full 128-px scenes')
    ap.add_argument('--crop', type=int, default=64)
    ap.add_argument('--batch', type=int, default=128)
    ap.add_argument('--full-batch', type=int, default=64)
    ap.add_argument('--lr', type=float, default=1e-3)
    ap.add_argument('--wd', type=float, default=0.1)
    ap.add_argument('--warmup', type=int, default=40)
    ap.add_argument('--pool', type=int, default=6000, help='pretraining scenes (rot90/flip + fresh captions per draw)')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--threads', type=int, default=1,
                    help='1 by default: on the oversubscribed shared CPU, 2 threads spent ~3x the CPU per step')
    ap.add_argument('--bf16', action='store_true', help='CPU bf16 autocast (faster where supported)')
    ap.add_argument('--eval-limit', type=int, default=None, help='val images per dataset in evaluation')
    ap.add_argument('--eval-only', action='store_true')
    ap.add_argument('--no-save', action='store_true')
    args = ap.parse_args(argv)

    global NAME, MODEL_CFG
    NAME, MODEL_CFG = TOWERS[args.tower]
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    cfg_path, ckpt_path = out / f'{NAME}.json', out / f'{NAME}.pt'

    if args.eval_only:  # the checkpoint and the same seeded random init, into <name>_eval.md
        model, tok = create(out, pretrained=str(ckpt_path))
        text = f'trained ({ckpt_path.name}):\n\n' + format_eval(evaluate(model, tok, args.eval_limit))
        torch.manual_seed(args.seed)
        model, tok = create(out)
        text += f'\n\nrandom init (seed {args.seed}):\n\n' + format_eval(evaluate(model, tok, args.eval_limit))
        print(text)
        if not args.no_save:
            (out / f'{NAME}_eval.md').write_text(text + '\n')
        return

    cfg_path.write_text(json.dumps(MODEL_CFG, indent=4) + '\n')
    fh = open(out / f'{NAME}_train_log.txt', 'w')
    log(f'args: {vars(args)}', fh)
    log(f'model config: {json.dumps(MODEL_CFG)}', fh)
    t_start = time.time()
    model, tokenizer = create(out)
    log(f'params: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M', fh)
    ev0 = evaluate(model, tokenizer, args.eval_limit)
    log('random init:\n' + format_eval(ev0), fh)

    t0 = time.time()
    imgs, cmaps = build_pool(args.pool, args.seed, MODEL_CFG['vision_cfg']['image_size'])
    log(f'pool of {args.pool} scenes in {time.time() - t0:.0f}s', fh)

    from open_clip.loss import ClipLoss
    loss_fn = ClipLoss()
    opt = torch.optim.AdamW(param_groups(model, args.wd), lr=args.lr, betas=(0.9, 0.98), eps=1e-6)
    steps = args.crop_steps + args.full_steps
    sched = lambda s: (s + 1) / args.warmup if s < args.warmup else \
        0.5 * (1 + math.cos(math.pi * (s - args.warmup) / max(1, steps - args.warmup)))
    rng = np.random.default_rng([args.seed, PRETRAIN_STREAM, 10 ** 9])
    used = torch.zeros(MODEL_CFG['text_cfg']['vocab_size'], dtype=torch.bool)
    model.train()
    t0, c0, ema = time.time(), time.process_time(), None
    for step in range(steps):
        for g in opt.param_groups:
            g['lr'] = args.lr * sched(step)
        crop = args.crop if step < args.crop_steps else None
        x, caps, pos_idx = sample_batch(imgs, cmaps, rng, args.batch if crop else args.full_batch, crop)
        text = tokenizer(caps)
        used[text.unique()] = True
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=args.bf16):
            if crop and pos_idx is not None and hasattr(model.visual, 'positional_embedding'):
                fi = F.normalize(encode_image_crops(model.visual, x, pos_idx), dim=-1)
            else:
                fi = model.encode_image(x, normalize=True)
            ft = F.normalize(encode_text_trimmed(model, text), dim=-1)
        loss = loss_fn(fi.float(), ft.float(), model.logit_scale.exp())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():  # open_clip/training/train.py: clamp to ln(100)
            model.logit_scale.clamp_(0, math.log(100))
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        if step % 20 == 0 or step == steps - 1 or step == args.crop_steps:
            el = time.time() - t0
            log(f'step {step}/{steps} {"crop" if crop else "full"} loss {loss.item():.3f} (ema {ema:.3f}) scale '
                f'{model.logit_scale.exp().item():.1f} lr {opt.param_groups[0]["lr"]:.2e} '
                f'{el / (step + 1):.2f}s/step, elapsed {el / 60:.1f} min (CPU {(time.process_time() - c0) / 60:.1f} min)', fh)
    train_min, train_cpu = (time.time() - t0) / 60, (time.process_time() - c0) / 60
    ev = evaluate(model, tokenizer, args.eval_limit)
    log(f'trained {steps} steps in {train_min:.1f} min wall, {train_cpu:.1f} min CPU (total {(time.time() - t_start) / 60:.1f} min)', fh)
    log('trained (fp32, in memory):\n' + format_eval(ev), fh)
    if not args.no_save:
        save_checkpoint(model, ckpt_path, used.nonzero().flatten())
        model2, tok2 = create(out, pretrained=str(ckpt_path))
        ev2 = evaluate(model2, tok2, args.eval_limit)
        log(f'saved {ckpt_path} ({ckpt_path.stat().st_size / 1e6:.1f} MB, fp16, {int(used.sum())} token rows kept); '
            f'reloaded via open_clip.create_model(pretrained=...):\n' + format_eval(ev2), fh)
        (out / f'{NAME}_eval.md').write_text(f'trained ({ckpt_path.name}):\n\n' + format_eval(ev2) +
                                             f'\n\nrandom init (seed {args.seed}):\n\n' + format_eval(ev0) + '\n')
    fh.close()


if __name__ == '__main__':
    main()
