"""LLaDA's conventions: `inputs_embeds` (passed on as input embeddings), a 2D mask applied
only when it holds a zero, an optional `attention_bias`, no position ids (0..L-1), no KV
cache, the embedding table at `model.transformer.wte`, an untied output layer; and the
transformers-4 era: `__init__` never calls `post_init()`, `tie_weights()` takes no arguments,
`use_cache` defaults to `config.use_cache`."""

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_llada import LLaDAConfig
from .core import Block, sdpa


class LLaDAModel(nn.Module):
    def __init__(self, config: LLaDAConfig):
        super().__init__()
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.d_model),
                wpe=nn.Embedding(config.max_sequence_length, config.d_model),
                blocks=nn.ModuleList(
                    Block(config.d_model, config.n_heads, config.n_heads) for _ in range(config.n_layers)
                ),
                ln_f=nn.LayerNorm(config.d_model),
                ff_out=nn.Linear(config.d_model, config.vocab_size, bias=False),
            )
        )

    def forward(self, input_ids=None, input_embeddings=None, attention_mask=None, attention_bias=None):
        t = self.transformer
        x = t.wte(input_ids) if input_embeddings is None else input_embeddings
        b, n, _ = x.shape
        x = x + t.wpe(torch.arange(n, device=x.device))[None]
        bias = None
        if attention_bias is not None:
            bias = attention_bias
            if bias.dtype == torch.bool:
                bias = torch.zeros(bias.shape, device=x.device).masked_fill(
                    ~bias, torch.finfo(torch.float32).min
                )
        if attention_mask is not None and 0.0 in attention_mask:
            pad = (1.0 - attention_mask.float())[:, None, None, :] * torch.finfo(torch.float32).min
            bias = pad if bias is None else (bias + pad).clamp_min(torch.finfo(torch.float32).min)
        mask = None if bias is None else bias.to(x.dtype)
        for block in t.blocks:
            x = block(x, lambda q, k, v: sdpa(q, k, v, mask))
        return t.ff_out(t.ln_f(x))


class LLaDAModelLM(PreTrainedModel):
    config_class = LLaDAConfig
    base_model_prefix = "model"

    def __init__(self, config: LLaDAConfig):
        super().__init__(config)
        self.model = LLaDAModel(config)

    def forward(
        self,
        input_ids=None,
        inputs_embeds=None,
        attention_mask=None,
        attention_bias=None,
        past_key_values=None,
        labels=None,
        use_cache=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
    ):
        if use_cache is None:
            use_cache = self.config.use_cache  # LLaDA's default; transformers 5 configs lack it
        if use_cache or past_key_values is not None:
            raise AssertionError("The kvcache is not supported for MDM.")
        logits = self.model(
            input_ids,
            input_embeddings=inputs_embeds,
            attention_mask=attention_mask,
            attention_bias=attention_bias,
        )
        return CausalLMOutputWithPast(logits=logits)

    def get_input_embeddings(self):
        return self.model.transformer.wte

    def set_input_embeddings(self, value):
        self.model.transformer.wte = value

    def tie_weights(self):
        pass  # the output layer is untied
