"""Prompt files: every one checked against the schema on load; question and passage layout come from TOML."""

from importlib.resources import files

import pytest
from pydantic import ValidationError

from agents.messages import question_messages
from agents.prompts import PromptFile, load_prompts, render_question
from eval.core.schema import RetrievedPassage

SHIPPED = sorted(p.name.removesuffix(".toml") for p in files("agents.prompts").iterdir() if p.name.endswith(".toml"))


def test_the_shipped_prompt_files_all_load():
    assert {"single", "reflect", "cot", "sc", "panel", "question", "chat"} <= set(SHIPPED)
    for name in SHIPPED:
        prompts = load_prompts(name)
        for variant in prompts.get("variants", {}):
            assert load_prompts(name, variant)["version"].endswith(f"/{variant}")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"system": "x"}, "version"),
        ({"version": "v", "system": 3}, "a prompt is a string"),
        ({"version": "v", "default_variant": "en", "variants": {"zh": {"system": "x"}}}, "default_variant 'en'"),
        (
            {"version": "v", "default_variant": "a", "variants": {"a": {"system": "x"}, "b": {"prefix": "y"}}},
            "different",
        ),
    ],
)
def test_a_malformed_prompt_file_is_refused(data, message):
    with pytest.raises(ValidationError, match=message):
        PromptFile.model_validate(data)


def test_questions_and_passages_are_laid_out_by_question_toml(question):
    layout = load_prompts("question")
    assert render_question(question).startswith(f"题目：{question.stem}\n选项：\nA. 急性心包炎\nB. ")
    passage = RetrievedPassage(id="p", source="s", title="指南", score=1.0, text="要点")
    user = question_messages("你是医生。", question, "请作答。", [passage])[1].content
    assert user.startswith(layout["passages"].format(passages="[1] 指南\n要点\n\n"))
    assert user.endswith(render_question(question) + "\n\n请作答。")
