"""The typed core: every other module passes these around."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Up to eight options: CMB has six-option items (answer F); the letters are labels in order, never skipped.
LETTERS = ("A", "B", "C", "D", "E", "F", "G", "H")
Specialty = Literal[
    "cardiovascular",
    "gastroenterology",
    "hematology",
    "infectious_disease",
    "nephrology",
    "neurology",
    "respiratory",
    "other",
]
SPECIALTIES: tuple[str, ...] = get_args(Specialty)
Level = Literal["attending", "senior"]
# ok: a letter was committed to; unparsed: the model's output named no option; truncated: it named none because it
# was cut at its token budget or its thinking never ended (or ended with no answer after it); error: the call failed.
ParseStatus = Literal["ok", "unparsed", "truncated", "error"]
# Why a generation step stopped: the model ended it, its token budget ran out, or the engine reported an error.
FinishReason = Literal["stop", "length", "error"]


# A rotated question's id (--circular): the original id, this separator, the rotation; the original order keeps its
# id, so its answers pair with a run made without --circular.
ROTATION = "@rot"


def rotation_of(question_id: str) -> tuple[str, int]:
    """(original id, rotation) of a question id; rotation 0 for an id that names none."""
    base, sep, r = question_id.rpartition(ROTATION)
    return (base, int(r)) if sep and r.isdigit() else (question_id, 0)


class Question(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    stem: str = Field(min_length=1)
    options: dict[str, str]
    answer: str
    specialty: Specialty = "other"
    level: Level | None = None
    source: str = ""
    rationale: str = ""

    @field_validator("options")
    @classmethod
    def _letters_in_order(cls, options: dict[str, str]) -> dict[str, str]:
        keys = tuple(options)
        if keys != LETTERS[: len(keys)] or not 2 <= len(keys) <= len(LETTERS):
            raise ValueError(f"options must be labelled A, B, C… in order (2–{len(LETTERS)} of them), got {list(keys)}")
        if any(not text.strip() for text in options.values()):
            raise ValueError("option texts must not be empty")
        return options

    @model_validator(mode="after")
    def _answer_is_an_option(self) -> Question:
        if self.answer not in self.options:
            raise ValueError(f"answer {self.answer!r} is not one of the options {list(self.options)}")
        return self

    multi: ClassVar[bool] = False  # a multi-answer (多选) question: MultiQuestion

    @property
    def letters(self) -> list[str]:
        return list(self.options)


class MultiQuestion(Question):
    """A multi-answer (多选) question: `answer` holds every correct letter, sorted ("ABD"); right only on an exact
    match (CMB's own scorer compares answers as strings).

    It replaces Question's answer check by giving its validator the same name (pydantic then drops the parent's).
    Single-answer questions are never built as this class.
    """

    multi: ClassVar[bool] = True

    @model_validator(mode="after")
    def _answer_is_an_option(self) -> MultiQuestion:
        letters = "".join(sorted(set(self.answer)))
        if not self.answer or self.answer != letters or not set(letters) <= set(self.options):
            raise ValueError(f"answer {self.answer!r} must be distinct sorted letters among {list(self.options)}")
        return self


class Message(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class RetrievedPassage(BaseModel):
    id: str
    source: str
    title: str
    score: float
    text: str


class TraceStep(BaseModel):
    """One node's call to the model, kept whole so a reader can see why the chain answered as it did."""

    node: str
    messages: list[Message]
    output: str
    prompt_tokens: int = 0
    # Tokens the backend actually had to evaluate; the rest came from the reused KV-cache prefix.
    prompt_tokens_evaluated: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    scores: dict[str, float] | None = None  # letter -> log-probability, for scoring nodes
    passages: list[RetrievedPassage] | None = None  # for the retrieve node: what was put in the prompt
    # Generation steps: why it stopped (None for scoring steps and traces written before it was recorded), and a
    # reasoning model's thinking, kept apart from `output` (never parsed for the answer) with the tokens it took.
    finish_reason: FinishReason | None = None
    reasoning: str = ""
    reasoning_tokens: int = 0
    reasoning_finished: bool = True  # False: it ended inside its thinking, or with nothing after its thinking

    @property
    def cut(self) -> bool:
        """The output stopped at its token budget, or its thinking never gave way to an answer."""
        return self.finish_reason == "length" or not self.reasoning_finished

    # On disk only: this step's conversation is step `continues`'s followed by `messages` (eval.core.store writes traces
    # this way so a run's file grows linearly with the chain's length); in memory `messages` is always whole.
    continues: int | None = None


