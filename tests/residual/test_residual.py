import math

import pytest
import torch

from rcd.residual import (
    ResidualConfig,
    align_vocab,
    alpha_from_probs,
    dirichlet_probs,
    mix_masked_embeddings,
    normalized_entropy,
    probs_and_entropy,
    residual_from_logits,
    residual_from_probs,
    residual_from_top_k,
    soft_embedding,
    top_k_summary,
)

E = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [-1.0, 3.0]])  # V=4, D=2


def test_normalized_entropy_by_hand():
    p = torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.25] * 4, [1.0, 0.0, 0.0, 0.0]])
    assert normalized_entropy(p).tolist() == pytest.approx([math.log(2) / math.log(4), 1.0, 0.0])


def test_entropy_is_nan_free_at_zero_and_one_hot():
    logits = torch.tensor([[0.0, float("-inf"), float("-inf"), 5.0], [1e4, -1e4, 0.0, 0.0]])
    delta, alpha = residual_from_logits(logits, E, ResidualConfig())
    assert torch.isfinite(delta).all() and torch.isfinite(alpha).all()
    assert alpha[1].item() == pytest.approx(0.0, abs=1e-6)


def test_alpha_strategies_by_hand():
    p = torch.tensor([[0.7, 0.1, 0.1, 0.1]])
    h = -(0.7 * math.log(0.7) + 3 * 0.1 * math.log(0.1)) / math.log(4)
    expected = {
        "entropy": h,
        "top1": h,
        "inv-entropy": 1 - h,
        "confidence": 0.7,
        "inv-confidence": 0.3,
        "fixed": 0.3,
        "one": 1.0,
    }
    for kind, value in expected.items():
        got = alpha_from_probs(p, ResidualConfig(alpha=kind)).item()
        assert got == pytest.approx(value, abs=1e-6), kind
    assert alpha_from_probs(p, ResidualConfig(alpha="fixed", fixed_alpha=0.6)).item() == pytest.approx(0.6)


def test_soft_embedding_is_probability_weighted_sum():
    p = torch.tensor([[0.5, 0.25, 0.25, 0.0]])
    assert soft_embedding(p, E).tolist() == [[0.5 + 0.5, 0.25 + 0.5]]


def test_top1_uses_argmax_row_and_top_k_truncates():
    p = torch.tensor([[0.1, 0.2, 0.6, 0.1]])
    delta, _ = residual_from_probs(p, E, ResidualConfig(alpha="top1"))
    assert delta.tolist() == [[2.0, 2.0]]
    # top-2 renormalised: 0.75 * E2 + 0.25 * E1
    assert soft_embedding(p, E, top_k=2)[0].tolist() == pytest.approx([1.5, 1.75])
    assert torch.allclose(soft_embedding(p, E, top_k=4), soft_embedding(p, E))


def test_residual_temperature_applies_to_alpha_and_delta():
    z = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    for t in (0.5, 0.92, 2.0):
        p = torch.softmax(z / t, -1)
        delta, alpha = residual_from_logits(z, E, ResidualConfig(temperature=t))
        assert torch.allclose(delta, p @ E) and torch.allclose(alpha, normalized_entropy(p))
    # flatter distribution -> more residual
    assert (
        residual_from_logits(z, E, ResidualConfig(temperature=2.0))[1]
        > residual_from_logits(z, E, ResidualConfig(temperature=0.5))[1]
    )


def test_mix_only_at_masked_positions():
    tok = torch.tensor([[[9.0, 9.0], [8.0, 8.0]]])
    m = torch.tensor([1.0, -1.0])
    delta = torch.tensor([[[3.0, 5.0], [7.0, 7.0]]])
    alpha = torch.tensor([[0.25, 0.5]])
    out = mix_masked_embeddings(tok, m, delta, alpha, torch.tensor([[True, False]]))
    assert out.tolist() == [[[0.75 * 1 + 0.25 * 3, 0.75 * -1 + 0.25 * 5], [8.0, 8.0]]]
    # alpha = 0 is exactly the plain mask embedding
    out0 = mix_masked_embeddings(tok, m, delta, torch.zeros(1, 2), torch.tensor([[True, True]]))
    assert out0[0, 0].tolist() == m.tolist()


def test_bf16_residual_is_finite_and_close_to_fp32():
    g = torch.Generator().manual_seed(0)
    table = torch.randn(500, 64, generator=g)
    z = (torch.randn(8, 500, generator=g) * 10).bfloat16()
    table = table.bfloat16()
    d16, a16 = residual_from_logits(z, table, ResidualConfig())
    d32, a32 = residual_from_logits(z.float(), table.float(), ResidualConfig())
    assert d16.dtype == torch.float32 and torch.isfinite(d16).all()
    assert torch.equal(a16, a32)  # softmax and entropy run in fp32 whatever the input dtype
    assert torch.allclose(d16, d32, atol=2e-2)


