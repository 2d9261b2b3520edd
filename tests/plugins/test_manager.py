"""The plugin system: loading built-in and third-party adapters, environment switches, clear errors."""

from __future__ import annotations

import inspect

import pytest
import torch

from infoclip.adapters import DenseEmbeddings, TrainOutput, adapters, get_adapter, get_plugin_manager, plugin_info
from infoclip import hookspecs
from infoclip.errors import AdapterError, ConfigError
from tests.hub.conftest import allow_tiny_official, caches, hub, tiny_official_bytes  # noqa: F401  (fixtures)
from tests.segmentation.conftest import tiny_weights  # noqa: F401  (fixture)


def test_hook_infoclip_register_adapters(installed_toy):
    toy = get_adapter("toy")
    assert toy.summary and toy.version == "0.1"
    with pytest.raises(ConfigError, match="unknown toy model key"):
        toy.build_model({"anything": 1})
    model = toy.build_model({})
    images = torch.rand(2, 3, 16, 16) * 255
    out = model.forward_train(images, ["cat", "sofa", "sky"])
    assert isinstance(out, TrainOutput)
    assert out.logits.shape == (2, 3, 4, 4)
    assert out.embeddings.image.shape == (2, 16, 8) and out.embeddings.grid == (4, 4)
    assert out.embeddings.text.shape == (3, 8)
    loss = model.task_loss(out.logits, torch.randint(-1, 3, (2, 16, 16)))
    loss.backward()
    assert model.encoder[0].weight.grad is not None
    teacher = toy.build_teacher({}, model)
    emb = teacher(images, ["cat", "sofa", "sky"])
    assert isinstance(emb, DenseEmbeddings) and not emb.image.requires_grad
    probs = model.predict(images[0], ["cat", "sofa", "sky"])
    assert probs.shape == (3, 16, 16) and torch.allclose(probs.sum(0), torch.ones(16, 16))


def test_hook_infoclip_register_datasets(tmp_path):
    import numpy as np
    from PIL import Image

    from infoclip.data.registry import DatasetSpec, SplitLayout, get_dataset, registered_datasets

    (tmp_path / "img").mkdir()
    (tmp_path / "lbl").mkdir()
    Image.fromarray(np.full((6, 8, 3), 90, np.uint8)).save(tmp_path / "img" / "a.jpg")
    Image.fromarray(np.array([[0, 1, 255, 1, 0, 0, 0, 0]] * 6, np.uint8)).save(tmp_path / "lbl" / "a.png")

    class Plugin:
        @staticmethod
        @hookspecs.hookimpl
        def infoclip_register_datasets():
            layout = {"val": SplitLayout(images="img", labels="lbl")}
            return [DatasetSpec(name="toyset", title="Toy", class_names=("sky", "tree"), splits=layout, base=tmp_path)]

    get_plugin_manager().register(Plugin(), name="extra-datasets")
    assert "toyset" in registered_datasets() and "ade150" in registered_datasets()
    ds = get_dataset("toyset")
    sample = ds[0]
    assert len(ds) == 1 and list(ds.class_names) == ["sky", "tree"]
    assert sample.image.shape == (6, 8, 3) and sample.label.dtype == np.int64
    assert sample.label[0].tolist() == [0, 1, -1, 1, 0, 0, 0, 0], "on-disk 255 becomes IGNORE_INDEX"


def test_hook_infoclip_register_vocabularies():
    from infoclip.errors import InputError
    from infoclip.segmentation.classes import Vocabulary, load_vocabulary, shipped_vocabularies

    class Plugin:
        @staticmethod
        @hookspecs.hookimpl
        def infoclip_register_vocabularies():
            return [Vocabulary("kitchen", ("cup,mug", "plate"))]

    get_plugin_manager().register(Plugin(), name="extra-vocab")
    assert {"kitchen", "ade150", "fcclip-ade150"} <= set(shipped_vocabularies()), "the FC-CLIP adapter contributes its lists"
    assert load_vocabulary("kitchen") == ["cup,mug", "plate"]

    class Clash:
        @staticmethod
        @hookspecs.hookimpl
        def infoclip_register_vocabularies():
            return [Vocabulary("ade150", ("x",))]

    get_plugin_manager().register(Clash(), name="clash-vocab")
    with pytest.raises(InputError, match="name of a shipped one"):
        load_vocabulary("kitchen")


def test_hook_infoclip_register_weights(hub, caches, tiny_weights):
    """A name added by a plugin resolves like a built-in one: downloaded from the Hub, listed, refused twice."""
    from infoclip.named_weights import NamedWeights, registered_weights
    from infoclip.weights_resolver import resolve_weights

    hub.add_file("plugin-org/tiny", "catseg-tiny.safetensors", tiny_weights.read_bytes(), revision="v2")

    class Plugin:
        @staticmethod
        @hookspecs.hookimpl
        def infoclip_register_weights():
            return [NamedWeights(name="tiny-from-plugin", repo="plugin-org/tiny", filename="catseg-tiny.safetensors",
                                 revision="v2", adapter="catseg", format="infoclip", summary="tiny test model")]

    get_plugin_manager().register(Plugin(), name="extra-weights")
    known = registered_weights()
    assert {"tiny-from-plugin", "catseg-b16"} <= set(known)
    resolved = resolve_weights("tiny-from-plugin")
    assert resolved.name == "tiny-from-plugin" and not resolved.converted
    assert resolved.path.read_bytes() == tiny_weights.read_bytes()
    assert [p for _, p in hub.requests_to("hub")] == ["/plugin-org/tiny/resolve/v2/catseg-tiny.safetensors"] * 2

    class Twice:
        @staticmethod
        @hookspecs.hookimpl
        def infoclip_register_weights():
            return [NamedWeights(name="catseg-b16", repo="x/y", filename="z.pth", adapter="catseg")]

    get_plugin_manager().register(Twice(), name="clash")
    with pytest.raises(ConfigError, match="weights name 'catseg-b16' is registered twice .*'clash'"):
        registered_weights()