# What a prediction cost. Each is a total over its trace, where every model call the question caused is a step (pride's
# calibration rotations among them; medprompt's example reasoning, the pool's preprocessing, is not): calls, tokens and
# seconds are counted alike, so they cannot disagree. A question asked several times (--circular's rotations) costs
# the sum of its predictions.
COSTS = ("model_calls", "prompt_tokens", "prompt_tokens_evaluated", "completion_tokens", "reasoning_tokens", "seconds")


def trace_costs(trace: Sequence[TraceStep]) -> dict[str, Any]:
    """A prediction's COSTS from its trace; a retrieval step is no model call (it sends the model nothing)."""
    return {"model_calls": sum(s.passages is None for s in trace)} | {
        cost: sum(getattr(s, cost) for s in trace) for cost in COSTS[1:]
    }


def summed_costs(predictions: Iterable[Prediction]) -> dict[str, Any]:
    """The COSTS of one question's predictions (its rotations), added up."""
    predictions = list(predictions)
    return {cost: sum(getattr(p, cost) for p in predictions) for cost in COSTS}


class Engine(BaseModel):
    """What computed the predictions: in-process llama.cpp or a server, its version and build, and its slots."""

    name: str  # llama-cpp-python (in-process), llama_cpp.server, llama-server, vllm, or unknown
    version: str = ""
    build: str = ""
    # Requests the engine decodes together: 1 serialises (answers cannot depend on concurrency); None = unknown or
    # dynamic batching (vLLM, an unrecognised server).
    slots: int | None = None

    @property
    def batches(self) -> bool:
        return self.slots is None or self.slots > 1

    def describe(self) -> str:
        release = " ".join(x for x in (self.version, f"({self.build})" if self.build else "") if x)
        if self.slots is None:
            slots = "dynamic batching" if self.name == "vllm" else "slots unknown (may batch)"
        else:
            slots = f"{self.slots} slot{'s' * (self.slots != 1)}"
        return f"{self.name} {release}".strip() + f", {slots}"


class Prediction(BaseModel):
    question_id: str
    graph: str
    answer: str | None
    gold: str
    correct: bool
    parse_status: ParseStatus
    answer_method: Literal["next_token", "grammar", "json", "regex", "none"]
    draft_answer: str | None = None  # the chain's first proposal, to see whether later nodes changed it
    draft_cut: bool = False  # the first proposal named no option because it was cut at its budget or mid-thought
    first_proposal: str = ""  # what that first proposal is (the strategy says: "draft", "first sample"); "" = none
    extras: dict[str, Any] = Field(default_factory=dict)  # what the strategy records beyond it: votes, revisions...
    error: str | None = None
    # An error's kind: transient ones (a server that failed) are retried on resume; permanent ones (a prompt that can
    # never fit the context window) are final. None before kinds were recorded: retried, as then.
    error_kind: Literal["transient", "permanent"] | None = None
    trace: list[TraceStep] = Field(default_factory=list)
    # COSTS, from the trace (trace_costs); an error's seconds are the wall time until it failed (its trace is lost).
    prompt_tokens: int = 0
    prompt_tokens_evaluated: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0  # of completion_tokens, those a reasoning model spent thinking
    seconds: float = 0.0
    model_calls: int = 0
    # The most questions in flight (this one included) when it started or finished, and whether the engine could
    # then have decoded it in one batch with another question's requests (in_flight > 1 on an engine that batches).
    in_flight: int = 1
    shared_batch: bool = False

    @property
    def final(self) -> bool:
        """Nothing more can be done for it: a result, or a permanent error (a resume redoes only the rest)."""
        return self.parse_status != "error" or self.error_kind == "permanent"

    @model_validator(mode="before")
    @classmethod
    def _older_prediction(cls, data: Any) -> Any:
        # Predictions written before strategies named their first proposal: reflect's came from its draft node,
        # sc's from its first sample.
        if isinstance(data, dict) and "first_proposal" not in data:
            nodes = {step.get("node") if isinstance(step, dict) else step.node for step in data.get("trace", ())}
            data = {
                **data,
                "first_proposal": "draft" if "draft" in nodes else "first sample" if "sample" in nodes else "",
            }
        return data


