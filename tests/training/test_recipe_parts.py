"""Unit tests of the training recipe's parts: config resolution, param groups, schedule, augmentation, data stream."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from infoclip.adapters.contract import OVSSModel
from infoclip.data import IGNORE_INDEX
from infoclip.errors import ConfigError
from infoclip.training.augment import (
    ColorJitter,
    TrainAugmentation,
    _hsv8_to_rgb,
    _rgb_to_hsv8,
    random_crop_category_area,
    resize_shortest_edge,
    shortest_edge_size,
)
from infoclip.training.data_stream import EpochOrder, PositionBatches, StreamLayout
from infoclip.training.optim import LRFactor, build_optimizer, build_scheduler, clip_full_model, recipe_param_groups
from infoclip.training.run_config import (
    CROSS_CHECKED,
    ENGINE_SECTIONS,
    SCHEMA,
    changed_keys,
    resolve_run_config,
    training_defaults,
)

# ---------------------------------------------------------------- config resolution


@pytest.fixture
def user_yaml(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"adapter": "toy", "model": {"width": 8}, "solver": {"lr": "1e-3"}}))
    return path


def test_defaults_hold_the_catseg_recipe():
    d = training_defaults()
    assert d["solver"]["lr"] == 2e-4 and d["solver"]["clip_lr_multiplier"] == 0.01
    assert d["solver"]["weight_decay"] == 1e-4 and d["solver"]["weight_decay_norm"] == 0.0
    assert d["solver"]["iterations"] == 80000 and d["solver"]["batch_size"] == 4
    assert d["solver"]["grad_clip"] == 0.01 and d["solver"]["schedule"] == "cosine"
    assert d["data"]["crop_size"] == 384 and d["data"]["min_size"] == 384 and d["data"]["train"] == "coco171"
    assert d["infoclip"]["enabled"] is True and d["infoclip"]["lpam_lr"] == 2e-4


def test_resolve_layers_defaults_yaml_and_overrides(user_yaml):
    cfg = resolve_run_config(user_yaml, None, ["infoclip.enabled=false", "solver.iterations=10"])
    gaussian = resolve_run_config(user_yaml, None, ["infoclip.kernel=gaussian", "infoclip.sigma=2"])
    assert gaussian["infoclip"]["sigma"] == 2.0
    assert cfg["adapter"] == "toy" and cfg["model"] == {"width": 8}
    assert cfg["solver"]["lr"] == 1e-3, "PyYAML's string '1e-3' is read as a number"
    assert cfg["infoclip"]["enabled"] is False and cfg["solver"]["iterations"] == 10
    assert cfg["data"]["crop_size"] == 384, "untouched keys come from the defaults"
    assert list(cfg) == ["adapter", "model", "infoclip", "data", "solver", "train"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["solver.lrr=1"], "unknown key"),
        (["solver.batch_size=0"], "positive integer"),
        (["train.amp=fp8"], "one of none, bf16, fp16"),
        (["infoclip.alpha=1"], "other than 1"),
        (["data.crop_max_category_area=0"], "(0, 1]"),
        (["infoclip.kernel=gaussian"], "number > 0 for the gaussian kernel"),
    ],
)
def test_resolve_rejects_bad_overrides(user_yaml, overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("]", r"\]")):
        resolve_run_config(user_yaml, None, overrides)


def test_resolve_rejects_unknown_yaml_key_and_adapter_mismatch(tmp_path, user_yaml):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"adapter": "toy", "model": {"a": 1}, "solver": {"itterations": 5}}))
    with pytest.raises(ConfigError, match="did you mean 'iterations'"):
        resolve_run_config(bad)
    with pytest.raises(ConfigError, match="does not match"):
        resolve_run_config(user_yaml, "catseg")
    missing = tmp_path / "nomodel.yaml"
    missing.write_text("adapter: toy\n")
    with pytest.raises(ConfigError, match="no `model` section"):
        resolve_run_config(missing)


def test_the_schema_states_a_rule_for_every_default_key_once():
    defaults = training_defaults()
    keys = [f"{section}.{key}" for section in ENGINE_SECTIONS for key in defaults[section]]
    assert sorted([*SCHEMA, *CROSS_CHECKED]) == sorted(keys), "defaults.yaml and SCHEMA list different keys"
    for key, rule in SCHEMA.items():
        section, name = key.split(".")
        assert rule.accepts(defaults[section][name]), f"the default of {key} breaks its own rule ({rule.what})"


def test_defaults_yaml_comments_leave_the_choices_to_the_schema():
    """A choice is added in one place (SCHEMA): no comment of defaults.yaml lists all of a key's choices."""
    import re
    from importlib import resources

    text = resources.files("infoclip.training").joinpath("defaults.yaml").read_text(encoding="utf-8")
    comments: dict[str, str] = {}
    section = None
    for line in text.splitlines():
        head = re.match(r"^(\w+):\s*(?:#.*)?$", line)
        item = re.match(r"^  (\w+):[^#]*(?:#(.*))?$", line)
        if head:
            section = head.group(1)
        elif item and section:
            comments[f"{section}.{item.group(1)}"] = item.group(2) or ""
    assert " | " not in text, "write a key's choices in SCHEMA, not as a | b in defaults.yaml"
    listed = 0
    for key, rule in SCHEMA.items():
        if not rule.what.startswith("one of "):
            continue
        listed += 1
        choices = rule.what.removeprefix("one of ").split(", ")
        words = set(re.findall(r"[\w.]+", comments[key]))
        assert not set(choices) <= words, f"the comment of {key} repeats its choices ({rule.what}): {comments[key]}"
    assert listed >= 8, "the keys with choices were found"


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.val_limit=0", "data.val_limit must be a positive integer or null"),
        ("solver.grad_clip=-1", "solver.grad_clip must be a finite number >= 0 or null"),
        ("solver.schedule=step", "solver.schedule must be one of cosine, poly, constant, multistep"),
        ("solver.steps=[30,20]", "solver.steps must be a list of ascending positive integers"),
        ("solver.gamma=0", "solver.gamma must be a number in (0, 1]"),
        ("data.flip=1", "data.flip must be true or false"),
        ("data.min_size=[]", "data.min_size must be a positive integer or a non-empty list"),
    ],
)
def test_schema_rules_name_the_key_and_what_it_takes(user_yaml, override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        resolve_run_config(user_yaml, None, [override])


def test_changed_keys():
    assert changed_keys({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3, "d": 0}}) == ["a.c", "a.d"]


