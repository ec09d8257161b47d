"""A character-level HF tokenizer for synthetic tasks (one token per character).

Built on the `tokenizers` library's WordLevel model with a one-character pre-tokenizer, so
it is a regular `PreTrainedTokenizerFast`: `save_pretrained` / `AutoTokenizer` work.
"""

from __future__ import annotations

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = {"pad": "<pad>", "eos": "<eos>", "unk": "<unk>", "mask": "<mask>"}
DEFAULT_ALPHABET = "0123456789+-*/=<>()[]{},.;:|_ #?!abcdefghijklmnopqrstuvwxyz\n"


def char_tokenizer(alphabet: str = DEFAULT_ALPHABET) -> PreTrainedTokenizerFast:
    """Tokenizer with ids: <pad>=0, <eos>=1, <unk>=2, <mask>=3, then one id per character."""
    chars = list(dict.fromkeys(alphabet))
    vocab = {tok: i for i, tok in enumerate([*SPECIAL_TOKENS.values(), *chars])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token=SPECIAL_TOKENS["unk"]))
    specials = "|".join(SPECIAL_TOKENS.values())
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(f"{specials}|."), behavior="isolated")
    backend.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=SPECIAL_TOKENS["pad"],
        eos_token=SPECIAL_TOKENS["eos"],
        unk_token=SPECIAL_TOKENS["unk"],
        mask_token=SPECIAL_TOKENS["mask"],
        padding_side="left",
    )
