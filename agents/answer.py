"""Committing to one option letter: by next-token scores (never fails) or by parsing free text; and, for a
multi-answer (多选) question, to a set of letters."""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from agents.reasoning import split_reasoning


@dataclass(frozen=True)
class Pattern:
    """One named way of stating an answer; `{L}` stands for the letters it commits to ("C", "(C)", "C、D")."""

    name: str
    regex: str
    tier: int  # lower tiers win; within a tier the statement that ends last wins


STATEMENT, VERDICT, REFERENCE = range(3)

# Someone else's answer (the draft's, the original one): only a fallback, so a critic that proposes C and then
# discusses "草稿答案B" proposes C.
_REF = r"(?:(?P<ref>草稿|原来的|原|初步|之前的|先前的|上述|draft(?:'s)?|original|initial|previous|your)\s*)?"
_ZH_ADVERB = r"(?:应该|应当|应|就|当然|无疑|显然|肯定|最可能|可能|仍然|仍|还是|依然|则|即)?"
# What a question asks for: 最恰当的初始处理, 首选的治疗方案, 最合适的检查.
_MANAGEMENT_ZH = r"(?:初始|初步|紧急)?(?:处理|治疗|检查|措施|药物|方案|方法|手术|术式)(?:措施|方案|方法)?"

PATTERNS = (
    # 答案：C / 最终答案是C / 答案应该是C / 建议答案：C / 答案应选择(D) / 正确答案为C项
    Pattern("answer_zh", _REF + r"答案" + _ZH_ADVERB + r"(?:是|为|选择|选)?[ \t]*:?\s*{L}", STATEMENT),
    # 选B / 故选C / 应选择(D) / 本题选D / 最佳选择是B; never 选项A, 不选A
    Pattern(
        "choose_zh",
        r"(?<!不)(?<!不应)(?<!不能)(?<!排除)选(?:择|用|定)?(?!项)[ \t]*(?:是|为)?[ \t]*:?[ \t]*{L}",
        STATEMENT,
    ),
    # 正确选项是D / 正确的是C / 最可能的诊断为B / 正确选项：D / 最合适的处理是B选项 / 首选的治疗是E /
    # 首选的治疗是血液透析治疗（C）
    Pattern(
        "correct_zh",
        r"(?:正确|最佳|最合适|最恰当|最符合|最可能|首选)的?(?:选项|答案|选择|诊断|"
        + _MANAGEMENT_ZH
        + ")?"
        + _ZH_ADVERB
        + r"(?:(?:是|为)[ \t]*:?|:)\s*(?:[^\n。;,()]{1,40}(?=\())?{L}",
        STATEMENT,
    ),
    # 应改为C / 建议改选C / 更正为C / (草稿答案B不对，)应为C / 手术方式应是：⏎B. Miles手术
    Pattern("change_zh", r"(?:改为|改选|更正为|修改为|应为|应是)[ \t]*(?:答案|选项)?[ \t]*:?\s*{L}", STATEMENT),
    # Answer: C / The correct answer is option D / the answer would be (b) / Final answer - C
    Pattern(
        "answer_en",
        _REF + r"\banswer(?:[ \t]+(?:is|would[ \t]+be|should[ \t]+be|must[ \t]+be|will[ \t]+be))?[ \t]*[:=\-]?\s*"
        r"(?:option[ \t]+|choice[ \t]+|letter[ \t]+)?{L}",
        STATEMENT,
    ),
    # the best option is C / the most appropriate choice would be D
    Pattern(
        "option_en",
        r"\b(?:correct|best|right|appropriate|likely|final)[ \t]+(?:option|choice)[ \t]*(?:is|would[ \t]+be|:)[ \t]*"
        r"(?:option[ \t]+)?{L}",
        STATEMENT,
    ),
    # I choose B / we would select option C / go with (D)
    Pattern(
        "choose_en",
        r"\b(?:choose|select|pick|go[ \t]+with)[ \t]+(?:option[ \t]+|choice[ \t]+|answer[ \t]+)?{L}",
        STATEMENT,
    ),
    # the most appropriate treatment for this patient is C / the preferred treatment is:⏎E. … / the most likely
    # diagnosis is 骨骼活检 (option E)
    Pattern(
        "conclusion_en",
        r"\b(?:most[ \t]+(?:appropriate|likely|suitable)|preferred|best|correct|right)[ \t]+"
        r"(?:(?:initial|next|first(?:-line)?)[ \t]+)?"
        r"(?:treatment|diagnosis|management|test|examination|investigation|step|approach|therapy|procedure|option|choice)"
        r"\b[^.\n:]{0,100}?[ \t]+(?:is|would[ \t]+be)[ \t]*:?\s*(?!not\b)"
        r"(?:option[ \t]+|choice[ \t]+|[^.\n()]{1,40}\((?:option|choice)[ \t]+)?{L}",
        STATEMENT,
    ),
    # which corresponds to option B
    Pattern("corresponds_en", r"\bcorresponds?[ \t]+to[ \t]+(?:option|choice|answer)[ \t]+{L}", STATEMENT),
    # \boxed{D} (a LaTeX \text{} inside is unwrapped by normalise)
    Pattern("boxed", r"\\boxed[ \t]*\{[ \t]*{L}", STATEMENT),
    # C项正确 / 选项B最符合 / B是正确的 — a verdict on one option, used when nothing states an answer
    Pattern(
        "verdict_zh", r"(?:选项)?{L}(?:项|选项)?(?:是)?(?:正确|最佳|最符合|最合适|最恰当|正确答案|最佳答案)", VERDICT
    ),
    # (综上所述，…的必要检查)是B选项 — what a conclusion names, used when nothing states an answer
    Pattern("is_option_zh", r"(?<!不)(?:是|为)[ \t]*{L}[ \t]*选项", VERDICT),
    # Option C is correct / (B) is the best answer / C is the most likely diagnosis / option B (<its text>) is most
    # appropriate / Option C (奎宁) is the only one that meets all criteria / Option D (…) appears to be the best
    Pattern(
        "verdict_en",
        r"(?:\b(?:option|choice)[ \t]+)?{L}(?:[ \t]*\((?:[^()\n]|\([^()\n]*\)){1,80}\))?"
        r"[ \t]+(?:is|would[ \t]+be|seems|appears[ \t]+to[ \t]+be)[ \t]+(?:the[ \t]+)?"
        r"(?:correct|right|best|most[ \t]+appropriate|most[ \t]+likely|only[ \t]+one[ \t]+that[ \t]+(?:meets|fits))\b",
        VERDICT,
    ),
)

