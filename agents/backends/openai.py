"""The Backend interface over HTTP: any OpenAI-compatible server (llama_cpp.server, llama-server, vLLM, ...).

Two ways to send a prompt, chosen once per run (`prompt_mode`):

- `completions`: when the GGUF the server serves is available here, its chat template is rendered locally and
  the raw `/v1/completions` endpoint gets exactly the prompt the in-process backend evaluates, assistant prefix
  included ("答案：", "分析："). Scores and replies then match the in-process run (up to top-20 truncation).
- `chat`: `/v1/chat/completions` through LangChain's ChatOpenAI. A chat API cannot prefill the assistant's turn
  on every server, so the prefix becomes an instruction at the end of the last user turn, and the prompts
  differ from the in-process ones (the run's prompts version says so).

`score_next` commits to a letter by the best method the server supports, detected once at start-up:
next-token log-probabilities (top_logprobs=20; a letter not among them scores -inf), else a GBNF grammar
allowing only the letters (llama.cpp servers), else JSON mode, else parsing the text. The Completion says
which (`method`). Transient failures (connection errors, timeouts, 429, 5xx) are retried with exponential
backoff and jitter; the OpenAI client's own retries are off so this is the only retry loop.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlparse

import httpx
import structlog

from agents.answer import parse_letter
from agents.backends.base import (
    BackendError,
    Completion,
    PermanentError,
    Unreachable,
    letter_of_token,
    quiet_stderr,
    reasoned,
)
from agents.backends.template import ChatTemplate, Rendered, template_thinking
from agents.prompts import load_prompts
from eval.core.schema import Engine, FinishReason, Message

log = structlog.get_logger()
T = TypeVar("T")

PromptMode = Literal["auto", "completions", "chat"]
Scoring = Literal["auto", "probabilities", "letter"]
# Chat mode's instructions (agents/prompts/chat.toml); their version is part of a run's config.
CHAT_HINTS = load_prompts("chat")
CHAT_PROMPTS_VERSION = CHAT_HINTS["version"]
TOP_LOGPROBS = 20  # the most OpenAI (and vLLM's default --max-logprobs) return
DUMMY_KEY = "sk-no-key-required"  # local servers do not check keys, but the client insists on one


class ServerError(BackendError):
    """The server failed a request (after retries) or refused it; the message says which and why."""


class ServerUnreachable(ServerError, Unreachable):
    """Every attempt of a request failed to connect, or lost its connection: the server is down or gone."""


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


def _retryable_status(code: int) -> bool:
    return code in (408, 409, 425, 429) or code >= 500


def lost_connection(e: BaseException) -> bool:
    """No answer at all: refused, reset or dropped connections and timeouts (from the openai client or httpx)."""
    import openai

    return isinstance(e, openai.APIConnectionError | httpx.TransportError)


# What servers answer (HTTP 400) to a prompt, with its token budget, longer than the context: llama-server,
# llama_cpp.server, vLLM, OpenAI. Narrow on purpose: any other 400 stays an ordinary error, retried on resume.
_TOO_LONG = re.compile(
    r"exceeds the available context size|exceed context window|maximum context length|context_length_exceeded"
    r"|longer than the maximum model length",
    re.IGNORECASE,
)


def too_long(e: BaseException) -> bool:
    """The server refused the request because the prompt cannot fit its context window: asking again cannot help."""
    import openai

    return (
        isinstance(e, openai.APIStatusError | httpx.HTTPStatusError)
        and e.response.status_code == 400
        and bool(_TOO_LONG.search(e.response.text))
    )


def is_transient(e: BaseException) -> bool:
    """Worth retrying: connection errors, timeouts, 429 and 5xx (from the openai client or from httpx)."""
    import openai

    if lost_connection(e):
        return True
    if isinstance(e, openai.APIStatusError | httpx.HTTPStatusError):
        return _retryable_status(e.response.status_code)
    return False


def _describe(e: BaseException) -> str:
    import openai

    if isinstance(e, openai.APIStatusError | httpx.HTTPStatusError):
        body = e.response.text.strip().replace("\n", " ")
        return f"HTTP {e.response.status_code}: {body[:300]}"
    cause = e.__cause__ or e.__context__
    detail = f" ({type(cause).__name__}: {cause})" if cause and str(cause) and str(cause) not in str(e) else ""
    return f"{type(e).__name__}: {e}{detail}"


@dataclass
class RetryPolicy:
    retries: int = 4  # attempts after the first
    backoff: float = 0.5  # seconds before the first retry; doubles each time
    max_backoff: float = 30.0
    seed: int | None = None  # jitter is seeded when given (tests)
    sleep: Callable[[float], None] = time.sleep
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def delay(self, attempt: int, e: BaseException | None = None) -> float:
        """Equal jitter: half the exponential step plus a random part of the other half; Retry-After wins if longer."""
        step = min(self.max_backoff, self.backoff * 2**attempt)
        with self._lock:
            d = step / 2 + self._rng.uniform(0, step / 2)
        response = getattr(e, "response", None)
        retry_after = response.headers.get("retry-after") if response is not None else None
        if retry_after:
            with contextlib.suppress(ValueError):
                d = max(d, min(self.max_backoff, float(retry_after)))
        return d

    def call(self, what: str, fn: Callable[[], T]) -> T:
        for attempt in range(self.retries + 1):
            try:
                return fn()
            except Exception as e:
                if too_long(e):
                    raise PermanentError(f"{what}: the server refused the prompt as too long: {_describe(e)}") from e
                if not is_transient(e):
                    raise
                if attempt == self.retries:
                    raise (ServerUnreachable if lost_connection(e) else ServerError)(
                        f"{what} failed after {attempt + 1} attempts: {_describe(e)}"
                    ) from e
                d = self.delay(attempt, e)
                log.warning(
                    "server.retry",
                    request=what,
                    attempt=attempt + 1,
                    of=self.retries + 1,
                    wait_s=round(d, 3),
                    error=_describe(e),
                )
                self.sleep(d)
        raise AssertionError("unreachable")


@dataclass
class Capabilities:
    prompt_mode: Literal["completions", "chat"]
    methods: list[str]  # score_next methods that work, best first
    tokenize: str | None  # "extras" (llama_cpp.server), "tokenize" (llama-server, vLLM) or None (estimate)
    llama_cpp: bool  # the server takes llama.cpp sampling fields (repeat_penalty, grammar)
    models: list[str]
    engine: Engine


class _ServerTemplate:
    """The GGUF's own chat template, rendered here exactly as the in-process backend renders it."""

    def __init__(self, model_path: Path):
        from llama_cpp import Llama

        try:
            with quiet_stderr():
                vocab = Llama(model_path=str(model_path), vocab_only=True, verbose=False)
        except (ValueError, RuntimeError, OSError) as e:
            raise BackendError(f"could not read the tokenizer of {model_path}: {e}") from None
        template = vocab.metadata.get("tokenizer.chat_template")
        if not template:
            raise BackendError(f"{model_path} has no chat template in its GGUF metadata")
        eos, bos = vocab.token_eos(), vocab.token_bos()
        text = vocab._model.token_get_text
        self.bos_text = text(bos) if bos != -1 else ""
        # The server tokenizes a text prompt with add_bos: a BOS the template writes itself must not be doubled.
        self.server_adds_bos = vocab.metadata.get("tokenizer.ggml.add_bos_token", "false") == "true"
        self.template = ChatTemplate(
            template, eos_token=text(eos) if eos != -1 else "", bos_token=self.bos_text, eos_id=eos
        )
        vocab.close()

    def render(self, messages: Sequence[Message], assistant_prefix: str, *, thinking: bool = True) -> Rendered:
        rendered = self.template.render(messages, assistant_prefix, thinking=thinking)
        if self.server_adds_bos and self.bos_text and rendered.prompt.startswith(self.bos_text):
            return replace(rendered, prompt=rendered.prompt[len(self.bos_text) :])
        return rendered


