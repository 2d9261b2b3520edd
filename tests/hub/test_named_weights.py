"""Weights by name through a loopback Hub: first download, cached second run, offline, failures, conversion cache."""

from __future__ import annotations

import pytest

from infoclip.errors import AdapterError, CheckpointError, InputError, WeightsNotFoundError
from infoclip.weights_resolver import resolve_weights
from tests.hub.hub_server import HubFile


def blobs(hf_cache):
    return sorted(p.name for p in hf_cache.rglob("blobs/*"))


def test_first_download_then_cached_run_makes_no_request(hub, caches):
    hf_cache, infoclip_cache = caches
    notes = []
    first = resolve_weights("catseg-b16", notify=notes.append)
    assert first.name == "catseg-b16" and first.converted
    assert first.path.parent == infoclip_cache / "converted" and first.path.suffix == ".safetensors"
    assert [m for m, _ in hub.requests_to("hub")] == ["HEAD", "HEAD"]  # our check, then huggingface_hub's
    assert hub.requests_to("cdn") == [("GET", f"/blobs/{hub.blob_sha('model_base.pth')}")]
    assert len(notes) == 1 and "converting" in notes[0]
    assert blobs(hf_cache) == [hub.blob_sha("model_base.pth")]
    mtime = first.path.stat().st_mtime_ns
    hub.requests.clear()
    notes.clear()
    second = resolve_weights("catseg-b16", notify=notes.append)
    assert second.path == first.path and second.path.stat().st_mtime_ns == mtime
    assert hub.requests == [], "a cached name must not reach the server"
    assert notes == [], "a cached conversion must not convert again"


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


def assert_one_line(code: int, stderr: str, *needles: str) -> str:
    assert code == 1, stderr
    errors = error_lines(stderr)
    assert len(errors) == 1, stderr
    assert "Traceback" not in stderr, stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def no_partial_files(*roots) -> bool:
    return not any(p.name.endswith((".incomplete", ".tmp")) for root in roots if root.exists() for p in root.rglob("*"))