# 2: strategy options moved from flat fields into `options`.
CONFIG_VERSION = 2
_FLAT_OPTIONS = {"draft_tokens", "critique_tokens", "rounds", "samples", "sample_temperature"}


class RunConfig(BaseModel):
    """Everything that decides a run's predictions; a resumed run must match it exactly."""

    model_config = ConfigDict(extra="forbid")

    graphs: list[str]
    model: str
    model_sha256: str
    model_info: dict[str, Any] = Field(default_factory=dict)  # GGUF facts: architecture, parameters, experts, quant.
    data: str
    # What the model sees: sha256 of the selected questions' ids, stems and options, in run order (after any shuffle).
    data_sha256: str
    # The answer key of those questions, hashed apart: a corrected key re-grades a run instead of re-running it.
    key_sha256: str = ""
    question_ids: list[str]
    # How the dataset was read: every input that decides a question or its key.
    format: str = "auto"
    answers: str = ""  # CMB: the separate answers file
    fields: dict[str, str] = Field(default_factory=dict)  # --map FIELD=SOURCE
    mapping: str = ""  # --mapping TOML (department / exam-class rules)
    encoding: str = ""  # the encoding the files were read in (detected, or --encoding)
    skip_bad: bool = False  # --skip-bad: malformed records skipped (counted in the report) instead of stopping the load
    # --multi: multi-answer questions included or skipped ("skip": what runs before it was recorded did)
    multi: str = "skip"
    n_ctx: int = 4096
    n_gpu_layers: int = 0
    seed: int = 0
    shuffle_seed: int | None = None  # options shown in a seeded per-question order (position-bias runs)
    circular: bool = False  # every question asked under every rotation of its options; question_ids lists each
    prompts_version: str = ""
    retrieval: str = ""  # mode, k, context budget and store fingerprint when any graph retrieves
    prompt_variant: str = ""  # a [variants.NAME] table of the strategy's prompt file; "" = its default_variant
    # Each strategy's own options (its budgets, rounds, samples...), by strategy name, as the strategy declares them.
    options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # Files a strategy reads (medprompt's pool): what they are -> sha256 of their contents.
    resources: dict[str, str] = Field(default_factory=dict)
    # --critic-model / --extract-model: role -> {spec, model, model_sha256}; no entry: the drafter's model plays it.
    roles: dict[str, dict[str, str]] = Field(default_factory=dict)
    # A template that thinks (opens a thinking block, or thinks unless told not to): how its answers are scored.
    thinking: str = ""
    thinking_tokens: int = 0  # --thinking-tokens: a reasoning model's thinking budget on top of each reply's own
    scoring: str = ""  # a server run's --scoring (how letters are committed); "" in-process (always probabilities)
    # The engine of the latest session: recorded, not compared (a restarted server may resume the run).
    engine: Engine | None = None
    version: int = CONFIG_VERSION

    @property
    def original_ids(self) -> list[str]:
        """The questions as selected: under --circular, question_ids less the rotations."""
        return [q for q in self.question_ids if not self.circular or rotation_of(q)[1] == 0]

    @model_validator(mode="before")
    @classmethod
    def _older_manifest(cls, data: Any) -> Any:
        # Version 1 manifests (no `version`) kept every strategy setting flat: they read as version 1 with those
        # settings under each of their strategies, so reports still show them and a resume is refused saying why.
        if isinstance(data, dict) and "version" not in data and _FLAT_OPTIONS & data.keys():
            flat = {k: v for k, v in data.items() if k in _FLAT_OPTIONS}
            strategies = {g.removesuffix("+rag") for g in data.get("graphs", ())}
            data = {k: v for k, v in data.items() if k not in _FLAT_OPTIONS}
            data |= {"version": 1, "options": {s: flat for s in sorted(strategies)}}
        return data


