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
backoff and jitter (agents/backends/retry.py). The HTTP requests are agents/backends/server.py's, the start-up
detection agents/backends/probe.py's, the scoring methods agents/backends/scoring.py's.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import httpx
import structlog
from pydantic import BaseModel, Field

from agents.backends.base import BackendError, Completion, Recorded, Registered, reasoned
from agents.backends.probe import Capabilities, PromptMode, Scoring, detect
from agents.backends.retry import RetryPolicy
from agents.backends.scoring import METHODS, Usage, scores_from_top
from agents.backends.server import Reply, Server, token_count
from agents.backends.template import ServerTemplate
from agents.prompts import load_prompts
from eval.core.schema import Engine, Message

log = structlog.get_logger()

# Chat mode's instructions (agents/prompts/chat.toml); their version is part of a run's config.
CHAT_HINTS = load_prompts("chat")
CHAT_PROMPTS_VERSION = CHAT_HINTS["version"]
SERVING = "serving (--backend openai: any OpenAI-compatible server, e.g. llama_cpp.server, llama-server, vLLM)"


def _serving(description: str, **extra) -> dict:
    return {"description": description, "json_schema_extra": {"group": SERVING, **extra}}


class Options(BaseModel):
    """The backend's flags: fields of eval.api.RunSpec."""

    base_url: str | None = Field(None, **_serving("the server's OpenAI API root, e.g. http://127.0.0.1:8000/v1"))
    model_name: str | None = Field(None, **_serving("model name to request (default: the first one the server lists)"))
    api_key_env: str | None = Field(
        None,
        **_serving(
            "environment variable holding the API key (default OPENAI_API_KEY; none needed for local servers)",
            metavar="NAME",
        ),
    )
    prompt_mode: PromptMode = Field(
        "auto",
        **_serving(
            "completions: render the GGUF's chat template here and use /v1/completions (needs --model); "
            "chat: /v1/chat/completions; auto: completions when possible"
        ),
    )
    scoring: Scoring = Field(
        "auto",
        **_serving(
            "how a server commits to a letter: probabilities (next-token log-probabilities, for calibration), letter "
            "(the letter alone, grammar-constrained: one short pass), auto: probabilities, except on llama_cpp.server "
            "whose log-probabilities cost a pass over every prompt token and a sort of the vocabulary in Python"
        ),
    )
    retries: int = Field(
        4,
        ge=0,
        **_serving("retries of a failed request (connection errors, timeouts, 429, 5xx), with exponential backoff"),
    )
    retry_backoff: float = Field(
        0.5, ge=0.0, **_serving("seconds before the first retry; doubles each time, with jitter")
    )
    request_timeout: float = Field(600.0, gt=0.0, **_serving("seconds one request may take"))


