"""A row's generated ids as the text a client gets: cut at EOS, `max_tokens` and stop strings.

`finish` is the one rule for both answers: the non-streamed text is `finish(all ids)`; a
stream sends, after each fully committed block, the part of `finish(committed prefix)` that
can no longer change, so its chunks join to exactly the same text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

REPLACEMENT = "\ufffd"  # what a decoder shows for an incomplete multi-byte character


@dataclass(frozen=True)
class Finished:
    text: str
    tokens: int  # completion tokens: those up to the cut
    reason: str | None  # "stop" (EOS or a stop string), "length" (max_tokens), None: not final yet


@dataclass(frozen=True)
class Cutter:
    tokenizer: object
    eos_ids: frozenset[int]
    stop: tuple[str, ...]
    max_tokens: int

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def finish(self, ids: Sequence[int], complete: bool = True) -> Finished:
        """The text of `ids` (a row's first generated ids, all of them when `complete`); not
        complete: only the text that later ids cannot change, reason None unless already cut."""
        ids = list(ids[: self.max_tokens])
        eos = next((k for k, t in enumerate(ids) if t in self.eos_ids), None)
        if eos is not None:
            ids, complete = ids[:eos], True
        text = self.decode(ids)
        cut = min((i for i in (text.find(s) for s in self.stop) if i >= 0), default=None)
        if cut is not None:
            return Finished(text[:cut], self._tokens_to_stop(ids), "stop")
        if eos is not None:
            return Finished(text, len(ids), "stop")
        if complete or len(ids) == self.max_tokens:
            return Finished(text, len(ids), "length")
        return Finished(self._stable(text), len(ids), None)

    def _stable(self, text: str) -> str:
        """Text minus what the next ids could still change: a trailing incomplete character and
        the longest tail that begins a stop string."""
        text = text.rstrip(REPLACEMENT)
        hold = max((k for s in self.stop for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
        return text[: len(text) - hold]

    def _tokens_to_stop(self, ids: list[int]) -> int:
        """The fewest leading ids whose text holds a stop string (binary search: text grows with ids)."""
        lo, hi = 1, len(ids)
        while lo < hi:
            mid = (lo + hi) // 2
            if any(s in self.decode(ids[:mid]) for s in self.stop):
                hi = mid
            else:
                lo = mid + 1
        return hi
