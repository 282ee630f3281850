"""The OpenAI-compatible backend: retries and the extraction ladder on a scripted transport, then a real
llama_cpp.server (SmolLM2-135M) behind the CLI, in-process parity, and a fault-injecting proxy with resume."""

from __future__ import annotations

import http.client
import json
import math
import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from conftest import TINY
from fakes import run_config

from agents.answer import letter_from_json, letter_from_text
from agents.backends.base import BackendError, PermanentError
from agents.backends.openai import OpenAIBackend
from agents.backends.retry import RetryPolicy, ServerError
from agents.backends.scoring import scores_from_top
from agents.backends.server import MalformedReply
from eval import agentic
from eval.core.schema import Message, Prediction
from eval.models import resolve_model
from eval.run.runner import predict
from eval.run.serve import LocalServer, free_port
from graphs import build_graph

MSGS = [
    Message(role="system", content="你是临床医师。"),
    Message(role="user", content="最可能的诊断是\nA. 甲\nB. 乙\nC. 丙\n\n请给出字母。"),
]
LETTERS = ["A", "B", "C"]


# -- a scripted server on httpx.MockTransport: no process, no model --------------------------------------------


class Script:
    """An OpenAI-compatible server in a function; `faults` are raised/returned before answering, in order.

    `completions`: it also answers /v1/completions, as llama-server does (log-probabilities in the chat format).
    """

    def __init__(
        self,
        *,
        logprobs: list | None = None,
        grammar: bool = False,
        json_ok: bool = False,
        text: str = "我认为答案：B",
        faults=(),
        completions: bool = False,
    ):
        self.logprobs, self.grammar, self.json_ok, self.text = logprobs, grammar, json_ok, text
        self.completions = completions
        self.faults = list(faults)
        self.requests: list[tuple[str, dict]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        body = json.loads(request.content) if request.content else {}
        if path == "/v1/models":
            return httpx.Response(200, json={"object": "list", "data": [{"id": "m", "object": "model"}]})
        if path.endswith("tokenize") or request.method == "GET":  # no engine endpoints (/props, /version)
            return httpx.Response(404, json={"detail": "Not Found"})
        if path == "/v1/completions" and not self.completions:
            return httpx.Response(404, json={"detail": "Not Found"})
        self.requests.append((path, body))
        prompt = body["messages"][-1]["content"] if "messages" in body else body["prompt"]
        if "诊断" in prompt and self.faults:  # only question prompts, never the start-up probes
            fault = self.faults.pop(0)
            if isinstance(fault, Exception):
                raise fault
            if isinstance(fault, httpx.Response):
                return fault
            return httpx.Response(fault, json={"error": {"message": f"injected {fault}"}}, headers={"retry-after": "0"})
        content = self.text
        if body.get("grammar"):
            if not self.grammar:
                return httpx.Response(400, json={"error": {"message": "unknown field grammar"}})
            content = "Z" if "Z" in body["grammar"] else "C"
        elif body.get("response_format"):
            content = '{"answer": "A"}' if self.json_ok else "no json here"
        if path == "/v1/completions":
            choice = {"index": 0, "text": content, "finish_reason": "stop"}
        else:
            choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        if body.get("logprobs") and self.logprobs is not None:
            top = [{"token": t, "logprob": lp, "bytes": None} for t, lp in self.logprobs]
            choice["logprobs"] = {
                "content": [{"token": content[:1], "logprob": -0.1, "bytes": None, "top_logprobs": top}]
            }
        usage = {"prompt_tokens": 30, "completion_tokens": 1, "total_tokens": 31}
        return httpx.Response(
            200,
            json={
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": "m",
                "choices": [choice],
                "usage": usage,
            },
        )


SCRIPTS: list[Script] = []


def scripted(script: Script, **kw) -> OpenAIBackend:
    SCRIPTS.append(script)
    client = httpx.Client(transport=httpx.MockTransport(script))
    backend = OpenAIBackend(
        "http://fake.local/v1", http_client=client, retry=kw.pop("retry", RetryPolicy(retries=3, backoff=0.0)), **kw
    )
    backend.probe()
    return backend


def test_ladder_prefers_logprobs_and_merges_space_variants():
    backend = scripted(Script(logprobs=[("B", -0.5), (" B", -2.0), ("C", -1.5), ("x", -3.0)], grammar=True))
    c = backend.score_next(MSGS, LETTERS, assistant_prefix="答案：")
    assert c.method == "next_token" and c.text == "B"
    assert c.scores["B"] == pytest.approx(math.log(math.exp(-0.5) + math.exp(-2.0)))
    assert c.scores["A"] == -math.inf, "a letter missing from top_logprobs gets -inf"
    assert backend.capabilities.prompt_mode == "chat" and backend.capabilities.methods == [
        "next_token",
        "grammar",
        "regex",
    ]
    # chat mode cannot prefill: the prefix instruction goes at the end of the user turn
    assert "只回答一个选项字母" in SCRIPTS[-1].requests[-1][1]["messages"][-1]["content"]


def test_ladder_falls_back_grammar_then_json_then_text():
    # logprobs answered but no letter among them -> grammar
    c = scripted(Script(logprobs=[("的", -0.1)], grammar=True)).score_next(MSGS, LETTERS, assistant_prefix="答案：")
    assert (c.method, c.text, c.scores) == ("grammar", "C", {"A": -math.inf, "B": -math.inf, "C": 0.0})
    # no logprobs, grammar refused (400) -> JSON mode
    c = scripted(Script(json_ok=True)).score_next(MSGS, LETTERS, assistant_prefix="答案：")
    assert (c.method, c.scores["A"]) == ("json", 0.0)
    # nothing but text -> parse the reply
    backend = scripted(Script())
    assert backend.capabilities.methods == ["regex"]
    c = backend.score_next(MSGS, LETTERS, assistant_prefix="答案：")
    assert (c.method, c.scores["B"]) == ("regex", 0.0)
    # text naming no option: every score -inf, so the runner records the answer as unparsed
    c = scripted(Script(text="不知道")).score_next(MSGS, LETTERS, assistant_prefix="答案：")
    assert all(v == -math.inf for v in c.scores.values())


def test_chat_primes_prefix_through_the_user_turn():
    backend = scripted(Script(text="患者胸痛……答案：B"))
    c = backend.chat(MSGS, max_tokens=32, assistant_prefix="分析：")
    assert c.text == "分析：患者胸痛……答案：B" and c.prompt_tokens == 30 and c.completion_tokens == 1
    _path, body = SCRIPTS[-1].requests[-1]
    assert body["messages"][-1]["content"].endswith("请以“分析：”开头作答。")
    assert body["temperature"] == 0.0 and body["seed"] == 0 and body["max_tokens"] == 32


def test_transient_faults_are_retried_with_growing_backoff():
    waits: list[float] = []
    policy = RetryPolicy(retries=4, backoff=0.1, seed=1)
    faults = [httpx.RemoteProtocolError("dropped"), 500, 429, httpx.ReadTimeout("slow")]
    backend = scripted(Script(logprobs=[("A", -0.1)], faults=faults), retry=policy)
    policy.sleep = waits.append
    c = backend.score_next(MSGS, LETTERS, assistant_prefix="答案：")
    assert c.text == "A" and len(waits) == 4
    for attempt, w in enumerate(waits):  # equal jitter: within [step/2, step], step = 0.1 * 2^attempt
        step = 0.1 * 2**attempt
        assert step / 2 <= w <= step + 1e-9, (attempt, w)


def test_errors_that_retrying_cannot_fix():
    policy = RetryPolicy(retries=2, backoff=0.0)
    backend = scripted(Script(logprobs=[("A", -0.1)], faults=[503, 503, 503]), retry=policy)
    with pytest.raises(ServerError, match=r"failed after 3 attempts: HTTP 503"):
        backend.score_next(MSGS, LETTERS)
    backend = scripted(Script(logprobs=[("A", -0.1)], faults=[400]), retry=RetryPolicy(retries=3, backoff=0.0))
    import openai

    before = len(SCRIPTS[-1].requests)
    with pytest.raises(openai.BadRequestError):  # not transient: no retry, the runner records it as an error
        backend.score_next(MSGS, LETTERS)
    assert len(SCRIPTS[-1].requests) == before + 1


@pytest.mark.parametrize(
    "message",
    [
        # As llama-server, llama_cpp.server (0.3.36), vLLM and OpenAI word it
        "request (18041 tokens) exceeds the available context size (2048 tokens), try increasing it",
        "This model's maximum context length is 2048 tokens, however you requested 18042 tokens (18041 in your prompt;"
        " 1 for the completion). Please reduce your prompt; or completion length.",
        "The decoder prompt (length 5000) is longer than the maximum model length of 2048.",
        "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.",
    ],
)
def test_a_prompt_the_server_says_is_too_long_is_a_permanent_error(message):
    refusal = httpx.Response(400, json={"error": {"message": message}})
    backend = scripted(Script(logprobs=[("A", -0.1)], faults=[refusal]), retry=RetryPolicy(retries=3, backoff=0.0))
    before = len(SCRIPTS[-1].requests)
    with pytest.raises(PermanentError, match="the server refused the prompt as too long: HTTP 400: "):
        backend.score_next(MSGS, LETTERS)
    assert len(SCRIPTS[-1].requests) == before + 1, "retried"


# What a lying server answers with HTTP 200 (a proxy's error page, a reply cut mid-body, an empty or foreign JSON
# object), and how the error names it.
HTML = "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
LIES = [
    pytest.param({"text": HTML, "headers": {"content-type": "text/html"}}, "an HTML page", id="html"),
    pytest.param({"content": b'{"id": "x", "choices": [{"ind'}, "invalid JSON", id="torn-json"),
    pytest.param({"json": {"id": "x", "object": "chat.completion", "choices": []}}, "no choices", id="no-choices"),
    pytest.param({"json": {"status": "ok"}}, "JSON without a choices list", id="other-json"),
    pytest.param({"json": {"choices": [{"index": 0}]}}, "a choice without its message", id="no-message"),
    pytest.param({"content": b""}, "an empty body", id="empty"),
]


def liar(body: dict) -> httpx.MockTransport:
    """A server that lists a model, then answers every request with HTTP 200 and `body` (httpx.Response's kwargs)."""

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"object": "list", "data": [{"id": "m", "object": "model"}]})
        if request.method == "GET" or request.url.path.endswith("tokenize"):
            return httpx.Response(404, json={"detail": "Not Found"})
        return httpx.Response(200, **body)

    return httpx.MockTransport(answer)