# After the letters: "答案B的说法不全面", "选B是错误的", "answer B is wrong" mention an answer, they do not state one.
_MENTION = (
    r"(?![ \t]*(?:的|有误|错|不|欠|忽略|遗漏|未|没有|存在|说法|是错|是不|并非))"
    r"(?![ \t]+(?:is|was)[ \t]+(?:wrong|incorrect|not\b))"
)
_SEPARATOR = r"[ \t]*(?:、|/|或|和|及|与|\bor\b|\band\b|&|\+)[ \t]*"
# A comma or semicolon joins letters only when the clause ends there ("答案：C, D。", "选择A；C；"), not in
# "答案：B，C项错误" (NFKC makes ， a , and ； a ;).
_COMMA = r"[ \t]*[,;][ \t]*"
_CLAUSE_END = r"(?=[ \t]*(?:$|[\n,.;:。、)\]】]|或|和|\bor\b|\band\b))"
# A letter is not an answer when it is part of a word or a term: B超, B族维生素, A型血, T细胞, C反应蛋白, D-二聚体.
_STANDALONE = r"(?![A-Za-z0-9]|超|族|型|细胞|组|群|类|级|链|受体|因子|反应|淋巴|波|-\w)"
_EMPHASIS = re.compile(r"\*\*|__|\*|`|~~|\$|^[ \t]*#+[ \t]*", re.MULTILINE)
_LATEX_TEXT = re.compile(r"\\(?:text|textbf|mathrm|mathbf)[ \t]*\{([^{}]*)\}")
_STANDALONE_LETTER = re.compile(r"(?<![A-Za-z0-9])[A-Za-z](?![A-Za-z0-9])")
# What follows an answer keyword (首选的检查是…), read up to the end of its sentence: for the option-text fallback;
# not a modifier ("诊断的最佳选择") or a clause that goes on ("为明确诊断，首选…").
_ANSWER_TEXT = re.compile(
    r"(?:答案|诊断|选择|选(?!择)(?:的?"
    + _MANAGEMENT_ZH
    + r")?)"
    + _ZH_ADVERB
    + r"(?:是|为)?[ \t]*:?[ \t]*(?P<text>(?![的,])[^\n。;]+)"
    r"|\b(?:answer|diagnosis)[ \t]*(?:is|would[ \t]+be|:)[ \t]*(?P<en>[^\n.;]+)",
    re.IGNORECASE,
)


