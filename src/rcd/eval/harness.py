"""lm-evaluation-harness model type "rcd": generate-until tasks with SeqD or RCD decoding.

Importing this module registers "rcd" with lm-eval (which has no plugin discovery for
model types); `rcd lm-eval ...` does that and then runs lm-eval's own command line, so
`rcd lm-eval --model rcd --model_args pretrained=DIR,residual=entropy,... --tasks gsm8k`
works like `lm_eval`. `model_args` take the flags of `rcd eval` with underscores
(gen_length, block_length, threshold, steps, temperature, stop_at_eos, preset,
trust_remote_code, dtype, model_block_length, reference, res_temperature, res_init, ...); `residual=ALPHA`
turns RCD on with that alpha strategy (`residual=none`: SeqD). Decoding options come from
model_args, not from the task's generation kwargs; a task's `until` strings cut the text.

Loglikelihood requests (multiple-choice tasks) get the Monte-Carlo estimate of the masked
bound that LLaDA's evaluator reports (see `rcd.eval.likelihood`), with model_args `mc_num`
(128), `mc_batch_size` (32), `cfg` (0), `check_greedy` (false) and `seed`; each request's masks
come from its own seeded generator, so results do not depend on order or process count.
Perplexity (loglikelihood_rolling) tasks are refused.

Data-parallel: `accelerate launch -m rcd lm-eval ...` gives each process its share of the
requests (lm-eval's own distribution, through this model's rank/world_size/gather).
"""

from __future__ import annotations

import warnings

import lm_eval.models  # noqa: F401  (lm-eval adds its own model types only to an empty registry: before "rcd")
import torch
from accelerate import PartialState
from accelerate.utils import gather, gather_object
from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model
from tqdm.auto import tqdm

from ..config import dataclass_from_mapping
from ..decode import DecodeConfig
from ..models.adapter import DiffusionModel
from ..models.loading import LoadConfig
from ..residual import ResidualConfig
from .decoder import Decoder
from .likelihood import LikelihoodConfig, greedy_reproduces, mc_loglikelihood

ROLLING_REFUSED = (
    "the rcd model type answers generate_until and loglikelihood (multiple-choice) requests; "
    "loglikelihood_rolling (perplexity) tasks are not supported"
)


def _options(
    kwargs: dict,
) -> tuple[LoadConfig, DecodeConfig, ResidualConfig | None, LikelihoodConfig, str | None]:
    """model_args -> the configs of `rcd eval`'s flags (names with underscores) and the likelihood's."""
    options = dict(kwargs)
    try:
        likelihood = dataclass_from_mapping(LikelihoodConfig, options)
        decode = dataclass_from_mapping(DecodeConfig, options)
        options["block_length"] = options.pop("model_block_length", None)  # LoadConfig's: the model's block
        load = dataclass_from_mapping(LoadConfig, options)
        alpha = options.pop("residual", None)
        if alpha is not None and str(alpha).lower() not in ("none", "false", "off"):
            residual = dataclass_from_mapping(ResidualConfig, {"res_alpha": alpha, **options}, prefix="res_")
            options = {k: v for k, v in options.items() if not k.startswith("res_")}
        else:
            residual = None
        reference = options.pop("reference", None)
        if options:
            hint = (
                " (res_* options need residual=ALPHA)" if any(k.startswith("res_") for k in options) else ""
            )
            raise ValueError(f"unknown {sorted(options)}{hint}")
    except (TypeError, ValueError) as err:
        raise ValueError(f"bad rcd model_args: {err}") from err
    return load, decode, residual, likelihood, reference


@register_model("rcd")
class RcdLM(TemplateLM):
    def __init__(
        self, pretrained: str, batch_size: int | str = 1, max_batch_size=None, device=None, **kwargs
    ):
        super().__init__()
        self.state = PartialState(cpu=not torch.cuda.is_available())  # gloo process groups on CPUs
        self._rank, self._world_size = self.state.process_index, self.state.num_processes
        if device is None or self._world_size > 1:
            device = str(self.state.device)  # one device per process under accelerate launch
        kwargs = {k: v for k, v in {"device": _available(device), **kwargs}.items() if v is not None}
        load, decode, residual, self.likelihood, reference = _options(kwargs)
        self.decoder = Decoder.load(pretrained, load, decode, residual, reference)
        self.tokenizer = self.decoder.tokenizer
        self.batch_size = int(batch_size) if str(batch_size).isdigit() else 1

    @property
    def eot_token_id(self) -> int:
        return self.tokenizer.eos_token_id

    @property
    def tokenizer_name(self) -> str:
        return self.tokenizer.name_or_path.replace("/", "__")

    def apply_chat_template(
        self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True
    ) -> str:
        return self.tokenizer.apply_chat_template(
            chat_history, tokenize=False, add_generation_prompt=add_generation_prompt
        )

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs) -> list[int]:
        return self.tokenizer.encode(string, add_special_tokens=bool(add_special_tokens))

    @property
    def device(self) -> torch.device:
        return self.decoder.model.device

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        return gather(tensor) if self._world_size > 1 else tensor

    def gather_object(self, obj, dst: int = 0):
        return gather_object([obj]) if self._world_size > 1 else [obj]

    def barrier(self) -> None:
        self.state.wait_for_everyone()

    def _loglikelihood_tokens(
        self, requests, disable_tqdm: bool = False, **kwargs
    ) -> list[tuple[float, bool]]:
        model = DiffusionModel.wrap(self.decoder.model)
        config = self.likelihood
        results = []
        for (context, continuation), context_enc, continuation_enc in tqdm(
            requests, desc="rcd loglikelihood", disable=disable_tqdm
        ):
            generator = torch.Generator().manual_seed(config.seed)  # per request: order-independent
            ll, _ = mc_loglikelihood(model, list(context_enc), list(continuation_enc), config, generator)
            greedy = config.check_greedy and greedy_reproduces(
                model, list(context_enc), list(continuation_enc)
            )
            self.cache_hook.add_partial("loglikelihood", (context, continuation), (ll, greedy))
            results.append((ll, greedy))
        return results

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError(ROLLING_REFUSED)

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        results = []
        bar = tqdm(total=len(requests), desc="rcd generate_until", disable=disable_tqdm)
        for start in range(0, len(requests), self.batch_size):
            batch = requests[start : start + self.batch_size]
            texts, _ = self.decoder.complete([r.args[0] for r in batch])
            for request, text in zip(batch, texts):
                text = _cut(text, request.args[1].get("until"))
                self.cache_hook.add_partial("generate_until", request.args, text)
                results.append(text)
            bar.update(len(batch))
        bar.close()
        return results


def _available(device: str | None) -> str | None:
    """lm-eval's --device defaults to cuda; fall back to the CPU where there is none."""
    if device and str(device).startswith("cuda") and not torch.cuda.is_available():
        warnings.warn(f"device {device!r} is not available; running on cpu", stacklevel=3)
        return "cpu"
    return device


def _cut(text: str, until) -> str:
    """Text up to the earliest stop string."""
    stops = [until] if isinstance(until, str) else list(until or [])
    cuts = [text.find(s) for s in stops if s and s in text]
    return text[: min(cuts)] if cuts else text
