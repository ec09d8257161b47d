"""The server's request rules without a server: the `rcd` object over the defaults, and the
text cut (EOS, max_tokens, stop strings) that streamed and whole answers share."""

from __future__ import annotations

import argparse

import pytest

import rcd
from rcd.cli.options import add_decode_arguments
from rcd.decode import DecodeConfig
from rcd.residual import ResidualConfig
from rcd.serve.options import extension_fields, needs_own_batch, resolve
from rcd.serve.text import Cutter

DEFAULT = DecodeConfig(gen_length=64, block_length=32, steps=32)


def test_extension_keys_are_the_generate_flags():
    """One key per decoding flag of `rcd generate` (--reference excepted: the server's choice)."""
    parser = argparse.ArgumentParser()
    add_decode_arguments(parser)
    flags = {a.dest for a in parser._actions if a.option_strings and a.dest not in ("help", "reference")}
    assert set(extension_fields()) == flags


def test_max_tokens_sets_whole_blocks_and_keeps_steps_per_block():
    options = resolve(DEFAULT, None, {}, max_tokens=70, temperature=None, baseline=False)
    assert (options.decode.gen_length, options.decode.steps, options.max_tokens) == (96, 48, 70)
    assert options.decode.tokens_per_step == DEFAULT.tokens_per_step
    given = resolve(DEFAULT, None, {"steps": 96}, max_tokens=70, temperature=None, baseline=False)
    assert given.decode.steps == 96  # a given steps is used as given
    plain = resolve(DEFAULT, None, {}, max_tokens=None, temperature=None, baseline=False)
    assert plain.decode == DEFAULT and plain.max_tokens == 64
    smaller_blocks = resolve(
        DEFAULT, None, {"block_length": 8}, max_tokens=None, temperature=None, baseline=False
    )
    assert (smaller_blocks.decode.steps, smaller_blocks.decode.tokens_per_step) == (32, 2.0)
    with pytest.raises(ValueError, match="exceeds rcd.gen_length"):
        resolve(DEFAULT, None, {"gen_length": 32}, max_tokens=40, temperature=None, baseline=False)


def test_residual_options_layer_over_the_server_defaults():
    server = ResidualConfig(init="reference", temperature=0.9)
    on = resolve(
        DEFAULT, server, {"res_alpha": "confidence"}, max_tokens=None, temperature=None, baseline=False
    )
    assert on.residual == ResidualConfig(init="reference", temperature=0.9, alpha="confidence")
    off = resolve(DEFAULT, server, {"rcd": False}, max_tokens=None, temperature=None, baseline=False)
    assert off.residual is None
    switched = resolve(
        DEFAULT, None, {"rcd": True, "res_top_k": 4}, max_tokens=None, temperature=None, baseline=False
    )
    assert switched.residual == ResidualConfig(top_k=4)
    for given, baseline, message in [
        ({"res_top_k": 4}, False, 'add "rcd": true'),
        ({"rcd": True}, True, "plain SeqD"),
        ({"res_temperature": 0.0, "rcd": True}, False, "must be a finite number > 0"),
        ({"temperature": 0.5}, False, "differ"),
    ]:
        with pytest.raises(ValueError, match=message):
            resolve(
                DEFAULT,
                None,
                given,
                max_tokens=None,
                temperature=0.0 if "temperature" in given else None,
                baseline=baseline,
            )


def test_requests_that_draw_random_numbers_decode_alone():
    def own(given, residual=None):
        return needs_own_batch(
            resolve(DEFAULT, residual, given, max_tokens=None, temperature=None, baseline=False)
        )

    assert not own({}) and not own({"threshold": 0.9, "steps": None})
    assert (
        own({"temperature": 0.7}) and own({"order": "random"}) and own({"rcd": True, "res_init": "dirichlet"})
    )


@pytest.fixture(scope="module")
def tokenizer():
    return rcd.char_tokenizer()


def cutter(tokenizer, stop=(), max_tokens=100):
    return Cutter(tokenizer, frozenset({tokenizer.eos_token_id}), tuple(stop), max_tokens)


def test_cut_at_eos_max_tokens_and_stop_strings(tokenizer):
    ids = tokenizer("hello world", add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    done = cutter(tokenizer).finish(ids + [eos] + ids)
    assert (done.text, done.tokens, done.reason) == ("hello world", 11, "stop")
    short = cutter(tokenizer, max_tokens=5).finish(ids)
    assert (short.text, short.tokens, short.reason) == ("hello", 5, "length")
    stopped = cutter(tokenizer, stop=["o w", "zz"]).finish(ids)
    assert (stopped.text, stopped.tokens, stopped.reason) == ("hell", 7, "stop")  # 7 tokens reach the stop


@pytest.mark.parametrize("stop", [(), ("o w",), ("wor", "ld"), ("d",), ("hello world!",)])
def test_stable_prefixes_join_to_the_final_text(tokenizer, stop):
    """What a stream sends after each prefix never has to be taken back."""
    ids = tokenizer("hello world", add_special_tokens=False)["input_ids"]
    cut = cutter(tokenizer, stop=stop)
    final = cut.finish(ids).text
    for k in range(len(ids) + 1):
        partial = cut.finish(ids[:k], complete=False)
        assert final.startswith(partial.text), (k, partial.text, final)
        if partial.reason is not None:
            assert partial.text == final
