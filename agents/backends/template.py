"""A GGUF's chat template, rendered as llama.cpp renders it, for both the in-process backend and a server's raw
/v1/completions; and what the template does with a reasoning model's thinking."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, cast

from agents.backends.base import BackendError, quiet_stderr
from agents.reasoning import close_tag, opens_block, split_reasoning
from eval.core.schema import Message

if TYPE_CHECKING:
    from llama_cpp.llama_types import ChatCompletionRequestMessage


@dataclass(frozen=True)
class Rendered:
    prompt: str
    stop: list[str]
    added_special: bool  # the template wrote the BOS itself
    opened: bool  # the prompt ends inside a thinking block: the reply starts thinking


class ChatTemplate:
    """Renders conversations; knows whether the template starts every reply inside a thinking block (DeepSeek-R1's
    distills) or has a documented switch for answering without thinking (Qwen3's enable_thinking)."""

    def __init__(self, template: str, *, bos_token: str, eos_token: str, eos_id: int):
        from llama_cpp import llama_chat_format

        self._formatter = llama_chat_format.Jinja2ChatFormatter(
            template=template, eos_token=eos_token, bos_token=bos_token, stop_token_ids=[eos_id]
        )
        self.bos_token = bos_token
        probe: list[ChatCompletionRequestMessage] = [{"role": "user", "content": "?"}]
        plain = self._formatter(messages=probe).prompt
        self.opens = opens_block(plain)  # the open tag every reply starts in, or None
        # What ends the prompt so that the model answers without thinking: an empty closed block, the models' own
        # documented no-thinking form ("<think>\n\n</think>\n\n"); "" when the template has no thinking at all.
        self._no_thinking = ""
        if self.opens:
            self._no_thinking = f"\n\n{close_tag(self.opens)}\n\n"
        else:
            switched = self._render_switched(probe)
            added = switched[len(plain) :] if switched.startswith(plain) else ""
            split = split_reasoning(added)
            if added.strip() and not split.answer and not split.reasoning:
                self._no_thinking = added
        self.thinking = (
            ""
            if not self._no_thinking
            else f"the template opens {self.opens}: answers are scored after an empty closed block"
            if self.opens
            else "the template thinks unless enable_thinking=false: answers are scored after its empty closed block"
        )

    @classmethod
    def of(cls, llm, model_path: Path, chat_template: str | None = None) -> ChatTemplate:
        """The template a llama.cpp model (loaded, or its vocabulary alone) renders with: `chat_template` or the
        GGUF's own, with the model's BOS and EOS."""
        template = chat_template or llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise BackendError(
                f"{model_path} has no chat template in its GGUF metadata (a base model? evaluate its instruct version)"
            )
        eos, bos = llm.token_eos(), llm.token_bos()
        text = llm._model.token_get_text
        return cls(
            template,
            eos_token=text(eos) if eos != -1 else "",
            bos_token=text(bos) if bos != -1 else "",
            eos_id=eos,
        )

    def _render_switched(self, messages: Sequence[Mapping[str, object]]) -> str:
        # Jinja2ChatFormatter does not pass extra variables to the template, so its compiled template is rendered
        # with them directly, with the variables the formatter itself passes.
        return self._formatter._environment.render(
            messages=messages,
            eos_token=self._formatter.eos_token,
            bos_token=self._formatter.bos_token,
            raise_exception=_raise,
            add_generation_prompt=True,
            enable_thinking=False,
        )

    def render(self, messages: Sequence[Message], assistant_prefix: str = "", *, thinking: bool = True) -> Rendered:
        """The prompt for the model's reply, primed with `assistant_prefix`. `thinking=False` (scoring: the answer is
        the very next token) ends any thinking first, in the template's own no-thinking form."""
        # Message's role and content are those of llama.cpp's message dicts, which it types apart by role
        turns = cast("list[ChatCompletionRequestMessage]", [m.model_dump() for m in messages])
        result = self._formatter(messages=turns)
        prompt, opened = result.prompt, self.opens is not None
        if not thinking and self._no_thinking:
            prompt = prompt.rstrip() + self._no_thinking if self.opens else self._render_switched(turns)
            opened = False
        stop = result.stop if isinstance(result.stop, list) else [result.stop] if result.stop else []
        return Rendered(prompt + assistant_prefix, stop, bool(result.added_special), opened)


class ServerTemplate:
    """A GGUF's chat template rendered here for a server's raw /v1/completions, exactly as the in-process backend
    renders it (only the vocabulary is loaded)."""

    def __init__(self, model_path: Path):
        from llama_cpp import Llama

        try:
            with quiet_stderr():
                vocab = Llama(model_path=str(model_path), vocab_only=True, verbose=False)
        except (ValueError, RuntimeError, OSError) as e:
            raise BackendError(f"could not read the tokenizer of {model_path}: {e}") from None
        try:
            self.template = ChatTemplate.of(vocab, model_path)
            # The server tokenizes a text prompt with add_bos: a BOS the template writes itself must not be doubled.
            self.server_adds_bos = vocab.metadata.get("tokenizer.ggml.add_bos_token", "false") == "true"
        finally:
            vocab.close()

    def render(self, messages: Sequence[Message], assistant_prefix: str, *, thinking: bool = True) -> Rendered:
        rendered = self.template.render(messages, assistant_prefix, thinking=thinking)
        bos = self.template.bos_token
        if self.server_adds_bos and bos and rendered.prompt.startswith(bos):
            return replace(rendered, prompt=rendered.prompt[len(bos) :])
        return rendered


def _raise(message: str):
    raise ValueError(message)


def template_thinking(template: str) -> str:
    """What ChatTemplate.thinking says of a template, without loading its model (for the manifest)."""
    return ChatTemplate(template, bos_token="", eos_token="", eos_id=-1).thinking if template else ""
