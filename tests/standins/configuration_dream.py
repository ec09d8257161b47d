from .core import StandinConfig


class DreamConfig(StandinConfig):
    model_type = "Dream"

    def __init__(self, rope=True, **kwargs):  # an own __init__ keeps transformers from regenerating one
        super().__init__(rope=rope, **kwargs)
