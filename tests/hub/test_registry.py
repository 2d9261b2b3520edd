"""The named-weights registry as data, and the ``hf:`` form (no network, no torch needed)."""

from __future__ import annotations

import pytest

from infoclip.errors import ConfigError, InputError
from infoclip.named_weights import NamedWeights, default_name, parse_hf_spec, registered_weights


def test_builtin_names_point_at_the_released_files():
    known = registered_weights()
    b16, l14, san_b, san_l = known["catseg-b16"], known["catseg-l14"], known["san-b16"], known["san-l14"]
    assert (b16.repo, b16.repo_type, b16.filename) == ("hamacojr/CAT-Seg-weights", "space", "model_base.pth")
    assert (l14.repo, l14.repo_type, l14.filename) == ("hamacojr/CAT-Seg-weights", "space", "model_large.pth")
    assert (san_b.repo, san_b.repo_type, san_b.filename) == ("Mendel192/san", "model", "san_vit_b_16.pth")
    assert san_l.filename == "san_vit_large_14.pth" and san_l.adapter == "san"
    assert b16.url == "https://huggingface.co/spaces/hamacojr/CAT-Seg-weights/resolve/main/model_base.pth"
    assert b16.published_miou == {"A-847": 12.0, "PC-459": 19.0, "A-150": 31.8, "PC-59": 57.5, "PAS-20": 94.6,
                                  "PAS-20b": 77.3}
    assert all(entry.license and entry.size_mb and entry.format == "official" for entry in known.values())
    assert default_name() == "catseg-b16"


@pytest.mark.parametrize(
    ("spec", "repo_type", "repo", "filename", "revision", "shown"),
    [
        ("hf:Mendel192/san/san_vit_b_16.pth", "model", "Mendel192/san", "san_vit_b_16.pth", "main",
         "hf:Mendel192/san/san_vit_b_16.pth"),
        ("hf:spaces/hamacojr/CAT-Seg-weights/model_base.pth@abc123", "space", "hamacojr/CAT-Seg-weights",
         "model_base.pth", "abc123", "hf:spaces/hamacojr/CAT-Seg-weights/model_base.pth@abc123"),
        ("hf:datasets/me/data/sub/dir/w.safetensors", "dataset", "me/data", "sub/dir/w.safetensors", "main",
         "hf:datasets/me/data/sub/dir/w.safetensors"),
    ],
)
def test_hf_spec(spec, repo_type, repo, filename, revision, shown):
    entry = parse_hf_spec(spec)
    assert (entry.repo_type, entry.repo, entry.filename, entry.revision) == (repo_type, repo, filename, revision)
    assert entry.format == "auto" and entry.what == shown and entry.spec == shown


@pytest.mark.parametrize("spec", ["hf:org/repo", "hf:org//file", "hf:org/repo/file@", "hf:"])
def test_bad_hf_specs_are_refused(spec):
    with pytest.raises(InputError, match="hf:ORG/REPO/FILE"):
        parse_hf_spec(spec)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "a/b"}, "may not be empty or contain"),
        ({"repo": "norepo"}, "repo must be ORG/NAME"),
        ({"format": "onnx"}, "format must be one of"),
        ({"repo_type": "bucket"}, "repo_type must be one of"),
        ({"adapter": ""}, "adapter is required"),
        ({"sha256": "abc"}, "sha256 must be 64"),
    ],
)
def test_entries_are_checked(fields, message):
    values = {"name": "x", "repo": "o/r", "filename": "f.pth", "adapter": "catseg"} | fields
    with pytest.raises(ConfigError, match=message):
        NamedWeights(**values)
