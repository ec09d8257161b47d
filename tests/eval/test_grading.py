"""Answer extraction and equivalence over tricky formats, in both directions."""

import pytest

from rcd.eval.grading import extract_answer, grade, is_equivalent, last_boxed

# (style, completion, gold, expected correct)
TABLE = [
    # GSM8K: final line, "The answer is", thousands separators, dollars, decimals, fractions
    ("gsm8k", "She sells 9 eggs.\nShe makes 9 * 2 = 18 dollars.\n#### 18", "18", True),
    ("gsm8k", "So she makes $18.", "18", True),
    ("gsm8k", "It costs 5 dollars each. The answer is 70,000.", "70000", True),
    ("gsm8k", "The answer is $1,000.00", "1000", True),
    ("gsm8k", "#### 1/2", "0.5", True),
    ("gsm8k", "The answer is -4", "-4", True),
    ("gsm8k", "Thus \\boxed{42} apples.", "42", True),
    ("gsm8k", "#### 7000", "70000", False),
    ("gsm8k", "#### 3.5", "3", False),
    ("gsm8k", "The answer is -4", "4", False),
    ("gsm8k", "#### 18\nQuestion: next one has 20", "20", False),
    ("gsm8k", "#### 5\nNo, recount: 9 * 2 = 18.\n#### 18", "18", True),  # the last #### line counts
    ("gsm8k", "I do not know.", "18", False),
    # boxed (MATH500, AIME): LaTeX forms, units, nesting, last box wins
    ("boxed", "so \\boxed{0.5}", "\\frac{1}{2}", True),
    ("boxed", "\\boxed{\\dfrac{1}{2}}", "\\frac{1}{2}", True),
    ("boxed", "\\boxed{10\\text{ cm}}", "10", True),
    ("boxed", "\\boxed{1,000,000}", "1000000", True),
    ("boxed", "hence \\boxed{\\frac{\\sqrt{3}}{2}}.", "\\frac{\\sqrt{3}}{2}", True),
    ("boxed", "\\boxed{(1, 2)}", "(1,2)", True),
    ("boxed", "\\boxed{1+x^2}", "x^2+1", True),
    ("boxed", "\\boxed{90}", "90^\\circ", True),
    ("boxed", "first \\boxed{1}, no wait: \\boxed{2}", "2", True),
    ("boxed", "\\boxed{033}", "33", True),
    ("boxed", "\\boxed{4}", "3", False),
    ("boxed", "\\boxed{\\frac{1}{3}}", "\\frac{1}{2}", False),
    ("boxed", "\\boxed{3}", "-3", False),
    ("boxed", "\\boxed{(1, 3)}", "(1,2)", False),
    ("boxed", "the answer is 5", "5", False),  # no box: nothing extracted
    # Minerva: "Final Answer: The final answer is $X$. I hope it is correct."
    (
        "minerva",
        "So.\nFinal Answer: The final answer is $\\frac{2}{3}$. I hope it is correct.",
        "\\frac{2}{3}",
        True,
    ),
    ("minerva", "Final Answer: The final answer is $0.75$. I hope it is correct.", "\\frac{3}{4}", True),
    ("minerva", "Final Answer: The final answer is $8$. I hope it is correct.", "9", False),
]


@pytest.mark.parametrize("style,completion,gold,expected", TABLE)
def test_grading_table(style, completion, gold, expected):
    assert grade(completion, gold, style)[1] is expected


def test_extraction():
    assert extract_answer("x\n#### 1,234", "gsm8k") == "1,234"
    assert extract_answer("a 3 and b 4 so 7", "gsm8k") == "7"
    assert (
        extract_answer("Final Answer: The final answer is $x+1$. I hope it is correct.", "minerva") == "x+1"
    )
    assert extract_answer("nothing", "boxed") is None
    assert last_boxed("\\boxed{\\frac{a}{b}} and \\fbox{c}") == "c"
    assert last_boxed("\\boxed{unclosed") is None
    with pytest.raises(ValueError, match="style"):
        extract_answer("x", "latex")


def test_no_answer_is_never_correct():
    assert not is_equivalent("0", None) and not is_equivalent("0", "  ")
