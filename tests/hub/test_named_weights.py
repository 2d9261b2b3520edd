"""Weights by name through a loopback Hub: first download, cached second run, offline, failures, conversion cache."""

from __future__ import annotations

import pytest

from infoclip.errors import AdapterError, CheckpointError, InputError, WeightsNotFoundError
from infoclip.weights_resolver import resolve_weights


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
