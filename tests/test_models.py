import pytest

from eval.models import DEFAULT_MODEL, PACKAGED_MODELS, ModelError, PackagedModel, materialize, resolve_model


def test_packaged_model_missing_names_the_install_command():
    ghost = PackagedModel("ghost", "", ("ghost-part1==1.0",), ("ghost_part1/data/part01.bin",), 1, "")
    with pytest.raises(ModelError, match=r"pip install ghost-part1==1.0"):
        materialize(ghost)


def test_not_a_file_and_not_a_name(tmp_path):
    with pytest.raises(ModelError, match="no such file, and not a packaged model name"):
        resolve_model(str(tmp_path / "nope.gguf"))


def test_a_file_that_is_not_gguf(tmp_path):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"<html>not a model</html>")
    with pytest.raises(ModelError, match="not a GGUF file"):
        resolve_model(str(bad))


def test_split_model_is_assembled_and_verified(tmp_path, monkeypatch):
    """Two installed 'parts' are concatenated once into the cache and checked against size and sha256."""
    import hashlib
    import sys

    pkg = tmp_path / "site"
    for i, data in ((1, b"GGUF-part-one|"), (2, b"part-two")):
        (pkg / f"fakemodel_part{i}" / "data").mkdir(parents=True)
        (pkg / f"fakemodel_part{i}" / "__init__.py").write_text("")
        (pkg / f"fakemodel_part{i}" / "data" / f"part0{i}.bin").write_bytes(data)
    monkeypatch.syspath_prepend(str(pkg))
    monkeypatch.setenv("CLINICAL_EVAL_CACHE", str(tmp_path / "cache"))
    whole = b"GGUF-part-one|part-two"
    model = PackagedModel(
        "fake",
        "",
        ("fakemodel-part1", "fakemodel-part2"),
        ("fakemodel_part1/data/part01.bin", "fakemodel_part2/data/part02.bin"),
        len(whole),
        hashlib.sha256(whole).hexdigest(),
    )
    path = materialize(model)
    assert path.read_bytes() == whole
    assert materialize(model) == path  # second call uses the verified cache
    wrong = PackagedModel(model.name + "2", "", model.packages, model.files, model.size, "0" * 64)
    with pytest.raises(ModelError, match="sha256 does not match"):
        materialize(wrong)
    assert not list((tmp_path / "cache" / "models").glob("*.part")), "a failed assembly must not leave files behind"
    assert "fakemodel_part1" not in sys.modules  # located, never imported


def test_pinned_models_match_their_packages():
    for model in PACKAGED_MODELS.values():
        assert len(model.packages) == len(model.files)
        for package, file in zip(model.packages, model.files, strict=True):
            assert file.split("/")[0] == package.split("==")[0].replace("-", "_"), (model.name, file)
    # The installed ones against their pinned size and sha256 (materialize raises on a mismatch).
    for name in (DEFAULT_MODEL, "smollm2-135m", "gemma3-270m"):
        model = PACKAGED_MODELS[name]
        path = materialize(model)
        with open(path, "rb") as f:
            assert f.read(4) == b"GGUF" and path.stat().st_size == model.size


def test_model_hash_is_remembered_until_the_file_changes(tmp_path, monkeypatch):
    import hashlib

    from eval.core import cache as models

    monkeypatch.setenv("CLINICAL_EVAL_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF one")
    assert models.model_sha256(gguf) == hashlib.sha256(b"GGUF one").hexdigest()
    calls = []
    monkeypatch.setattr(models, "sha256_file", lambda p: calls.append(p) or "recomputed")
    assert models.model_sha256(gguf) == hashlib.sha256(b"GGUF one").hexdigest() and not calls
    gguf.write_bytes(b"GGUF two, longer")
    assert models.model_sha256(gguf) == "recomputed"
