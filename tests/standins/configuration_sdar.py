from .core import StandinConfig


class SDARConfig(StandinConfig):
    model_type = "sdar"

    def __init__(self, **kwargs):  # an own __init__ keeps transformers from regenerating one
        super().__init__(**kwargs)