def _letters_regex(letters: Sequence[str]) -> str:
    """One letter that stands alone: "C", "(C)", "【C】"; lower case only where it cannot be an English word."""
    upper = "".join(re.escape(x.upper()) for x in letters)
    lower = upper.lower()
    token = (
        rf"(?:[(\[【{{][ \t]*[{upper}{lower}][ \t]*[)\]】}}]"
        rf"|(?-i:[{upper}]){_STANDALONE}"
        rf"|(?:(?<=option )|(?<=choice ))(?-i:[{lower}]){_STANDALONE}"
        rf"|(?-i:[{lower}]){_STANDALONE}(?![ \t]+[A-Za-z]))"
    )
    more = rf"(?:{_SEPARATOR}{token}|{_COMMA}{token}{_CLAUSE_END})"
    return rf"(?<![A-Za-z0-9])(?P<letters>{token}{more}*){_MENTION}"


@lru_cache(maxsize=32)
def _compiled(letters: tuple[str, ...]) -> tuple[tuple[Pattern, re.Pattern], ...]:
    group = _letters_regex(letters)
    return tuple((p, re.compile(p.regex.replace("{L}", group), re.IGNORECASE)) for p in PATTERNS)


def normalise(text: str) -> str:
    """NFKC (full-width Ｃ and ：), markdown emphasis and LaTeX \\text{} removed."""
    text = unicodedata.normalize("NFKC", text)
    return _LATEX_TEXT.sub(r"\1", _EMPHASIS.sub("", text))


def _plain(text: str) -> str:
    """For comparing with an option text: case, spaces and punctuation ignored."""
    return re.sub(r"[\W_]+", "", normalise(text)).casefold()


def _starts_option_list(text: str, m: re.Match, letters: tuple[str, ...]) -> bool:
    """The statement's letter is only the first item of an echoed option list: "可以选择：A. 硝普钠 B. 吗啡",
    "答案：A. 环磷酰胺…⏎B. 利妥昔单抗…" (the next letter's item follows on the same line or the next)."""
    named = _STANDALONE_LETTER.findall(m.group("letters"))
    index = letters.index(named[-1].upper()) if named and named[-1].upper() in letters else len(letters)
    if index + 1 >= len(letters):
        return False
    item = rf"[ \t]*[.:)][ \t]*[^\s.:)][^\n]*?(?:\n[ \t>*\-]*)?(?<![A-Za-z0-9]){letters[index + 1]}[ \t]*[.:)]"
    return re.match(item, text[m.end() :]) is not None