class Accuracy(BaseModel):
    correct: int
    total: int
    accuracy: float
    ci_low: float
    ci_high: float


ALPHA = 0.05  # every comparison's verdict is at this level, family-wise (Holm)
POWER = 0.8  # a difference is "detectable" when McNemar's test finds it this often


class Comparison(BaseModel):
    """The chain against the baseline on the same questions (paired)."""

    graph: str
    baseline: str
    n: int
    both_right: int
    both_wrong: int
    right_to_wrong: int  # baseline right, chain wrong
    wrong_to_right: int  # baseline wrong, chain right
    difference: float  # chain accuracy minus baseline accuracy on these n questions
    # Paired percentile bootstrap 95% interval of the difference (questions resampled, both outcomes together).
    diff_ci_low: float = 0.0
    diff_ci_high: float = 0.0
    mcnemar_p: float
    holm_p: float | None = None  # McNemar p adjusted (Holm) over every comparison against the same baseline
    # The smallest difference McNemar's test on these n questions, at their observed discordance, detects with 80%
    # power at the level Holm's first step holds the family to: what a verdict of no difference could have seen.
    # None when not even the largest difference the discordance allows is detectable.
    min_detectable: float | None = None
    unparsed: int = 0  # of the n, the chain's answers that named no option (counted wrong above)
    baseline_unparsed: int = 0
    truncated: int = 0  # of the n, the chain's outputs cut before they named an option (counted wrong above)
    baseline_truncated: int = 0

    @property
    def discordance(self) -> float:
        """The share of the n questions exactly one of the two got right: what McNemar's power depends on."""
        return (self.right_to_wrong + self.wrong_to_right) / self.n if self.n else 0.0

    @property
    def significant(self) -> bool:
        """Whether McNemar's p, Holm-adjusted over the family where it was, is below ALPHA."""
        return (self.holm_p if self.holm_p is not None else self.mcnemar_p) < ALPHA


class Flips(BaseModel):
    """How a chain's final answer differs from its first proposal on the same questions."""

    first: str = "draft"  # what the first proposal is: reflect's draft, sc's first sample
    n: int  # questions with a first proposal (errors left out)
    unparsed: int = 0  # of the n, first proposals that named no letter: neither changed nor flipped
    cut: int = 0  # of those, the ones cut at their token budget (or mid-thought) before they could name one
    changed: int  # of the parsed first proposals, those the final answer differs from
    right_to_wrong: int
    wrong_to_right: int


class BudgetHits(BaseModel):
    """One node's generated outputs, and how many stopped at their token budget (cut: what followed is missing)."""

    outputs: int
    hit: int

    @property
    def share(self) -> float:
        return self.hit / self.outputs if self.outputs else 0.0


# A node whose outputs hit their budget more often than this is flagged: its budget is too small for the model.
BUDGET_WARNING = 0.05


