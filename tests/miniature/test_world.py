"""The miniature's world, datasets and tiny CLIP: fast checks of the parts the benchmark is built from."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from infoclip.errors import ConfigError, InputError
from infoclip.miniature import MiniatureConfig, prepare_output_dir
from infoclip.miniature.world import TEXTURES, WorldSpec, caption, render_scene, render_texture


def test_every_texture_renders_two_tones_and_differs_from_the_others():
    rng = np.random.default_rng(0)
    means = {}
    for name in TEXTURES:
        image = render_texture(name, 64, rng)
        assert image.shape == (64, 64, 3) and image.min() >= 0 and image.max() <= 255
        yy, xx = np.mgrid[0:64, 0:64].astype(np.float32)
        pattern = TEXTURES[name](type("C", (), {"y": yy, "x": xx})(), np.random.default_rng(1), 6.0)
        assert pattern.shape == (64, 64) and pattern.min() >= 0 and pattern.max() <= 1
        means[name] = pattern.mean()
        if name != "plain":
            assert 0.02 < pattern.mean() < 0.98, name  # both tones visible
    assert means["plain"] == 0.0


def test_scene_labels_match_the_listed_classes_and_are_deterministic():
    spec = WorldSpec()
    a = render_scene(spec, spec.classes, np.random.default_rng(7))
    b = render_scene(spec, spec.classes, np.random.default_rng(7))
    image, label, present = a
    assert image.dtype == np.uint8 and image.shape == (64, 64, 3)
    assert np.array_equal(image, b[0]) and np.array_equal(label, b[1])
    assert sorted({spec.classes[i] for i in np.unique(label)}) == sorted(present)
    assert spec.min_regions <= len(present) <= spec.max_regions


def test_seen_scenes_never_contain_unseen_classes():
    spec = WorldSpec()
    rng = np.random.default_rng(0)
    for _ in range(20):
        _, label, present = render_scene(spec, spec.seen, rng)
        assert not set(present) & set(spec.unseen)
        assert label.max() < len(spec.seen)


def test_caption_names_every_texture_once():
    rng = np.random.default_rng(3)
    text = caption(["waves", "bricks", "dots"], rng)
    assert all(text.count(w) == 1 for w in ("waves", "bricks", "dots"))


def test_world_spec_rejects_bad_settings():
    with pytest.raises(ConfigError, match="unknown texture"):
        WorldSpec(classes=("stripes", "kittens"), unseen=())
    with pytest.raises(ConfigError, match="unseen"):
        WorldSpec(unseen=("kittens",))


def test_written_datasets_read_back_with_seen_unseen_split(tmp_path):
    from infoclip.data import get_dataset
    from infoclip.miniature.dataset import write_datasets

    spec = WorldSpec()
    train_dir, test_dir = write_datasets(tmp_path, spec, n_train=6, n_test=5, seed=1)
    train = get_dataset(train_dir, "train")
    test = get_dataset(test_dir, "val")
    assert len(train) == 6 and len(test) == 5
    assert tuple(train.class_names) == spec.seen
    assert tuple(test.class_names) == spec.classes
    sample = test[0]
    assert sample.image.shape == (64, 64, 3) and sample.label.min() >= 0
    assert all(train[i].label.max() < len(spec.seen) for i in range(len(train)))


def test_shipped_config_loads_and_output_dir_is_protected(tmp_path):
    config = MiniatureConfig.load()
    assert len(config.world.classes) >= 16 and config.world.unseen
    assert set(config.modes) == {"fast", "full", "forgetting"}
    (tmp_path / "results.json").write_text("{}")
    with pytest.raises(InputError, match="pass `force=True` to replace it") as refused:
        prepare_output_dir(tmp_path)
    from infoclip_cli.errors import command_line_message

    assert "pass --force to replace it" in command_line_message(refused.value), "the CLI names the flag"
    prepare_output_dir(tmp_path, force=True)
    assert not (tmp_path / "results.json").exists()


def test_tiny_clip_dense_path_matches_catseg_dense_forward():
    """The pretraining's dense tokens are the ones CAT-Seg (infoclip.clip) computes from the same weights."""
    from infoclip.clip import build_clip, encode_image_dense
    from infoclip.miniature import tiny_clip

    torch.manual_seed(0)
    ours = tiny_clip.create_clip()
    theirs = build_clip(tiny_clip.MINIATURE_CLIP)

    state = {}
    for key, value in ours.state_dict().items():
        if key.endswith("attn.in_proj_weight"):
            q, k, v = value.chunk(3)
            prefix = key[: -len("in_proj_weight")]
            state.update({prefix + "q_proj_weight": q, prefix + "k_proj_weight": k, prefix + "v_proj_weight": v})
        else:
            state[key] = value
    theirs.load_state_dict(state)
    images = torch.rand(2, 3, 64, 64) * 4 - 2
    with torch.no_grad():
        pooled, dense = tiny_clip.encode_image_both(ours.visual, images)
        tokens, _ = encode_image_dense(theirs, images)
        reference_pooled = ours.encode_image(images)
    torch.testing.assert_close(dense, tokens[:, 1:], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(pooled, reference_pooled, rtol=1e-4, atol=1e-5)


def test_shipped_tiny_clip_loads_through_catseg_loader_and_knows_the_textures():
    """The shipped weights are small, load strictly through infoclip.clip like any local CLIP checkpoint,
    and are really pretrained: zero-shot close-up classification far above chance (1/19) on seen and
    unseen classes alike."""
    import torch.nn.functional as F

    from infoclip.clip import build_clip, encode_image_dense, encode_text, get_tokenizer
    from infoclip.clip.loading import load_clip_weights
    from infoclip.miniature import tiny_clip
    from infoclip.miniature.pretrain import CATSEG_TEMPLATE

    path = tiny_clip.shipped_weights_path()
    assert path.stat().st_size < 10 * 2**20
    model = build_clip(tiny_clip.register_config())
    load_clip_weights(model, tiny_clip.MINIATURE_CLIP, str(path))
    spec = WorldSpec()
    rng = np.random.default_rng(5)
    images, labels = [], []
    for _ in range(3):
        for index in range(len(spec.classes)):
            image, _, _ = render_scene(spec, (spec.classes[index],), rng, n_regions=1)
            images.append(image)
            labels.append(index)
    x = tiny_clip.normalize_images(torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float())
    with torch.no_grad():
        text = F.normalize(encode_text(model, get_tokenizer(tiny_clip.MINIATURE_CLIP)(
            [CATSEG_TEMPLATE.format(c) for c in spec.classes])), dim=-1)
        tokens, _ = encode_image_dense(model, x)
        dense = F.normalize(tokens[:, 1:], dim=-1) @ text.T  # (N, 64, T): every token votes
    predicted = dense.mean(1).argmax(1).numpy()
    truth = np.array(labels)
    unseen = np.isin(truth, [spec.classes.index(c) for c in spec.unseen])
    assert (predicted[~unseen] == truth[~unseen]).mean() > 0.4
    assert (predicted[unseen] == truth[unseen]).mean() > 0.4
