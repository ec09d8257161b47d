"""Forward noising of the masked-diffusion objectives (docs/method.md, section 1).

Each example draws its noise from its own generators, keyed by (seed, epoch, example index,
stream): a batch's noise then does not depend on batch size, accumulation, process count or
where a resumed run restarted, which makes those invariances testable exactly. Separate
streams (levels, positions, extra masks, dropout) keep one draw from shifting another.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

STREAMS = {"level": 0, "position": 1, "extra": 2, "dropout": 3}


def example_generator(seed: int, epoch: int, index: int, stream: str) -> torch.Generator:
    state = np.random.SeedSequence([seed, epoch, index, STREAMS[stream]]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def per_example_uniforms(seed: int, epoch: int, indices: list[int], stream: str, count: int) -> torch.Tensor:
    """(len(indices), count) uniforms in [0, 1), one row per example from its own stream."""
    return torch.stack(
        [torch.rand(count, generator=example_generator(seed, epoch, i, stream)) for i in indices]
    )


@dataclass
class NoisyBatch:
    """A batch with its noise. Positions are absolute in the (B, L) layout of SftCollator.

    masked: response positions replaced by [M]; weight: 1/t at masked positions (t of the
    example, or of the block for block diffusion), 0 elsewhere.
    """

    clean: torch.Tensor  # (B, L) ids
    noisy: torch.Tensor  # (B, L) ids, [M] where masked
    masked: torch.Tensor  # (B, L) bool
    weight: torch.Tensor  # (B, L) float
    key_valid: torch.Tensor  # (B, L) bool
    gen_start: int
    mask_token_id: int
    noise_key: tuple[int, int, list[int]]  # (seed, epoch, example indices) for further draws

    def uniforms(self, stream: str) -> torch.Tensor:
        """(B, L) per-example uniforms of another stream (only response positions are meaningful)."""
        seed, epoch, indices = self.noise_key
        draws = per_example_uniforms(seed, epoch, indices, stream, self.response_length)
        draws = draws.to(self.clean.device)
        return torch.nn.functional.pad(draws, (self.gen_start, 0), value=1.0)

    @property
    def response_length(self) -> int:
        return self.clean.shape[1] - self.gen_start


def add_noise(
    batch: dict[str, torch.Tensor],
    *,
    mask_token_id: int,
    seed: int,
    epoch: int,
    eps: float = 1e-3,
    block_length: int | None = None,
) -> NoisyBatch:
    """Mask each response token with probability t, t ~ U(eps, 1].

    One t per example (masked objective), or one t per block of `block_length` response
    tokens (block-diffusion objective). The prompt is never masked.
    """
    clean = batch["input_ids"]
    gen_start = int(batch["prompt_length"])
    n, length = clean.shape
    response = length - gen_start
    units = 1 if block_length is None else -(-response // block_length)
    per_unit = response if block_length is None else block_length
    indices = batch["index"].tolist()
    device = clean.device
    t = eps + (1 - eps) * per_example_uniforms(seed, epoch, indices, "level", units).to(device)
    u = per_example_uniforms(seed, epoch, indices, "position", response).to(device)
    t_pos = t.repeat_interleave(per_unit, dim=1)[:, :response]
    masked = torch.zeros(n, length, dtype=torch.bool, device=device)
    masked[:, gen_start:] = u < t_pos
    weight = torch.zeros(n, length, device=device)
    weight[:, gen_start:] = torch.where(masked[:, gen_start:], 1.0 / t_pos, 0.0)
    return NoisyBatch(
        clean=clean,
        noisy=clean.masked_fill(masked, mask_token_id),
        masked=masked,
        weight=weight,
        key_valid=batch["attention_mask"].bool(),
        gen_start=gen_start,
        mask_token_id=mask_token_id,
        noise_key=(seed, epoch, indices),
    )


def with_extra_masks(noisy: NoisyBatch, fraction: float) -> NoisyBatch:
    """The batch as the previous denoising step saw it: a superset of its masks.

    Each unmasked response token is also masked with probability `fraction` (its own
    deterministic stream, so every caller gets the same copy).
    """
    masked = noisy.masked | (noisy.uniforms("extra") < fraction)
    return replace(noisy, masked=masked, noisy=noisy.clean.masked_fill(masked, noisy.mask_token_id))


def dropped_residuals(noisy: NoisyBatch, rate: float, unit: str) -> torch.Tensor:
    """Bool (B, L): masked positions whose residual is replaced by a plain mask (dropout).

    unit "sample" drops all residuals of a fraction `rate` of the examples (so cold-start
    inputs stay in distribution), "position" drops single positions.
    """
    if unit == "sample":
        draws = per_example_uniforms(*noisy.noise_key, "dropout", 1).to(noisy.masked.device)
        draws = draws.expand_as(noisy.masked)
    else:
        draws = noisy.uniforms("dropout")
    return (draws < rate) & noisy.masked
