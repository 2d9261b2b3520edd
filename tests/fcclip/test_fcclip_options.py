"""FC-CLIP gets the prediction options through the model contract: template sets, the text-embedding cache."""

from __future__ import annotations

import torch


def test_template_set_and_disk_text_cache(tiny_model, tmp_path, monkeypatch):
    from infoclip.adapters.fcclip import model as fcclip_model
    from infoclip.segmentation.options import OptionedPredictor, SegmentOptions
    from infoclip.segmentation.templates import resolve_templates
    from infoclip.segmentation.text_cache import TextEmbeddingCache

    tiny_model.eval()
    OptionedPredictor(tiny_model, SegmentOptions(templates="imagenet7"))
    assert tiny_model.prompt_templates == resolve_templates("imagenet7")  # FC-CLIP averages any number itself
    calls = []
    real = fcclip_model.ConvNeXtCLIP.encode_text

    def counting(self, tokens):
        calls.append(tokens.shape[0])
        return real(self, tokens)

    monkeypatch.setattr(fcclip_model.ConvNeXtCLIP, "encode_text", counting)
    image = torch.rand(3, 40, 48, generator=torch.Generator().manual_seed(0)) * 255
    tiny_model.text_embedding_cache = TextEmbeddingCache(tmp_path, {"adapter": "fcclip", "test": 1})
    first = tiny_model.predict(image, ["cat, kitty", "sofa"], protocol="whole")
    assert calls and len(list(tmp_path.glob("*.safetensors"))) == 1
    calls.clear()
    tiny_model._text.clear()  # a fresh process: nothing in memory
    second = tiny_model.predict(image, ["cat, kitty", "sofa"], protocol="whole")
    assert calls == [] and torch.equal(first, second)
