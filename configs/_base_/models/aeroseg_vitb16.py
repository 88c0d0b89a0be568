# AerOSeg (paper §3, §4.2), CLIP ViT-B/16 + SAM ViT-L guidance; built on OVRS:
#  * rotations 0/90/180/270 and the four remote-sensing prompt templates ('rs4', §3.1);
#  * SAM ViT-L image encoder at 1024, frozen; its last feature (the neck output, see
#    aeroseg/models/guidance.py) projected to guide spatial refinement, its 8th and 16th block
#    outputs feeding the attention-aware upsampling decoder (resized to 2x / 4x the cost grid);
#  * class refinement guided by the prompt-averaged text embeddings; two refinement blocks;
#  * semantic back-projection: class-wise refined features -> 3 linear layers with GELU -> SAM
#    feature; loss against the stop-gradient target. The loss form and weight are not legible in
#    our copy of the paper: MSE (config option loss_type) with weight 0.01 (option loss_weight),
#    OUR choice, measured on the mini world (benchmarks/ov_transfer.py protocol: 200 iterations,
#    seed 0, first 50 val images; s-mIoU / u-mIoU with the pretrained tiny CLIP):
#        weight     iSAID          DLRSD          OEM
#        1          9.0 / 10.9     22.1 / 18.5    20.0 / 17.7
#        0.1        18.2 / 20.0    -              -
#        0.01       21.1 / 24.4    24.9 / 22.7    32.9 / 10.7
#        0.001      20.6 / 35.8    22.1 / 17.9    -
#        0 (Config-A, no back-projection)  22.5 / 34.7 on iSAID
#    At weight 1 the MSE term is 10-30x the BCE term (SAM's neck output is LayerNorm-ed, so this
#    ratio is not a mini-world artefact) and, under CAT-Seg's global grad-norm clip of 0.01,
#    dominates the update. 0.01 makes the term ~0.1-0.3x the BCE at the start, gives the best mean
#    h-mIoU over iSAID and DLRSD (23.2; 0.001: 23.0) and keeps Config-B distinct from Config-A.
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