@pytest.mark.parametrize("body,what", LIES)
def test_a_server_that_answers_in_another_shape_is_refused_at_start_up(body, what):
    backend = OpenAIBackend("http://fake.local/v1", http_client=httpx.Client(transport=liar(body)))
    with pytest.raises(MalformedReply) as refused:
        backend.probe()
    message = str(refused.value)
    assert message.startswith(
        f"the server at http://fake.local/v1/chat/completions answered HTTP 200 with {what}, not an OpenAI chat "
        "completion"
    ), message
    if what == "an HTML page":  # what came back: its first 80 characters, on one line
        assert message.endswith(": <!DOCTYPE html> <html><head><title>502 Bad Gateway</title></head><body>nginx</bo")


def test_the_cli_refuses_a_server_that_answers_html_in_one_line(tmp_path, capsys, own_logging):
    class Html(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            listed = self.path == "/v1/models"
            self._send(b'{"object": "list", "data": [{"id": "m"}]}' if listed else b"{}", 200 if listed else 404)

        def do_POST(self):
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self._send(HTML.encode(), 200, "text/html")

        def _send(self, body: bytes, status: int, kind: str = "application/json"):
            self.send_response(status)
            self.send_header("content-type", kind)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Html)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/v1"
    try:
        status = agentic.main(["--base-url", url, "--limit", "1", "--out", str(tmp_path / "r")])
    finally:
        server.shutdown()
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    assert f"error: the server at {url}/chat/completions answered HTTP 200 with an HTML page" in err, err[-2000:]
    assert not (tmp_path / "r" / "predictions.jsonl").exists()


