import pytest
import torch

import rcd
from conftest import MASK, make_model, random_prompts


@pytest.fixture(scope="module")
def model():
    return make_model()


def test_gen_length_must_be_multiple_of_block(model):
    with pytest.raises(ValueError, match="multiple of block_length"):
        rcd.generate(model, random_prompts(1, 3), gen_length=10, block_length=4)


def test_steps_must_divide_into_blocks(model):
    with pytest.raises(ValueError, match="multiple of the number of blocks"):
        rcd.generate(model, random_prompts(1, 3), gen_length=8, block_length=4, steps=3)
    with pytest.raises(ValueError, match="exceed block_length"):
        rcd.generate(model, random_prompts(1, 3), gen_length=8, block_length=4, steps=16)


def test_a_thresholds_step_budget_is_checked_like_a_fixed_schedule(model):
    with pytest.raises(ValueError, match="exceed block_length"):
        rcd.generate(model, random_prompts(1, 3), gen_length=8, block_length=4, steps=16, threshold=0.9)
    with pytest.raises(ValueError, match="multiple of the number of blocks"):
        rcd.generate(model, random_prompts(1, 3), gen_length=8, block_length=4, steps=3, threshold=0.9)


def test_model_without_mask_token():
    plain = make_model()
    plain.config.mask_token_id = None
    with pytest.raises(ValueError, match="mask token"):
        rcd.generate(plain, random_prompts(1, 3), gen_length=4, block_length=4)


def test_prompt_with_mask_id(model):
    prompt = random_prompts(1, 3)
    prompt[0, 1] = MASK
    with pytest.raises(ValueError, match="mask token id"):
        rcd.generate(model, prompt, gen_length=4, block_length=4)


def test_padding_under_the_mask_is_fine_but_right_padding_is_not(model):
    prompt = random_prompts(1, 3)
    prompt[0, 0] = MASK
    rcd.generate(model, prompt, gen_length=4, block_length=4, attention_mask=torch.tensor([[0, 1, 1]]))
    with pytest.raises(ValueError, match="left-padded"):
        rcd.generate(
            model,
            random_prompts(1, 3),
            gen_length=4,
            block_length=4,
            attention_mask=torch.tensor([[1, 1, 0]]),
        )


def test_reference_with_other_vocabulary(model):
    other = make_model(vocab_size=60, seed=3, mask_token_id=47)
    with pytest.raises(ValueError, match="vocabulary"):
        rcd.generate(
            model,
            random_prompts(1, 3),
            gen_length=4,
            block_length=4,
            residual=rcd.ResidualConfig(init="reference"),
            reference=other,
        )


def test_reference_init_needs_a_reference(model):
    with pytest.raises(ValueError, match="needs reference"):
        rcd.generate(
            model,
            random_prompts(1, 3),
            gen_length=4,
            block_length=4,
            residual=rcd.ResidualConfig(init="reference"),
        )


def test_block_causal_block_size_must_match_training():
    bc = make_model("block-causal", block_length=4)
    with pytest.raises(ValueError, match="trained with block_length 4"):
        rcd.generate(bc, random_prompts(1, 3), gen_length=8, block_length=8)


def test_stop_at_eos_needs_eos(model):
    with pytest.raises(ValueError, match="eos_token_id"):
        rcd.generate(model, random_prompts(1, 3), gen_length=4, block_length=4, stop_at_eos=True)