# ---------------------------------------------------------------- optimizer groups, schedule, clipping


class _Net(OVSSModel):
    """Only the parameter side of the contract is exercised: the other methods are never called."""

    def __init__(self):
        super().__init__()
        self.clip_model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
        self.clip_model[1].weight.requires_grad_(True)
        self.frozen = nn.Linear(4, 4).requires_grad_(False)
        self.head = nn.Sequential(nn.Conv2d(4, 4, 1), nn.GroupNorm(2, 4))

    def lr_parts(self):
        return {"clip": ("clip_model",)}

    forward_train = task_loss = predict = None  # type: ignore[assignment]


def _groups_by_name(groups):
    return {g["name"]: g for g in groups}


def test_param_groups_follow_the_official_rules():
    net, lpam = _Net(), nn.Sequential(nn.LayerNorm(4), nn.Linear(4, 4))
    solver = training_defaults()["solver"]
    groups = _groups_by_name(recipe_param_groups(net, lpam, solver, 3e-4))
    assert groups["decoder"]["lr"] == 2e-4 and groups["decoder"]["weight_decay"] == 1e-4
    assert groups["clip"]["lr"] == pytest.approx(2e-6)
    assert groups["clip_no_decay"]["params"] == list(net.clip_model[1].parameters())
    assert groups["decoder_no_decay"]["params"] == list(net.head[1].parameters())
    assert groups["lpam"]["lr"] == 3e-4 and groups["lpam_no_decay"]["weight_decay"] == 0.0
    # biases keep weight decay, as in the official build_optimizer
    assert any(p is net.head[0].bias for p in groups["decoder"]["params"])
    listed = [id(p) for g in groups.values() for p in g["params"]]
    assert len(listed) == len(set(listed)), "every parameter is in one group only"
    assert not any(p is net.frozen.weight for g in groups.values() for p in g["params"])


def test_cosine_schedule_matches_detectron2_formula():
    net = nn.Linear(2, 2)
    solver = dict(training_defaults()["solver"], iterations=10)
    optimizer = build_optimizer([{"params": list(net.parameters()), "lr": 2e-4, "name": "x"}], solver)
    scheduler = build_scheduler(optimizer, solver)
    seen = []
    for _ in range(11):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    expected = [2e-4 * 0.5 * (1 + math.cos(math.pi * i / 10)) for i in range(11)]
    assert seen == pytest.approx(expected, abs=1e-12)
    warm = LRFactor("constant", 100, warmup_iterations=10, warmup_factor=0.1)
    assert warm(0) == pytest.approx(0.1) and warm(5) == pytest.approx(0.55) and warm(10) == 1.0


def _multistep(iterations=12):
    net = nn.Linear(2, 2)
    solver = dict(training_defaults()["solver"], iterations=iterations, schedule="multistep", steps=[4, 9], gamma=0.1,
                  warmup_iterations=2, warmup_factor=0.5)  # fmt: skip
    optimizer = build_optimizer([{"params": list(net.parameters()), "lr": 1e-4, "name": "x"}], solver)
    return net, optimizer, build_scheduler(optimizer, solver)


