from .core import StandinConfig


class Fast_dLLM_QwenConfig(StandinConfig):  # noqa: N801 (the real class name)
    """Fast-dLLM v2's config (`configuration.py`): Qwen2 fields and the block size as `bd_size`."""

    model_type = "Fast_dLLM_Qwen"

    def __init__(self, bd_size=32, rope=True, **kwargs):
        self.bd_size = bd_size
        super().__init__(rope=rope, **kwargs)