class GraphSummary(BaseModel):
    graph: str
    overall: Accuracy
    near_ties: int = 0  # of the scored answers, those whose two best options were within analysis.NEAR_TIE_NATS
    by_specialty: dict[str, Accuracy]
    by_level: dict[str, Accuracy]
    unparsed: int
    errors: int
    permanent_errors: int = 0  # of `errors`, those retrying cannot help (not retried on resume)
    truncated: int = 0  # named no option because the output was cut (budget, unfinished thinking): counted wrong
    budget: dict[str, BudgetHits] = Field(default_factory=dict)  # node -> its outputs at the budget
    reasoning_tokens_per_q: float = 0.0
    draft_to_final: Flips | None = None  # chains only: what critique + extraction did to the draft's answer
    prompt_tokens_per_q: float
    prompt_tokens_evaluated_per_q: float
    completion_tokens_per_q: float
    seconds_per_q: float
    calls_per_q: float


class AnswerKey(BaseModel):
    """What the answer key alone would score: the floor any accuracy must be read against."""

    letters: dict[str, int]  # questions whose answer is each letter
    best_constant_letter: str | None  # always answering this letter scores best
    best_constant_accuracy: float
    chance: float  # expected accuracy of a uniform guess over the options shown


class Determinism(BaseModel):
    """--check-determinism: questions of a run re-run at concurrency 1, and the answers that changed."""

    shared_batch: int  # of the compared answers, those the run made while sharing a batch
    compared: dict[str, int]  # graph -> answers compared
    changed: dict[str, list[str]]  # graph -> ids of the questions whose answer changed

    @property
    def total_changed(self) -> int:
        return sum(len(ids) for ids in self.changed.values())


class Circular(BaseModel):
    """--circular: one graph's answers to every rotation of each question's options (OpenCompass's CircularEval)."""

    graph: str
    n: int  # questions answered (no error) under every rotation
    original: Accuracy  # in the original option order: the standard accuracy
    every_rotation: float  # accuracy over all the rotations' answers
    circular: Accuracy  # right under every rotation
    consistent: Accuracy  # the same option chosen under every rotation, right or wrong
    agreement: float  # per question, the share of rotations that chose its most chosen option; averaged
    # Circular against original accuracy of the same graph, paired: what demanding consistency costs.
    versus_original: Comparison


class MultiAnswers(BaseModel):
    """One graph on the multi-answer (多选) questions, which the headline leaves out."""

    graph: str
    exact: Accuracy  # the whole set right (CMB's own scorer: answers compared as strings)
    partial: float  # mean credit: chosen letters / key letters when every chosen letter is right, else 0
    unparsed: int = 0


class RunSummary(BaseModel):
    model: str
    roles: dict[str, str] = Field(default_factory=dict)  # --critic-model / --extract-model: role -> model, as given
    model_info: dict[str, Any] = Field(default_factory=dict)
    data: str
    questions: int  # selected for the run
    scored: int = 0  # in every graph's headline: those with a result (not an error) from every graph
    dropped: dict[str, int] = Field(default_factory=dict)  # why the others are not scored -> how many
    bad_records: int = 0  # malformed records skipped by --skip-bad
    key: AnswerKey | None = None
    graphs: list[GraphSummary]
    comparisons: list[Comparison]
    engine: Engine | None = None
    batched: int = 0  # scored predictions made while sharing a batch with another question (Prediction.shared_batch)
    methods: dict[str, int] = Field(default_factory=dict)  # how the scored predictions committed to a letter
    determinism: Determinism | None = None
    circular: list[Circular] = Field(default_factory=list)  # --circular runs: per graph
    # --circular: each graph's circular accuracy against the baseline's, paired and Holm-adjusted
    circular_comparisons: list[Comparison] = Field(default_factory=list)
    # Multi-answer questions, apart from the headline's single-answer ones: per graph, and paired on exact match.
    multi: list[MultiAnswers] = Field(default_factory=list)
    multi_comparisons: list[Comparison] = Field(default_factory=list)
