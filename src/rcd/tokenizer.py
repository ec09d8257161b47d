"""Small HF tokenizers for synthetic tasks: one token per character, or one per word.

Both are built on the `tokenizers` library's WordLevel model, so they are regular
`PreTrainedTokenizerFast` objects (`save_pretrained` / `AutoTokenizer` work), with the same
special tokens at the same ids: <pad>=0, <eos>=1, <unk>=2, <mask>=3.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = {"pad": "<pad>", "eos": "<eos>", "unk": "<unk>", "mask": "<mask>"}
DEFAULT_ALPHABET = "0123456789+-*/=<>()[]{},.;:|_ #?!abcdefghijklmnopqrstuvwxyz\n"


def char_tokenizer(alphabet: str = DEFAULT_ALPHABET) -> PreTrainedTokenizerFast:
    """One id per character of `alphabet` (in order, after the special tokens)."""
    backend = Tokenizer(models.WordLevel(_vocab(alphabet), unk_token=SPECIAL_TOKENS["unk"]))
    specials = "|".join(SPECIAL_TOKENS.values())
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(f"{specials}|."), behavior="isolated")
    backend.decoder = decoders.Fuse()
    return _wrap(backend)


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
