"""RCD's relatives (rcd.residual_rules): each rule's formula on hand-computed tensors, decoding a
tiny model with it, one stage-rcd training step, and the save/load round trip of learned parts.

Expected values are written out by hand (entropy in nats, sigmoid, p @ E), never built with
the functions under test.
"""

import math

import pytest
import torch

import rcd
from conftest import MASK, make_model, random_prompts
from rcd.cli import main
from rcd.models.adapter import DiffusionModel
from rcd.residual import RESIDUAL_RULES, ResidualConfig
from rcd.residual_rules import (
    PARAMETERS_ATTRIBUTE,
    PARAMETERS_FILE,
    RULES,
    attach_rule_parameters,
    block_features,
    load_rule_parameters,
    residual_rule,
    rule_residual_from_logits,
    save_rule_parameters,
    slerp_mix,
    without_rule_parameters,
)
from rcd.train import ResidualTrainingConfig, TrainConfig
from rcd.train.noise import add_noise
from rcd.train.stages import StageModule, reference_signal

E = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [-1.0, 3.0]], dtype=torch.float64)  # V=4, D=2
E_MASK = torch.tensor([0.5, -0.5], dtype=torch.float64)
P = torch.tensor([[0.6, 0.3, 0.1, 0.0]], dtype=torch.float64)
H_NATS = -(0.6 * math.log(0.6) + 0.3 * math.log(0.3) + 0.1 * math.log(0.1))


def rule_output(config, parameters=None, progress=0.5, place=0.25):
    """(Delta, alpha, mixed input) of P at one masked position, under the config's rule."""
    rule = residual_rule(config)
    features = (torch.tensor([progress], dtype=torch.float64), torch.tensor([place], dtype=torch.float64))
    entropy = torch.tensor([H_NATS / math.log(4)], dtype=torch.float64)
    delta, alpha = rule.residual(P, entropy, E, config, features, parameters)
    token = torch.zeros(1, 1, 2, dtype=torch.float64)
    mixed = rule.mix(
        token, E_MASK, delta.view(1, 1, 2), alpha.view(1, 1), torch.ones(1, 1, dtype=torch.bool), parameters
    )
    return delta.view(2), alpha.view(()), mixed.view(2)


def test_registry_is_the_configs_list_and_bad_settings_are_refused():
    assert tuple(RULES) == RESIDUAL_RULES
    with pytest.raises(ValueError, match="rule must be one of"):
        ResidualConfig(rule="slerp")
    with pytest.raises(ValueError, match="top-k"):
        ResidualConfig(rule="soft-mask")
    with pytest.raises(ValueError, match="strategy of rule rcd"):
        ResidualConfig(rule="itersmooth", alpha="fixed")
    with pytest.raises(ValueError, match="smooth_start"):
        ResidualConfig(rule="itersmooth", smooth_end=1.5)


def test_block_features_by_hand():
    masked = torch.tensor([[False, True, False, True, True, True]])  # one prompt position, then 5
    progress, place = block_features(masked, gen_start=1, block_length=2)
    assert progress.tolist() == [[1.0, 0.5, 0.5, 0.0, 0.0, 0.0]]  # blocks (T F), (T T), (T)
    assert place.tolist() == [[0.0, 0.0, 0.5, 0.0, 0.5, 0.0]]
    progress, place = block_features(masked, gen_start=1, block_length=None)  # the response is one block
    assert progress[0, 1:].tolist() == pytest.approx([0.2] * 5)
    assert place[0, 1:].tolist() == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8])


def test_soft_mask_formula_by_hand():
    config = ResidualConfig(rule="soft-mask", top_k=2)
    weight = residual_rule(config).build_parameters(2).double()
    with torch.no_grad():
        weight.scale_logit.fill_(math.log(0.8 / 0.2))  # omega_s = 0.8
        weight.slope.fill_(2.0)
        weight.shift.fill_(-1.0)
    delta, alpha, mixed = rule_output(config, weight)
    assert delta.tolist() == pytest.approx([2 / 3, 1 / 3])  # top-2 renormalised: 0.6, 0.3 -> 2/3, 1/3
    lam = 0.8 / (1 + math.exp(-2.0 * (-H_NATS + 1.0)))
    assert alpha.item() == pytest.approx(lam)
    expect = [(1 - lam) * 0.5 + lam * 2 / 3, (1 - lam) * -0.5 + lam / 3]
    assert mixed.tolist() == pytest.approx(expect)


