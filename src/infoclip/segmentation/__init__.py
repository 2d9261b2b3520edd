"""One-shot segmentation of user images with a free class list.

* ``segmenter``: ``Segmenter`` (``from_pretrained``, ``from_clip``, ``predict``) and ``SegmentationResult``
  (``labels``, ``probs``, ``overlay()``, ``save()``); also reachable as ``from infoclip import Segmenter``;
* ``images``: robust image loading (EXIF orientation, grayscale/RGBA/palette/16-bit, truncated files);
* ``classes``: class lists from ``"a,b"``, ``@file.txt|json`` or a shipped vocabulary, validated;
* ``overlay``: palette, blended overlay and legend;
* ``baseline``: the training-free dense-CLIP baseline.
"""
