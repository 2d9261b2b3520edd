"""Mask classification training pieces shared by the query-based adapters (SAN, FC-CLIP).

The Mask2Former recipe both official codes use: per-image Hungarian matching of predicted (class, mask) pairs to
target masks (:mod:`.matcher`), class cross-entropy with a down-weighted no-object class plus BCE and dice on
importance-sampled points (:mod:`.losses`, :mod:`.point_sampling`), summed over the final and the auxiliary decoder
outputs (:mod:`.criterion`); targets from semantic label maps (:mod:`.targets`); and the semantic map the
adapters' inference computes from query outputs (:mod:`.semantic_inference`). docs/mask-criterion.md has the details.
"""

from infoclip.mask_classification.criterion import SetCriterion, SetCriterionConfig, SetLoss
from infoclip.mask_classification.matcher import HungarianMatcher, MatchCosts
from infoclip.mask_classification.targets import MaskTargets, semantic_targets

__all__ = [
    "HungarianMatcher",
    "MaskTargets",
    "MatchCosts",
    "SetCriterion",
    "SetCriterionConfig",
    "SetLoss",
    "semantic_targets",
]
