from __future__ import annotations

import pytest
import torch

from infoclip.errors import CheckpointError
from infoclip.io_utils import atomic_path, atomic_write_text
from infoclip.weights import WeightsMeta, load_state_strict, read_weights, save_weights, torch_load_checkpoint


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_weights_round_trip_with_metadata(tmp_path):
    state = {"a.weight": torch.randn(3, 4), "b": torch.arange(5)}
    state["alias"] = state["a.weight"]  # shared storage must not break safetensors
    meta = WeightsMeta(adapter="toy", config={"dim": 8}, clip_tag="ViT-B-16:openai", classes=["cat", "sofa"])
    path = save_weights(tmp_path / "m.safetensors", state, meta)
    loaded, got = read_weights(path)
    assert torch.equal(loaded["a.weight"], state["a.weight"]) and torch.equal(loaded["b"], state["b"])
    assert got.adapter == "toy" and got.config == {"dim": 8} and got.classes == ["cat", "sofa"]
    assert got.clip_tag == "ViT-B-16:openai" and got.infoclip_version


def test_foreign_and_broken_files_are_refused(tmp_path):
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(CheckpointError, match="not an infoclip weights file"):
        read_weights(tmp_path / "plain.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 5)
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        read_weights(tmp_path / "junk.safetensors")
    with pytest.raises(CheckpointError, match="not found"):
        read_weights(tmp_path / "missing.safetensors")


def test_strict_load_names_the_keys():
    model = torch.nn.Linear(3, 2)
    with pytest.raises(CheckpointError, match=r"missing: bias; unexpected: extra"):
        load_state_strict(model, {"weight": torch.zeros(2, 3), "extra": torch.zeros(1)}, "x.safetensors")
    with pytest.raises(CheckpointError, match=r"wrong shape: weight"):
        load_state_strict(model, {"weight": torch.zeros(3, 3), "bias": torch.zeros(2)}, "x.safetensors")


def test_torch_load_is_weights_only(tmp_path):
    good = tmp_path / "ok.pth"
    torch.save({"model": {"w": torch.ones(2)}}, good)
    assert torch.equal(torch_load_checkpoint(good)["model"]["w"], torch.ones(2))

    class Evil:
        def __reduce__(self):
            return (print, ("pickled code ran",))

    bad = tmp_path / "evil.pth"
    torch.save({"x": Evil()}, bad)
    with pytest.raises(CheckpointError, match=r"holds Python objects besides tensors \(.*print\)") as refused:
        torch_load_checkpoint(bad)
    # torch's own message advises weights_only=False, which would run the file's code: never passed on
    assert "weights_only=False" not in str(refused.value) and "weights_only` set to `False" not in str(refused.value)
    assert refused.value.__cause__ is None and refused.value.__suppress_context__
    for junk in (b"junk\n", b"\x80\x02}q\x00X", b"", b"\x80\x02garbage" * 10):
        (tmp_path / "junk.pth").write_bytes(junk)
        with pytest.raises(CheckpointError, match="cannot be read as a PyTorch checkpoint") as unreadable:
            torch_load_checkpoint(tmp_path / "junk.pth")
        assert "False" not in str(unreadable.value), str(unreadable.value)
    truncated = tmp_path / "cut.pth"
    truncated.write_bytes(good.read_bytes()[:40])
    with pytest.raises(CheckpointError, match="truncated"):
        torch_load_checkpoint(truncated)


def test_atomic_outputs_get_the_ordinary_file_mode(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "shared.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
