"""Small HF tokenizers for synthetic tasks: one token per character, or one per word.

Both are built on the `tokenizers` library's WordLevel model, so they are regular
`PreTrainedTokenizerFast` objects (`save_pretrained` / `AutoTokenizer` work), with the same
special tokens at the same ids: <pad>=0, <eos>=1, <unk>=2, <mask>=3.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

SPECIAL_TOKENS = {"pad": "<pad>", "eos": "<eos>", "unk": "<unk>", "mask": "<mask>"}
# printable ASCII: the first 60 characters keep the ids of rcd's first alphabet (no uppercase)
DEFAULT_ALPHABET = (
    "0123456789+-*/=<>()[]{},.;:|_ #?!abcdefghijklmnopqrstuvwxyz\nABCDEFGHIJKLMNOPQRSTUVWXYZ\"$%&'@\\^`~\t"
)
_SPECIALS_PATTERN = "|".join(SPECIAL_TOKENS.values())
# one piece per special token or character; `[\s\S]`, not `.`: the regex engine's `.` skips "\n",
# and the unmatched text between two matches ("\n\n" and longer runs) became one <unk> piece
CHAR_SPLIT_PATTERN = _SPECIALS_PATTERN + r"|[\s\S]"
# the pattern of tokenizers saved before that fix (same vocabulary and ids), repaired on loading
_OLD_CHAR_SPLIT_PATTERN = _SPECIALS_PATTERN + "|."


def char_tokenizer(alphabet: str = DEFAULT_ALPHABET) -> PreTrainedTokenizerFast:
    """One id per character of `alphabet` (in order, after the special tokens)."""
    backend = Tokenizer(models.WordLevel(_vocab(alphabet), unk_token=SPECIAL_TOKENS["unk"]))
    backend.pre_tokenizer = _char_split()
    backend.decoder = decoders.Fuse()
    return _wrap(backend)


def _char_split() -> pre_tokenizers.Split:
    return pre_tokenizers.Split(Regex(CHAR_SPLIT_PATTERN), behavior="isolated")


def tokenizer_from_pretrained(source: str | Path, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    """`AutoTokenizer.from_pretrained`, with a character tokenizer saved by an older rcd repaired."""
    return repair_char_tokenizer(AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code))


def repair_char_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Give a character tokenizer saved before the newline fix the fixed pre-tokenizer (in place).

    Its vocabulary and ids are unchanged, so models trained with it read the same ids; only
    runs of newlines, which it encoded as one <unk>, now encode one id per character.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    split = getattr(backend, "pre_tokenizer", None)
    old = {"Regex": _OLD_CHAR_SPLIT_PATTERN}
    if isinstance(split, pre_tokenizers.Split) and json.loads(split.__getstate__()).get("pattern") == old:
        backend.pre_tokenizer = _char_split()
    return tokenizer


def word_tokenizer(words: Iterable[str]) -> PreTrainedTokenizerFast:
    """One id per whitespace-separated word ("numbers as tokens"); decoding joins with spaces.

    A larger vocabulary lets a soft token (a probability-weighted embedding) name whole
    numbers instead of single digits. Text round-trips when its words are single-spaced.
    """
    words = list(words)
    if any(not word or word != "".join(word.split()) for word in words):
        raise ValueError("words must be non-empty and contain no whitespace")
    backend = Tokenizer(models.WordLevel(_vocab(words), unk_token=SPECIAL_TOKENS["unk"]))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    # no decoder: the tokenizers library then joins tokens with single spaces
    return _wrap(backend)


def _vocab(tokens: Iterable[str]) -> dict[str, int]:
    """Special tokens first, then each distinct token in order of first appearance."""
    ordered = dict.fromkeys([*SPECIAL_TOKENS.values(), *tokens])
    return {token: i for i, token in enumerate(ordered)}


def _wrap(backend: Tokenizer) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=SPECIAL_TOKENS["pad"],
        eos_token=SPECIAL_TOKENS["eos"],
        unk_token=SPECIAL_TOKENS["unk"],
        mask_token=SPECIAL_TOKENS["mask"],
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )


def check_representable(tokenizer: PreTrainedTokenizerBase, text: str, where: str) -> list[int]:
    """Token ids of `text`; refuses text with a character the tokenizer maps to its unknown token.

    A character tokenizer turns characters outside its alphabet into <unk> silently (the
    model then reads garbage); byte-level tokenizers have no unknown token and pass.
    """
    unk = tokenizer.unk_token_id
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=tokenizer.is_fast)
    ids = encoded["input_ids"]
    if unk is None or unk not in ids:
        return ids
    k = ids.index(unk)
    offsets = encoded.get("offset_mapping")
    if offsets is not None:
        start, end = offsets[k]
        if text[start:end] != tokenizer.unk_token:
            raise ValueError(
                f"{where}: character {text[start:end]!r} at position {start} is not in the tokenizer's "
                "vocabulary (it would read as <unk>); use a tokenizer that has it, or remove it"
            )
        return ids
    raise ValueError(f"{where}: text holds characters the tokenizer does not know (they would read as <unk>)")