def test_dirichlet_is_a_distribution_and_seeded():
    a = dirichlet_probs((3,), 10, generator=torch.Generator().manual_seed(1))
    b = dirichlet_probs((3,), 10, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and torch.allclose(a.sum(-1), torch.ones(3)) and (a >= 0).all()
    assert not torch.equal(a, dirichlet_probs((3,), 10, generator=torch.Generator().manual_seed(2)))
    # without a generator (global RNG), and at a concentration whose raw draws sum far below 1
    sparse = dirichlet_probs((50,), 10, concentration=0.01)
    assert torch.allclose(sparse.sum(-1), torch.ones(50)) and (sparse >= 0).all()


def test_two_and_one_token_vocabularies():
    """Eq. 3's normalisation at its edges: H / log 2 for V = 2, zero for V = 1 (log 1 = 0)."""
    for h in (normalized_entropy(torch.tensor([[0.5, 0.5]])), probs_and_entropy(torch.zeros(1, 2))[1]):
        assert h.tolist() == pytest.approx([1.0])
    for h in (normalized_entropy(torch.ones(1, 1)), probs_and_entropy(torch.zeros(1, 1))[1]):
        assert h.tolist() == [0.0]
    z = torch.tensor([[0.3, -1.0, 2.0]])
    assert torch.allclose(probs_and_entropy(z)[0], torch.softmax(z, -1))  # T_res defaults to 1


@pytest.mark.parametrize(
    "kwargs",
    [dict(alpha="nope"), dict(init="warm"), dict(temperature=0.0), dict(fixed_alpha=1.5), dict(top_k=0)],
)
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        ResidualConfig(**kwargs)


@pytest.mark.parametrize("temperature", [1.0, 0.7, 1.5])
def test_fused_entropy_matches_definition(temperature):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(6, 3000, generator=g, dtype=torch.float64) * 4
    z[:, :3] += 12  # a peaked head, as a trained model gives
    probs, entropy = probs_and_entropy(z, temperature)
    expected = torch.softmax(z / temperature, -1)
    assert torch.allclose(probs, expected, atol=1e-15)
    assert torch.allclose(entropy, normalized_entropy(expected), atol=1e-12)
    p32, h32 = probs_and_entropy(z.float(), temperature)  # fp32: accurate to ~1e-7
    assert (h32.double() - normalized_entropy(expected)).abs().max() < 1e-6


def test_fused_entropy_leaves_logits_untouched():
    z = torch.tensor([[1.0, float("-inf"), 3.0, 0.5]])
    before = z.clone()
    probs, entropy = probs_and_entropy(z, 0.5)
    assert torch.equal(z, before) and torch.isfinite(entropy).all() and probs[0, 1] == 0


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_top_k_at_full_vocabulary_is_dense(dtype):
    g = torch.Generator().manual_seed(1)
    table = torch.randn(50, 8, generator=g).to(dtype)
    p = torch.softmax(torch.randn(2, 3, 50, generator=g, dtype=torch.float64), -1)
    dense = soft_embedding(p, table)
    for k in (50, 60):
        assert torch.allclose(soft_embedding(p, table, top_k=k), dense)
    sparse = soft_embedding(p, table, top_k=49)  # gathered rows, batched (2, 3) positions
    tol = 1e-2 if dtype == torch.bfloat16 else 1e-12
    kept, index = p.topk(49, -1)
    weights = torch.zeros_like(p).scatter_(-1, index, kept / kept.sum(-1, keepdim=True))
    assert torch.allclose(sparse.double(), weights @ table.double(), atol=tol)


def test_top_k_keeps_full_distribution_alpha():
    z = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    full = residual_from_logits(z, E, ResidualConfig())
    top2 = residual_from_logits(z, E, ResidualConfig(top_k=2))
    assert torch.equal(full[1], top2[1])
    assert not torch.allclose(full[0], top2[0])


@pytest.mark.parametrize("alpha", ["entropy", "top1", "confidence"])
def test_top_k_summary_rebuilds_the_dense_residual(alpha):
    """What the training cache stores (alpha + top-k) gives Eq. 1-3 back when k covers V."""
    torch.manual_seed(0)
    config = ResidualConfig(alpha=alpha, temperature=0.8)
    z, E = torch.randn(5, 12), torch.randn(12, 4)
    dense, dense_alpha = residual_from_logits(z, E, config)
    alpha_k, probs_k, index_k = top_k_summary(z, config, k=12)
    assert torch.allclose(alpha_k, dense_alpha)
    assert torch.allclose(residual_from_top_k(probs_k, index_k, E, config), dense, atol=1e-6)
    # a reference with two padding rows more than the target's table: those rows get no weight
    z_big = torch.cat([z, torch.full((5, 2), -1e4)], -1)
    _, probs_b, index_b = top_k_summary(z_big, config, k=14)
    assert torch.allclose(residual_from_top_k(probs_b, index_b, E, config), dense, atol=1e-5)


@pytest.mark.parametrize("alpha", ["entropy", "confidence", "inv-confidence", "fixed", "top1"])
def test_batched_shapes_equal_row_by_row(alpha):
    """(B, L, V) logits give what each (V,) row gives alone: every reduction is over the vocabulary."""
    g = torch.Generator().manual_seed(0)
    z, E = (
        3 * torch.randn(2, 3, 11, generator=g, dtype=torch.float64),
        torch.randn(11, 5, generator=g, dtype=torch.float64),
    )
    config = ResidualConfig(alpha=alpha)
    delta, a = residual_from_logits(z, E, config)
    assert delta.shape == (2, 3, 5) and a.shape == (2, 3)
    alpha_k, probs_k, index_k = top_k_summary(z, config, 4)
    delta_k = residual_from_top_k(probs_k, index_k, E, config)
    for b in range(2):
        for i in range(3):
            d, x = residual_from_logits(z[b, i][None], E, config)
            assert torch.allclose(delta[b, i], d[0]) and torch.allclose(a[b, i], x[0])
            assert torch.allclose(
                delta_k[b, i], residual_from_top_k(probs_k[b, i][None], index_k[b, i][None], E, config)[0]
            )
            assert torch.allclose(alpha_k[b, i], x[0])


def test_align_vocab_by_hand():
    p = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]], dtype=torch.float64)
    assert torch.equal(align_vocab(p, 3), p)
    assert torch.equal(align_vocab(p, 5), torch.cat([p, torch.zeros(2, 2, dtype=torch.float64)], 1))
    assert torch.allclose(align_vocab(p, 2), torch.tensor([[0.625, 0.375], [0.5, 0.5]], dtype=torch.float64))
