"""Panel nodes: independent opinions from clinician roles, then a chair who commits by next-token scores."""

from __future__ import annotations

from agents.answer import parse_answer
from agents.backends.base import Backend
from agents.messages import choose_by_scores, question_messages, trace_step
from agents.prompts import prompts_for


def opinions_node(state: dict, *, backend: Backend, prompts: dict, max_tokens: int, panellists: int) -> dict:
    """Each of the first `panellists` roles answers the question on its own (one trace step each).

    One after another inside this node, never as parallel branches: one backend must not be called concurrently.
    """
    question = state["question"]
    prompts = prompts_for(prompts, question)
    steps, opinions, letters = [], [], []
    for role in prompts["roles"][:panellists]:
        messages = question_messages(role["system"], question, prompts["opinion"], state.get("passages", ()))
        completion = backend.chat(messages, max_tokens=max_tokens, assistant_prefix=prompts["opinion_prefix"])
        steps.append(trace_step("opinion", messages, completion))
        opinions.append(f"【{role['name']}】\n{completion.text}")
        letters.append(parse_answer(completion.text, question))
    # The first panellist's letter is what one clinician alone would have answered: the report shows what the
    # panel changed.
    return {"opinions": opinions, "panel_letters": letters, "draft_answer": letters[0], "trace": steps}


def aggregate_node(state: dict, *, backend: Backend, prompts: dict) -> dict:
    question = state["question"]
    prompts = prompts_for(prompts, question)
    instruction = prompts["aggregate"].format(opinions="\n\n".join(state["opinions"]))
    messages = question_messages(prompts["chair"], question, instruction, state.get("passages", ()))
    return choose_by_scores(backend, "aggregate", messages, question, prompts["answer_prefix"])