def _statement_letter(text: str, letters: tuple[str, ...]) -> tuple[bool, str | None]:
    """(found, letter) from the last statement of the strongest tier present; two different letters in it -> None."""
    best: dict[int, tuple[int, int, str]] = {}
    stated: dict[int, set[str]] = {}  # every letter each tier's statements name
    for pattern, regex in _compiled(letters):
        for m in regex.finditer(text):
            if _starts_option_list(text, m, letters):
                continue
            tier = REFERENCE if "ref" in regex.groupindex and m.group("ref") else pattern.tier
            key = (m.end(), -m.start(), m.group("letters"))
            stated.setdefault(tier, set()).update(x.upper() for x in _STANDALONE_LETTER.findall(key[2]))
            if tier not in best or key > best[tier]:
                best[tier] = key
    if not best:
        return False, None
    if len(stated[min(best)]) >= 3:  # "The answer is D … The answer is A … The answer is B": no commitment
        return True, None
    named = {x.upper() for x in _STANDALONE_LETTER.findall(best[min(best)][2])}
    return True, named.pop() if len(named) == 1 else None


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _bare_letter(text: str, letters: tuple[str, ...], options: Mapping[str, str]) -> str | None:
    """A last line that is only a letter ("C", "(C)."), or a whole reply that is a letter and its own option text
    ("C. 主动脉夹层"; at the end of a longer reply that is more likely an echoed or truncated list of options)."""
    lines = _lines(text)
    m = re.match(r"[ \t>\-]*[(\[【]?[ \t]*([A-Za-z])[ \t]*[)\]】]?(?![A-Za-z0-9])(.*)", lines[-1]) if lines else None
    if not m or m.group(1).upper() not in letters:
        return None
    letter, rest = m.group(1).upper(), _plain(m.group(2))
    if not rest:  # "D." after "D. …" items is the next item cut off, not an answer
        item = re.compile(rf"[ \t>\-]*{letter}[ \t]*[.:)、][ \t]*\S")
        return None if any(item.match(line) for line in lines[:-1]) else letter
    own_text = len(lines) == 1 and m.group(1).isupper() and rest == _plain(options.get(letter, ""))
    return letter if own_text else None


def _option_text_letter(text: str, options: Mapping[str, str]) -> str | None:
    """The option whose whole text is what the last answer statement (or the last line) names. A statement of the
    prompt's placeholder ("建议答案：X", the format echoed unfilled) names nothing, so the one before it counts."""
    by_text = {_plain(t): k for k, t in options.items()}
    stated = [m.group("text") or m.group("en") for m in _ANSWER_TEXT.finditer(text)]
    stated = [s for s in stated if _plain(s) != "x"]
    lines = _lines(text)
    for candidate in (stated[-1] if stated else "", lines[-1] if lines else ""):
        if _plain(candidate) in by_text:
            return by_text[_plain(candidate)]
    return None


def parse_letter(text: str, letters: Sequence[str], options: Mapping[str, str] | None = None) -> str | None:
    """The option letter a free-text answer commits to, or None when it names none of `letters` or is ambiguous.

    The last explicit answer statement wins ("答案：C", "故选C", "The correct answer is option D", "\\boxed{D}");
    two different letters in it ("答案：C、D", "A or B") leave the answer unparsed. Without one, a verdict on an
    option ("C项正确"), then a mention of someone else's answer ("维持原答案B"), then a last line that is only a
    letter, then (with `options`) an answer that spells out exactly one option's text. A reasoning model's thinking
    (<think>…</think>, finished or not) is never read: only the text outside it.
    """
    letters = tuple(x.upper() for x in letters)
    text = normalise(split_reasoning(text).answer)
    found, letter = _statement_letter(text, letters)
    if found:
        return letter
    return _bare_letter(text, letters, options or {}) or _option_text_letter(text, options or {})


_LEADING_LETTER = re.compile(r"^\W*([A-Z])(?![A-Za-z])")


def letter_from_text(text: str, candidates: Sequence[str], prefix: str = "") -> str | None:
    """The letter a short reply asked for the letter alone commits to: '答案：C', 'C', '(C) ...' -> C; None when it
    commits to no candidate. `prefix`: what the reply was primed with (it may complete "答案：")."""
    found = parse_letter(prefix + text, candidates)
    if found:
        return found
    m = _LEADING_LETTER.match(text.strip())
    return m.group(1) if m and m.group(1) in candidates else None


def letter_from_json(text: str, candidates: Sequence[str]) -> str | None:
    """The letter a JSON reply ({"answer": "C"}) commits to, even one cut short ('{"answer": "C')."""
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


