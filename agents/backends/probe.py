"""What an OpenAI-compatible server supports, detected once at start-up: its model, its engine, its tokenize endpoint,
whether raw /v1/completions works (prompt mode), and the ways score_next can commit to a letter there, best first."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import httpx
import structlog

from agents.backends.base import BackendError
from agents.backends.retry import RetryPolicy, ServerError, describe
from agents.backends.scoring import answer_schema
from agents.backends.server import MalformedReply, Server, token_count
from agents.backends.template import template_thinking
from eval.core.schema import Engine, Message

log = structlog.get_logger()
Scoring = Literal["auto", "probabilities", "letter"]
PromptMode = Literal["auto", "completions", "chat"]


@dataclass
class Capabilities:
    prompt_mode: Literal["completions", "chat"]
    methods: list[str]  # score_next methods that work, best first (agents/backends/scoring.py: METHODS)
    tokenize: str | None  # "extras" (llama_cpp.server), "tokenize" (llama-server, vLLM) or None (estimate)
    llama_cpp: bool  # the server takes llama.cpp sampling fields (repeat_penalty, grammar)
    models: list[str]
    engine: Engine
    bos_overhead: int = 0  # tokens the tokenize endpoint adds to any text (a BOS)
    thinking: str = ""  # the server's own chat template thinks (chat mode): how letters are read then


def detect(server: Server, retry: RetryPolicy, *, scoring: Scoring, requested_mode: PromptMode) -> Capabilities:
    """GET /v1/models, then probe: sets the server's model name (the first listed unless given), prompt mode and
    llama.cpp fields. Raises BackendError with one clear line."""
    models = server.models()
    if not models and not server.model_name:
        raise BackendError(f"{server.base_url}/models lists no model; pass --model-name")
    if server.model_name is None:
        server.model_name = models[0]
    elif models and server.model_name not in models:
        log.warning("server.model_not_listed", model=server.model_name, listed=models)
    tokenize, overhead, llama_cpp = _detect_tokenize(server, retry)
    server.llama_cpp = llama_cpp
    mode: Literal["completions", "chat"] = "chat"
    if server.template is not None:
        if _supported(server, retry, lambda: server.complete_raw("Hi", max_tokens=1)):
            mode = "completions"
        elif requested_mode == "completions":
            raise BackendError(f"{server.base_url}/completions does not work; use --prompt-mode chat")
    server.mode = mode
    probe_msgs = [Message(role="user", content="Reply with the single letter A.")]
    _answers(server, retry, probe_msgs)
    engine = _engine(server, tokenize)
    found = Capabilities(mode, ["regex"], tokenize, llama_cpp, models, engine, bos_overhead=overhead)
    if mode == "chat" and (thinks := _server_template_thinks(server)):
        # The server renders the chat template, and this one starts the reply thinking: the first token of a reply
        # (its log-probabilities, a grammar's letter, a JSON answer) would be inside the block. Only a letter
        # parsed from the reply after its thinking is an answer.
        found.thinking = f"{thinks}; on this chat endpoint letters are parsed from the reply after its thinking"
        log.warning("server.thinking_template", url=server.base_url, note=found.thinking)
        return found
    methods = []
    # llama_cpp.server computes log-probabilities for every prompt token (logits_all) and sorts the whole
    # vocabulary in Python for each generated one: 0.3-0.4 s a request, more than the answer's forward pass.
    wanted = scoring == "probabilities" or (scoring == "auto" and engine.name != "llama_cpp.server")
    if wanted and _supported(
        server, retry, lambda: _first_top(server.request(probe_msgs, "", max_tokens=1, logprobs=True).top)
    ):
        methods.append("next_token")
    if _supported(
        server,
        retry,
        lambda: server.request(probe_msgs, "", max_tokens=3, grammar='root ::= "Z"').text.strip() == "Z",
    ):
        methods.append("grammar")
    if mode == "chat" and _supported(
        server,
        retry,
        lambda: (
            server.request(probe_msgs, "", max_tokens=24, json_schema=answer_schema(["A", "B"]))
            .text.lstrip()
            .startswith("{")
        ),
    ):
        methods.append("json")
    found.methods = [*methods, "regex"]
    log.info(
        "server.ready",
        url=server.base_url,
        model=server.model_name,
        engine=engine.describe(),
        prompt_mode=mode,
        methods=found.methods,
        tokenize=tokenize or "estimate (characters)",
    )
    if wanted and "next_token" not in methods:
        log.warning(
            "server.no_logprobs",
            url=server.base_url,
            scoring=found.methods[0],
            note="the server returns no next-token log-probabilities: answers are committed letters, "
            "with no probabilities for calibration",
        )
    return found


def _first_top(top: list[tuple[str, float]] | None) -> list[tuple[str, float]]:
    if not top:
        raise ValueError("the answer has no top_logprobs")
    return top


def _server_template_thinks(server: Server) -> str:
    """What the server's own chat template does with thinking (llama-server's /props shows it), or ""."""
    template = (server.get_json(f"{server.root_url}/props") or {}).get("chat_template")
    return template_thinking(template) if isinstance(template, str) else ""


def _engine(server: Server, tokenize: str | None) -> Engine:
    """Which engine answers, from the endpoints only it has: llama_cpp.server's /extras/tokenize (its version
    in /openapi.json), llama-server's /props (slots and build), vLLM's /version."""
    if tokenize == "extras":
        info = (server.get_json(f"{server.root_url}/openapi.json") or {}).get("info") or {}
        return Engine(name="llama_cpp.server", version=str(info.get("version", "")), slots=1)
    if (props := server.get_json(f"{server.root_url}/props")) and "total_slots" in props:
        build = str(props.get("build_info", ""))  # "b6100-1a2b3c4"; "b0-unknown" from a build without git
        release = build.split("-")[0]
        return Engine(
            name="llama-server", version="" if release == "b0" else release, build=build, slots=props["total_slots"]
        )
    if (version := server.get_json(f"{server.root_url}/version")) and "version" in version:
        return Engine(name="vllm", version=str(version["version"]))
    return Engine(name="unknown")


def _answers(server: Server, retry: RetryPolicy, messages: list[Message]) -> None:
    """One real request as a question's are sent, before any feature probe: an endpoint that refuses it, or whose
    reply is not an OpenAI completion (an HTML page, broken JSON, no choices), is refused here in one line."""
    import openai

    try:
        retry.call("start-up request", lambda: server.request(messages, "", max_tokens=1))
    except openai.APIStatusError as e:
        raise BackendError(
            f"the server at {server.base_url} refused a plain {server.mode} request: {describe(e)}"
        ) from None


def _supported(server: Server, retry: RetryPolicy, attempt: Callable[[], Any]) -> bool:
    """True when a feature probe returns something truthy; a 4xx refusal means unsupported."""
    import openai

    try:
        return bool(retry.call("capability probe", attempt))
    except (
        openai.BadRequestError,
        openai.NotFoundError,
        openai.UnprocessableEntityError,
        openai.APIStatusError,
    ) as e:
        log.debug("server.unsupported", error=describe(e))
        return False
    except MalformedReply as e:  # the endpoint a feature needs answers in another shape: the plain probe decides
        log.debug("server.unsupported", error=str(e))
        return False
    except ServerError as e:
        raise BackendError(f"the server at {server.base_url} keeps failing: {e}") from None
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as e:  # an answer without the feature
        log.debug("server.unsupported", error=f"{type(e).__name__}: {e}")
        return False


def _detect_tokenize(server: Server, retry: RetryPolicy) -> tuple[str | None, int, bool]:
    """Which tokenize endpoint answers, the tokens it adds to an empty text (BOS), and whether it is llama.cpp's."""
    for kind in ("extras", "tokenize"):
        try:
            data = retry.call("tokenize probe", partial(server.tokenize_json, kind, ""))
            # llama_cpp.server (/extras/tokenize) and llama-server (/tokenize) answer {"tokens"}; vLLM adds "count".
            return kind, token_count(data), "count" not in data
        except (httpx.HTTPStatusError, ValueError, KeyError, TypeError) as e:
            log.debug("server.tokenize_unsupported", endpoint=kind, error=str(e)[:200])
        except ServerError as e:
            raise BackendError(f"the server at {server.base_url} keeps failing: {e}") from None
    return None, 0, False
