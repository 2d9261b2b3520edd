"""The semantic score map of a mask-classification model: Σ_q softmax(class_q)[:K] · sigmoid(mask_q).

SAN (san.py semantic_inference) and FC-CLIP (fcclip.py semantic_inference) both compute it; FC-CLIP passes its
ensembled log-probabilities as the class scores, whose softmax gives the probabilities back. The result is not a
probability (each query adds up to one sigmoid per pixel); its argmax over classes is the prediction.
"""

from __future__ import annotations

import torch


def semantic_scores(class_logits: torch.Tensor, mask_logits: torch.Tensor) -> torch.Tensor:
    """Per-class scores (B, K, H, W) float32 from class logits (B, Q, K+1) (last = no object) and mask logits (B, Q, H, W).

    The no-object column takes part in the softmax and is then dropped.
    """
    if class_logits.dim() != 3 or mask_logits.dim() != 4 or class_logits.shape[:2] != mask_logits.shape[:2]:
        raise ValueError(
            f"semantic_scores needs class logits (B, Q, K+1) and mask logits (B, Q, H, W) with the same B and Q; got "
            f"{tuple(class_logits.shape)} and {tuple(mask_logits.shape)}"
        )
    if class_logits.shape[2] < 2:
        raise ValueError("class logits need at least one class besides no-object")
    probs = class_logits.float().softmax(-1)[..., :-1]
    return torch.einsum("bqk,bqhw->bkhw", probs, mask_logits.float().sigmoid())
