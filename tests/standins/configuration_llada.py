from transformers import PretrainedConfig


class LLaDAConfig(PretrainedConfig):
    model_type = "llada"

    def __init__(
        self,
        vocab_size=64,
        d_model=32,
        n_layers=2,
        n_heads=4,
        max_sequence_length=256,
        mask_token_id=None,
        **kwargs,
    ):
        self.vocab_size, self.d_model, self.n_layers, self.n_heads = vocab_size, d_model, n_layers, n_heads
        self.max_sequence_length, self.mask_token_id = max_sequence_length, mask_token_id
        super().__init__(**kwargs)