@pytest.mark.parametrize("body,what", LIES)
def test_a_malformed_reply_mid_run_is_an_error_record_with_a_plain_message(body, what, question):
    backend = scripted(Script(logprobs=[("B", -0.1)], faults=[httpx.Response(200, **body)]))
    config = run_config("single")
    made = predict("single", build_graph("single", backend, config), question)
    assert (made.parse_status, made.error_kind) == ("error", "transient")
    assert made.error.startswith(
        f"MalformedReply: the server at http://fake.local/v1/chat/completions answered HTTP 200 with {what}"
    ), made.error
    assert predict("single", build_graph("single", backend, config), question).answer == "B"  # the next is answered


# Log-probabilities a server stops sending mid-run (a restart without them, a proxy that strips them), in the
# shapes servers use: none at all, no content, no positions, a position without its top list.
VANISHED = [
    None,
    {"content": None},
    {"content": []},
    {"content": [{"token": "C", "logprob": -0.1, "top_logprobs": None}]},
    {"content": [{"token": "C", "logprob": -0.1, "top_logprobs": []}]},
    {"tokens": ["C"], "token_logprobs": [-0.1], "top_logprobs": [None], "text_offset": [0]},  # legacy completions
]


@pytest.mark.parametrize("mode", ["chat", "completions"])
@pytest.mark.parametrize("logprobs", VANISHED)
def test_log_probabilities_that_vanish_mid_run_fall_back_on_both_paths(mode, logprobs):
    if mode == "chat":
        choice = {"index": 0, "message": {"role": "assistant", "content": "C"}, "finish_reason": "stop"}
    else:
        choice = {"index": 0, "text": "C", "finish_reason": "stop"}
    vanished = httpx.Response(200, json={"id": "x", "choices": [choice | {"logprobs": logprobs}]})
    script = Script(logprobs=[("B", -0.1)], grammar=True, completions=mode == "completions", faults=[vanished])
    backend = scripted(script, model_path=resolve_model(TINY) if mode == "completions" else None)
    assert backend.capabilities.prompt_mode == mode and backend.capabilities.methods[0] == "next_token"
    c = backend.score_next(MSGS, LETTERS, assistant_prefix="答案：")
    assert (c.method, c.text) == ("grammar", "C")  # the grammar's answer, as when no letter is in the top 20


