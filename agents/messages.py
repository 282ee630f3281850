"""Building chat messages, trace steps and the scored answer, shared by every node."""

from __future__ import annotations

from collections.abc import Sequence

from agents.answer import best_letter, letter_set_grammar, parse_letters
from agents.backends.base import Backend, Completion
from agents.prompts import render_passages, render_question
from eval.core.schema import Message, Question, RetrievedPassage, TraceStep


def question_messages(
    system: str, question: Question, instruction: str, passages: Sequence[RetrievedPassage] = ()
) -> list[Message]:
    # Passages, then question, then the node's instruction: every prompt about one question shares the
    # longest KV-cache prefix.
    context = render_passages(passages)
    return [
        Message(role="system", content=system),
        Message(role="user", content=f"{context}{render_question(question)}\n\n{instruction}"),
    ]


def few_shot_messages(
    system: str,
    shots: Sequence[tuple[Question, str]],
    question: Question,
    instruction: str,
    passages: Sequence[RetrievedPassage] = (),
) -> list[Message]:
    """Worked examples as earlier turns (each question with the same instruction, then its reply), then the question.

    The examples come before the question, so every prompt about one question (each option order) shares them as
    its cached prefix.
    """
    turns = [Message(role="system", content=system)]
    for example, reply in shots:
        turns.append(Message(role="user", content=f"{render_question(example)}\n\n{instruction}"))
        turns.append(Message(role="assistant", content=reply))
    return turns + question_messages(system, question, instruction, passages)[1:]


def follow_up(conversation: Sequence[Message], reply: str, instruction: str) -> list[Message]:
    """The conversation so far, the model's last reply, and the next request."""
    return [*conversation, Message(role="assistant", content=reply), Message(role="user", content=instruction)]


def trace_step(node: str, messages: Sequence[Message], completion: Completion) -> TraceStep:
    return TraceStep(
        node=node,
        messages=list(messages),
        output=completion.text,
        prompt_tokens=completion.prompt_tokens,
        prompt_tokens_evaluated=completion.prompt_tokens_evaluated,
        completion_tokens=completion.completion_tokens,
        seconds=completion.seconds,
        scores=completion.scores,
        finish_reason=completion.finish_reason,
        reasoning=completion.reasoning,
        reasoning_tokens=completion.reasoning_tokens,
        reasoning_finished=completion.reasoning_finished,
    )


def choose_by_scores(backend: Backend, node: str, messages: Sequence[Message], question: Question, prefix: str) -> dict:
    """One forward pass; the answer is the option letter with the highest next-token log-probability. A
    multi-answer question's answer is a set of letters instead, generated under a grammar that allows only letter
    sets (parsed from the text where a server ignores grammars).

    Returns the graph-state update (answer, method, trace step).
    """
    if question.multi:
        grammar = letter_set_grammar(question.letters)
        # Room for "A、C、D" where a server ignores the grammar; under one, generation ends with the set.
        completion = backend.chat(
            messages, max_tokens=4 * len(question.letters), grammar=grammar, assistant_prefix=prefix
        )
        answer = parse_letters(completion.text, question.letters)
        return {"answer": answer, "answer_method": "grammar", "trace": [trace_step(node, messages, completion)]}
    completion = backend.score_next(messages, question.letters, assistant_prefix=prefix)
    assert completion.scores is not None
    step = trace_step(node, messages, completion)
    return {"answer": best_letter(completion.scores), "answer_method": completion.method, "trace": [step]}
