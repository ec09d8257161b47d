"""Few-shot exemplars written for rcd (not taken from any benchmark or repository).

GSM8K exemplars follow the GSM8K solution style (short steps, final line `#### N`), the
format the 5-shot chain-of-thought evaluation expects the model to continue. Minerva
exemplars follow the Minerva convention of ending every solution with
"Final Answer: The final answer is $X$. I hope it is correct."
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Exemplar:
    question: str
    solution: str


GSM8K = (
    Exemplar(
        "A baker makes 24 muffins in the morning and 18 in the afternoon. She sells 35 of them. "
        "How many muffins are left?",
        "She makes 24 + 18 = 42 muffins.\nAfter selling 35, she has 42 - 35 = 7 muffins left.\n#### 7",
    ),
    Exemplar(
        "Tom reads 15 pages a day for 6 days and then 20 pages on the seventh day. "
        "How many pages does he read that week?",
        "In the first 6 days he reads 15 * 6 = 90 pages.\nWith the seventh day he reads 90 + 20 = 110 pages.\n#### 110",
    ),
    Exemplar(
        "A jacket costs $80 and is on sale for 25% off. How much does the jacket cost on sale?",
        "The discount is 80 * 25 / 100 = $20.\nThe sale price is 80 - 20 = $60.\n#### 60",
    ),
    Exemplar(
        "Maria has 3 boxes with 12 pencils each. She gives 9 pencils to her brother and splits the rest "
        "equally between herself and 2 friends. How many pencils does each of them get?",
        "She has 3 * 12 = 36 pencils.\nAfter giving 9 away, 36 - 9 = 27 pencils remain.\n"
        "Shared by 3 people, each gets 27 / 3 = 9 pencils.\n#### 9",
    ),
    Exemplar(
        "A train travels at 60 miles per hour for 2.5 hours and then at 40 miles per hour for 1 hour. "
        "How far does it travel in total?",
        "At 60 miles per hour for 2.5 hours it covers 60 * 2.5 = 150 miles.\n"
        "At 40 miles per hour for 1 hour it covers 40 miles.\nIn total it travels 150 + 40 = 190 miles.\n#### 190",
    ),
)

MINERVA = (
    Exemplar(
        "Find the value of $x$ such that $3x - 7 = 11$.",
        "Adding 7 to both sides gives $3x = 18$, so $x = 6$.\n"
        "Final Answer: The final answer is $6$. I hope it is correct.",
    ),
    Exemplar(
        "What is the sum of the roots of $x^2 - 5x + 6 = 0$?",
        "The polynomial factors as $(x - 2)(x - 3)$, so the roots are $2$ and $3$ and their sum is $5$.\n"
        "Final Answer: The final answer is $5$. I hope it is correct.",
    ),
    Exemplar(
        "Simplify $\\frac{12}{18}$.",
        "The greatest common divisor of $12$ and $18$ is $6$, so $\\frac{12}{18} = \\frac{2}{3}$.\n"
        "Final Answer: The final answer is $\\frac{2}{3}$. I hope it is correct.",
    ),
    Exemplar(
        "How many positive divisors does $36$ have?",
        "Since $36 = 2^2 \\cdot 3^2$, it has $(2 + 1)(2 + 1) = 9$ positive divisors.\n"
        "Final Answer: The final answer is $9$. I hope it is correct.",
    ),
)