def _run(net, optimizer, scheduler, steps):
    seen = []
    for _ in range(steps):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.zero_grad()
        net(torch.ones(1, 2)).sum().backward()
        optimizer.step()
        scheduler.step()
    return seen


def test_multistep_schedule_drops_at_each_step_and_resumes():
    """detectron2's WarmupMultiStepLR: x gamma from the first iteration of each step, linear warm-up first."""
    seen = _run(*_multistep(), 12)
    expected = [1e-4 * 0.5, 1e-4 * 0.75] + [1e-4] * 2 + [1e-5] * 5 + [1e-6] * 3
    assert seen == pytest.approx(expected, rel=1e-12)
    factor = LRFactor("multistep", 368750, 10, 1.0, steps=(327778, 355092), gamma=0.1)
    assert [factor(i) for i in (0, 5, 327777, 327778, 355091, 355092, 368749)] == pytest.approx(
        [1, 1, 1, 0.1, 0.1, 0.01, 0.01])
    # across a resume: the state saved after 6 iterations, restored into a freshly built optimizer and schedule
    from infoclip.training.checkpoint import restore_optimizer_state

    net, optimizer, scheduler = _multistep()
    _run(net, optimizer, scheduler, 6)
    saved = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
    fresh_net, fresh_optimizer, fresh_scheduler = _multistep()
    fresh_net.load_state_dict(net.state_dict())
    restore_optimizer_state(fresh_optimizer, fresh_scheduler, saved, "test")
    assert _run(fresh_net, fresh_optimizer, fresh_scheduler, 6) == pytest.approx(expected[6:], rel=1e-12)
    assert torch.equal(fresh_net.weight, _trained_straight(net, optimizer, scheduler))


def _trained_straight(net, optimizer, scheduler):
    _run(net, optimizer, scheduler, 6)
    return net.weight


def test_full_model_clipping_uses_the_joint_norm():
    a, b = nn.Parameter(torch.zeros(3)), nn.Parameter(torch.zeros(4))
    a.grad, b.grad = torch.full((3,), 3.0), torch.full((4,), 4.0)
    optimizer = torch.optim.AdamW([{"params": [a]}, {"params": [b]}])
    norm = clip_full_model(optimizer, 0.01)
    assert float(norm) == pytest.approx(math.sqrt(27 + 64))
    joint = torch.cat([a.grad, b.grad]).norm()
    assert float(joint) == pytest.approx(0.01, rel=1e-4)


# ---------------------------------------------------------------- augmentation


def test_shortest_edge_matches_detectron2_rounding():
    assert shortest_edge_size(480, 640, 384, 1333) == (384, 512)
    assert shortest_edge_size(100, 1000, 384, 1333) == (133, 1333), "long side capped"
    image = np.zeros((48, 64, 3), np.uint8)
    label = np.arange(48 * 64).reshape(48, 64) % 7
    out_image, out_label = resize_shortest_edge(image, label, 24, 1333)
    assert out_image.shape == (24, 32, 3) and out_label.shape == (24, 32)
    assert np.array_equal(out_label, label[1::2, 1::2]), "nearest picks PIL's pixel centres"


def test_category_area_constraint_rejects_single_class_crops():
    rng = np.random.default_rng(0)
    label = np.zeros((64, 64), np.int64)
    label[:, 48:] = 1  # class 1 only in the right quarter
    image = np.zeros((64, 64, 3), np.uint8)
    for _ in range(20):
        _, crop = random_crop_category_area(image, label, 32, 0.9, rng)
        values, counts = np.unique(crop, return_counts=True)
        if len(values) > 1:
            assert counts.max() / counts.sum() < 0.9
    plain = [random_crop_category_area(image, label, 32, 1.0, np.random.default_rng(s))[1] for s in range(40)]
    assert any(len(np.unique(c)) == 1 for c in plain), "with max_area 1.0 the crop is unconstrained"


def test_hsv_round_trip_and_jitter_statistics():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    back = _hsv8_to_rgb(_rgb_to_hsv8(image))
    assert np.abs(back.astype(int) - image).max() <= 4, "8-bit HSV quantisation loses a few levels at most"
    grey = np.full((4, 4, 3), 100, np.uint8)
    assert np.array_equal(_hsv8_to_rgb(_rgb_to_hsv8(grey)), grey)
    outs = [ColorJitter()(image, np.random.default_rng(s)) for s in range(30)]
    assert sum(not np.array_equal(o, image) for o in outs) >= 20, "most draws change the image"
    assert all(o.dtype == np.uint8 and o.shape == image.shape for o in outs)


