from .core import StandinConfig


class SDARConfig(StandinConfig):
    """SDAR keeps its block size in `block_size`, and sets no `pad_token_id` of its own."""

    model_type = "sdar"

    def __init__(self, rope=True, **kwargs):  # an own __init__ keeps transformers from regenerating one
        super().__init__(rope=rope, **kwargs)
