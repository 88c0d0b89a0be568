# AerOSeg (paper §3, §4.2), CLIP ViT-B/16 + SAM ViT-L guidance; built on OVRS:
#  * rotations 0/90/180/270 and the four remote-sensing prompt templates ('rs4', §3.1);
#  * SAM ViT-L image encoder at 1024, frozen; its last feature (the neck output, see
#    aeroseg/models/guidance.py) projected to guide spatial refinement, its 8th and 16th block
#    outputs feeding the attention-aware upsampling decoder (resized to 2x / 4x the cost grid);
#  * class refinement guided by the prompt-averaged text embeddings; two refinement blocks;
#  * semantic back-projection: class-wise refined features -> 3 linear layers with GELU -> SAM
#    feature; loss against the stop-gradient target. The loss form and weight are not legible in
#    our copy of the paper: MSE (option loss_type) with weight 0.01 (option loss_weight), OUR
#    choice by a sweep on the mini world (docs/measurements.md, "Back-projection loss weight":
#    at weight 1 the term dominates the update and unseen-class IoU collapses);
#  * optimiser as CAT-Seg (schedules/catseg_adamw.py): AdamW 2e-4, CLIP x0.01 with Q/V only.
# Test: OVRS's sliding window (AerOSeg builds on OVRS; the paper does not state its protocol).
_base_ = ['./ovrs_vitb16.py']
model = dict(
    templates='rs4',
    guidance=dict(_delete_=True, type='SAMGuidanceEncoder', variant='vit_l',
                  checkpoint='checkpoints/sam/sam_vit_l_0b3195.pth',
                  inter_indices=(7, 15),  # paper: outputs of the 8th and 16th layers
                  last='neck', frozen=True, img_size=1024),
    back_projection=dict(_delete_=True, type='SemanticBackProjection', target='sam', loss_type='mse',
                         loss_weight=0.01, hidden_dim=512))
