import random
import re
from collections import Counter

import pytest

import rcd
from rcd.data import SYNTHETIC_TASKS, TaskSpec, make_splits
from rcd.tokenizer import DEFAULT_ALPHABET

N = 150


@pytest.fixture(scope="module", params=sorted(SYNTHETIC_TASKS))
def task(request) -> TaskSpec:
    return SYNTHETIC_TASKS[request.param]


@pytest.fixture(scope="module")
def examples(task):
    return task.generate(N, seed=3)


def test_generation_is_deterministic_and_prefix_stable(task, examples):
    assert task.generate(N, seed=3) == examples
    assert task.generate(10, seed=3) == examples[:10]
    assert task.generate(N, seed=4) != examples


def test_examples_are_strings_within_bounds(task, examples):
    assert task.max_response_chars <= 64
    for example in examples:
        assert set(example) == {"prompt", "response", "answer"}
        assert len(example["prompt"]) <= task.max_prompt_chars
        assert 16 <= len(example["response"]) <= task.max_response_chars
        assert set(example["prompt"] + example["response"]) <= set(task.alphabet) <= set(DEFAULT_ALPHABET)


def test_char_tokenizer_round_trip(task, examples):
    tokenizer = rcd.char_tokenizer(task.alphabet)
    for example in examples:
        for text in (example["prompt"], example["response"]):
            ids = tokenizer(text, add_special_tokens=False).input_ids
            assert len(ids) == len(text) and tokenizer.unk_token_id not in ids
            assert tokenizer.decode(ids) == text


@pytest.mark.parametrize("name", [name for name, task in sorted(SYNTHETIC_TASKS.items()) if task.words])
def test_word_tokenizer_round_trip(name):
    tokenizer = rcd.word_tokenizer(SYNTHETIC_TASKS[name].words)
    for example in SYNTHETIC_TASKS[name].generate(N, seed=3):
        for text in (example["prompt"], example["response"]):
            ids = tokenizer(text, add_special_tokens=False).input_ids
            assert len(ids) == len(text.split()) and tokenizer.unk_token_id not in ids
            assert tokenizer.decode(ids) == text


