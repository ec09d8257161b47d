"""SeqD vs RCD decoding of the tiny demo models: per-step time, tokens/s, forward passes.

Both runs decode the same random prompts with the same fixed schedule (2 tokens per
step), so they make the same number of forward passes and the per-step ratio is the
price of the residual: Eq. 1-3 for every still-masked position and the highway mix.
SeqD and RCD generations alternate, so a load change on a shared machine hits both.
Memory is measured at real shapes (`real_shapes`): here RCD's state is a few kB, below
what the resident-set size resolves.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

import rcd
from rcd.models.tiny import TINY_PRESETS

from .measure import StepClock, time_call

VOCAB = 64  # a small character vocabulary


@dataclass(frozen=True)
class Case:
    attention: str
    preset: str
    batch: int
    gen_length: int = 128
    block_length: int = 32
    prompt_length: int = 32

    @property
    def steps(self) -> int:
        return self.gen_length // 2


def describe(preset: str, model: torch.nn.Module) -> str:
    """e.g. 'tiny-s (128x4, V=64)': width x depth and vocabulary."""
    config = model.config
    return f"{preset} ({config.hidden_size}x{config.num_hidden_layers}, V={config.vocab_size})"


def cases(quick: bool) -> list[Case]:
    presets = ["tiny-s"] if quick else ["tiny-s", "tiny-m"]
    gen = 64 if quick else 128
    return [
        Case(attention, preset, batch, gen_length=gen)
        for attention in ("bidirectional", "block-causal")
        for preset in presets
        for batch in (1, 8)
    ]


def run(device: torch.device, quick: bool) -> list[dict]:
    repeats = 2
    rows = []
    for case in tqdm(cases(quick), desc="tiny decode", leave=False):
        model = rcd.tiny_model(
            VOCAB,
            seed=0,
            attention=case.attention,
            block_length=case.block_length,
            **TINY_PRESETS[case.preset],
        ).to(device)
        prompts = torch.randint(
            4, VOCAB - 1, (case.batch, case.prompt_length), generator=torch.Generator().manual_seed(0)
        )
        variants = {"seqd": None, "rcd": rcd.ResidualConfig()}
        clocks = {name: StepClock(model, device) for name in variants}
        walls: dict[str, list[float]] = {name: [] for name in variants}
        outputs = {}

        def generate(residual):
            return rcd.generate(
                model,
                prompts.to(device),
                gen_length=case.gen_length,
                block_length=case.block_length,
                steps=case.steps,
                residual=residual,
            )

        for name, residual in variants.items():  # warm-up
            outputs[name] = generate(residual)
        for _ in range(repeats):
            for name, residual in variants.items():
                with clocks[name].running():
                    walls[name].append(time_call(lambda: generate(residual), device)[1])
        row = {
            "attention": case.attention,
            "model": describe(case.preset, model),
            "batch": case.batch,
            "gen_length": case.gen_length,
            "block_length": case.block_length,
            "steps": case.steps,
        }
        for name in variants:
            wall = statistics.median(walls[name])
            row[name] = {
                "step_ms": 1e3 * clocks[name].median(),
                "steps_timed": len(clocks[name].intervals),
                "generation_s": wall,
                "tokens_per_s": case.batch * case.gen_length / wall,
                "forward_passes": outputs[name].nfe,
            }
        row["rcd_over_seqd_step"] = row["rcd"]["step_ms"] / row["seqd"]["step_ms"]
        rows.append(row)
    return rows
