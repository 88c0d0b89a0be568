"""Two doors for checkpoints under torch >= 2.6 (``weights_only=True`` by default).

* Outside weights (CLIP, SAM, SAM 2, a user's trained model) always load with
  ``weights_only=True``: a file carrying arbitrary pickled objects is refused with a clear error.
* The suite's own resume checkpoints, written by this run into its work dir, are the only ones
  loaded otherwise (see :mod:`aeroseg.utils.resume`), never by switching weights_only off globally.
"""
from __future__ import annotations

import os
import pickle
from typing import Dict, Mapping, Optional

import torch
from torch import nn

__all__ = ['load_external_state_dict', 'load_into', 'load_trained_weights', 'read_checkpoint_meta',
           'CheckpointError']


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unsafe, or does not fit the model."""


_WRAPPER_KEYS = ('state_dict', 'model', 'module')


def _torch_load(path: str, what: str, mmap: bool = False):
    """``torch.load(weights_only=True)`` with one-line errors naming the file and the fix."""
    if os.path.isdir(path):
        raise CheckpointError(f'{what}: {path!r} is a folder, not a checkpoint file: pass the '
                              f'.pth file inside it (e.g. {os.path.join(path, "final_weights.pth")!r}).')
    if not os.path.isfile(path):
        raise CheckpointError(f'{what}: file not found: {path!r}. Download the official file and '
                              f'pass its path (see README, "Checkpoints").')
    try:
        return torch.load(path, map_location='cpu', weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:  # weights_only refused a pickled object
        raise CheckpointError(
            f'{what}: {path!r} is not a plain tensor checkpoint and was refused by torch.load('
            f'weights_only=True): {str(e).splitlines()[0]} Outside weights must hold tensors only; '
            f're-save the state dict with torch.save(model.state_dict(), path).') from e
    except (RuntimeError, EOFError, ValueError, OSError) as e:
        if mmap and 'mmap' in str(e):  # a legacy (non-zip) file cannot be memory-mapped
            return _torch_load(path, what, mmap=False)
        raise CheckpointError(
            f'{what}: {path!r} is truncated or corrupt ({os.path.getsize(path):,} bytes; torch: '
            f'{str(e).splitlines()[0].split(". ")[0]}): copy or download it again, or retrain.') from e


def read_checkpoint_meta(path: str | os.PathLike, what: str = 'checkpoint') -> Dict:
    """The ``meta`` dict a suite checkpoint carries (``final_weights.pth``: config, config_hash,
    iter, scale); ``{}`` for a plain state dict. Memory-mapped, so a large file is not read
    whole; a truncated or unsafe file is a :class:`CheckpointError`."""
    obj = _torch_load(os.fspath(path), what, mmap=True)
    meta = obj.get('meta') if isinstance(obj, Mapping) else None
    return dict(meta) if isinstance(meta, Mapping) else {}


def load_external_state_dict(path: str | os.PathLike, what: str = 'checkpoint',
                             prefix: Optional[str] = None) -> Dict[str, torch.Tensor]:
    """Load a state dict from an outside file with ``weights_only=True``.

    Unwraps the usual containers (``{'state_dict': ...}``, ``{'model': ...}``) and, when
    ``prefix`` is given, keeps only keys under it (with the prefix stripped).
    """
    path = os.fspath(path)
    obj = _torch_load(path, what)
    for _ in range(2):
        if isinstance(obj, Mapping):
            for k in _WRAPPER_KEYS:
                if k in obj and isinstance(obj[k], Mapping):
                    obj = obj[k]
                    break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f'{what}: {path!r} does not hold a state dict of tensors '
                              f'(top-level type {type(obj).__name__}).')
    sd = dict(obj)
    if prefix is not None:
        sd = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
        if not sd:
            raise CheckpointError(f'{what}: {path!r} has no keys under prefix {prefix!r}.')
    return sd


def load_into(module: nn.Module, state_dict: Mapping[str, torch.Tensor], what: str = 'checkpoint',
              strict: bool = True) -> None:
    """Load ``state_dict`` into ``module``; a clear error listing every mismatch otherwise."""
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shape = [f'{k}: file {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}'
             for k in own if k in state_dict and state_dict[k].shape != own[k].shape]
    if shape or (strict and (missing or unexpected)):
        def _fmt(xs, n=8):
            return ', '.join(xs[:n]) + (f' ... (+{len(xs) - n} more)' if len(xs) > n else '')
        msg = [f'{what}: checkpoint keys do not match {type(module).__name__}.']
        if missing:
            msg.append(f'  missing in file ({len(missing)}): {_fmt(missing)}')
        if unexpected:
            msg.append(f'  unexpected in file ({len(unexpected)}): {_fmt(unexpected)}')
        if shape:
            msg.append(f'  shape mismatch ({len(shape)}): {_fmt(shape, 4)}')
        msg.append('  Check that the file is the official checkpoint for this model variant '
                   '(e.g. ViT-L weights for a ViT-L config).')
        raise CheckpointError('\n'.join(msg))
    module.load_state_dict(state_dict, strict=strict)


def load_trained_weights(module: nn.Module, path: str | os.PathLike, config: str) -> None:
    """A trained model's weights (``final_weights.pth`` or a plain / DDP-saved state dict) into
    ``module``, strictly: every key, equal shapes, none left over (``init_model`` and
    ``benchmarks.test``; mmengine's ``load_from`` would only warn and leave keys random)."""
    path = os.fspath(path)
    sd = load_external_state_dict(path, what=f'trained model {os.path.basename(path)}')
    sd = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in sd.items()}
    # Modules used only by the training loss whose size follows the TRAINING vocabulary
    # (``train_only_prefixes``, e.g. AerOSeg's back-projection: num seen classes x width) keep the
    # model's own weights when their shape differs: a cross-dataset test (Table 9) builds the model
    # for the target's classes and never calls them. Every other key stays strict.
    skip = tuple(getattr(module, 'train_only_prefixes', ()) or ())
    if skip:
        own = module.state_dict()
        kept = [k for k in sd if k.startswith(skip) and k in own and sd[k].shape != own[k].shape]
        if kept:
            sd = {**sd, **{k: own[k] for k in kept}}
            print(f'note: {len(kept)} training-only weight(s) under {", ".join(skip)} not loaded from '
                  f'{os.path.basename(path)} (sized for another training vocabulary; unused at test)',
                  flush=True)
    load_into(module, sd, what=f'trained model {path!r} for {os.path.basename(config)}')