def test_every_hook_has_a_test():
    """Each hookspec must have a ``test_hook_<name>`` test in this module (datasette's meta-test)."""
    hooks = [name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("infoclip_")]
    assert hooks, "no hookspecs found"
    missing = [name for name in hooks if f"test_hook_{name}" not in globals()]
    assert not missing, f"hooks without a test: {missing}"


def test_every_hook_is_documented():
    """docs/adapters.md shows every hook with its exact signature."""
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "adapters.md").read_text(encoding="utf-8")
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction):
        if name.startswith("infoclip_"):
            signature = f"{name}({', '.join(inspect.signature(fn).parameters)})"
            assert signature in doc, f"{signature} is not documented in docs/adapters.md"


def test_builtin_catseg_is_registered():
    assert "catseg" in adapters()


def test_autoload_switch(installed_toy, monkeypatch):
    monkeypatch.setenv("INFOCLIP_DISABLE_PLUGIN_AUTOLOAD", "1")
    from infoclip.adapters import reset_plugin_manager

    reset_plugin_manager()
    assert "toy" not in adapters()
    assert "catseg" in adapters(), "built-in adapters load even without autoload"


def test_load_only_named_adapters(installed_toy, monkeypatch):
    monkeypatch.setenv("INFOCLIP_LOAD_ADAPTERS", "toy")
    assert set(adapters()) == {"toy"}
    with pytest.raises(AdapterError, match="unknown adapter 'catseg'.*INFOCLIP_LOAD_ADAPTERS"):
        get_adapter("catseg")


def test_missing_adapter_names_the_known_ones():
    with pytest.raises(AdapterError, match=r"unknown adapter 'nosuch'; installed adapters: catseg, fcclip, san"):
        get_adapter("nosuch")


def test_raising_plugin_is_named(broken_plugin):
    broken_plugin("raises")
    with pytest.raises(AdapterError, match=r"plugin 'raises' raised in infoclip_register_adapters: RuntimeError"):
        adapters()


def test_plugin_that_fails_to_import_is_named(broken_plugin):
    broken_plugin("import")
    with pytest.raises(AdapterError, match=r"plugin 'import' .*failed to load: ImportError: missing dependency"):
        get_plugin_manager()


def test_wrong_return_type_is_named():
    class Plugin:
        @staticmethod
        @hookspecs.hookimpl
        def infoclip_register_adapters():
            return ["not an adapter"]

    get_plugin_manager().register(Plugin(), name="sloppy")
    with pytest.raises(AdapterError, match="plugin 'sloppy' returned str"):
        adapters()


def test_duplicate_adapter_name_is_refused(installed_toy):
    from tests.plugins import toy_adapter

    class Plugin:
        @staticmethod
        @hookspecs.hookimpl
        def infoclip_register_adapters():
            return toy_adapter.infoclip_register_adapters()

    get_plugin_manager().register(Plugin(), name="second-toy")
    with pytest.raises(AdapterError, match="'toy' is registered twice"):
        adapters()


def test_misspelled_hook_fails_loudly():
    class Plugin:
        @staticmethod
        @hookspecs.hookimpl
        def infoclip_register_adaptors():
            return []

    pm = get_plugin_manager()
    pm.register(Plugin(), name="typo")
    with pytest.raises(Exception, match="infoclip_register_adaptors"):
        pm.check_pending()


def test_plugin_info_reports_origin_and_hooks(installed_toy):
    rows = {row.name: row for row in plugin_info()}
    assert rows["toy"].source == "infoclip-toy (entry point)"
    assert rows["toy"].version == "0.1"
    assert rows["toy"].hooks == ["infoclip_register_adapters"]
    assert rows["toy"].adapters == ["toy"]
    assert rows["infoclip.adapters.catseg"].source == "built-in"
    assert "catseg" in rows["infoclip.adapters.catseg"].adapters
    assert {"ade150", "coco171", "voc20b"} <= set(rows["infoclip.data.builtin"].datasets)
    assert rows["toy"].datasets == []
    assert rows["infoclip.named_weights"].weights == ["catseg-b16", "catseg-l14", "san-b16", "san-l14"]


def test_dense_embeddings_checks_shapes():
    DenseEmbeddings(torch.zeros(2, 6, 4), (2, 3), torch.zeros(5, 4))
    with pytest.raises(AdapterError, match="grid"):
        DenseEmbeddings(torch.zeros(2, 6, 4), (2, 2), torch.zeros(5, 4))
    with pytest.raises(AdapterError, match="text embeddings"):
        DenseEmbeddings(torch.zeros(2, 6, 4), (2, 3), torch.zeros(5, 3))
    with pytest.raises(AdapterError, match="batch size"):
        DenseEmbeddings(torch.zeros(2, 6, 4), (2, 3), torch.zeros(3, 5, 4))
    with pytest.raises(AdapterError, match=r"\(B, H\*W, D\)"):
        DenseEmbeddings(torch.zeros(6, 4), (2, 3), torch.zeros(5, 4))


def test_trace_switch_prints_each_hook_call(monkeypatch, capsys):
    monkeypatch.setenv("INFOCLIP_TRACE_HOOKS", "1")
    adapters()
    err = capsys.readouterr().err
    assert "[infoclip] hook infoclip_register_adapters -> infoclip.adapters.catseg" in err
    monkeypatch.setenv("INFOCLIP_TRACE_HOOKS", "0")
    adapters()
    assert "[infoclip] hook" not in capsys.readouterr().err