def test_parsing_helpers():
    assert scores_from_top([("C", -1.0), (" C", -1.0), ("D", -0.5)], ["C", "E"]) == {
        "C": pytest.approx(-1.0 + math.log(2)),
        "E": -math.inf,
    }
    assert (
        letter_from_text("B", LETTERS) == "B"
        and letter_from_text("(C) 丙", LETTERS) == "C"
        and letter_from_text("答：D", LETTERS) is None
    )
    assert letter_from_text("故答案为C。", LETTERS) == "C" and letter_from_text("Because", LETTERS) is None
    assert letter_from_json('{"answer": "b"}', LETTERS) == "B" and letter_from_json('{"answer": "A', LETTERS) == "A"


def test_server_down_is_one_clear_error(cli, tmp_path):
    port = free_port()
    with pytest.raises(BackendError, match="no server answers at"):
        OpenAIBackend(f"http://127.0.0.1:{port}/v1").probe()
    result = cli(
        "--backend",
        "openai",
        "--base-url",
        f"http://127.0.0.1:{port}/v1",
        "--limit",
        "2",
        "--out",
        str(tmp_path / "r"),
    )
    assert result.returncode == 2, result.stderr
    assert f"error: no server answers at http://127.0.0.1:{port}/v1/models" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "r").exists()


# -- a real llama_cpp.server -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> str:
    """`python -m llama_cpp.server` on the tiny model, two threads; yields its /v1 URL."""
    pytest.importorskip("fastapi", reason="the server extra is needed: pip install -e '.[test]'")
    log = tmp_path_factory.mktemp("server") / "server.log"
    with LocalServer("llama_cpp.server", resolve_model(TINY), n_ctx=2048, n_threads=2, log_path=log) as running:
        yield running.url


