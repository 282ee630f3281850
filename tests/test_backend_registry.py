"""The backend registry: an engine is one class (in its own file, declaring BACKEND) plus one line of
agents/backends/__init__.py, and eval.api never names one. Here a test-only engine, registered in one line, runs
through evaluate() with its own flag, without a line of eval/api.py changed. Pure dispatch logic: a fake engine."""

from __future__ import annotations

import pytest
from fakes import FakeBackend
from pydantic import BaseModel, Field, ValidationError

from agents.backends import BACKENDS, endpoint_flags
from agents.backends.base import Registered
from eval.api import RunSpec, evaluate, spec_model
from eval.core.flags import parse
from eval.core.store import read_manifest, read_predictions


class Options(BaseModel):
    favourite: str | None = Field(None, description="the letter the scripted engine always commits to")


class Scripted(FakeBackend, Registered):
    """An engine that commits to --favourite on every question."""

    kind = "scripted"
    about = "commits to --favourite"
    options = Options
    endpoint = ("favourite",)  # where its "model" is: given, it selects this backend as --base-url selects openai

    def __init__(self, favourite: str):
        super().__init__(scores={c: 0.0 if c == favourite else -5.0 for c in "ABCDEFGH"})
        self.name = f"scripted:{favourite}"

    @classmethod
    def open(cls, spec, model_path):
        return cls(spec.favourite)


def test_an_engine_registered_in_one_line_runs_through_evaluate(monkeypatch, tmp_path):
    monkeypatch.setitem(BACKENDS, Scripted.kind, Scripted)  # the registry line
    spec_type = spec_model()  # RunSpec as the registries now stand
    argv = ["--graph", "single", "--baseline", "none", "--limit", "6", "--favourite", "C", "--out", str(tmp_path)]
    spec = parse(spec_type, argv, prog="test", error=ValueError)  # its option is a flag
    assert spec.backend == "scripted", "its address selects it"
    assert "--favourite" in endpoint_flags(), "a leaderboard entry may not set it through args"

    result = evaluate(spec)
    answers = [p.answer for p in read_predictions(result.out).values()]
    assert len(answers) == 6 and set(answers) == {"C"}
    manifest = read_manifest(result.out)
    assert (manifest.model, manifest.engine.name, manifest.scoring) == ("scripted:C", "fake", "")
    assert result.summary.model == "scripted:C"

    with pytest.raises(ValidationError, match=r"--favourite needs --backend scripted \(--backend llama evaluates"):
        spec_type(favourite="C", backend="llama")


def test_the_packaged_runspec_lists_the_registered_backends_and_their_flags():
    assert set(BACKENDS) == {"llama", "openai"}
    assert {"base_url", "prompt_mode", "scoring", "retries"} <= set(RunSpec.model_fields)
    assert endpoint_flags() == {"--backend", "--base-url", "--model-name", "--api-key-env"}
    with pytest.raises(ValidationError):
        RunSpec(backend="scripted")  # registered after RunSpec was made: not one of its backends


def test_a_leaderboard_entry_takes_a_registered_engines_endpoint_as_its_keys(monkeypatch, tmp_path):
    """The same registry line gives leaderboard entries its endpoint keys: an entry with `favourite` is a model behind
    that engine, its run's spec selects it, and its label is what the engine serves."""
    from eval.plans.board import Board, entry_model
    from eval.plans.specs import entry_fields

    monkeypatch.setitem(BACKENDS, Scripted.kind, Scripted)
    monkeypatch.setattr(Scripted, "served", "favourite")
    entry_type = entry_model()
    assert {"base_url", "model_name", "api_key_env", "favourite"} <= set(entry_type.model_fields)
    entry = entry_type(favourite="C")
    assert entry.endpoint() == ("scripted", {"favourite": "C"}) and entry.label == "C"
    assert entry_fields(entry) == {"model": None, "backend": "scripted", "favourite": "C"}
    gguf = entry_type(model="smollm2-135m")
    assert gguf.endpoint() == ("", {}) and gguf.label == "smollm2-135m"
    with pytest.raises(ValidationError, match=r"a model needs `model`.*`base_url` or `favourite`"):
        entry_type()
    # The packaged Entry was built before this engine was registered: it refuses the key, as RunSpec refuses the flag.
    with pytest.raises(ValidationError, match="favourite"):
        Board(models=[{"favourite": "C"}])