def test_soft_mask_slerp_formula_by_hand():
    config = ResidualConfig(rule="soft-mask-slerp", top_k=2)
    weight = residual_rule(config).build_parameters(2).double()
    _, alpha, mixed = rule_output(config, weight)
    lam = 0.5 / (1 + math.exp(H_NATS))  # the default weight: omega_s 0.5, slope 1, shift 0
    assert alpha.item() == pytest.approx(lam)
    mask, soft = [0.5, -0.5], [2 / 3, 1 / 3]
    cosine = (0.5 * 2 / 3 - 0.5 / 3) / (math.hypot(*mask) * math.hypot(*soft))
    theta = math.acos(cosine)
    low, high = math.sin((1 - lam) * theta) / math.sin(theta), math.sin(lam * theta) / math.sin(theta)
    assert mixed.tolist() == pytest.approx([low * m + high * d for m, d in zip(mask, soft)])
    linear = rule_output(ResidualConfig(rule="soft-mask", top_k=2), weight)[2]
    assert not torch.allclose(mixed, linear)
    parallel = slerp_mix(
        torch.zeros(1, 2), E_MASK, 3 * E_MASK.view(1, 2), torch.tensor([0.25]), torch.tensor([True])
    )
    assert parallel.view(2).tolist() == pytest.approx(
        (0.75 * E_MASK + 0.25 * 3 * E_MASK).tolist()
    )  # the line


def test_itersmooth_formula_by_hand():
    config = ResidualConfig(rule="itersmooth", temperature=2.0)
    delta, alpha, mixed = rule_output(config, progress=0.5)
    assert delta.tolist() == pytest.approx([0.6 + 0.2, 0.3 + 0.2])  # p @ E (p given; T_res acts on logits)
    assert alpha.item() == pytest.approx(0.15 + 0.15 * 0.5)
    assert mixed.tolist() == pytest.approx([0.5 + 0.225 * 0.8, -0.5 + 0.225 * 0.5])  # added, not interpolated
    logits = torch.log(torch.tensor([[0.6, 0.3, 0.1, 1e-30]], dtype=torch.float64))
    features = (torch.tensor([0.0], dtype=torch.float64), torch.tensor([0.0], dtype=torch.float64))
    delta, alpha = rule_residual_from_logits(logits, E, config, features, None)
    tempered = torch.tensor([0.6, 0.3, 0.1, 0.0], dtype=torch.float64).sqrt()
    tempered /= tempered.sum()
    assert delta.view(2).tolist() == pytest.approx((tempered @ E).tolist())
    assert alpha.item() == pytest.approx(0.15)


def test_selfcond_projection_formula_by_hand():
    config = ResidualConfig(rule="selfcond-proj")
    projection = residual_rule(config).build_parameters(2).double()
    _, alpha, mixed = rule_output(config, projection)
    assert alpha.item() == 1.0 and mixed.tolist() == [0.5, -0.5]  # W starts at 0: a plain mask
    with torch.no_grad():
        projection.weight.copy_(torch.tensor([[0.0, 1.0], [2.0, 0.0]]))
    _, _, mixed = rule_output(config, projection)
    assert mixed.tolist() == pytest.approx(
        [0.5 + 0.5, -0.5 + 2 * 0.8]
    )  # E[M] + W (p @ E), p @ E = (0.8, 0.5)


