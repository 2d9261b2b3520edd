"""InfoCLIP's core: Gram matrices, matrix-based Rényi entropy, LPAM and the two losses. Depends on torch only.

    >>> import torch
    >>> from infoclip.core import LPAM, InfoCLIPObjective
    >>> objective = InfoCLIPObjective(LPAM(dim=8))
    >>> s_img, s_txt = torch.randn(4, 9, 8), torch.randn(5, 8)
    >>> with torch.no_grad():
    ...     t_img, t_txt = torch.randn(4, 9, 8), torch.randn(5, 8)
    >>> out = objective(s_img, s_txt, t_img, t_txt)
    >>> sorted(out)
    ['alignment_student', 'alignment_teacher', 'compression', 'distillation', 'total']
"""

from __future__ import annotations

from infoclip.core.entropy import joint_entropy, mutual_information, renyi_entropy
from infoclip.core.gram import gram_matrix, joint_gram
from infoclip.core.losses import CompressionLoss, DistillationLoss, InfoCLIPObjective
from infoclip.core.lpam import LPAM

__all__ = [
    "LPAM",
    "CompressionLoss",
    "DistillationLoss",
    "InfoCLIPObjective",
    "gram_matrix",
    "joint_entropy",
    "joint_gram",
    "mutual_information",
    "renyi_entropy",
]