# A multi-answer statement whose letters run together: "答案：ABD", "Answer: ACE", "选BD".
# Not after a negation (不选BE) or someone else's answer (草稿答案AC); capitals only ("the answer is bad" names none);
# a whole token, so a term that starts with letters names none (首选ACE抑制剂, CABG手术).
_RUN = re.compile(
    r"(?<!不)(?<!不应)(?<!排除)(?<!草稿)(?<!原)(?<!初步)(?<!之前的)(?<!先前的)(?<!原来的)"
    r"(?:答案|选择|选|\banswers?)" + _ZH_ADVERB + r"(?:[ \t]+(?:is|are))?(?:是|为)?[ \t]*[:=\-]?\s*"
    r"(?P<letters>(?-i:[A-H](?:[ \t]*[A-H]){1,7}))(?=[ \t]*(?:$|[\n,.;:!?。，；：！？、)）\]】(（]))",
    re.IGNORECASE | re.MULTILINE,
)


# Statements only a multi-answer reply makes: "The correct answers are A and C".
MULTI_PATTERNS = (
    Pattern("answers_en", r"\banswers[ \t]+(?:are|would[ \t]+be)[ \t]*:?[ \t]*(?:options?[ \t]+)?{L}", STATEMENT),
)


@lru_cache(maxsize=32)
def _compiled_multi(letters: tuple[str, ...]) -> tuple[tuple[Pattern, re.Pattern], ...]:
    group = _letters_regex(letters)
    extra = tuple((p, re.compile(p.regex.replace("{L}", group), re.IGNORECASE)) for p in MULTI_PATTERNS)
    return _compiled(letters) + extra


def parse_letters(text: str, letters: Sequence[str]) -> str | None:
    """The set of option letters a free-text answer to a multi-answer question commits to, sorted ("ABD"), or None.

    The last answer statement wins, whether its letters are separated ("答案：A、B、D", "A and C") or run together
    ("答案：ABD"); failing one, a last line of letters only. Letters that are not options leave it unparsed.
    """
    allowed = {x.upper() for x in letters}
    text = normalise(split_reasoning(text).answer)
    # (where it ends, its letters): a run is its letters; a statement's are the letters standing alone in it.
    found = [(m.end(), re.sub(r"\s", "", m.group("letters"))) for m in _RUN.finditer(text)]
    for pattern, regex in _compiled_multi(tuple(sorted(allowed))):
        if pattern.tier == STATEMENT:
            found += [
                (m.end(), "".join(_STANDALONE_LETTER.findall(m.group("letters"))))
                for m in regex.finditer(text)
                if not ("ref" in regex.groupindex and m.group("ref"))  # the draft's answer, not this reply's
            ]
    lines = _lines(text)
    if not found and lines and (m := re.fullmatch(r"[ \t]*([A-H](?:[ \t、,/]*[A-H])*)[ \t.。]*", lines[-1])):
        found = [(0, re.sub(r"[^A-H]", "", m.group(1)))]  # a last line of letters only
    # The last statement that names options only; one naming a letter beyond them is not an answer.
    for _, named in sorted(found, reverse=True):
        if (chosen := set(named.upper())) and chosen <= allowed:
            return "".join(sorted(chosen))
    return None


def parse_answer(text: str, question) -> str | None:
    """A question's answer from free text: one letter, or for a multi-answer question the set of letters."""
    if question.multi:
        return parse_letters(text, question.letters)
    return parse_letter(text, question.letters, question.options)


def letter_set_grammar(letters: Sequence[str]) -> str:
    """GBNF for a non-empty set of the letters in order ("A", "BD", "ACE"): what a multi-answer question commits to."""
    alternatives = [" ".join([f'"{x}"', *(f'"{y}"?' for y in letters[i + 1 :])]) for i, x in enumerate(letters)]
    return "root ::= " + " | ".join(f"({a})" for a in alternatives)


def best_letter(scores: dict[str, float]) -> str | None:
    finite = {k: v for k, v in scores.items() if math.isfinite(v)}
    return max(finite, key=finite.__getitem__) if finite else None