def _answer_schema(candidates: Sequence[str]) -> dict:
    return {
        "type": "object",
        "properties": {"answer": {"type": "string", "enum": list(candidates)}},
        "required": ["answer"],
        "additionalProperties": False,
    }


def _letters_grammar(candidates: Sequence[str]) -> str:
    return "root ::= " + " | ".join(json.dumps(c) for c in candidates)


def _logsumexp(values: list[float]) -> float:
    m = max(values)
    return m + math.log(sum(math.exp(v - m) for v in values))


def scores_from_top(top: Sequence[tuple[str, float]], candidates: Sequence[str]) -> dict[str, float]:
    """Log-probability of each candidate from one position's top log-probabilities ("C", " C", "▁C" all count)."""
    scores = {}
    for c in candidates:
        found = [lp for token, lp in top if letter_of_token(token) == c and lp is not None]
        scores[c] = _logsumexp(found) if found else -math.inf
    return scores


_LEADING_LETTER = re.compile(r"^\W*([A-Z])(?![A-Za-z])")


def letter_from_text(text: str, candidates: Sequence[str], prefix: str = "") -> str | None:
    """'答案：C', 'C', '(C) ...' -> C; None when the text commits to no candidate."""
    found = parse_letter(prefix + text, candidates)
    if found:
        return found
    m = _LEADING_LETTER.match(text.strip())
    return m.group(1) if m and m.group(1) in candidates else None


