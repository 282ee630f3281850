import math

import pytest

from agents.answer import best_letter, parse_letter

LETTERS = list("ABCDE")
OPTIONS = {"A": "急性心包炎", "B": "急性下壁心肌梗死", "C": "主动脉夹层", "D": "肺栓塞", "E": "气胸"}
THINK = "<think>\n患者突发胸痛……先考虑心肌梗死，答案可能是B。但是疼痛向背部放射、两上肢血压不等，" + "再想想。" * 50

# Realistic outputs, as the chain's nodes see them (the options of the question above are passed along).
CASES = [
    # -- the phrasings issue 12 lists --
    ("zh-choose-terse", "分析：下壁导联ST段抬高，选B", "B"),
    ("zh-therefore-choose", "分析：……两上肢血压不等，胸痛向背部放射，故选C。", "C"),
    ("zh-should-choose-fullwidth-parens", "分析：……综合考虑，应选择（D）", "D"),
    ("zh-answer-should-be", "分析：……所以答案应该是C", "C"),
    ("zh-correct-option-is", "分析：……\n正确选项是D", "D"),
    ("zh-markdown-bold-keyword", "### 分析\n……\n\n**答案**：B", "B"),
    ("en-markdown-bold-letter", "Analysis: inferior ST elevation with hypotension.\nAnswer: **C**", "C"),
    ("latex-boxed", "Reasoning: ... so it is a dissection.\n\n$$\\boxed{D}$$", "D"),
    ("zh-fullwidth-letter", "分析：……\n答案：Ｃ", "C"),
    ("en-correct-answer-is-option", "Analysis: ... The correct answer is option D.", "D"),
    ("en-article-a-is-not-a-letter", "The answer is a combination of aspirin and clopidogrel loading.", None),
    ("zh-two-letters-in-final-statement", "分析：C和D都有可能。\n答案：C、D", None),
    ("zh-comma-then-an-option-verdict", "分析：……\n答案：B，C项不符合下壁导联改变。", "B"),
    ("zh-comma-between-two-letters", "分析：……\n答案：C，D。", None),
    ("zh-mention-then-final-choice", "分析：答案A的说法不全面，心包炎不会出现下壁导联ST段弓背抬高。本题选D", "D"),
    # -- terse outputs of small models --
    ("bare-letter", "B", "B"),
    ("bare-letter-period", "分析：下壁心梗。\nB.", "B"),
    ("bare-letter-fullwidth-parens", "（C）", "C"),
    ("bare-letter-with-its-option-text", "C. 主动脉夹层", "C"),
    ("bare-letter-with-another-options-text", "D. 急性心包炎", None),
    ("zh-lowercase-letter", "分析：……\n答案：b", "B"),
    ("zh-truncated-before-the-letter", "分析：患者突发胸痛，心电图示下壁导联ST段抬高，\n答案：", None),
    ("zh-b-ultrasound-is-not-b", "分析：胸痛伴血压下降，应首选B超检查心包积液。", None),
    ("zh-truncated-option-by-option", "分析：\nA. 急性心包炎：胸痛与体位有关，不符合。\nB. 急性下壁心肌梗死：", None),
    (
        "zh-options-echoed-then-cut-off",
        "分析：\n选项：\nA. 急性心包炎\nB. 急性下壁心肌梗死\nC. 主动脉夹层\nD. 肺栓塞\nE. 气胸",
        None,
    ),
    ("zh-repeated-answer", "分析：下壁心梗。\n答案：B\n答案：B\n答案：B", "B"),
    ("zh-verdict-only", "分析：A项错误，C项错误，B项正确。", "B"),
    ("zh-option-text-instead-of-letter", "分析：下壁导联ST段抬高。\n答案：急性下壁心肌梗死", "B"),
    ("zh-diagnosis-text", "分析：……\n最可能的诊断为：主动脉夹层", "C"),
    ("zh-diagnosis-not-an-option", "我认为是急性心肌梗死", None),
    # -- verbose outputs of big models --
    (
        "zh-qwen-0.5b-final-answer",
        (
            "分析：患者男，62岁。突发胸骨后压榨性疼痛3小时……"
            "针对低血压最恰当的初始处理是C. 快速静脉补液扩容。\n\n最终答案：C"
        ),
        "C",
    ),
    (
        "zh-options-echoed-then-answer",
        (
            "分析：题干中的关键临床信息是……\n\n"
            "选项：\nA. 运动平板试验\nB. 24小时内行冠状动脉造影\nC. 立即静脉溶栓\n\n答案：B"
        ),
        "B",
    ),
    (
        "zh-markdown-conclusion",
        "### 分析\n1. **下壁导联ST段抬高**：提示右冠状动脉病变。\n2. **排除其他**：A项心包炎多为广泛导联抬高。\n\n"
        "### 结论\n综上所述，最可能的诊断是**急性下壁心肌梗死**，故选 **B**。",
        "B",
    ),
    ("zh-answer-then-explanation", "**正确答案：C（主动脉夹层）**\n\n解析：\n1. 选项A错误……\n2. 选项B错误……", "C"),
    ("zh-final-answer-then-mention", "本题答案：B（急性下壁心肌梗死）。注意：答案A的说法不全面。", "B"),
    ("zh-choose-option", "综上，选择D项。", "D"),
    ("zh-verdict-most-fitting", "A项错误，D项错误，综合分析，因此B选项最符合。", "B"),
    ("zh-wrong-right-then-answer", "A错误，B正确，答案B", "B"),
    ("zh-either-or", "本题答案为A或B，需结合心肌酶进一步判断。", None),
    ("zh-fullwidth-colon-and-letter", "正确答案是：Ａ", "A"),
    # -- critiques: the critic's own proposal, not the draft's letter it discusses --
    ("critic-draft-wrong-then-proposal", "审核意见：草稿答案B有误，遗漏了两上肢血压不等。\n建议答案：C", "C"),
    ("critic-proposal-then-draft-mention", "审核意见：建议答案：C\n理由：草稿答案B忽略了疼痛向背部放射。", "C"),
    ("critic-draft-not-right-should-be", "审核意见：草稿答案B不对，应为C。", "C"),
    ("critic-keeps-the-draft", "审核意见：草稿推理正确，维持原答案B。", "B"),
    ("draft-first-answer-then-revised", "初步答案：A\n……\n建议答案：D", "D"),
    # -- English --
    ("en-parenthesised", "Answer: (D)", "D"),
    ("en-lowercase-after-colon", "The answer is: c", "C"),
    ("en-answer-is-because", "The answer is B because the ECG shows inferior ST elevation.", "B"),
    ("en-option-verdict", "Option A is wrong: pericarditis gives diffuse elevation. Option C is correct.", "C"),
    ("en-choose-lowercase-option", "I would choose option b.", "B"),
    ("en-best-choice", "Therefore, the best choice is E.", "E"),
    ("en-corresponds-to", "The most likely diagnosis is an inferior MI, which corresponds to option B.", "B"),
    ("en-boxed-text", "Final Answer: The final answer is $\\boxed{\\text{C}}$", "C"),
    ("en-either-or", "The answer is A or B, depending on the troponin.", None),
    ("en-letter-starting-a-sentence", "A is possible, but more tests are needed.", None),
    ("en-d-dimer-is-not-d", "The answer is D-dimer testing first.", None),
    ("en-draft-mention-then-answer", "The draft answer (A) is wrong: the pain radiates to the back.\nAnswer: C", "C"),
    # -- reasoning models: a long think section, then the final line --
    ("think-then-bold-answer", THINK + "\n</think>\n\n**答案：C**", "C"),
    ("think-then-bare-letter", THINK + "\n</think>\n\nC", "C"),
    ("think-then-english", "<think>\nThe answer is B? Wait, unequal arm pressures...\n</think>\nFinal answer: C.", "C"),
    # An unfinished thought is not an answer, nor is a thought that closed with nothing after it.
    ("think-unterminated", THINK + "所以答案应该是C", None),
    ("think-cut-mid-thought", "<think>\n首先分析……答案应该是C。不过再想想，", None),
    ("think-closed-no-answer", THINK + "所以答案应该是C。\n</think>\n\n", None),
    ("think-opened-by-template", "首先分析……答案应该是B。</think>\n\n答案：C", "C"),
    ("thinking-tag", "<thinking>答案是A吗？</thinking>\n答案：D", "D"),
    # -- phrasings found in real outputs (tests/data/extraction_corpus.jsonl) --
    ("zh-choose-then-echoed-option-list", "可以选择：A. 急性心包炎B. 急性下壁心肌梗死C. 主动脉夹层D. 肺", None),
    ("zh-answer-then-echoed-option-list", "答案：A. 急性心包炎\nB. 急性下壁心肌梗死\nC. 主动脉夹层\nD. 肺栓塞", None),
    ("zh-answer-with-its-text-then-explanation", "答案：B. 急性下壁心肌梗死\n\n解析：C项错误。", "B"),
    ("zh-letters-joined-by-semicolons", "综合考虑，选择A；C；D（10%）。", None),
    ("critic-placeholder-after-choice-by-text", "审核意见：……因此，本题应选择急性下壁心肌梗死。\n\n建议答案：X", "B"),
    (
        "en-each-option-answers-another-letter",
        "C. 主动脉夹层: The answer is D. …\nD. 肺栓塞: The answer is A. …\nE. 气胸: The answer is B. …",
        None,
    ),
    ("zh-most-fitting-management-is-option", "……综上所述，最合适的处理是B选项。", "B"),
    ("zh-first-choice-management-then-placeholder", "审核意见：……首选的处理是C。\n\n建议答案：X", "C"),
    ("zh-conclusion-is-option", "B. ……不能直接明确诊断。\n\n综上所述，最符合本例的诊断是B选项。", "B"),
    ("zh-first-choice-names-option-text", "分析：为明确诊断，首选的检查是主动脉夹层。\n综上所述，这是最佳选择。", "C"),
    ("zh-first-choice-names-no-option", "分析：为明确诊断，首选的检查是心电图。\n综上所述，这是最佳选择。", None),
    ("zh-should-be-then-option-on-next-line", "分析：……综合分析，本例应是：\nC. 主动脉夹层", "C"),
    ("zh-management-text-then-letter-in-parens", "综上所述，首选的治疗是主动脉腔内修复（C）。", "C"),
    ("zh-diagnosis-text-then-a-parenthesis-without-letter", "综上所述，最可能的诊断是肺炎（而非B）。", None),
    ("zh-conclusion-is-not-option", "综上所述，最可能的并不是B选项。", None),
    (
        "en-option-and-its-text-most-appropriate",
        "Based on the analysis, option B (急性下壁心肌梗死) is most appropriate.",
        "B",
    ),
    ("en-most-likely-diagnosis-on-next-line", "Based on this analysis, the most likely diagnosis is:\nE. 气胸", "E"),
    (
        "en-most-appropriate-for-the-patient",
        "The most appropriate treatment for the patient is C, which treats it.",
        "C",
    ),
    ("en-diagnosis-names-option-in-parens", "Given this, the most likely diagnosis is **夹层** (option C).", "C"),
    ("en-only-one-that-meets", "Conclusion: Option C (主动脉夹层) is the only one that meets all criteria.", "C"),
    (
        "en-first-line-treatment-on-next-line",
        "The most appropriate first-line treatment would be:\nC. 主动脉夹层.",
        "C",
    ),
    (
        "en-option-appears-to-be-best",
        "Option D (肺栓塞 (CTPA first)) appears to be the most appropriate choice. It",
        "D",
    ),
    (
        "en-most-likely-diagnosis-is-not",
        "The most likely diagnosis is not B (急性下壁心肌梗死): troponin is normal.",
        None,
    ),
    ("en-most-likely-diagnosis-is-a-word", "The most likely diagnosis is a dissection of the aorta.", None),
    ("list-item-cut-at-the-budget", "分析：……\nC. 主动脉夹层；\nD. 肺栓塞（不符合）\n其余不考虑。\nD.", None),
    # -- long garbage --
    ("zh-garbage", "答案：" + "很难说" * 200, None),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_parse_letter(text, expected):
    assert parse_letter(text, LETTERS, OPTIONS) == expected


def test_the_table_is_large_and_named_uniquely():
    assert len(CASES) >= 40 and len({c[0] for c in CASES}) == len(CASES)


def test_letters_come_from_the_question():
    assert parse_letter("答案：E", list("ABCD")) is None
    assert parse_letter("答案：G", list("ABCDEFGH")) == "G"
    assert parse_letter("故选H。", list("ABCDEFGH")) == "H"
    assert parse_letter("答案：F", LETTERS) is None


def test_without_options_there_is_no_option_text_fallback():
    assert parse_letter("答案：急性下壁心肌梗死", LETTERS) is None
    assert parse_letter("答案：急性下壁心肌梗死", LETTERS, OPTIONS) == "B"
    assert parse_letter("答案：C", LETTERS) == "C"


def test_best_letter_ignores_non_finite_scores():
    assert best_letter({"A": -1.0, "B": -0.5, "C": -math.inf}) == "B"
    assert best_letter({"A": math.nan, "B": -math.inf}) is None
