"""One OpenAI-compatible server's HTTP API: a request in the run's prompt mode, its reply read (or refused as not an
OpenAI completion), the model list, the tokenize endpoints. Retries and capability probing are the callers'."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal
from urllib.parse import urlparse

import httpx

from agents.backends.base import BackendError
from agents.backends.retry import ServerError
from agents.backends.template import ServerTemplate
from eval.core.schema import FinishReason, Message

TOP_LOGPROBS = 20  # the most OpenAI (and vLLM's default --max-logprobs) return
DUMMY_KEY = "sk-no-key-required"  # local servers do not check keys, but the client insists on one


class MalformedReply(ServerError):
    """The server answered with something that is not an OpenAI completion (an HTML page, broken JSON, no choices)."""


def _openai_reply(raw: Any, part: Literal["message", "text"]) -> Any:
    """The parsed reply of a `with_raw_response` call once its body has the OpenAI shape: a JSON object whose first
    choice holds `part` (a chat message, or a completion's text). Else MalformedReply, saying what came back."""
    response = raw.http_response
    try:
        data, parsed = response.json(), True
    except ValueError:
        data, parsed = None, False
    choices = data.get("choices") if isinstance(data, dict) else None
    first = choices[0] if choices and isinstance(choices, list) else None
    if isinstance(first, dict) and isinstance(first.get(part), dict if part == "message" else str):
        return raw.parse()
    body = " ".join(response.text.split())
    if not body:
        what = "an empty body"
    elif not parsed:
        html = re.match(r"(?i)<(!doctype|html)", body)
        what = "an HTML page" if html else "invalid JSON" if body[0] in "{[" else "text that is not JSON"
    elif not isinstance(data, dict):
        what = "JSON that is not an object"
    elif not isinstance(choices, list):
        what = "JSON without a choices list"
    else:
        what = "no choices" if not choices else f"a choice without its {part}"
    kind = "chat completion" if part == "message" else "completion"
    raise MalformedReply(
        f"the server at {response.url} answered HTTP {response.status_code} with {what}, not an OpenAI {kind}"
        + (f": {body[:80]}" if body else "")
    )


@dataclass
class Reply:
    text: str
    prompt_tokens: int
    prompt_tokens_evaluated: int
    completion_tokens: int
    top: list[tuple[str, float]] | None = None  # first generated position's top log-probabilities
    finish_reason: FinishReason | None = None
    reasoning: str = ""  # a separate reasoning field (reasoning_content, reasoning)
    reasoning_tokens: int | None = None  # usage.completion_tokens_details.reasoning_tokens, where the server gives it
    opened: bool = False  # the prompt (rendered here) ended inside a thinking block


def _finish_reason(value: Any) -> FinishReason:
    """OpenAI's finish_reason as ours: "length" is the budget; vLLM's "abort" and "error" and DeepSeek's
    "insufficient_system_resource" (the reply was interrupted) are errors; the rest (stop, eos, tool_calls,
    content_filter...) ended the reply."""
    return (
        "length"
        if value == "length"
        else "error"
        if value in ("error", "abort", "insufficient_system_resource")
        else "stop"
    )


def _reasoning_tokens(usage: Any) -> int | None:
    details = getattr(usage, "completion_tokens_details", None) if usage else None
    value = getattr(details, "reasoning_tokens", None)
    return value if isinstance(value, int) else None


def _reply(resp: Any, text: str, top: list[tuple[str, float]] | None, reasoning: str = "") -> Reply:
    """A parsed completion (chat or text) as a Reply: its usage, what the server evaluated and why it stopped."""
    usage = resp.usage
    prompt_tokens = usage.prompt_tokens if usage else 0
    return Reply(
        text,
        prompt_tokens,
        _evaluated(resp, prompt_tokens),
        usage.completion_tokens if usage else 0,
        top,
        finish_reason=_finish_reason(resp.choices[0].finish_reason),
        reasoning=reasoning,
        reasoning_tokens=_reasoning_tokens(usage),
    )


class Server:
    """The HTTP side of OpenAIBackend: where the server is, how to ask it, and what probing found it takes (`mode`,
    `llama_cpp`). Thread-safe once probed."""

    def __init__(
        self,
        base_url: str,
        model_name: str | None,
        *,
        api_key: str | None,
        seed: int,
        repeat_penalty: float,
        timeout: float,
        http_client: httpx.Client | None,
    ):
        self.base_url = base_url.rstrip("/")
        parsed = urlparse(self.base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise BackendError(f"--base-url {base_url!r} is not an http(s) URL (e.g. http://127.0.0.1:8000/v1)")
        self.root_url = self.base_url[: -len("/v1")] if self.base_url.endswith("/v1") else self.base_url
        self.model_name = model_name
        self.api_key = api_key or DUMMY_KEY
        self.template: ServerTemplate | None = None  # the GGUF's template, where prompts are rendered here
        self.seed = seed
        self.repeat_penalty = repeat_penalty
        self.timeout = timeout
        self.http = http_client or httpx.Client(timeout=timeout)
        self.headers = {"Authorization": f"Bearer {self.api_key}"}
        self.openai_com = parsed.hostname == "api.openai.com"
        self.mode: Literal["completions", "chat"] = "chat"  # set by probing
        self.llama_cpp = False  # set by probing: the server takes llama.cpp's fields (repeat_penalty, grammar)
        self._llm = None

    def _client(self):
        """The OpenAI client under LangChain's ChatOpenAI (whose own retries are off: RetryPolicy retries, so that
        retries are logged, testable and bounded)."""
        if self._llm is None:
            from langchain_openai import ChatOpenAI

            self._llm = ChatOpenAI(
                model=self.model_name,
                base_url=self.base_url,
                api_key=self.api_key,
                temperature=0.0,
                seed=self.seed,
                max_retries=0,
                timeout=self.timeout,
                use_responses_api=False,
                http_client=self.http,
            )
        return self._llm.root_client

    def _post(self, part: Literal["message", "text"], *, extra: dict | None, seed: int | None, **fields) -> Any:
        """One request to /v1/chat/completions (`part` "message") or /v1/completions ("text"), its reply parsed."""
        client = self._client()
        api = client.chat.completions if part == "message" else client.completions
        body = dict(extra or {})
        if self.llama_cpp:
            body.setdefault("repeat_penalty", self.repeat_penalty)
        raw = api.with_raw_response.create(
            model=self.model_name, seed=self.seed if seed is None else seed, extra_body=body or None, **fields
        )
        return _openai_reply(raw, part)

    def complete_raw(
        self,
        prompt: str,
        *,
        max_tokens: int,
        stop: Sequence[str] = (),
        logprobs: bool = False,
        extra: dict | None = None,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> Reply:
        resp = self._post(
            "text",
            extra=extra,
            seed=seed,
            prompt=prompt,
            max_tokens=max_tokens,
            temperature=temperature,
            stop=list(stop) or None,
            logprobs=TOP_LOGPROBS if logprobs else None,
        )
        choice = resp.choices[0]
        top = None
        if logprobs and choice.logprobs:
            if choice.logprobs.top_logprobs:  # the legacy completions format: one {token: logprob} per position
                top = list((choice.logprobs.top_logprobs[0] or {}).items())
            elif content := (choice.logprobs.model_extra or {}).get("content"):  # llama-server: the chat format
                top = [(t["token"], t["logprob"]) for t in content[0].get("top_logprobs") or []]
        return _reply(resp, choice.text or "", top)

    def chat_raw(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        stop: Sequence[str] = (),
        logprobs: bool = False,
        extra: dict | None = None,
        json_schema: dict | None = None,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> Reply:
        # The OpenAI client under ChatOpenAI, not ChatOpenAI.invoke: LangChain drops the message's reasoning_content
        # (langchain-ai/langchain#34706) and the choice's finish_reason is needed as sent.
        fields: dict[str, Any] = {"temperature": temperature}
        # OpenAI's own API takes only max_completion_tokens; llama_cpp.server ignores it (it would then generate to
        # n_ctx), and DeepSeek's and vLLM's take max_tokens.
        fields["max_completion_tokens" if self.openai_com else "max_tokens"] = max_tokens
        if stop:
            fields["stop"] = list(stop)
        if logprobs:
            fields.update(logprobs=True, top_logprobs=TOP_LOGPROBS)
        if json_schema:
            # llama.cpp servers take a schema inside json_object; OpenAI and vLLM take json_schema.
            fields["response_format"] = (
                {"type": "json_object", "schema": json_schema}
                if self.llama_cpp
                else {"type": "json_schema", "json_schema": {"name": "answer", "schema": json_schema, "strict": True}}
            )
        resp = self._post(
            "message",
            extra=extra,
            seed=seed,
            messages=[{"role": m.role, "content": m.content} for m in messages],
            **fields,
        )
        choice = resp.choices[0]
        top = None
        if logprobs and choice.logprobs and choice.logprobs.content:
            top = [(t.token, t.logprob) for t in choice.logprobs.content[0].top_logprobs or []] or None
        # DeepSeek, llama-server --reasoning-format and older vLLM: reasoning_content; vLLM 0.10+: reasoning.
        extra_fields = choice.message.model_extra or {}
        reasoning = extra_fields.get("reasoning_content") or extra_fields.get("reasoning") or ""
        return _reply(resp, choice.message.content or "", top, reasoning if isinstance(reasoning, str) else "")

    def request(
        self,
        messages: Sequence[Message],
        assistant_prefix: str,
        *,
        max_tokens: int,
        stop: Sequence[str] = (),
        logprobs: bool = False,
        grammar: str | None = None,
        json_schema: dict | None = None,
        hint: str = "",
        temperature: float = 0.0,
        seed: int | None = None,
        repeat_penalty: float | None = None,
        thinking: bool = False,
        thinking_budget: int = 0,
        cache_prompt: bool = True,
    ) -> Reply:
        """One request in the run's prompt mode (no retries here).

        In chat mode `hint` is appended to the last user turn. `thinking`: the reply may think first (generation);
        otherwise a locally rendered prompt ends any thinking block the template opens (scoring, committed letters).
        `cache_prompt=False`: a llama.cpp server evaluates the whole prompt instead of reusing its prompt cache. A
        prompt it has cached whole leaves only the last token to evaluate, a one-token batch that rounds differently
        (llama-server's README: cache_prompt "can cause nondeterministic results"); a rerun on the same server moved
        option log-probabilities by up to 0.06 nats and changed 2 of 40 answers (0.5B, CMMLU).
        """
        extra: dict[str, Any] = {"grammar": grammar} if grammar else {}
        if not cache_prompt and self.llama_cpp:
            extra["cache_prompt"] = False
        if repeat_penalty is not None and self.llama_cpp:
            extra["repeat_penalty"] = repeat_penalty
        if thinking_budget and self.llama_cpp:
            extra["reasoning_budget_tokens"] = thinking_budget  # llama-server ends the thinking after this many tokens
        if self.mode == "completions":
            assert self.template is not None
            rendered = self.template.render(messages, assistant_prefix, thinking=thinking)
            reply = self.complete_raw(
                rendered.prompt,
                max_tokens=max_tokens,
                stop=[*stop, *rendered.stop],
                logprobs=logprobs,
                extra=extra,
                temperature=temperature,
                seed=seed,
            )
            return replace(reply, opened=rendered.opened)
        return self.chat_raw(
            _with_hint(messages, hint),
            max_tokens=max_tokens,
            stop=stop,
            logprobs=logprobs,
            extra=extra,
            json_schema=json_schema,
            temperature=temperature,
            seed=seed,
        )

    def models(self) -> list[str]:
        url = f"{self.base_url}/models"
        try:
            r = self.http.get(url, headers=self.headers, timeout=min(self.timeout, 10.0))
        except httpx.ConnectError as e:
            raise BackendError(
                f"no server answers at {url} ({e}); start it first, e.g. python -m llama_cpp.server --model MODEL.gguf"
            ) from None
        except httpx.HTTPError as e:
            raise BackendError(f"the server at {url} did not answer: {type(e).__name__}: {e}") from None
        if r.status_code in (401, 403):
            raise BackendError(
                f"the server at {url} refused the API key (HTTP {r.status_code}); set it with --api-key-env NAME"
            )
        if r.status_code != 200:
            raise BackendError(
                f"{url} answered HTTP {r.status_code}: {r.text.strip()[:200]}; is --base-url the server's /v1 URL?"
            )
        try:
            return [m["id"] for m in r.json()["data"]]
        except (ValueError, KeyError, TypeError):
            raise BackendError(
                f"{url} did not answer an OpenAI model list; is --base-url the server's /v1 URL?"
            ) from None

    def get_json(self, url: str) -> dict | None:
        try:
            r = self.http.get(url, headers=self.headers, timeout=min(self.timeout, 10.0))
            data = r.json() if r.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def tokenize_json(self, kind: str, text: str) -> dict:
        if kind == "extras":  # llama_cpp.server: {"input"} -> {"tokens"} (BOS included when the vocab adds one)
            r = self.http.post(f"{self.root_url}/extras/tokenize", json={"input": text}, headers=self.headers)
        else:  # llama-server takes "content", vLLM "prompt"; each ignores the other's field
            body = {
                "content": text,
                "prompt": text,
                "model": self.model_name,
                "add_special": False,
                "add_special_tokens": False,
            }
            r = self.http.post(f"{self.root_url}/tokenize", json=body, headers=self.headers)
        r.raise_for_status()
        data = r.json()
        token_count(data)  # raises unless it is a tokenize answer
        return data


def token_count(data: Any) -> int:
    if not isinstance(data, dict):
        raise TypeError("not a tokenize answer")
    return int(data["count"]) if "count" in data else len(data["tokens"])


def _with_hint(messages: Sequence[Message], hint: str) -> list[Message]:
    if not hint or not messages or messages[-1].role != "user":
        return list(messages)
    last = messages[-1]
    return [*messages[:-1], Message(role="user", content=f"{last.content}\n\n{hint}")]


def _evaluated(resp: Any, prompt_tokens: int) -> int:
    """Prompt tokens the server really evaluated: llama-server reports timings.prompt_n, vLLM cached_tokens."""
    extra = getattr(resp, "model_extra", None) or {}
    timings = extra.get("timings") or {}
    if isinstance(timings, dict) and isinstance(timings.get("prompt_n"), int):
        return timings["prompt_n"]
    details = getattr(resp.usage, "prompt_tokens_details", None) if resp.usage else None
    cached = getattr(details, "cached_tokens", None) or 0
    return prompt_tokens - cached