def predictions(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]


SERVE = (
    "--backend",
    "openai",
    "--n-threads",
    "1",
    "--draft-tokens",
    "24",
    "--critique-tokens",
    "16",
    "--n-ctx",
    "2048",
    "--retry-backoff",
    "0.05",
)


@pytest.mark.slow
def test_both_graphs_through_the_cli_resume_and_chat_mode(server, cli, tmp_path):
    out = tmp_path / "run"
    args = (
        "--graph",
        "reflect",
        *SERVE,
        "--base-url",
        server,
        "--model",
        TINY,
        "--limit",
        "2",
        "--concurrency",
        "1",
        "--out",
        str(out),
    )
    result = cli(*args)
    assert result.returncode == 0, result.stderr
    preds = predictions(out)
    assert sorted((p["graph"], p["question_id"]) for p in preds) == sorted(
        (g, q) for g in ("reflect", "single") for q in {p["question_id"] for p in preds}
    )
    assert len(preds) == 4
    for p in preds:
        assert [s["node"] for s in p["trace"]] == (
            ["draft", "critique", "extract"] if p["graph"] == "reflect" else ["answer"]
        )
        # llama_cpp.server's log-probabilities are slow (every prompt token's logits, a Python sort of the
        # vocabulary), so by default the letter is committed by a grammar: the chosen letter alone is scored.
        assert p["parse_status"] == "ok" and p["answer_method"] == "grammar" and p["answer"] in "ABCDE"
        scoring = p["trace"][-1]
        assert scoring["prompt_tokens"] > 0 and scoring["seconds"] > 0 and scoring["scores"] == {p["answer"]: 0.0}
        assert p["trace"][0]["output"].startswith("分析：" if p["graph"] == "reflect" else "")
    assert "## reflect vs single (paired, n=2)" in result.stdout and "McNemar" in result.stdout
    assert '"prompt_mode": "completions"' in result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert (
        manifest["model"].startswith("openai:")
        and manifest["model_sha256"]
        and "+chat" not in manifest["prompts_version"]
    )

    lines = (out / "predictions.jsonl").read_text(encoding="utf-8")
    again = cli(*args)
    assert again.returncode == 0, again.stderr
    assert (out / "predictions.jsonl").read_text(encoding="utf-8") == lines, "resume must not redo or duplicate"

    # Without the GGUF: the chat endpoint, the prefix as an instruction, a different prompts version; and the
    # log-probabilities when asked for.
    chat = tmp_path / "chat"
    result = cli(
        "--graph", "single", "--baseline", "none", *SERVE, "--base-url", server, "--limit", "1", "--out", str(chat),
        "--scoring", "probabilities",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert '"prompt_mode": "chat"' in result.stderr
    assert all(p["parse_status"] == "ok" and p["answer_method"] == "next_token" for p in predictions(chat))
    assert json.loads((chat / "manifest.json").read_text())["prompts_version"].endswith("+chat-prefix-1")


@pytest.mark.slow
def test_a_prompt_too_long_for_a_real_server_is_a_permanent_error(server):
    long = [*MSGS[:-1], Message(role="user", content="胸痛" * 3000 + MSGS[-1].content)]
    for model in (None, resolve_model(TINY)):  # chat and completions
        backend = OpenAIBackend(server, model_path=model, retry=RetryPolicy(retries=1, backoff=0.0))
        with pytest.raises(PermanentError, match="maximum context length is 2048 tokens"):
            backend.score_next(long, LETTERS, assistant_prefix="答案：")


@pytest.mark.slow
def test_completions_mode_scores_match_in_process(server):
    from agents.backends.llamacpp import LlamaCppBackend

    local = LlamaCppBackend(resolve_model(TINY), n_ctx=2048, n_threads=1)
    remote = OpenAIBackend(server, model_path=resolve_model(TINY), scoring="probabilities")
    assert remote.probe().methods[0] == "next_token" and remote.engine.name == "llama_cpp.server"
    mine, theirs = (
        local.score_next(MSGS, LETTERS, assistant_prefix="答案："),
        remote.score_next(MSGS, LETTERS, assistant_prefix="答案："),
    )
    assert theirs.text == mine.text
    for letter in LETTERS:
        assert theirs.scores[letter] == pytest.approx(mine.scores[letter], abs=0.05)
    assert abs(remote.count_tokens("急性下壁心肌梗死") - local.count_tokens("急性下壁心肌梗死")) == 0


# -- the fault-injecting proxy -----------------------------------------------------------------------------------


class FaultProxy(ThreadingHTTPServer):
    """Forwards to `upstream`; on question-sized POSTs, seeded: drops the connection, answers 500 or 429, or delays.

    Every request whose body contains `doomed` gets a 500, so that question always ends as an error.
    """

    daemon_threads = True

    def handle_error(self, request, client_address):  # a dropped connection is the point, not news
        pass

    def __init__(self, upstream: str, *, seed: int, drop=0.15, error=0.15, busy=0.05, delay=0.1, doomed="ZZFAULT"):
        super().__init__(("127.0.0.1", 0), _FaultHandler)
        self.upstream = httpx.URL(upstream)
        self.rng, self.lock = random.Random(seed), threading.Lock()
        self.p = {"drop": drop, "error": error, "busy": busy, "delay": delay}
        self.doomed = doomed
        self.counts = {"drop": 0, "error": 0, "busy": 0, "delay": 0, "doomed": 0, "forwarded": 0}
        self.enabled = True

    def fault(self, body: bytes) -> str | None:
        if not self.enabled or len(body) < 600:  # start-up probes are small: the run must start deterministically
            return None
        text = json.dumps(json.loads(body), ensure_ascii=False)
        with self.lock:
            if self.doomed in text:
                self.counts["doomed"] += 1
                return "doomed"
            r, edge = self.rng.random(), 0.0
            for name, p in self.p.items():
                edge += p
                if r < edge:
                    self.counts[name] += 1
                    return name
        return None


class _FaultHandler(BaseHTTPRequestHandler):
    server: FaultProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        self._forward(b"")

    def do_POST(self):
        self._forward(self.rfile.read(int(self.headers.get("content-length", 0))))

    def _send(self, status: int, body: bytes, headers: dict | None = None):
        self.send_response(status)
        for k, v in {"content-type": "application/json", **(headers or {})}.items():
            self.send_header(k, v)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _forward(self, body: bytes):
        fault = self.server.fault(body) if self.command == "POST" else None
        if fault == "drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault in ("error", "doomed"):
            return self._send(500, b'{"error": {"message": "injected failure"}}')
        if fault == "busy":
            return self._send(429, b'{"error": {"message": "injected: slow down"}}', {"retry-after": "0"})
        if fault == "delay":
            time.sleep(0.3)
        up = self.server.upstream
        conn = http.client.HTTPConnection(up.host, up.port, timeout=300)
        try:
            conn.request(self.command, self.path, body=body or None, headers={"content-type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        with self.server.lock:
            self.server.counts["forwarded"] += 1
        self._send(resp.status, data, {"content-type": resp.getheader("content-type", "application/json")})


STEMS = [
    "男，60岁，突发胸痛2小时，心电图示下壁ST段抬高。最可能的诊断是",
    "ZZFAULT 女，55岁，胸骨后压榨样疼痛1小时。最可能的诊断是",
    "男，45岁，剧烈胸痛向背部放射。最可能的诊断是",
]
OPTIONS = {"A": "急性心包炎", "B": "急性心肌梗死", "C": "主动脉夹层", "D": "肺栓塞", "E": "气胸"}
QUESTIONS = [
    {
        "id": f"f-{i}",
        "stem": stem,
        "options": OPTIONS,
        "answer": "B",
        "specialty": "cardiovascular",
        "level": "attending",
    }
    for i, stem in enumerate(STEMS)
]


@pytest.mark.slow
def test_faults_end_answered_or_error_and_resume_completes(server, cli, tmp_path):
    data = tmp_path / "q.jsonl"
    data.write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in QUESTIONS), encoding="utf-8")
    proxy = FaultProxy(server.removesuffix("/v1"), seed=7)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    out = tmp_path / "run"
    base = ("--graph", "reflect", *SERVE, "--model", TINY, "--data", str(data), "--limit", "0", "--out", str(out))
    try:
        first = cli(
            *base, "--base-url", f"http://127.0.0.1:{proxy.server_port}/v1", "--retries", "2", "--concurrency", "3"
        )
    finally:
        proxy.shutdown()
    assert first.returncode == 1, first.stderr  # a run that ends with errors says so in its exit status
    assert "predictions ended in an error" in first.stderr
    assert proxy.counts["doomed"] >= 3 and proxy.counts["drop"] + proxy.counts["error"] + proxy.counts["busy"] > 0, (
        proxy.counts
    )
    assert '"event": "server.retry"' in first.stderr
    pairs = {(g, q["id"]) for g in ("reflect", "single") for q in QUESTIONS}
    preds = [Prediction.model_validate(p) for p in predictions(out)]
    assert sorted((p.graph, p.question_id) for p in preds) == sorted(pairs), (
        "each (graph, question) recorded exactly once"
    )
    errors = {(p.graph, p.question_id) for p in preds if p.parse_status == "error"}
    assert {("reflect", "f-1"), ("single", "f-1")} <= errors
    for p in preds:
        assert p.parse_status in ("ok", "error")
        if p.parse_status == "error":
            assert "failed after 3 attempts" in p.error
    assert "errors" in first.stdout
    first_lines = (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()

    again = cli(*base, "--base-url", server)  # the server itself now: nothing fails
    assert again.returncode == 0, again.stderr
    lines = (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    assert lines[: len(first_lines)] == first_lines and len(lines) == len(first_lines) + len(errors), (
        "only the errors are redone"
    )
    final = {}
    for p in (Prediction.model_validate_json(line) for line in lines):
        final[(p.graph, p.question_id)] = p
    assert set(final) == pairs and all(p.parse_status == "ok" for p in final.values())


@pytest.mark.slow
def test_a_server_that_goes_away_stops_the_run_then_resume_completes(server, cli, tmp_path):
    # The proxy answers the start-up probes, then drops every question's connection: a server that went away.
    proxy = FaultProxy(server.removesuffix("/v1"), seed=1, drop=1.0, error=0.0, busy=0.0, delay=0.0)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    out = tmp_path / "run"
    base = ("--graph", "single", "--baseline", "none", *SERVE, "--model", TINY, "--limit", "6", "--out", str(out))
    try:
        first = cli(*base, "--base-url", f"http://127.0.0.1:{proxy.server_port}/v1", "--retries", "1")
    finally:
        proxy.shutdown()
    assert first.returncode == 2, first.stderr
    assert "error: the server stopped answering: 3 questions in a row could not reach it" in first.stderr
    assert "Traceback" not in first.stderr
    stopped = [Prediction.model_validate(p) for p in predictions(out)]
    assert len(stopped) == 3 and all(p.parse_status == "error" for p in stopped)  # not the other 3: it stopped
    again = cli(*base, "--base-url", server)
    assert again.returncode == 0, again.stderr
    final = {p["question_id"]: Prediction.model_validate(p) for p in predictions(out)}
    assert len(final) == 6 and all(p.parse_status == "ok" for p in final.values())
    assert len(predictions(out)) == 3 + 6  # the 3 errors, then every question once


def test_in_process_backend_clamps_concurrency(cli, tmp_path):
    result = cli(
        "--graph",
        "single",
        "--baseline",
        "none",
        "--model",
        TINY,
        "--n-threads",
        "1",
        "--limit",
        "1",
        "--concurrency",
        "4",
        "--out",
        str(tmp_path / "r"),
    )
    assert result.returncode == 0, result.stderr
    assert '"event": "concurrency.clamped"' in result.stderr and '"concurrency": 1' in result.stderr