def test_augmentation_is_a_function_of_its_generator():
    aug = TrainAugmentation(min_size=32, max_size=200, crop_size=24, size_divisibility=8)
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, size=(40, 50, 3), dtype=np.uint8)
    label = rng.integers(-1, 5, size=(40, 50))
    a = aug(image, label, np.random.default_rng(7))
    b = aug(image, label, np.random.default_rng(7))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert a[0].shape == (24, 24, 3) and a[1].shape == (24, 24) and a[1].dtype == np.int64
    small = aug(image[:10, :12], label[:10, :12], np.random.default_rng(0))
    assert small[0].shape == (24, 24, 3), "crops are padded to the common size"
    long_thin = TrainAugmentation(min_size=16, max_size=20, crop_size=16, size_divisibility=16)
    img, lab = long_thin(np.zeros((10, 100, 3), np.uint8), np.zeros((10, 100), np.int64), np.random.default_rng(0))
    assert img.shape == (16, 16, 3) and (lab == IGNORE_INDEX).any() and (img == 128).any()


# ---------------------------------------------------------------- data stream


def _positions(layout, iterations):
    batches = iter(PositionBatches(layout, EpochOrder(10, seed=3)))
    return [next(batches) for _ in range(iterations * layout.accumulation)]


def test_stream_splits_the_same_global_batch_over_ranks_and_micro_steps():
    single = _positions(StreamLayout(batch_size=4), 3)
    ranks = [_positions(StreamLayout(batch_size=4, world_size=2, rank=r, accumulation=2), 3) for r in (0, 1)]
    for it in range(3):
        union = sorted(p for r in ranks for step in r[it * 2 : it * 2 + 2] for p in step)
        assert union == sorted(single[it])
    with pytest.raises(ConfigError, match="divisible"):
        StreamLayout(batch_size=4, world_size=3)


def test_stream_is_a_permutation_per_epoch_and_resumes_by_iteration():
    order = EpochOrder(10, seed=0)
    first, second = [order(p) for p in range(10)], [order(p) for p in range(10, 20)]
    assert sorted(first) == list(range(10)) and sorted(second) == list(range(10)) and first != second
    layout = StreamLayout(batch_size=4)
    full = _positions(layout, 5)
    resumed = iter(PositionBatches(layout, EpochOrder(10, seed=3), start_iteration=2))
    assert [next(resumed) for _ in range(3)] == full[2:]


def test_large_scale_jitter_keeps_image_and_label_planes_aligned():
    """LSJ output is crop_size squared; every label plane (classes, segment slots) moves with the image."""
    from infoclip.training.augment import fixed_size_crop, resize_scale

    height, width = 30, 50
    ys, xs = np.mgrid[:height, :width]
    codes = ys * width + xs  # a unique code per source pixel, carried as image colour and as both label planes
    image = np.stack([codes % 256, codes // 256, np.zeros_like(codes)], -1).astype(np.uint8)
    label = np.stack([codes % 7, codes], -1).astype(np.int64)
    image_n, label_n = resize_scale(image, label, 64, 1.5)  # fits 96x96: 30x50 -> round(57.6)x96
    assert image_n.shape == (58, 96, 3) and label_n.shape == (58, 96, 2)
    aug = TrainAugmentation(crop_size=64, size_divisibility=32, augmentation="lsj", scale_range=(0.1, 2.0), color_jitter=False)
    seen_pad = seen_flip = False
    for seed in range(12):
        out_image, out_label = aug(image, label, np.random.default_rng(seed))
        assert out_image.shape == (64, 64, 3) and out_label.shape == (64, 64, 2)
        valid = out_label[..., 1] >= 0
        seen_pad |= bool((~valid).any())
        assert (out_image[~valid] == 128).all() and (out_label[..., 0][~valid] == IGNORE_INDEX).all()
        src = out_label[..., 1][valid]
        assert (out_label[..., 0][valid] == src % 7).all(), "the planes stay together"
        if seed % 3 == 0:  # nearest-neighbour label pixels sit where bilinear image pixels of the same source are
            cols = src % width
            seen_flip |= bool(np.mean(np.diff(out_label[..., 1][0][valid[0]] % width) < 0) > 0.5)
            assert cols.min() >= 0
    assert seen_pad and seen_flip
    crop_image, crop_label = fixed_size_crop(image, label, 20, np.random.default_rng(0))
    assert crop_image.shape == (20, 20, 3)
    top, left = divmod(int(crop_label[0, 0, 1]), width)
    assert np.array_equal(crop_label[..., 1], codes[top : top + 20, left : left + 20]), "image and label cropped at one place"
    assert np.array_equal(crop_image[..., 0], image[top : top + 20, left : left + 20, 0])
