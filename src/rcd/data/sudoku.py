"""6x6 Sudoku (2x3 boxes) with a unique solution.

6x6 rather than 4x4: a 4x4 board has only 288 solution grids, which a model memorises;
6x6 has 28,200,960. Train and test never share a solution grid (split by answer).
Two levels differ only in the number of blanks: `sudoku6` (16-22, the study's task) and
`sudoku6-easy` (12-16, the demo's: a model trained for minutes on 2 CPU cores solves most of them;
with 10-14 most of the answer is copied from the prompt and the same model learned the rules less well,
experiments/findings.md).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

from .spec import Example, TaskSpec

SIZE, BOX_ROWS, BOX_COLS = 6, 2, 3
HOLES = range(16, 23)
EASY_HOLES = range(12, 17)
BLANK = "."
ALL_DIGITS = sum(1 << d for d in range(1, SIZE + 1))

Grid = list[int]
"""Row-major cells, 0 for a blank."""


def _unit_of(cell: int) -> tuple[int, int, int]:
    row, col = divmod(cell, SIZE)
    return row, col, row // BOX_ROWS * (SIZE // BOX_COLS) + col // BOX_COLS


CELL_UNITS = [_unit_of(cell) for cell in range(SIZE * SIZE)]
GROUPS = [
    [cell for cell, units in enumerate(CELL_UNITS) if units[kind] == unit]
    for kind in range(3)
    for unit in range(SIZE)
]
"""The 18 groups (rows, columns, boxes) that must each hold every digit once."""


def solutions(grid: Grid, limit: int, rng: random.Random | None = None) -> list[Grid]:
    """Up to `limit` completions of grid (depth-first, fewest candidates first).

    With an rng the digits are tried in random order, so an empty grid yields a random
    solution grid; limit=2 tells a unique puzzle from an ambiguous one.
    """
    rows, cols, boxes = ([0] * SIZE for _ in range(3))  # digit bitmasks per unit
    for cell, digit in enumerate(grid):
        if digit:
            row, col, box = CELL_UNITS[cell]
            bit = 1 << digit
            if (rows[row] | cols[col] | boxes[box]) & bit:
                return []
            rows[row] |= bit
            cols[col] |= bit
            boxes[box] |= bit
    work, found = list(grid), []

    def search() -> None:
        # the first blank with the fewest candidates; a count of 0 or 1 cannot be beaten, so
        # the scan stops there: the same cell as a full scan, the same draws, the same puzzles
        best, fewest, options = -1, SIZE + 1, 0
        for cell in range(SIZE * SIZE):
            if not work[cell]:
                row, col, box = CELL_UNITS[cell]
                candidates = ALL_DIGITS & ~(rows[row] | cols[col] | boxes[box])
                count = candidates.bit_count()
                if count < fewest:
                    best, fewest, options = cell, count, candidates
                    if count <= 1:
                        break
        if best < 0:
            found.append(list(work))
            return
        digits = [d for d in range(1, SIZE + 1) if options >> d & 1]
        if rng is not None:
            rng.shuffle(digits)
        row, col, box = CELL_UNITS[best]
        for digit in digits:
            bit = 1 << digit
            work[best] = digit
            rows[row] ^= bit
            cols[col] ^= bit
            boxes[box] ^= bit
            search()
            rows[row] ^= bit
            cols[col] ^= bit
            boxes[box] ^= bit
            work[best] = 0
            if len(found) >= limit:
                return

    search()
    return found


def make_puzzle(rng: random.Random, blanks: range = HOLES) -> tuple[Grid, Grid]:
    """(puzzle, solution): cells of a random grid blanked in random order, each only if
    the solution stays unique, until a count drawn from `blanks` is reached."""
    solution = solutions([0] * SIZE * SIZE, 1, rng)[0]
    puzzle, holes, target = list(solution), 0, rng.choice(blanks)
    for cell in rng.sample(range(SIZE * SIZE), SIZE * SIZE):
        if holes == target:
            break
        puzzle[cell] = 0
        if len(solutions(puzzle, 2)) == 1:
            holes += 1
        else:
            puzzle[cell] = solution[cell]
    return puzzle, solution


def format_grid(grid: Grid) -> str:
    text = "".join(str(d) if d else BLANK for d in grid)
    return "|".join(text[i : i + SIZE] for i in range(0, SIZE * SIZE, SIZE))


def parse_grid(text: str, blanks: bool) -> Grid | None:
    """The grid written by format_grid, or None when text is not one."""
    cell = f"[1-{SIZE}{re.escape(BLANK) if blanks else ''}]"
    if not re.fullmatch(rf"({cell}{{{SIZE}}}\|){{{SIZE - 1}}}{cell}{{{SIZE}}}", text):
        return None
    return [0 if ch == BLANK else int(ch) for ch in text.replace("|", "")]


def _sampler(blanks: range) -> Callable[[random.Random], Example]:
    def sample(rng: random.Random) -> Example:
        puzzle, solution = make_puzzle(rng, blanks)
        answer = format_grid(solution)
        return {"prompt": format_grid(puzzle) + ":", "response": answer, "answer": answer}

    return sample


def _check(prompt: str, completion: str) -> bool:
    """A valid filled grid that keeps every given (validity, not comparison with a key)."""
    givens = parse_grid(prompt.removesuffix(":"), blanks=True)
    if givens is None or not prompt.endswith(":"):
        raise ValueError(f"not a sudoku prompt: {prompt!r}")
    grid = parse_grid(completion, blanks=False)
    return (
        grid is not None
        and all(g in (0, d) for g, d in zip(givens, grid, strict=True))
        and all(len({grid[cell] for cell in group}) == SIZE for group in GROUPS)
    )


def sudoku_task(name: str, blanks: range) -> TaskSpec:
    """The 6x6 task with a number of blanks drawn from `blanks`; the checker is the same."""
    return TaskSpec(
        name=name,
        description=f"6x6 Sudoku, {blanks.start}-{blanks.stop - 1} blanks, unique solution; cells of a "
        "row, column or box exclude each other, so cells filled in one step can collide on the same digit",
        sample=_sampler(blanks),
        check=_check,
        alphabet=f"123456{BLANK}|:",
        max_prompt_chars=SIZE * SIZE + SIZE,
        max_response_chars=SIZE * SIZE + SIZE - 1,
        split_key="answer",
    )


SUDOKU = sudoku_task("sudoku6", HOLES)
SUDOKU_EASY = sudoku_task("sudoku6-easy", EASY_HOLES)
