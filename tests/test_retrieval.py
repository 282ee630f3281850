"""Guideline retrieval: chunking, the bundled notes, an idempotent chromadb store, three search modes, the RAG graph."""

import json

import pytest
from conftest import run_main

from retrieval import RetrievalError
from retrieval.chunking import split_document
from retrieval.store import BUNDLED_GUIDELINES, GuidelineStore

DOC = """# 测试指南

specialty: cardiovascular

## 右心室梗死

下壁心肌梗死合并右心室梗死时出现低血压、颈静脉怒张而肺野清晰，应快速静脉补液扩容，避免使用硝酸酯类和利尿剂。

## 房颤抗凝

非瓣膜性心房颤动患者应按 CHA2DS2-VASc 评分决定抗凝，首选新型口服抗凝药。
"""
OTHER = """# 另一份

## 缺铁性贫血

缺铁性贫血首选检查为血清铁蛋白，治疗以口服铁剂为主，并寻找失血原因。
"""


@pytest.fixture
def docs(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "cv.md").write_text(DOC, encoding="utf-8")
    (folder / "hem.txt").write_text(OTHER, encoding="utf-8")
    return folder


def test_split_keeps_headings_metadata_and_size_bound():
    passages = split_document(DOC, "cv.md", max_chars=40, overlap=10)
    assert all(len(p.text) <= 40 + len("【右心室梗死】") for p in passages)
    assert {p.specialty for p in passages} == {"cardiovascular"}
    assert passages[0].title == "测试指南 › 右心室梗死" and passages[0].text.startswith("【右心室梗死】")
    assert [p.chunk for p in passages] == list(range(len(passages)))
    assert len({p.id for p in passages}) == len(passages)
    # cut pieces of one long paragraph overlap, so a fact on a boundary is not lost
    first, second = passages[0].text, passages[1].text
    assert first[-5:] in second


def test_bundled_notes_cover_every_specialty_with_enough_passages():
    files = sorted(BUNDLED_GUIDELINES.glob("*.md"))
    assert len(files) >= 7
    passages = [p for f in files for p in split_document(f.read_text(encoding="utf-8"), f.name)]
    assert len(passages) >= 150
    assert {p.specialty for p in passages} == {
        "cardiovascular",
        "gastroenterology",
        "hematology",
        "infectious_disease",
        "nephrology",
        "neurology",
        "respiratory",
    }


def test_ingest_is_idempotent_and_replaces_changed_files(tmp_path, docs):
    store = GuidelineStore(tmp_path / "store")
    first = store.ingest([docs])
    assert (first.files, first.removed, first.unchanged) == (2, 0, 0) and first.added == store.count() >= 3
    again = store.ingest([docs])
    assert (again.added, again.removed, again.unchanged) == (0, 0, first.added)
    (docs / "hem.txt").write_text(OTHER.replace("口服铁剂", "静脉铁剂"), encoding="utf-8")
    changed = store.ingest([docs])
    assert (changed.added, changed.removed) == (1, 1) and store.count() == first.added
    # persistent: a new client on the same directory sees the same passages
    assert GuidelineStore(tmp_path / "store").count() == first.added


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_search_finds_the_relevant_passage(tmp_path, docs, mode):
    store = GuidelineStore(tmp_path / "store")
    store.ingest([docs])
    hits = store.search("下壁心肌梗死 低血压 颈静脉怒张 应如何补液", k=2, mode=mode)
    assert hits and "右心室" in hits[0].title
    assert hits[0].source == "cv.md"
    assert all(isinstance(h.score, float) for h in hits)


def test_empty_store_and_bad_paths_are_clear_errors(tmp_path):
    store = GuidelineStore(tmp_path / "store")
    with pytest.raises(RetrievalError, match="empty"):
        store.search("x")
    with pytest.raises(RetrievalError, match=r"not a .md/.txt"):
        store.ingest([tmp_path / "guideline.pdf"])


def test_ingest_cli_reports_what_it_did(tmp_path, docs):
    cmd = ["retrieval.ingest", docs, "--store", tmp_path / "s"]
    first = run_main(*cmd)
    assert first.returncode == 0, first.stderr
    assert "2 files" in first.stdout and "0 removed" in first.stdout
    second = run_main(*cmd)
    assert "0 passages added" in second.stdout


def test_rag_graph_end_to_end_on_the_tiny_model(cli, tmp_path, docs):
    from retrieval.store import GuidelineStore

    GuidelineStore(tmp_path / "store").ingest([docs])
    out = tmp_path / "run"
    result = cli(
        "--graph",
        "reflect",
        "--retrieval",
        "--retriever",
        "bm25",
        "--guideline-store",
        str(tmp_path / "store"),
        "--model",
        "smollm2-135m",
        "--specialty",
        "cardiovascular",
        "--limit",
        "1",
        "--draft-tokens",
        "24",
        "--critique-tokens",
        "16",
        "--n-ctx",
        "4096",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    predictions = {
        json.loads(line)["graph"]: json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()
    }
    chain = predictions["reflect+rag"]
    retrieve, draft = chain["trace"][0], chain["trace"][1]
    assert [s["node"] for s in chain["trace"]] == ["retrieve", "draft", "critique", "extract"]
    assert retrieve["passages"] and all(
        {"id", "source", "title", "score", "text"} <= set(p) for p in retrieve["passages"]
    )
    assert retrieve["passages"][0]["text"] in draft["messages"][-1]["content"]
    assert "bm25" in json.loads((out / "manifest.json").read_text())["retrieval"]
    assert "## reflect+rag vs single" in result.stdout


def test_context_budget_that_cannot_fit_is_refused(cli, tmp_path):
    result = cli("--graph", "single+rag", "--model", "smollm2-135m", "--n-ctx", "1024", "--out", str(tmp_path / "r"))
    assert result.returncode == 2 and "raise --n-ctx" in result.stderr
