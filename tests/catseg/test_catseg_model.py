"""CAT-Seg on the tiny preset: shapes through every stage, fine-tuning sets, pooling switch, loss, top-k,
weights round trip, teacher, LPAM feeding the decoder."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from infoclip.adapters import get_adapter
from infoclip.adapters.catseg import CATSeg, build_model, preset_model_config, resolve_model_config
from infoclip.adapters.catseg.aggregator import DROPPED_CLASS_LOGIT
from infoclip.adapters.contract import TrainOutput
from infoclip.errors import AdapterError, ConfigError, InputError
from infoclip.models import load_model
from infoclip.weights import WeightsMeta, save_weights

from .conftest import CLASSES


def test_adapter_registered_with_presets():
    adapter = get_adapter("catseg")
    assert set(adapter.configs) >= {"catseg-vit-b16", "catseg-vit-l14-336", "catseg-tiny"}
    assert all(path.is_file() for path in adapter.configs.values())


def test_shapes_through_every_stage(tiny_model, images):
    model = tiny_model.train()
    from infoclip.adapters.catseg.model import clip_input

    clip_images = clip_input(images, model.config)
    assert clip_images.shape == (2, 3, 128, 128)
    tokens, taps = model.encode_image(clip_images)
    assert tokens.shape == (2, 1 + 64, 32)  # 8x8 grid from a 4x4 position table, joint width 32
    assert [t.shape for t in taps] == [(2, 65, 64), (2, 65, 64)]  # raw residual stream, width 64
    text = model.encode_classes(CLASSES)
    assert text.shape == (5, 1, 32)
    assert torch.allclose(text.norm(dim=-1), torch.ones(5, 1))
    out = model.forward_train(images, CLASSES)
    assert isinstance(out, TrainOutput)
    assert out.logits.shape == (2, 5, 32, 32)  # 4x the 8x8 grid
    assert out.embeddings.image.shape == (2, 64, 32) and out.embeddings.grid == (8, 8)
    assert torch.equal(out.embeddings.image, tokens[:, 1:])  # projected dense tokens, not normalised
    assert out.embeddings.text.shape == (5, 32) and out.alignment is None
    # a non-square image of another size is padded and resized to the CLIP resolution
    assert model.forward_train(torch.zeros(1, 3, 100, 150), CLASSES[:2]).logits.shape == (1, 2, 32, 32)


def test_forward_backward_is_fast_and_reaches_trainable_parts(tiny_model, images):
    model = tiny_model.train()
    labels = torch.randint(-1, 5, (2, 128, 128), generator=torch.Generator().manual_seed(0))
    model.forward_train(images, CLASSES)  # warm-up (tokenizer, allocator)
    start = time.perf_counter()
    loss = model.task_loss(model.forward_train(images, CLASSES).logits, labels)
    loss.backward()
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"tiny forward+backward took {elapsed:.2f} s"
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    # every Q/V weight gets a gradient except the dense last block's Q (computed then discarded officially)
    missing = sorted(n for n, g in grads.items() if g is None)
    assert missing == ["clip_model.visual.transformer.resblocks.3.attn.q_proj_weight"]
    assert all(p.grad is None for p in model.parameters() if not p.requires_grad)


def test_trainable_set_is_qv_of_both_towers(tiny_model):
    trainable = {n for n, p in tiny_model.named_parameters() if p.requires_grad}
    clip_trainable = {n for n in trainable if n.startswith("clip_model.")}
    expected = {
        f"clip_model.{tower}transformer.resblocks.{i}.attn.{w}_proj_weight"
        for tower, depth in (("visual.", 4), ("", 2))
        for i in range(depth)
        for w in ("q", "v")
    }
    assert clip_trainable == expected
    assert all(p.requires_grad for n, p in tiny_model.named_parameters() if not n.startswith("clip_model."))
    summary = tiny_model.parameter_table()
    assert "32,768" in summary and "4,096" in summary  # 4 x 2 x 64^2 image, 2 x 2 x 32^2 text
    assert "q_proj_weight, v_proj_weight" in summary


@pytest.mark.parametrize(("mode", "count"), [("none", 0), ("full", 1_860_609)])
def test_other_finetune_modes(tiny_config, mode, count):
    model = CATSeg({**tiny_config, "clip": {**tiny_config["clip"], "finetune": mode}})
    assert sum(p.numel() for p in model.clip_model.parameters() if p.requires_grad) == count


def test_train_eval_switch_pooling_and_text_cache(tiny_model, images):
    model = tiny_model
    layer = model.aggregator.layers[0].attention
    model.train()
    assert layer.pooling == (2, 2)
    train_logits = model(images[:1], CLASSES)
    text = model.encode_classes(CLASSES)
    assert text.requires_grad and model.encode_classes(CLASSES) is not text  # recomputed with grad
    model.eval()
    assert layer.pooling == (1, 1)
    cached = model.encode_classes(CLASSES)
    assert not cached.requires_grad and model.encode_classes(CLASSES) is cached
    assert torch.allclose(cached, text.detach(), atol=1e-6)
    eval_logits = model(images[:1], CLASSES)
    assert not torch.allclose(train_logits, eval_logits, atol=1e-4)  # pooling changed the result
    model.eval()
    assert model.encode_classes(CLASSES) is cached  # eval() again (predict does it per image) keeps the cache
    model.predict(torch.zeros(3, 32, 32), CLASSES, protocol="whole")
    assert model.encode_classes(CLASSES) is cached
    model.train()
    assert not model.text_encoder.cache  # entering training drops the cache


def test_text_cache_is_kept_per_autocast_dtype(tiny_model):
    """Embeddings cached under bf16 autocast are bf16: a later fp32 prediction must encode its own."""
    model = tiny_model.eval()
    image = torch.rand(3, 40, 40) * 255
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = model.encode_classes(CLASSES)
        model.predict(image, CLASSES, protocol="whole")
    fp32 = model.encode_classes(CLASSES)
    assert bf16.dtype == torch.bfloat16 and fp32.dtype == torch.float32
    probs = model.predict(image, CLASSES, protocol="whole")  # raised "expected Float but found BFloat16"
    assert probs.shape == (len(CLASSES), 40, 40) and model.encode_classes(CLASSES) is fp32


def test_loss_is_official_bce(tiny_model):
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 8, 8, requires_grad=True)
    labels = torch.randint(-1, 5, (2, 16, 16))
    loss = tiny_model.task_loss(logits, labels)
    up = F.interpolate(logits, size=(16, 16), mode="bilinear", align_corners=False).permute(0, 2, 3, 1)
    targets = torch.zeros_like(up)
    valid = labels != -1
    targets[valid] = F.one_hot(labels[valid], 5).float()
    reference = F.binary_cross_entropy_with_logits(up, targets)
    assert torch.allclose(loss, reference, atol=1e-6)
    grad, ref_grad = torch.autograd.grad(loss, logits)[0], torch.autograd.grad(reference, logits)[0]
    assert torch.allclose(grad, ref_grad, atol=1e-7)
    masked = CATSeg({**tiny_model.config, "loss": {"mask_ignore": True}}).task_loss(logits, labels)
    per_element = F.binary_cross_entropy_with_logits(up, targets, reduction="none")
    assert torch.allclose(masked, per_element[valid].mean(), atol=1e-6)
    with pytest.raises(InputError, match="labels must lie"):
        tiny_model.task_loss(logits, torch.full((2, 16, 16), 5))


def test_top_k_class_preselection(tiny_model):
    model = tiny_model.eval()
    names = [f"thing number {i}" for i in range(20)]  # 20 > pad_len 16
    image = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(3)) * 255
    with torch.no_grad():
        logits = model(image, names)
        from infoclip.adapters.catseg.model import clip_input

        tokens, _ = model.encode_image(clip_input(image, model.config))
        text = model.encode_classes(names)
    assert logits.shape == (1, 20, 32, 32)
    dropped = (logits == DROPPED_CLASS_LOGIT).all(dim=(2, 3))[0]
    assert int((~dropped).sum()) == 16
    corr = torch.einsum("bpc,tc->btp", F.normalize(tokens[:, 1:], dim=-1), text[:, 0])
    kept = set(corr.amax(dim=-1)[0].topk(16).indices.tolist())
    assert kept == set(torch.nonzero(~dropped).flatten().tolist())
    # the kept classes' logits are those of running only them (16 classes: no padding, no selection)
    kept_sorted = sorted(kept)
    with torch.no_grad():
        alone = model(image, [names[i] for i in kept_sorted])
    assert torch.allclose(logits[0, kept_sorted], alone[0], atol=1e-4)


def test_padding_tokens_fill_the_class_axis(tiny_model):
    model = tiny_model.eval()
    layer = model.aggregator.layers[0].attention
    seen = {}

    def record(module, args, output):
        seen["shape"] = args[0].shape

    hook = layer.attention.register_forward_hook(record)
    with torch.no_grad():
        model(torch.zeros(1, 3, 128, 128), CLASSES)
    hook.remove()
    assert seen["shape"] == (64, 16, 32)  # 8x8 positions (eval pooling 1x1), 5 classes padded to 16


def test_weights_round_trip_is_strict_and_offline(tmp_path, tiny_model, images):
    model = tiny_model.eval()
    path = save_weights(
        tmp_path / "tiny.safetensors",
        model.inference_state_dict(),
        WeightsMeta(adapter="catseg", config=model.model_config(), clip_tag=model.clip_tag, classes=CLASSES),
    )
    loaded, meta = load_model(path)
    assert meta.config == model.model_config() and meta.clip_tag == "infoclip-tiny-clip:random"
    assert not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(images, CLASSES), model(images, CLASSES))
    assert not any(k.endswith("attn_mask") for k in model.inference_state_dict())


def test_build_never_downloads_for_pretrained_configs():
    # HF_HUB_OFFLINE=1 in tests: building the official architectures (weights on the meta device, so no
    # memory is spent) must not try the network although their config says pretrained: openai.
    for name, trainable, agg, ups, clip_total in (
        ("catseg-vit-b16", 20_447_232, 2_308_961, 2_359_680, 149_620_737),
        ("catseg-vit-l14-336", 64_487_424, 2_636_641, 3_146_112, 427_944_193),
    ):
        with torch.device("meta"):
            model = build_model(preset_model_config(name))
        assert model.config["clip"]["pretrained"] == "openai"
        assert sum(p.numel() for p in model.clip_model.parameters() if p.requires_grad) == trainable
        assert sum(p.numel() for p in model.clip_model.parameters()) == clip_total
        assert sum(p.numel() for p in model.aggregator.parameters()) == agg
        assert sum(p.numel() for p in [*model.upsample1.parameters(), *model.upsample2.parameters()]) == ups
        assert model.grid == (24, 24)


def test_teacher_is_frozen_pretrained_copy(tiny_config, tiny_model, images):
    student = tiny_model.train()
    teacher = get_adapter("catseg").build_teacher(tiny_config, student)
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    teacher.train()
    assert not teacher.training
    before = teacher(images, CLASSES)
    student_out = student.forward_train(images, CLASSES)
    # pretrained: null -> the teacher is the student's seeded initial CLIP
    assert torch.allclose(before.image, student_out.embeddings.image, atol=1e-6)
    assert torch.allclose(before.text, student_out.embeddings.text, atol=1e-6)
    assert not before.image.requires_grad
    optimizer = torch.optim.SGD([p for p in student.parameters() if p.requires_grad], lr=1.0)
    student.task_loss(student_out.logits, torch.zeros(2, 128, 128, dtype=torch.long)).backward()
    optimizer.step()
    after = teacher(images, CLASSES)
    assert torch.equal(before.image, after.image) and torch.equal(before.text, after.text)
    assert not torch.allclose(student.forward_train(images, CLASSES).embeddings.image, after.image, atol=1e-4)


def test_config_validation(tiny_config):
    with pytest.raises(ConfigError, match="unknown CAT-Seg model keys: model.aggregator.windowsize"):
        resolve_model_config({"aggregator": {"windowsize": 3}})
    with pytest.raises(ConfigError, match="model.clip.finetune"):
        resolve_model_config({"clip": {"finetune": "qv"}})
    with pytest.raises(ConfigError, match="guidance_layers"):
        CATSeg({**tiny_config, "clip": {**tiny_config["clip"], "guidance_layers": [1, 3]}})
    with pytest.raises(ConfigError, match="multiple of the patch size"):
        CATSeg({**tiny_config, "clip": {**tiny_config["clip"], "resolution": 120}})
    with pytest.raises(ConfigError, match="unknown open_clip architecture"):
        CATSeg({**tiny_config, "clip": {**tiny_config["clip"], "name": "no-such-clip"}})
    assert resolve_model_config(None)["clip"]["name"] == "ViT-B-16-quickgelu"


def test_bad_inputs_raise_clear_errors(tiny_model):
    with pytest.raises(InputError, match=r"\(B, 3, H, W\)"):
        tiny_model.forward_train(torch.zeros(3, 64, 64), CLASSES)
    with pytest.raises(InputError, match="non-empty list"):
        tiny_model.forward_train(torch.zeros(1, 3, 64, 64), "cat")
    from infoclip import Segmenter

    with pytest.raises(InputError, match="protocol"):  # checked by the entry point; predict trusts its inputs
        Segmenter(tiny_model, "catseg-tiny").predict(np.zeros((64, 64, 3), np.uint8), CLASSES, protocol="tiles")


def test_lpam_feeds_decoder(tiny_config, images):
    from infoclip.core import LPAM

    model = CATSeg({**tiny_config, "lpam_feeds_decoder": True})
    assert isinstance(model.lpam, LPAM) and any(k.startswith("lpam.") for k in model.inference_state_dict())
    out = model.train().forward_train(images, CLASSES)
    assert out.alignment.shape == (2, 64, 5)
    expected = model.lpam(out.embeddings.image, out.embeddings.text)
    assert torch.allclose(out.alignment, expected, atol=1e-5)
    out.logits.sum().backward()
    assert all(p.grad is not None for p in model.lpam.parameters())  # the task loss trains the LPAM
    with pytest.raises(AdapterError, match="model.lpam"):
        model.forward_train(images, CLASSES, lpam=LPAM(32))
    # without the option the LPAM passed in is ignored: inference stays plain CAT-Seg
    plain = CATSeg(tiny_config)
    assert plain.forward_train(images, CLASSES, lpam=LPAM(32)).alignment is None