def test_checker_accepts_gold_and_rejects_corruptions(task, examples):
    for example in examples:
        gold = example["response"]
        assert task.is_correct(example, gold)
        assert task.is_correct(example["prompt"], f"  {gold}\n")
        wrong_last_digit = gold[:-1] + str((int(gold[-1]) + 1) % 10)
        for corrupted in (wrong_last_digit, "", "abc", gold[: len(gold) // 2], gold + gold):
            assert not task.is_correct(example, corrupted), corrupted


def test_checker_refuses_other_prompts(task):
    with pytest.raises(ValueError, match="prompt"):
        task.is_correct("what?", "42")


def _evaluated_steps(response: str, separator: str) -> list[tuple[str, int]]:
    """(left-hand side, value) of each "expression=value" step, checked by Python's eval."""
    steps = []
    for step in response.split(separator):
        left, value = step.split("=")
        assert eval(left) == int(value), step
        steps.append((left, int(value)))
    return steps


def test_mul_independently():
    for example in SYNTHETIC_TASKS["mul"].generate(N, seed=0):
        product = eval(example["prompt"].removesuffix("="))
        steps = _evaluated_steps(example["response"], ";")
        assert [value for _, value in steps][-1] == product == int(example["answer"])
        assert steps[-1][0] == f"{steps[0][1]}+{steps[1][1]}"


def test_chain_sum_independently():
    for example in SYNTHETIC_TASKS["chain_sum"].generate(N, seed=0):
        terms = example["prompt"].removesuffix("=").split("+")
        steps = _evaluated_steps(example["response"], ";")
        assert steps[-1][1] == sum(map(int, terms)) == int(example["answer"])
        running = [terms[0]] + [str(value) for _, value in steps[:-1]]
        assert [left for left, _ in steps] == [f"{a}+{b}" for a, b in zip(running, terms[1:], strict=True)]


def test_sort_independently():
    for example in SYNTHETIC_TASKS["sort"].generate(N, seed=0):
        numbers = list(map(int, example["prompt"].split()[1:-1]))
        assert len(set(numbers)) == len(numbers)
        assert list(map(int, example["response"].split())) == sorted(numbers)
        assert example["answer"] == example["response"]
    prompt = "sort 3 1 2 :"
    assert SYNTHETIC_TASKS["sort"].is_correct(prompt, "1 2 3")
    for wrong in ("1 3 2", "1 2 2 3", "1 2", "1  2 3"):
        assert not SYNTHETIC_TASKS["sort"].is_correct(prompt, wrong)


def _grid(text: str) -> list[list[int]]:
    return [[0 if ch == "." else int(ch) for ch in row] for row in text.removesuffix(":").split("|")]


def _is_valid_sudoku(rows: list[list[int]]) -> bool:
    groups = rows + [list(col) for col in zip(*rows, strict=True)]
    corners = [(r, c) for r in (0, 2, 4) for c in (0, 3)]
    groups += [[rows[r + i][c + j] for i in range(2) for j in range(3)] for r, c in corners]
    return all(sorted(group) == [1, 2, 3, 4, 5, 6] for group in groups)


def _count_completions(rows: list[list[int]], limit: int = 2) -> int:
    """Plain backtracking, cell by cell in reading order (no candidate ordering)."""
    cells = [(r, c) for r in range(6) for c in range(6) if not rows[r][c]]

    def fits(r: int, c: int, digit: int) -> bool:
        top, left = r // 2 * 2, c // 3 * 3
        box = [rows[top + i][left + j] for i in range(2) for j in range(3)]
        return digit not in rows[r] and digit not in [row[c] for row in rows] and digit not in box

    def count(k: int) -> int:
        if k == len(cells):
            return 1
        r, c = cells[k]
        total = 0
        for digit in range(1, 7):
            if total < limit and fits(r, c, digit):
                rows[r][c] = digit
                total += count(k + 1)
                rows[r][c] = 0
        return total

    return count(0)


@pytest.mark.parametrize(("name", "fewest", "most"), [("sudoku6", 16, 22), ("sudoku6-easy", 12, 16)])
def test_sudoku_independently(name: str, fewest: int, most: int):
    blanks = []
    for example in SYNTHETIC_TASKS[name].generate(40, seed=0):
        puzzle, solution = _grid(example["prompt"]), _grid(example["response"])
        assert _is_valid_sudoku(solution)
        givens_kept = zip(example["prompt"].removesuffix(":"), example["response"], strict=True)
        assert all(given in (".", digit) for given, digit in givens_kept)
        blanks.append(sum(row.count(0) for row in puzzle))
        assert _count_completions(puzzle) == 1
    assert fewest <= min(blanks) and max(blanks) <= most and len(set(blanks)) > 1


@pytest.mark.parametrize("name", ["sudoku6", "sudoku6-easy"])
def test_sudoku_checker_needs_givens_and_constraints(name: str):
    task = SYNTHETIC_TASKS[name]
    example = task.generate(1, seed=5)[0]
    assert task.is_correct(example, example["response"])
    swap_digits = str.maketrans("12", "21")  # still a valid grid, but not these givens
    relabelled = example["response"].translate(swap_digits)
    assert _is_valid_sudoku(_grid(relabelled)) and not task.is_correct(example, relabelled)
    row = example["response"][:6]
    swapped_in_row = row[1] + row[0] + example["response"][2:]  # rows fine, columns broken
    assert not task.is_correct(example, swapped_in_row)


def test_countdown_independently():
    for example in SYNTHETIC_TASKS["countdown"].generate(N, seed=0):
        target, numbers = re.fullmatch(r"(\d+) from (.*) :", example["prompt"]).groups()
        pool = Counter(numbers.split())
        assert target not in pool
        for step in example["response"].split(" , "):
            left, op, right, equals, result = step.split()
            assert equals == "=" and eval(left + op + right) == int(result) >= 1
            pool -= Counter([left, right])
            pool[result] += 1
        assert pool == Counter([target])  # all four numbers used, only the target left


@pytest.mark.parametrize(
    ("completion", "correct"),
    [
        ("4 * 3 = 12 , 12 * 2 = 24", True),  # 1 unused: allowed
        ("2 * 3 = 6 , 6 * 4 = 24 , 24 * 1 = 24", True),
        ("4 + 2 = 6 , 6 * 4 = 24", False),  # 4 used twice
        ("12 * 2 = 24", False),  # 12 not available
        ("3 - 4 = -1 , 2 * 3 = 6", False),
        ("4 / 3 = 1 , 1 * 2 = 2", False),
        ("4 * 3 = 12 , 12 * 2 = 25", False),
        ("4 * 3 = 12 , 12 + 2 = 14", False),  # valid steps, wrong target
        ("4 * 3 = 12 ,", False),
    ],
)
def test_countdown_accepts_any_valid_derivation(completion, correct):
    assert SYNTHETIC_TASKS["countdown"].is_correct("24 from 2 3 4 1 :", completion) is correct


def test_arithmetic_grades_the_final_result_of_well_formed_steps():
    assert SYNTHETIC_TASKS["mul"].is_correct("47*36=", "47*6=282;47*30=1410;282+1410=1692")
    assert SYNTHETIC_TASKS["mul"].is_correct("47*36=", "47*6=281;47*30=1410;282+1410=1692")
    for wrong in ("47*6=282;47*30=1410;282+1410=1693", "1692", "47*6=282;=1692", "47*36=1692;"):
        assert not SYNTHETIC_TASKS["mul"].is_correct("47*36=", wrong)
    assert SYNTHETIC_TASKS["chain_sum"].is_correct("10+20+30+40=", "10+20=30;30+30=60;60+40=100")
    assert not SYNTHETIC_TASKS["chain_sum"].is_correct("10+20+30+40=", "10+20=30;30+30=60;60+40=")


def test_splits_are_disjoint_and_deterministic(task):
    train, test = make_splits(task.name, 60, 20, seed=1)
    assert (len(train), len(test)) == (60, 20)
    for key in {"prompt", task.split_key}:
        train_keys = [example[key] for example in train]
        test_keys = [example[key] for example in test]
        assert len(set(train_keys)) == 60 and len(set(test_keys)) == 20
        assert not set(train_keys) & set(test_keys)
    assert make_splits(task, 60, 20, seed=1) == (train, test)
    assert make_splits(task, 30, 20, seed=1)[1] == test
    assert make_splits(task, 60, 20, seed=2)[1] != test


def test_splits_refuse_a_space_too_small():
    def coin(rng: random.Random) -> dict[str, str]:
        side = rng.choice("ht")
        return {"prompt": side, "response": side, "answer": side}

    tiny = TaskSpec("coin", "two examples", coin, lambda p, c: p == c, "ht", 1, 1)
    assert len(make_splits(tiny, 1, 1, seed=0)[0]) == 1
    with pytest.raises(ValueError, match="too small"):
        make_splits(tiny, 2, 1, seed=0)


def test_unknown_task():
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        make_splits("nope", 1, 1, seed=0)


def test_small_answer_spaces_are_counted():
    assert SYNTHETIC_TASKS["chain_sum"].count_answers() == 495 - 40 + 1
    assert 0 < SYNTHETIC_TASKS["mul"].count_answers() < 900 * 90
