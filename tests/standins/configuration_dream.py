from .core import StandinConfig


class DreamConfig(StandinConfig):
    model_type = "Dream"

    def __init__(self, **kwargs):  # an own __init__ keeps transformers from regenerating one
        super().__init__(**kwargs)