class OpenAIBackend(Registered):
    """Backend over an OpenAI-compatible server. Thread-safe: one instance serves concurrent questions."""

    kind = "openai"
    about = "evaluates on an OpenAI-compatible HTTP server (the default with --base-url)"
    options = Options
    endpoint = ("base_url", "model_name", "api_key_env")
    served = "model_name"

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
        self.server = Server(
            base_url,
            model_name,
            api_key=api_key,
            seed=seed,
            repeat_penalty=repeat_penalty,
            timeout=timeout,
            http_client=http_client,
        )
        self.model_path = model_path
        self.requested_mode = prompt_mode
        self.scoring = scoring
        self.seed = seed
        self.thinking_tokens = thinking_tokens  # a reasoning model's thinking budget on top of each reply's own
        self.retry = retry or RetryPolicy()
        self.server.template = ServerTemplate(model_path) if model_path and prompt_mode != "chat" else None
        if prompt_mode == "completions" and self.server.template is None:
            raise BackendError(
                "prompt mode 'completions' needs the GGUF the server serves (--model) for its chat template"
            )
        self._caps: Capabilities | None = None
        self._caps_lock = threading.Lock()

    # -- how a run opens and records it (Registered) ---------------------------------------------

    @classmethod
    def check(cls, spec) -> None:
        if not spec.base_url:
            raise BackendError("--backend openai needs --base-url (e.g. http://127.0.0.1:8000/v1)")

    @classmethod
    def open(cls, spec, model_path: Path | None) -> OpenAIBackend:
        """Connect to the server and detect what it supports; raises BackendError (one line) when it is not there."""
        same = ("prompt_mode", "scoring", "seed", "thinking_tokens")  # the spec's flags of these names
        server = cls(
            spec.base_url,
            spec.model_name,
            api_key=api_key_from_env(spec.api_key_env),
            model_path=model_path,
            timeout=spec.request_timeout,
            retry=RetryPolicy(retries=spec.retries, backoff=spec.retry_backoff),
            **{name: getattr(spec, name) for name in same},
        )
        server.probe()
        return server

    @classmethod
    def role(cls, spec, given: str) -> OpenAIBackend | None:
        """An endpoint (http://HOST:PORT/v1) named as a role's model, opened (and so probed) now."""
        if not given.startswith(("http://", "https://")):
            return None
        return cls.open(spec.model_copy(update={"base_url": given, "model_name": None}), None)

    @classmethod
    def recorded(cls, spec, backend, model_path: Path | None) -> Recorded:
        chat = backend.capabilities.prompt_mode == "chat"
        return Recorded(
            model=f"openai:{backend.model_name}",
            label=f"openai-{Path(backend.model_name).stem}",
            shown=f"{backend.model_name} ({backend.base_url})",
            engine=backend.engine,
            scoring=spec.scoring,
            prompts=f"+{CHAT_PROMPTS_VERSION}" if chat else "",  # the prefix instructions chat mode adds
        )

    # -- set-up ---------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def model_name(self) -> str | None:
        return self.server.model_name

    @property
    def name(self) -> str:
        return f"openai:{self.model_name or '?'}@{self.base_url}"

    def probe(self) -> Capabilities:
        """GET /v1/models once, then detect what the server supports. Raises BackendError with one clear line."""
        with self._caps_lock:
            if self._caps is None:
                self._caps = detect(self.server, self.retry, scoring=self.scoring, requested_mode=self.requested_mode)
        return self._caps

    @property
    def capabilities(self) -> Capabilities:
        return self._caps or self.probe()

    @property
    def engine(self) -> Engine:  # type: ignore[override]  # known once probed; recorded() reads the opened backend's
        return self.capabilities.engine

    @property
    def thinking(self) -> str:
        """How a thinking template is scored; for the manifest."""
        if self.server.template is not None and self.server.mode == "completions":
            return self.server.template.template.thinking
        return self._caps.thinking if self._caps else ""

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
            lambda: self.server.request(
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
        """By the server's best method (probed), falling back to the next where a reply commits to no letter."""
        caps = self.capabilities
        letters = "、".join(candidates)
        start = time.perf_counter()
        used = Usage()
        for name in caps.methods:
            method = METHODS[name]
            room = self.thinking_tokens if method.words and caps.prompt_mode == "chat" else 0
            # Uncached, so that a letter's score depends on the prompt alone, not on what the server evaluated before.
            ask = partial(
                self.server.request,
                messages,
                assistant_prefix,
                cache_prompt=False,
                hint=CHAT_HINTS[method.hint].format(letters=letters),
                **method.fields(candidates, room),
            )
            reply = used.add(self.retry.call("score", ask))
            if method.letter is None:  # next-token log-probabilities
                scores = scores_from_top(reply.top or [], candidates)
                if any(math.isfinite(v) for v in scores.values()):
                    return used.completion(max(scores, key=scores.__getitem__), scores, name, start)
                log.debug("score.no_letter_in_top_logprobs", top=[t for t, _ in (reply.top or [])])
                continue
            said = used.said(reply, self._reasoning_count) if method.words else reply.text
            if letter := method.letter(said, candidates, assistant_prefix):
                # No probabilities from these methods: the committed letter scores 0, the others -inf.
                scores = {c: 0.0 if c == letter else -math.inf for c in candidates}
                return used.completion(letter, scores, name, start, text=used.last_text)
        return used.completion("", {c: -math.inf for c in candidates}, caps.methods[-1], start, text=used.last_text)

    def _reasoning_count(self, reply: Reply, reasoning: str) -> int:
        """The server's count of thinking tokens where it gives one, else the thinking counted here."""
        if reply.reasoning_tokens is not None or not reasoning:
            return reply.reasoning_tokens or 0
        counted = self.count_tokens(reasoning)
        return min(counted, reply.completion_tokens) if reply.completion_tokens else counted

    def count_tokens(self, text: str) -> int:
        kind = self.capabilities.tokenize
        if kind is None:
            return len(text)  # conservative for CJK (about one token per character or fewer); no tokenizer here
        data = self.retry.call("tokenize", lambda: self.server.tokenize_json(kind, text))
        return max(0, token_count(data) - self.capabilities.bos_overhead)

    def close(self) -> None:
        self.server.http.close()


def api_key_from_env(name: str | None) -> str | None:
    """The key from `name` (required to be set when given) or OPENAI_API_KEY; None -> a dummy for local servers."""
    if name:
        value = os.environ.get(name)
        if not value:
            raise BackendError(f"--api-key-env {name}: that environment variable is not set")
        return value
    return os.environ.get("OPENAI_API_KEY") or None


BACKEND = OpenAIBackend