def test_learned_alpha_formula_by_hand():
    config = ResidualConfig(rule="learned-alpha")
    network = residual_rule(config).build_parameters(2).double()
    assert rule_output(config, network)[1].item() == pytest.approx(0.3)  # starts at the fixed 0.3
    first, last = network.layers[0], network.layers[2]
    with torch.no_grad():
        first.weight.copy_(
            torch.tensor(
                [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
                + [[0.0] * 4] * 12
            )
        )
        first.bias.zero_()
        last.weight.copy_(torch.tensor([[1.0, -2.0, 3.0, -4.0] + [0.0] * 12]))
        last.bias.fill_(0.5)
    delta, alpha, _ = rule_output(config, network, progress=0.5, place=0.25)
    h = H_NATS / math.log(4)
    z = math.tanh(h) - 2 * math.tanh(0.6) + 3 * math.tanh(0.5) - 4 * math.tanh(0.25) + 0.5
    assert alpha.item() == pytest.approx(
        1 / (1 + math.exp(-z))
    )  # features in order: H, max p, progress, place
    assert delta.tolist() == pytest.approx([0.8, 0.5])


def decode(model, config, trace=True):
    return rcd.generate(
        model,
        random_prompts(2, 4),
        gen_length=8,
        block_length=4,
        steps=8,
        residual=config,
        return_trace=trace,
    )


@pytest.mark.parametrize("rule", [r for r in RESIDUAL_RULES if r != "rcd"])
def test_decoding_with_each_rule(rule):
    model = make_model(seed=3)
    config = ResidualConfig(rule=rule, top_k=3 if rule.startswith("soft-mask") else None)
    plain = decode(model, None)
    if residual_rule(config).learned:
        with pytest.raises(ValueError, match="holds none"):
            decode(model, config)
        parameters = attach_rule_parameters(
            model, config, DiffusionModel.wrap(model).embedding_weight.shape[1]
        )
        with torch.no_grad():  # away from the start (W = 0 would decode as plain masks)
            for value in parameters.parameters():
                value.add_(
                    torch.randn(value.shape, generator=torch.Generator().manual_seed(1), dtype=value.dtype)
                )
    out = decode(model, config)
    assert not (out.generated == MASK).any() and out.nfe == plain.nfe == 8  # one pass per step, none extra
    confidences = [step.confidence for step in out.trace]
    plain_confidences = [step.confidence for step in plain.trace]
    assert torch.equal(confidences[0], plain_confidences[0])  # cold start: nothing fed at the first step
    assert any(
        not torch.allclose(a.nan_to_num(), b.nan_to_num()) for a, b in zip(confidences, plain_confidences)
    )
    alpha = torch.stack([step.alpha for step in out.trace[1:]])
    assert torch.isfinite(alpha[~alpha.isnan()]).all() and (alpha.nan_to_num() > 0).any()


def test_untrained_selfcond_projection_decodes_like_seqd():
    model = make_model(seed=3)
    config = ResidualConfig(rule="selfcond-proj")
    attach_rule_parameters(model, config, DiffusionModel.wrap(model).embedding_weight.shape[1])
    assert torch.equal(
        decode(model, config, trace=False).sequences, decode(model, None, trace=False).sequences
    )


def sft_batch(n=4, length=16, prompt=4):
    g = torch.Generator().manual_seed(0)
    return {
        "input_ids": torch.randint(4, 20, (n, length), generator=g),
        "attention_mask": torch.ones(n, length),
        "prompt_length": torch.tensor(prompt),
        "index": torch.arange(n),
    }


@pytest.mark.parametrize(
    ("rule", "source"),
    [
        ("soft-mask", "selfcond"),
        ("selfcond-proj", "selfcond"),
        ("learned-alpha", "noisy"),
        ("itersmooth", "noisy"),
    ],
)
def test_one_stage_rcd_step_trains_the_rule(rule, source):
    target, reference = make_model(seed=0), make_model(seed=7)
    target.train()
    options = ResidualTrainingConfig(
        residual=ResidualConfig(rule=rule, top_k=3 if rule.startswith("soft-mask") else None), source=source
    )
    module = StageModule(target, residual=options)
    noisy = add_noise(sft_batch(), mask_token_id=MASK, seed=0, epoch=0)
    parameters = getattr(target, PARAMETERS_ATTRIBUTE, None)
    if rule == "itersmooth":  # training-free: no module; the model still trains through the smoothed input
        assert parameters is None
    else:
        assert {id(p) for p in parameters.parameters()} <= {id(p) for p in module.parameters()}
        before = [p.detach().clone() for p in parameters.parameters()]
    optimizer = torch.optim.SGD(module.parameters(), lr=0.5)
    signal = reference_signal(DiffusionModel.wrap(reference), noisy, None, options)
    module(noisy, signal).backward()
    optimizer.step()
    if parameters is not None:
        grads = [p.grad for p in parameters.parameters()]
        # learned-alpha's first layer gets gradient from the second step on (its last layer starts at 0)
        assert all(g is not None for g in grads) and grads[-1].abs().sum() > 0
        assert any(not torch.equal(b, p) for b, p in zip(before, parameters.parameters()))


def test_cache_reference_is_refused_with_another_rule(tmp_path):
    residual = ResidualTrainingConfig(residual=ResidualConfig(rule="learned-alpha"))
    with pytest.raises(ValueError, match="cache-reference"):
        TrainConfig.of(
            model="tiny-xs",
            data="x.jsonl",
            out=str(tmp_path),
            stage="rcd",
            reference="r",
            cache_reference=True,
            residual=residual,
        )


@pytest.mark.parametrize("rule", ["soft-mask", "soft-mask-slerp", "selfcond-proj", "learned-alpha"])
def test_learned_parameters_round_trip_through_a_saved_model(tmp_path, rule, capsys):
    tok = rcd.char_tokenizer()
    model = rcd.tiny_model(len(tok), mask_token_id=tok.mask_token_id, seed=0)
    config = ResidualConfig(rule=rule, top_k=3 if rule.startswith("soft-mask") else None)
    parameters = attach_rule_parameters(model, config, model.get_input_embeddings().weight.shape[1])
    with torch.no_grad():
        for value in parameters.parameters():
            value.uniform_(-1, 1)
    with without_rule_parameters(model):  # as the trainer saves: the model's own weights only
        model.save_pretrained(tmp_path)
    assert hasattr(model, PARAMETERS_ATTRIBUTE)
    save_rule_parameters(parameters, tmp_path)
    tok.save_pretrained(tmp_path)
    loaded, _ = rcd.load(tmp_path)
    saved = getattr(loaded, PARAMETERS_ATTRIBUTE).state_dict()
    assert saved.keys() == parameters.state_dict().keys()
    assert all(torch.equal(saved[k], v) for k, v in parameters.state_dict().items())
    args = [
        "generate",
        "--model",
        str(tmp_path),
        "--prompt",
        "1+1=",
        "--gen-length",
        "8",
        "--block-length",
        "4",
        "--steps",
        "4",
        "--rcd",
        "--res-rule",
        rule,
    ] + (["--res-top-k", "3"] if rule.startswith("soft-mask") else [])
    assert main(args) == 0 and "'1+1=' ->" in capsys.readouterr().out
    (tmp_path / PARAMETERS_FILE).unlink()
    bare = rcd.tiny_model(len(tok), mask_token_id=tok.mask_token_id, seed=0)
    assert load_rule_parameters(bare, tmp_path) is None and not hasattr(bare, PARAMETERS_ATTRIBUTE)


@pytest.mark.slow
def test_trained_rule_is_saved_by_the_trainer_and_decodes_after_load(tmp_path):
    """`rcd train --stage rcd --res-rule learned-alpha`: the MLP trains, lands in
    residual_rule.safetensors (not in model.safetensors) and decodes after `rcd.load`."""
    from safetensors.torch import load_file

    from rcd.train import train

    rows = "".join(f'{{"prompt": "{a}+{b}=", "response": "{a + b}"}}\n' for a in range(12) for b in range(12))
    (tmp_path / "train.jsonl").write_text(rows)
    common = {
        "model": "tiny-xs",
        "data": str(tmp_path / "train.jsonl"),
        "batch_size": 16,
        "lr": 3e-3,
        "progress": False,
    }
    train(TrainConfig.of(**common, out=str(tmp_path / "ref"), stage="ref", max_steps=4))
    residual = ResidualTrainingConfig(residual=ResidualConfig(rule="learned-alpha"))
    common.update(model=str(tmp_path / "ref"), reference=str(tmp_path / "ref"))
    train(TrainConfig.of(**common, out=str(tmp_path / "rcd"), stage="rcd", max_steps=4), residual)
    saved = load_file(tmp_path / "rcd" / PARAMETERS_FILE)
    assert saved["layers.2.weight"].abs().sum() > 0  # trained away from its zero start
    assert not any(
        k.startswith(PARAMETERS_ATTRIBUTE) for k in load_file(tmp_path / "rcd" / "model.safetensors")
    )
    model, tok = rcd.load(tmp_path / "rcd")
    assert torch.equal(
        getattr(model, PARAMETERS_ATTRIBUTE).state_dict()["layers.2.weight"], saved["layers.2.weight"]
    )
    ids = tok(["1+2="], return_tensors="pt").input_ids
    out = rcd.generate(model, ids, gen_length=4, block_length=4, steps=4, residual=residual.residual)
    assert not (out.generated == tok.mask_token_id).any()


def test_stage_rcd_feeds_itersmooth_by_hand():
    """Training's input under a rule is the rule's formula with the batch's own block features:
    E[M] + (0.15 + 0.15 progress) p_ref @ E, progress = the unmasked share of the response."""
    target, reference = make_model(seed=0), make_model(seed=7)
    options = ResidualTrainingConfig(residual=ResidualConfig(rule="itersmooth"))
    noisy = add_noise(sft_batch(), mask_token_id=MASK, seed=0, epoch=0)
    seen = []
    handle = target.register_forward_pre_hook(
        lambda m, a, kw: seen.append(kw["inputs_embeds"]), with_kwargs=True
    )
    StageModule(target, residual=options)(
        noisy, reference_signal(DiffusionModel.wrap(reference), noisy, None, options)
    )
    handle.remove()
    E_target = target.get_input_embeddings().weight.detach()
    with torch.no_grad():
        p = torch.softmax(reference(noisy.noisy).logits.double(), -1)
    progress = 1 - noisy.masked[:, 4:].double().mean(1, keepdim=True).expand(-1, noisy.masked.shape[1])
    w = 0.15 + 0.15 * progress
    expect = E_target[MASK] + w[..., None] * (p @ E_target)
    assert torch.allclose(seen[0][noisy.masked].detach(), expect[noisy.masked], atol=1e-10)
    assert len(set(progress[:, 0].tolist())) > 1  # rows at other noise levels: the ramp is per row