def test_segment_with_no_weights_downloads_the_default_and_runs(hub, caches, run_cli, photo, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS")
    code, stdout, stderr = run_cli("segment", photo, "--classes", "cat,sofa", "-o", tmp_path / "out", "--protocol", "whole")
    assert code == 0, stderr
    assert "note: no --weights given: using the default model catseg-b16" in stderr
    assert "converting catseg-b16 (spaces/hamacojr/CAT-Seg-weights/model_base.pth) from the official catseg" in stderr
    assert "downloading catseg-b16: 100%" in stderr, "a download progress bar on stderr"
    assert (tmp_path / "out" / "photo.png").is_file()
    hub.requests.clear()
    code, _, stderr = run_cli("segment", photo, "-c", "cat,sofa", "-o", tmp_path / "again", "--protocol", "whole")
    assert code == 0, stderr
    assert hub.requests == [] and "converting" not in stderr


def test_offline_uses_the_cache_and_refuses_what_is_not_in_it(hub, caches, monkeypatch):
    resolve_weights("catseg-b16")
    hub.requests.clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_weights("catseg-b16").path.is_file()
    hub.add_file("me/other", "model_final.pth", b"x" * 10)
    with pytest.raises(WeightsNotFoundError, match=r"not in the Hugging Face cache .* and HF_HUB_OFFLINE is set.*"
                       r"https://huggingface.co/me/other/resolve/main/model_final.pth"):
        resolve_weights("hf:me/other/model_final.pth")
    assert hub.requests == []


def test_missing_file_is_one_line(hub, caches, run_cli, photo, tmp_path):
    code, _, stderr = run_cli("segment", photo, "-c", "cat", "-w", "hf:spaces/hamacojr/CAT-Seg-weights/model_huge.pth",
                              "-o", tmp_path / "out")
    assert_one_line(code, stderr, "model_huge.pth is not in hamacojr/CAT-Seg-weights at revision main", "404")
    assert blobs(caches[0]) == [] and not (tmp_path / "out").exists()


def test_revision_that_does_not_exist_is_one_line(hub, caches):
    with pytest.raises(WeightsNotFoundError, match="revision 'v9' does not exist in hamacojr/CAT-Seg-weights"):
        resolve_weights("hf:spaces/hamacojr/CAT-Seg-weights/model_base.pth@v9")
    assert [m for m, _ in hub.requests_to("hub")] == ["HEAD"], "one HEAD, no retries"


def test_unknown_repository_is_one_line(hub, caches):
    with pytest.raises(WeightsNotFoundError, match="repository nobody/nothing .* not found"):
        resolve_weights("hf:nobody/nothing/model.pth")


def test_unreachable_hub_is_one_line_without_retries(caches, monkeypatch):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(WeightsNotFoundError, match=rf"cannot reach http://127.0.0.1:{port} to download catseg-b16"):
        resolve_weights("catseg-b16")


def test_truncated_download_is_one_line_and_caches_nothing(hub, caches, run_cli, photo, tmp_path):
    hub_file = hub.repos[("space", "hamacojr/CAT-Seg-weights")].trees[hub.commit_of(
        "hamacojr/CAT-Seg-weights", repo_type="space")]["model_base.pth"]
    hub_file.truncate_at = len(hub_file.content) // 3
    code, _, stderr = run_cli("segment", photo, "-c", "cat", "-w", "catseg-b16", "-o", tmp_path / "out")
    assert_one_line(code, stderr, "downloading catseg-b16", "failed before the end", "nothing was cached")
    assert blobs(caches[0]) == [] and no_partial_files(*caches)
    assert not (caches[1] / "converted").exists() or not any((caches[1] / "converted").iterdir())
    hub_file.truncate_at = None  # the next run downloads it whole
    assert resolve_weights("catseg-b16").path.is_file()


def test_dropped_connection_is_resumed_and_checked(hub, caches):
    hub_file = hub.repos[("space", "hamacojr/CAT-Seg-weights")].trees[hub.commit_of(
        "hamacojr/CAT-Seg-weights", repo_type="space")]["model_base.pth"]
    hub_file.drop_once_at = len(hub_file.content) // 2
    resolved = resolve_weights("catseg-b16")
    assert resolved.source.read_bytes() == hub_file.content, "resumed with a Range request, SHA-256 checked"
    gets = [path for method, path in hub.requests_to("cdn") if method == "GET"]
    assert len(gets) == 2


def test_corrupted_download_is_refused_and_removed(hub, caches):
    hub_file = hub.repos[("space", "hamacojr/CAT-Seg-weights")].trees[hub.commit_of(
        "hamacojr/CAT-Seg-weights", repo_type="space")]["model_base.pth"]
    hub_file.corrupt = True
    with pytest.raises(CheckpointError, match="download of catseg-b16 .* is corrupted .* removed from the cache"):
        resolve_weights("catseg-b16")
    assert blobs(caches[0]) == []
    hub_file.corrupt = False
    assert resolve_weights("catseg-b16").path.is_file()


def test_checkpoint_of_another_framework_behind_a_name(hub, caches, run_cli, photo, tmp_path):
    import io

    import torch

    buffer = io.BytesIO()
    torch.save({"model": {"clip_visual_extractor.conv1.weight": torch.zeros(4, 3, 2, 2)}}, buffer)
    hub.add_file("me/mirror", "model_base.pth", buffer.getvalue())
    hub.repos[("space", "hamacojr/CAT-Seg-weights")] = hub.repos.pop(("model", "me/mirror"))
    hub.repos[("space", "hamacojr/CAT-Seg-weights")].repo_type = "space"
    code, _, stderr = run_cli("segment", photo, "-c", "cat", "-w", "catseg-b16", "-o", tmp_path / "out")
    line = assert_one_line(code, stderr, "not an official catseg checkpoint", "holds no CAT-Seg weights",
                           "not what the registry says")
    assert "catseg-b16" in line
    assert not (caches[1] / "converted").exists() or not any((caches[1] / "converted").iterdir())


def test_name_whose_adapter_is_not_installed(hub, caches, run_cli, photo, tmp_path):
    from infoclip.adapters import adapters, get_plugin_manager, hookspecs
    from infoclip.named_weights import NamedWeights

    class Plugin:
        @staticmethod
        @hookspecs.hookimpl
        def infoclip_register_weights():
            return [NamedWeights(name="elsewhere-b16", repo="hamacojr/CAT-Seg-weights", repo_type="space",
                                 filename="model_base.pth", adapter="elsewhere")]

    get_plugin_manager().register(Plugin(), name="elsewhere-weights")
    code, _, stderr = run_cli("segment", photo, "-c", "cat", "-w", "elsewhere-b16", "-o", tmp_path / "out")
    installed = ", ".join(sorted(adapters()))
    assert_one_line(code, stderr, "elsewhere-b16 (spaces/hamacojr/CAT-Seg-weights/model_base.pth) needs the "
                    f"'elsewhere' adapter, which is not installed (installed: {installed})")
    assert hub.requests == [], "nothing is downloaded for a model that cannot be built"


def test_san_names_wait_for_the_san_adapter(hub, caches):
    from infoclip.adapters import adapters

    if "san" in adapters():
        pytest.skip("the SAN adapter is installed: san-b16 resolves like catseg-b16")
    with pytest.raises(AdapterError, match=r"san-b16 \(Mendel192/san/san_vit_b_16.pth\) needs the 'san' adapter"):
        resolve_weights("san-b16")
    assert hub.requests == []


def test_unknown_name_lists_the_known_ones(caches):
    with pytest.raises(InputError, match=r"unknown weights name 'catseg-b61'; known names: catseg-b16, catseg-l14, "
                       r"san-b16, san-l14 \(or give a file path, or hf:ORG/REPO/FILE"):
        resolve_weights("catseg-b61")
    with pytest.raises(InputError, match="not a Hub file; write hf:ORG/REPO/FILE"):
        resolve_weights("hf:just-a-repo")


def test_local_official_checkpoint_converts_once(caches, allow_tiny_official, tiny_official_bytes, tmp_path):
    source = tmp_path / "model_base.pth"
    source.write_bytes(tiny_official_bytes)
    notes = []
    first = resolve_weights(source, notify=notes.append)
    assert first.converted and first.source == source and len(notes) == 1
    assert first.path.parent == caches[1] / "converted"
    again = resolve_weights(str(source), notify=notes.append)
    assert again.path == first.path and len(notes) == 1, "converted once"
    copy = tmp_path / "renamed.pth"
    copy.write_bytes(tiny_official_bytes)
    assert resolve_weights(copy).path.name.startswith("renamed-")  # keyed by content, named after the file
    damaged = tmp_path / "damaged.pth"
    damaged.write_bytes(tiny_official_bytes[: len(tiny_official_bytes) // 2])
    with pytest.raises(CheckpointError, match="truncated or damaged"):
        resolve_weights(damaged)


def test_hf_file_in_infoclip_format_is_used_as_is(hub, caches, tiny_weights):
    hub.add_file("me/exported", "weights/catseg-tiny.safetensors", tiny_weights.read_bytes(), revision="v1")
    resolved = resolve_weights("hf:me/exported/weights/catseg-tiny.safetensors@v1")
    assert not resolved.converted and resolved.path.read_bytes() == tiny_weights.read_bytes()


def test_hf_official_checkpoint_is_detected_and_converted(hub, caches):
    resolved = resolve_weights("hf:spaces/hamacojr/CAT-Seg-weights/model_base.pth")
    assert resolved.converted and resolved.name is None


def test_weights_list_and_download(hub, caches, run_cli):
    import json

    code, stdout, stderr = run_cli("weights", "list", "--json")
    assert code == 0, stderr
    rows = {row["name"]: row for row in json.loads(stdout)}
    assert set(rows) >= {"catseg-b16", "catseg-l14", "san-b16", "san-l14"}
    assert rows["catseg-b16"]["default"] and rows["catseg-b16"]["cached"] == "no"
    assert rows["catseg-b16"]["published_miou"]["A-150"] == 31.8 and rows["catseg-l14"]["size_mb"] == 1736
    from infoclip.adapters import adapters

    assert rows["san-b16"]["adapter_installed"] is ("san" in adapters())
    code, stdout, stderr = run_cli("weights", "download", "catseg-b16")
    assert code == 0, stderr
    assert stdout.strip().endswith(".safetensors") and "converting" in stderr
    code, stdout, _ = run_cli("weights", "list", "--json")
    assert {row["name"]: row for row in json.loads(stdout)}["catseg-b16"]["cached"] == "ready"
    code, stdout, _ = run_cli("weights", "list")
    assert "catseg-b16 (default)" in stdout and "ready" in stdout


def test_eval_and_the_python_api_take_a_name(hub, caches, run_cli, tmp_path, photo):
    import json

    from infoclip import Segmenter
    from infoclip.data.synthetic import write_custom_dataset

    segmenter = Segmenter.from_pretrained(protocol="whole")  # the default name
    result = segmenter.predict(photo, ["cat", "sofa"])
    assert result.labels.shape == (48, 64) and result.source == "catseg-b16"
    dataset = write_custom_dataset(tmp_path / "room", ["cat", "dog", "sky"], num_images=2, base_size=(32, 40))
    hub.requests.clear()
    code, _, stderr = run_cli("eval", "-w", "catseg-b16", "-d", dataset, "--protocol", "whole", "-o", tmp_path / "ev")
    assert code == 0, stderr
    assert hub.requests == []
    summary = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert summary["weights"] == "catseg-b16" and summary["adapter"] == "catseg"


def test_a_fresh_process_finds_the_cached_file_without_any_request(hub, caches, tmp_path, monkeypatch):
    import os
    import subprocess
    import sys
    from pathlib import Path

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no cached agent registry either
    src = str(Path(__file__).parents[2] / "src")
    code = ("from infoclip.hub import fetch; from infoclip.named_weights import parse_hf_spec; "
            "print(fetch(parse_hf_spec('hf:spaces/hamacojr/CAT-Seg-weights/model_base.pth')))")
    env = {**os.environ, "PYTHONPATH": src}
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert first.returncode == 0, first.stderr
    assert ("cdn", "GET", f"/blobs/{hub.blob_sha('model_base.pth')}") in hub.requests
    hub.requests.clear()
    second = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert second.returncode == 0 and second.stdout == first.stdout, second.stderr
    assert hub.requests == [], "a second process must not contact the Hub for a cached file"


def test_a_registered_sha256_is_checked(hub, caches):
    from infoclip.adapters import get_plugin_manager, hookspecs
    from infoclip.named_weights import NamedWeights

    class Plugin:
        @staticmethod
        @hookspecs.hookimpl
        def infoclip_register_weights():
            return [NamedWeights(name="pinned", repo="hamacojr/CAT-Seg-weights", repo_type="space",
                                 filename="model_base.pth", adapter="catseg", sha256="0" * 64)]

    get_plugin_manager().register(Plugin(), name="pinned-weights")
    with pytest.raises(CheckpointError, match=r"pinned .* is corrupted .* is not the registry's 000000000000"):
        resolve_weights("pinned")
    assert blobs(caches[0]) == []


def test_download_refreshes_a_moved_revision_plain_use_keeps_the_cache(hub, caches, tiny_official_bytes):
    import io

    import torch

    first = resolve_weights("catseg-b16")
    hub.requests.clear()
    same = resolve_weights("catseg-b16", refresh=True)
    assert same.path == first.path and hub.requests_to("cdn") == [], "unchanged on the Hub: nothing downloaded"
    # a new commit on main with other weights
    state = torch.load(io.BytesIO(tiny_official_bytes), weights_only=True)["model"]
    state = {k: v + 1 if v.is_floating_point() else v for k, v in state.items()}
    buffer = io.BytesIO()
    torch.save({"model": state}, buffer)
    repo = hub.repos[("space", "hamacojr/CAT-Seg-weights")]
    repo.refs["main"] = "f" * 40
    repo.trees["f" * 40] = {"model_base.pth": HubFile(buffer.getvalue(), "model_base.pth")}
    hub.requests.clear()
    assert resolve_weights("catseg-b16").path == first.path and hub.requests == [], "plain use: the cache"
    moved = resolve_weights("catseg-b16", refresh=True)
    assert moved.path != first.path and moved.source.read_bytes() == buffer.getvalue()


def test_unwritable_caches_are_one_line(hub, caches, monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("HF_HUB_CACHE", str(blocker / "hub"))
    with pytest.raises(WeightsNotFoundError, match=r"cannot write catseg-b16 .* into the Hugging Face cache .*HF_HUB_CACHE"):
        resolve_weights("catseg-b16")
    monkeypatch.setenv("HF_HUB_CACHE", str(caches[0]))
    monkeypatch.setenv("INFOCLIP_CACHE", str(blocker / "infoclip"))
    with pytest.raises(CheckpointError, match=r"cannot write the converted weights of catseg-b16 .*INFOCLIP_CACHE"):
        resolve_weights("catseg-b16")
