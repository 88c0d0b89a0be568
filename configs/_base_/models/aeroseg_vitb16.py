# AerOSeg (paper §3, §4.2), CLIP ViT-B/16 + SAM ViT-L guidance; built on OVRS:
#  * rotations 0/90/180/270 and the four remote-sensing prompt templates ('rs4', §3.1);
#  * SAM ViT-L image encoder at 1024, frozen; its last feature (the neck output, see
#    aeroseg/models/guidance.py) projected to guide spatial refinement, its 8th and 16th block
#    outputs feeding the attention-aware upsampling decoder (resized to 2x / 4x the cost grid);
#  * class refinement guided by the prompt-averaged text embeddings; two refinement blocks;
#  * semantic back-projection: class-wise refined features -> 3 linear layers with GELU -> SAM
#    feature; loss against the stop-gradient target. The loss form and weight are not legible in
#    our copy of the paper: MSE with weight 1.0 by default (config options). Measured on the mini
#    world (iSAID, 200 iterations): at weight 1 the MSE term is 10-30x the BCE term and, under
#    CAT-Seg's global grad-norm clip of 0.01, dominates the update: s/u-mIoU 9.0 / 10.9, against
#    18.2 / 20.0 at weight 0.1 and 22.5 / 34.7 without the term (Table 3 Config-A). Tune
#    model.back_projection.loss_weight before trusting Table 3's Config-B/C rows.
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
                         loss_weight=1.0, hidden_dim=512))