def letter_from_json(text: str, candidates: Sequence[str]) -> str | None:
    try:
        data = json.loads(text)
    except ValueError:
        m = re.search(r'"answer"\s*:\s*"\s*([A-Z])', text)
        return m.group(1) if m and m.group(1) in candidates else None
    values = [data.get("answer"), *data.values()] if isinstance(data, dict) else [data]
    for v in values:
        if isinstance(v, str) and v.strip().upper() in candidates:
            return v.strip().upper()
    return None


@dataclass
class _Reply:
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


class OpenAIBackend:
    """Backend over an OpenAI-compatible server. Thread-safe: one instance serves concurrent questions."""

    def __init__(
        self,
        base_url: str,
        model_name: str | None = None,
        *,
        api_key: str | None = None,
        model_path: Path | None = None,
        prompt_mode: PromptMode = "auto",
        scoring: Scoring = "auto",
        seed: int = 0,
        repeat_penalty: float = 1.1,
        timeout: float = 600.0,
        thinking_tokens: int = 0,
        retry: RetryPolicy | None = None,
        http_client: httpx.Client | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        parsed = urlparse(self.base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise BackendError(f"--base-url {base_url!r} is not an http(s) URL (e.g. http://127.0.0.1:8000/v1)")
        self.root_url = self.base_url[: -len("/v1")] if self.base_url.endswith("/v1") else self.base_url
        self.model_name = model_name
        self._api_key = api_key or DUMMY_KEY
        self.model_path = model_path
        self.requested_mode = prompt_mode
        self.scoring = scoring
        self.seed = seed
        self.repeat_penalty = repeat_penalty
        self.timeout = timeout
        self.thinking_tokens = thinking_tokens  # a reasoning model's thinking budget on top of each reply's own
        self.retry = retry or RetryPolicy()
        self._http = http_client or httpx.Client(timeout=timeout)
        self._headers = {"Authorization": f"Bearer {self._api_key}"}
        self._template = _ServerTemplate(model_path) if model_path and prompt_mode != "chat" else None
        if prompt_mode == "completions" and self._template is None:
            raise BackendError(
                "prompt mode 'completions' needs the GGUF the server serves (--model) for its chat template"
            )
        self._caps: Capabilities | None = None
        self._chat_thinking = ""  # set by probe(): the server's own template thinks (chat mode)
        self._mode: Literal["completions", "chat"] = "chat"
        self._llama_cpp = False  # set by probe(): the server takes repeat_penalty and grammar
        self._caps_lock = threading.Lock()
        self._bos_overhead = 0
        self._llm = None
        self._openai_com = parsed.hostname == "api.openai.com"
        self.name = f"openai:{model_name or '?'}@{self.base_url}"

    # -- set-up ---------------------------------------------------------------------------------

    def _chat_model(self):
        if self._llm is None:
            from langchain_openai import ChatOpenAI

            self._llm = ChatOpenAI(
                model=self.model_name,
                base_url=self.base_url,
                api_key=self._api_key,
                temperature=0.0,
                seed=self.seed,
                max_retries=0,  # RetryPolicy retries, so that retries are logged, testable and bounded
                timeout=self.timeout,
                use_responses_api=False,
                http_client=self._http,
            )
        return self._llm

    def probe(self) -> Capabilities:
        """GET /v1/models once, then detect what the server supports. Raises BackendError with one clear line."""
        with self._caps_lock:
            if self._caps is None:
                self._caps = self._detect()
        return self._caps

    @property
    def capabilities(self) -> Capabilities:
        return self._caps or self.probe()

    @property
    def engine(self) -> Engine:
        return self.capabilities.engine

    @property
    def thinking(self) -> str:
        """How a thinking template is scored; for the manifest."""
        if self._template is not None and self._mode == "completions":
            return self._template.template.thinking
        return self._chat_thinking

    def _server_template_thinks(self) -> str:
        """What the server's own chat template does with thinking (llama-server's /props shows it), or ""."""
        template = (self._get_json(f"{self.root_url}/props") or {}).get("chat_template")
        return template_thinking(template) if isinstance(template, str) else ""

    def _models(self) -> list[str]:
        url = f"{self.base_url}/models"
        try:
            r = self._http.get(url, headers=self._headers, timeout=min(self.timeout, 10.0))
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

    def _detect(self) -> Capabilities:
        models = self._models()
        if not models and not self.model_name:
            raise BackendError(f"{self.base_url}/models lists no model; pass --model-name")
        if self.model_name is None:
            self.model_name = models[0]
        elif models and self.model_name not in models:
            log.warning("server.model_not_listed", model=self.model_name, listed=models)
        self.name = f"openai:{self.model_name}@{self.base_url}"
        tokenize, overhead, llama_cpp = self._detect_tokenize()
        self._bos_overhead = overhead
        self._llama_cpp = llama_cpp
        mode: Literal["completions", "chat"] = "chat"
        if self._template is not None:
            if self._supported(lambda: self._complete_raw("Hi", max_tokens=1)):
                mode = "completions"
            elif self.requested_mode == "completions":
                raise BackendError(f"{self.base_url}/completions does not work; use --prompt-mode chat")
        self._mode = mode
        probe_msgs = [Message(role="user", content="Reply with the single letter A.")]
        self._answers(probe_msgs)
        methods = []
        engine = self._engine(tokenize)
        if mode == "chat" and (thinks := self._server_template_thinks()):
            # The server renders the chat template, and this one starts the reply thinking: the first token of a reply
            # (its log-probabilities, a grammar's letter, a JSON answer) would be inside the block. Only a letter
            # parsed from the reply after its thinking is an answer.
            self._chat_thinking = (
                f"{thinks}; on this chat endpoint letters are parsed from the reply after its thinking"
            )
            log.warning("server.thinking_template", url=self.base_url, note=self._chat_thinking)
            return Capabilities(
                prompt_mode=mode,
                methods=["regex"],
                tokenize=tokenize,
                llama_cpp=llama_cpp,
                models=models,
                engine=engine,
            )
        # llama_cpp.server computes log-probabilities for every prompt token (logits_all) and sorts the whole
        # vocabulary in Python for each generated one: 0.3-0.4 s a request, more than the answer's forward pass.
        wanted = self.scoring == "probabilities" or (self.scoring == "auto" and engine.name != "llama_cpp.server")
        if wanted and self._supported(
            lambda: self._first_top(self._request(probe_msgs, "", max_tokens=1, logprobs=True))
        ):
            methods.append("next_token")
        if self._supported(
            lambda: self._request(probe_msgs, "", max_tokens=3, grammar='root ::= "Z"').text.strip() == "Z"
        ):
            methods.append("grammar")
        if mode == "chat" and self._supported(
            lambda: (
                self._request(probe_msgs, "", max_tokens=24, json_schema=_answer_schema(["A", "B"]))
                .text.lstrip()
                .startswith("{")
            )
        ):
            methods.append("json")
        methods.append("regex")
        caps = Capabilities(
            prompt_mode=mode, methods=methods, tokenize=tokenize, llama_cpp=llama_cpp, models=models, engine=engine
        )
        log.info(
            "server.ready",
            url=self.base_url,
            model=self.model_name,
            engine=engine.describe(),
            prompt_mode=mode,
            methods=methods,
            tokenize=tokenize or "estimate (characters)",
        )
        if wanted and "next_token" not in methods:
            log.warning(
                "server.no_logprobs",
                url=self.base_url,
                scoring=methods[0],
                note="the server returns no next-token log-probabilities: answers are committed letters, "
                "with no probabilities for calibration",
            )
        return caps

    def _get_json(self, url: str) -> dict | None:
        try:
            r = self._http.get(url, headers=self._headers, timeout=min(self.timeout, 10.0))
            data = r.json() if r.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _engine(self, tokenize: str | None) -> Engine:
        """Which engine answers, from the endpoints only it has: llama_cpp.server's /extras/tokenize (its version
        in /openapi.json), llama-server's /props (slots and build), vLLM's /version."""
        if tokenize == "extras":
            info = (self._get_json(f"{self.root_url}/openapi.json") or {}).get("info") or {}
            return Engine(name="llama_cpp.server", version=str(info.get("version", "")), slots=1)
        if (props := self._get_json(f"{self.root_url}/props")) and "total_slots" in props:
            build = str(props.get("build_info", ""))  # "b6100-1a2b3c4"; "b0-unknown" from a build without git
            release = build.split("-")[0]
            return Engine(
                name="llama-server", version="" if release == "b0" else release, build=build, slots=props["total_slots"]
            )
        if (version := self._get_json(f"{self.root_url}/version")) and "version" in version:
            return Engine(name="vllm", version=str(version["version"]))
        return Engine(name="unknown")

    def _answers(self, messages: Sequence[Message]) -> None:
        """One real request as a question's are sent, before any feature probe: an endpoint that refuses it, or whose
        reply is not an OpenAI completion (an HTML page, broken JSON, no choices), is refused here in one line."""
        import openai

        try:
            self.retry.call("start-up request", lambda: self._request(messages, "", max_tokens=1))
        except openai.APIStatusError as e:
            raise BackendError(
                f"the server at {self.base_url} refused a plain {self._mode} request: {_describe(e)}"
            ) from None

    def _supported(self, attempt: Callable[[], Any]) -> bool:
        """True when a feature probe returns something truthy; a 4xx refusal means unsupported."""
        import openai

        try:
            return bool(self.retry.call("capability probe", attempt))
        except (
            openai.BadRequestError,
            openai.NotFoundError,
            openai.UnprocessableEntityError,
            openai.APIStatusError,
        ) as e:
            log.debug("server.unsupported", error=_describe(e))
            return False
        except MalformedReply as e:  # the endpoint a feature needs answers in another shape: the plain probe decides
            log.debug("server.unsupported", error=str(e))
            return False
        except ServerError as e:
            raise BackendError(f"the server at {self.base_url} keeps failing: {e}") from None
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as e:  # an answer without the feature
            log.debug("server.unsupported", error=f"{type(e).__name__}: {e}")
            return False

    def _detect_tokenize(self) -> tuple[str | None, int, bool]:
        """Which tokenize endpoint answers, the tokens it adds to an empty text (BOS), and whether it is llama.cpp's."""
        for kind in ("extras", "tokenize"):
            try:
                data = self.retry.call("tokenize probe", lambda kind=kind: self._tokenize_json(kind, ""))
                # llama_cpp.server (/extras/tokenize) and llama-server (/tokenize) answer {"tokens"}; vLLM adds "count".
                return kind, _token_count(data), "count" not in data
            except (httpx.HTTPStatusError, ValueError, KeyError, TypeError) as e:
                log.debug("server.tokenize_unsupported", endpoint=kind, error=str(e)[:200])
            except ServerError as e:
                raise BackendError(f"the server at {self.base_url} keeps failing: {e}") from None
        return None, 0, False

    def _tokenize_json(self, kind: str, text: str) -> dict:
        if (
            kind == "extras"
        ):  # llama_cpp.server: POST /extras/tokenize {"input"} -> {"tokens"} (BOS included when the vocab adds one)
            r = self._http.post(f"{self.root_url}/extras/tokenize", json={"input": text}, headers=self._headers)
        else:  # llama-server takes "content", vLLM "prompt"; each ignores the other's field
            body = {
                "content": text,
                "prompt": text,
                "model": self.model_name,
                "add_special": False,
                "add_special_tokens": False,
            }
            r = self._http.post(f"{self.root_url}/tokenize", json=body, headers=self._headers)
        r.raise_for_status()
        data = r.json()
        _token_count(data)  # raises unless it is a tokenize answer
        return data

    # -- requests ---------------------------------------------------------------------------------

    def _complete_raw(
        self,
        prompt: str,
        *,
        max_tokens: int,
        stop: Sequence[str] = (),
        logprobs: bool = False,
        extra: dict | None = None,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> _Reply:
        client = self._chat_model().root_client
        body = dict(extra or {})
        if self._llama_cpp:
            body.setdefault("repeat_penalty", self.repeat_penalty)
        raw = client.completions.with_raw_response.create(
            model=self.model_name,
            prompt=prompt,
            max_tokens=max_tokens,
            temperature=temperature,
            seed=self.seed if seed is None else seed,
            stop=list(stop) or None,
            logprobs=TOP_LOGPROBS if logprobs else None,
            extra_body=body or None,
        )
        resp = _openai_reply(raw, "text")
        choice = resp.choices[0]
        top = None
        if logprobs and choice.logprobs:
            if choice.logprobs.top_logprobs:  # the legacy completions format: one {token: logprob} per position
                top = list((choice.logprobs.top_logprobs[0] or {}).items())
            elif content := (choice.logprobs.model_extra or {}).get(
                "content"
            ):  # llama-server answers in the chat format
                top = [(t["token"], t["logprob"]) for t in content[0].get("top_logprobs") or []]
        usage = resp.usage
        prompt_tokens = usage.prompt_tokens if usage else 0
        return _Reply(
            choice.text or "",
            prompt_tokens,
            _evaluated(resp, prompt_tokens),
            usage.completion_tokens if usage else 0,
            top,
            finish_reason=_finish_reason(choice.finish_reason),
            reasoning_tokens=_reasoning_tokens(usage),
        )

    def _chat_raw(
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
    ) -> _Reply:
        # The OpenAI client under ChatOpenAI, not ChatOpenAI.invoke: LangChain drops the message's reasoning_content
        # (langchain-ai/langchain#34706) and the choice's finish_reason is needed as sent.
        client = self._chat_model().root_client
        body = dict(extra or {})
        if self._llama_cpp:
            body.setdefault("repeat_penalty", self.repeat_penalty)
        kwargs: dict[str, Any] = {"temperature": temperature, "seed": self.seed if seed is None else seed}
        # OpenAI's own API takes only max_completion_tokens; llama_cpp.server ignores it (it would then generate to
        # n_ctx), and DeepSeek's and vLLM's take max_tokens.
        kwargs["max_completion_tokens" if self._openai_com else "max_tokens"] = max_tokens
        if stop:
            kwargs["stop"] = list(stop)
        if logprobs:
            kwargs.update(logprobs=True, top_logprobs=TOP_LOGPROBS)
        if json_schema:
            # llama.cpp servers take a schema inside json_object; OpenAI and vLLM take json_schema.
            kwargs["response_format"] = (
                {"type": "json_object", "schema": json_schema}
                if self._llama_cpp
                else {"type": "json_schema", "json_schema": {"name": "answer", "schema": json_schema, "strict": True}}
            )
        raw = client.chat.completions.with_raw_response.create(
            model=self.model_name,
            messages=[{"role": m.role, "content": m.content} for m in messages],
            extra_body=body or None,
            **kwargs,
        )
        resp = _openai_reply(raw, "message")
        choice = resp.choices[0]
        message = choice.message
        top = None
        if logprobs and choice.logprobs and choice.logprobs.content:
            top = [(t.token, t.logprob) for t in choice.logprobs.content[0].top_logprobs or []] or None
        # DeepSeek, llama-server --reasoning-format and older vLLM: reasoning_content; vLLM 0.10+: reasoning.
        extra_fields = message.model_extra or {}
        reasoning = extra_fields.get("reasoning_content") or extra_fields.get("reasoning") or ""
        usage = resp.usage
        prompt_tokens = usage.prompt_tokens if usage else 0
        return _Reply(
            message.content or "",
            prompt_tokens,
            _evaluated(resp, prompt_tokens),
            usage.completion_tokens if usage else 0,
            top,
            finish_reason=_finish_reason(choice.finish_reason),
            reasoning=reasoning if isinstance(reasoning, str) else "",
            reasoning_tokens=_reasoning_tokens(usage),
        )

    def _request(
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
    ) -> _Reply:
        """One request in the run's prompt mode (no retries here).

        In chat mode `hint` is appended to the last user turn. `thinking`: the reply may think first (generation);
        otherwise a locally rendered prompt ends any thinking block the template opens (scoring, committed letters).
        `cache_prompt=False`: a llama.cpp server evaluates the whole prompt instead of reusing its prompt cache. A
        prompt it has cached whole leaves only the last token to evaluate, a one-token batch that rounds differently
        (llama-server's README: cache_prompt "can cause nondeterministic results"); a rerun on the same server moved
        option log-probabilities by up to 0.06 nats and changed 2 of 40 answers (0.5B, CMMLU).
        """
        extra: dict[str, Any] = {"grammar": grammar} if grammar else {}
        if not cache_prompt and self._llama_cpp:
            extra["cache_prompt"] = False
        if repeat_penalty is not None and self._llama_cpp:
            extra["repeat_penalty"] = repeat_penalty
        if thinking_budget and self._llama_cpp:
            extra["reasoning_budget_tokens"] = thinking_budget  # llama-server ends the thinking after this many tokens
        if self._mode == "completions":
            assert self._template is not None
            rendered = self._template.render(messages, assistant_prefix, thinking=thinking)
            reply = self._complete_raw(
                rendered.prompt,
                max_tokens=max_tokens,
                stop=[*stop, *rendered.stop],
                logprobs=logprobs,
                extra=extra,
                temperature=temperature,
                seed=seed,
            )
            return replace(reply, opened=rendered.opened)
        return self._chat_raw(
            _with_hint(messages, hint),
            max_tokens=max_tokens,
            stop=stop,
            logprobs=logprobs,
            extra=extra,
            json_schema=json_schema,
            temperature=temperature,
            seed=seed,
        )

    def _first_top(self, reply: _Reply) -> list[tuple[str, float]]:
        if not reply.top:
            raise ValueError("the answer has no top_logprobs")
        return reply.top

    # -- Backend interface -----------------------------------------------------------------------

    def chat(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        stop: Sequence[str] = (),
        grammar: str | None = None,
        assistant_prefix: str = "",
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> Completion:
        caps = self.capabilities
        hint = CHAT_HINTS["prefix"].format(prefix=assistant_prefix) if assistant_prefix else ""
        # A grammar asks for the answer itself: after any thinking, as scoring is. The thinking budget comes on top of
        # the reply's own; llama-server enforces it, elsewhere (vLLM, DeepSeek) it only widens max_tokens.
        thinking = grammar is None
        budget = self.thinking_tokens if thinking else 0
        # A server that does not honour grammars (probed) gets none: the caller parses the free text instead.
        grammar = grammar if "grammar" in caps.methods else None
        start = time.perf_counter()
        reply = self.retry.call(
            "chat",
            lambda: self._request(
                messages,
                assistant_prefix,
                max_tokens=max_tokens + budget,
                stop=stop,
                grammar=grammar,
                hint=hint,
                temperature=temperature,
                seed=seed,
                thinking=thinking,
                thinking_budget=budget,
            ),
        )
        text = reply.text
        if caps.prompt_mode == "completions" or not text.lstrip().startswith(assistant_prefix):
            text = assistant_prefix + text
        fields = reasoned(
            text,
            finish_reason=reply.finish_reason,
            prefix=assistant_prefix,
            opened=reply.opened,
            reasoning=reply.reasoning,
        )
        return Completion(
            prompt_tokens=reply.prompt_tokens,
            prompt_tokens_evaluated=reply.prompt_tokens_evaluated,
            completion_tokens=reply.completion_tokens,
            seconds=time.perf_counter() - start,
            reasoning_tokens=self._reasoning_count(reply, fields["reasoning"]),
            **fields,
        )

    def score_next(
        self, messages: Sequence[Message], candidates: Sequence[str], *, assistant_prefix: str = ""
    ) -> Completion:
        caps = self.capabilities
        letters = "、".join(candidates)
        start = time.perf_counter()
        used = _Usage()
        # Uncached, so that a letter's score depends on the prompt alone, not on what the server evaluated before.
        ask = partial(self._request, messages, assistant_prefix, cache_prompt=False)
        for method in caps.methods:
            if method == "next_token":
                hint = CHAT_HINTS["letter_only"].format(letters=letters)
                reply = used.add(
                    self.retry.call(
                        "score",
                        lambda hint=hint: ask(max_tokens=1, logprobs=True, hint=hint),
                    )
                )
                scores = scores_from_top(reply.top or [], candidates)
                if any(math.isfinite(v) for v in scores.values()):
                    best = max(scores, key=scores.__getitem__)
                    return used.completion(best, scores, method, start)
                log.debug("score.no_letter_in_top_logprobs", top=[t for t, _ in (reply.top or [])])
                continue
            if method == "grammar":
                hint = CHAT_HINTS["letter"].format(letters=letters)
                grammar = _letters_grammar(candidates)
                reply = used.add(
                    self.retry.call(
                        "score",
                        # Unpenalised, as next-token scoring is: a repeat penalty would favour whichever letter
                        # the options named longest ago.
                        lambda grammar=grammar, hint=hint: ask(
                            max_tokens=1, grammar=grammar, hint=hint, repeat_penalty=1.0
                        ),
                    )
                )
                letter = letter_from_text(reply.text, candidates)
            elif method == "json":
                hint = CHAT_HINTS["json"].format(letters=letters)
                reply = used.add(
                    self.retry.call(
                        "score",
                        lambda hint=hint: ask(max_tokens=24, json_schema=_answer_schema(candidates), hint=hint),
                    )
                )
                letter = letter_from_json(reply.text, candidates)
            else:
                # A reply in words. A reasoning model thinks first wherever nothing here closes its thinking (chat
                # mode: DeepSeek's reasoner cannot be told not to), so it gets the thinking budget as a reply does;
                # only what it says after its thinking is read.
                room = self.thinking_tokens if caps.prompt_mode == "chat" else 0
                hint = CHAT_HINTS["letter"].format(letters=letters)
                reply = used.add(
                    self.retry.call(
                        "score",
                        lambda hint=hint, room=room: ask(max_tokens=16 + room, hint=hint, thinking_budget=room),
                    )
                )
                letter = letter_from_text(used.said(reply, self._reasoning_count), candidates, assistant_prefix)
            if letter:
                # No probabilities from these methods: the committed letter scores 0, the others -inf.
                return used.completion(
                    letter,
                    {c: 0.0 if c == letter else -math.inf for c in candidates},
                    method,
                    start,
                    text=used.last_text,
                )
        return used.completion("", {c: -math.inf for c in candidates}, caps.methods[-1], start, text=used.last_text)

    def _reasoning_count(self, reply: _Reply, reasoning: str) -> int:
        """The server's count of thinking tokens where it gives one, else the thinking counted here."""
        if reply.reasoning_tokens is not None or not reasoning:
            return reply.reasoning_tokens or 0
        counted = self.count_tokens(reasoning)
        return min(counted, reply.completion_tokens) if reply.completion_tokens else counted

    def count_tokens(self, text: str) -> int:
        kind = self.capabilities.tokenize
        if kind is None:
            return len(text)  # conservative for CJK (about one token per character or fewer); no tokenizer here
        data = self.retry.call("tokenize", lambda: self._tokenize_json(kind, text))
        return max(0, _token_count(data) - self._bos_overhead)

    def close(self) -> None:
        self._http.close()


@dataclass
class _Usage:
    """Adds up what every request of one score_next cost (a fallback may take more than one)."""

    prompt_tokens: int = 0
    evaluated: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    last_text: str = ""
    # A reply in words (the regex method) is a generation step: why it stopped and its thinking (Completion fields)
    generation: dict[str, Any] = field(default_factory=dict)

    def add(self, reply: _Reply) -> _Reply:
        self.prompt_tokens += reply.prompt_tokens
        self.evaluated += reply.prompt_tokens_evaluated
        self.completion_tokens += reply.completion_tokens
        self.last_text = reply.text
        return reply

    def said(self, reply: _Reply, count: Callable[[_Reply, str], int]) -> str:
        """The reply outside its thinking; the thinking, its tokens and why the reply stopped are kept."""
        self.generation = reasoned(reply.text, finish_reason=reply.finish_reason, reasoning=reply.reasoning)
        self.last_text = self.generation.pop("text")
        self.reasoning_tokens += count(reply, self.generation["reasoning"])
        return self.last_text

    def completion(
        self, letter: str, scores: dict[str, float], method: str, start: float, *, text: str | None = None
    ) -> Completion:
        return Completion(
            text=(letter if text is None else text).strip(),
            prompt_tokens=self.prompt_tokens,
            prompt_tokens_evaluated=self.evaluated,
            completion_tokens=self.completion_tokens,
            seconds=time.perf_counter() - start,
            scores=scores,
            method=method,
            reasoning_tokens=self.reasoning_tokens,
            **self.generation,
        )


def _token_count(data: Any) -> int:
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


def api_key_from_env(name: str | None) -> str | None:
    """The key from `name` (required to be set when given) or OPENAI_API_KEY; None -> a dummy for local servers."""
    if name:
        value = os.environ.get(name)
        if not value:
            raise BackendError(f"--api-key-env {name}: that environment variable is not set")
        return value
    return os.environ.get("OPENAI_API_KEY") or None
