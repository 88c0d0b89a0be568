"""Mini world: seeded synthetic iSAID, DLRSD and OpenEarthMap in the processed on-disk format.

Why: the suite must train and evaluate every method on a CPU in minutes and still say whether
open-vocabulary transfer works. The mini datasets keep each real dataset's class names, ids and
seen/unseen split (read from :mod:`aeroseg.datasets.splits`), its processed layout and file
formats, and give every class its own learnable appearance. The tiny CLIP in
``aeroseg/assets/mini`` was pretrained on captioned scenes of the same world (a separate seed
stream, see ``tools/train_tiny_clip.py``), so unseen classes are known to it by name the way web
pretraining makes real CLIP know them.

World. One set of *concepts* shared by the three datasets; a concept fixes an appearance (colour,
texture, shape, size regime) and the names it goes by. Classes that are the same thing in two
datasets share a concept (iSAID ``plane`` = DLRSD ``airplane``; ``small vehicle`` = ``cars``;
``storage tank`` = ``tanks``; ``buildings`` = ``building``; ``trees`` = ``tree``; DLRSD ``water``
= OEM ``water``; ``bare soil`` = ``bareland``; ``field`` = ``agriculture land``). Size regimes:
vehicles 3-16 px, planes / helicopters / ships 10-25 px, courts and fields 20-50 px; stuff
(water, fields, trees, soil, ...) covers large smooth regions. Scenes follow a small set of scene
types per dataset with plausible co-occurrence (ships with harbors and water, planes on aprons,
cars on roads and parking lots, bridges over rivers, ...); the scene type cycles with the image
index so every class occurs in both splits.

Modules: ``concepts`` (the concepts, their names, concept -> label ids), ``canvas`` (a scene's
concept map and image, drawing primitives), ``textures`` (stuff appearance), ``painters`` (thing
appearance), ``scenes`` (one recipe module per dataset, ``render_scene``), ``captions`` (for the
tiny CLIP's pretraining), ``io`` (formats, stamp, ``generate_mini``, ``ensure_mini``,
``GENERATOR_VERSION``).

Format (processed layout, README "Datasets")::

    <root>/img_dir/{train,val}/<stem><img_suffix>    RGB, 128 x 128 by default
    <root>/ann_dir/{train,val}/<stem>.png            uint8 ids 0..K-1, 255 = ignore
    <root>/mini_stamp.json                           generator hash + parameters

* iSAID: ``.png`` images; everything that is not one of the 15 classes (land, water, roads,
  buildings) is 255, as in the processed iSAID where background becomes 255.
* DLRSD: ``.jpg`` images (JPEG quality 75, like the converted UC Merced images OVRS reads);
  every pixel is one of the 17 classes (the raw masks have no unlabelled value).
* OEM: ``.png`` images; OEM's ``unknown`` (official 0) is 255: ~30% of images carry unlabelled
  blobs whose pixels still show land cover, as in the real release.

The tiny CLIP and tiny SAM in ``aeroseg/assets/mini`` were pretrained on scenes of this generator
at ``GENERATOR_VERSION``: a change to how scenes look must bump it and retrain both
(``tools/train_tiny_clip.py``, ``tools/make_tiny_sam.py``); the zero-shot test guards the pairing.

Determinism: image ``i`` of split ``s`` draws from ``np.random.default_rng([seed, dataset, s, i])``,
so a dataset is byte-for-byte reproducible for a seed (same numpy / Pillow / zlib / libjpeg) and
independent of generation order. ``ensure_mini`` regenerates when the stamp (a hash of the source
of every module of this subpackage, the class lists and the parameters) changes.
"""
from .captions import make_caption
from .concepts import CONCEPTS, MINI_DATASETS, concept_names
from .io import FORMATS, GENERATOR_VERSION, ensure_mini, generate_mini, mini_stamp
from .scenes import render_scene

__all__ = ['ensure_mini', 'generate_mini', 'render_scene', 'make_caption', 'concept_names',
           'CONCEPTS', 'MINI_DATASETS', 'FORMATS', 'mini_stamp', 'GENERATOR_VERSION']
