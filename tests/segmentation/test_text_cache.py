"""The disk cache of class text embeddings: a second run skips the text tower; any key change misses; two
writers at once leave a whole entry."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from tests.segmentation.images_on_disk import gradient_rgb


def _count_text_tower(monkeypatch):
    """Count calls of CLIP's text tower as the models use it."""
    import infoclip.adapters.catseg.model as catseg_model

    calls = []
    real = catseg_model.encode_text

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(catseg_model, "encode_text", counting)
    return calls


def test_second_segmenter_reads_the_cache_and_predicts_the_same(tiny_weights, tmp_path, monkeypatch):
    from infoclip import Segmenter

    calls = _count_text_tower(monkeypatch)
    image = gradient_rgb(32, 40)
    first = Segmenter.from_pretrained(tiny_weights, protocol="whole", text_cache=tmp_path / "cache")
    a = first.predict(image, ["cat", "dog"])
    assert len(calls) == 1 and len(list((tmp_path / "cache").glob("*.safetensors"))) == 1
    second = Segmenter.from_pretrained(tiny_weights, protocol="whole", text_cache=tmp_path / "cache")
    b = second.predict(image, ["cat", "dog"])
    assert len(calls) == 1  # the text tower did not run again
    assert second.model.text_embedding_cache.hits == 1
    np.testing.assert_array_equal(a.probs, b.probs)
    plain = Segmenter.from_pretrained(tiny_weights, protocol="whole").predict(image, ["cat", "dog"])
    np.testing.assert_array_equal(a.probs, plain.probs)  # caching changes no number


def test_any_key_part_change_misses(tiny_weights, tmp_path, monkeypatch):
    import shutil

    from infoclip import Segmenter
    from infoclip.segmentation.options import SegmentOptions

    calls = _count_text_tower(monkeypatch)
    cache = tmp_path / "cache"
    image = gradient_rgb(24, 24)
    Segmenter.from_pretrained(tiny_weights, protocol="whole", text_cache=cache).predict(image, ["cat", "dog"])
    Segmenter.from_pretrained(tiny_weights, protocol="whole", text_cache=cache).predict(image, ["dog", "cat"])
    assert len(calls) == 2  # class names (and their order) are part of the key
    Segmenter.from_pretrained(
        tiny_weights, protocol="whole", text_cache=cache, options=SegmentOptions(templates="imagenet7")
    ).predict(image, ["cat", "dog"])
    assert len(calls) == 3  # templates
    Segmenter.from_pretrained(tiny_weights, protocol="whole", template="a {}.", text_cache=cache).predict(image, ["cat", "dog"])
    assert len(calls) == 4
    other = tmp_path / "other.safetensors"
    shutil.copy(tiny_weights, other)
    Segmenter.from_pretrained(other, protocol="whole", text_cache=cache).predict(image, ["cat", "dog"])
    assert len(calls) == 5  # another weights file
    assert len(list(cache.glob("*.safetensors"))) == 5


def test_two_writers_at_once_leave_a_whole_entry(tmp_path):
    from safetensors.torch import load_file

    from infoclip.segmentation.text_cache import TextEmbeddingCache

    value = torch.arange(4096, dtype=torch.float32).view(64, 64)
    barrier = threading.Barrier(4)

    def slow_compute():
        barrier.wait()
        return value

    caches = [TextEmbeddingCache(tmp_path, {"model": "m"}) for _ in range(4)]
    threads = [threading.Thread(target=c.get_or_compute, args=(["{}"], ["cat"], slow_compute)) for c in caches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    entries = list(tmp_path.iterdir())
    assert len(entries) == 1 and entries[0].suffix == ".safetensors"  # no temporary file left
    torch.testing.assert_close(load_file(str(entries[0]))["embeddings"], value)
    entries[0].write_bytes(b"damaged")
    again = TextEmbeddingCache(tmp_path, {"model": "m"})
    torch.testing.assert_close(again.get_or_compute(["{}"], ["cat"], lambda: value), value)
    assert again.misses == 1
    torch.testing.assert_close(TextEmbeddingCache(tmp_path, {"model": "m"}).get_or_compute(["{}"], ["cat"], pytest.fail), value)


def test_the_baseline_uses_the_cache_too(tmp_path):
    from infoclip import Segmenter

    first = Segmenter.from_clip("infoclip-tiny-clip:none", protocol="whole", text_cache=tmp_path)
    a = first.predict(gradient_rgb(24, 24), ["cat", "dog"])
    second = Segmenter.from_clip("infoclip-tiny-clip:none", protocol="whole", text_cache=tmp_path)
    b = second.predict(gradient_rgb(24, 24), ["cat", "dog"])
    assert second.model.text_embedding_cache.hits == 1 and first.model.text_embedding_cache.misses == 1
    np.testing.assert_array_equal(a.probs, b.probs)
