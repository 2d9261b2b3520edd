"""Segment a photo with your own class names through the Python API.

    python examples/segment_image.py catseg-b16 photo.jpg "cat,sofa,floor,wall"       # a name: downloaded once
    python examples/segment_image.py infoclip-b16.safetensors photo.jpg "cat,sofa"    # or a file, or hf:ORG/REPO/FILE
    python examples/segment_image.py ViT-B-16:openai photo.jpg "cat,sofa,floor,wall"   # training-free baseline
"""

import sys
from pathlib import Path

from infoclip import Segmenter

if len(sys.argv) != 4:
    sys.exit(f"usage: python {sys.argv[0]} WEIGHTS.safetensors|MODEL:TAG IMAGE CLASSES\n\n{__doc__.strip()}")
weights, image, classes = sys.argv[1:4]
if ":" in weights and not weights.startswith("hf:") and not Path(weights).exists():
    segmenter = Segmenter.from_clip(weights, device="auto")  # MODEL:TAG, no segmentation weights
else:
    segmenter = Segmenter.from_pretrained(weights, device="auto")  # a name, hf:..., or a weights file
result = segmenter.predict(image, classes.split(","))  # or a list of names, or "@names.txt"
print(result.labels.shape, result.probs.shape)  # (H, W) class indices, (T, H, W) probabilities
for name, share in sorted(result.shares.items(), key=lambda kv: -kv[1]):
    print(f"{name:>20s} {100 * share:5.1f}%")
result.overlay().save(f"{result.name}_overlay.png")  # colours over the photo, with a legend
result.save("segment_output")  # label map, overlay, JSON summary (save_probs=True adds the probabilities)
print(f"wrote {result.name}_overlay.png and segment_output/")
