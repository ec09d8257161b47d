"""Remote modeling code written for transformers 4, loaded by transformers 5.

transformers 5's `from_pretrained` reads properties that `post_init()` sets
(`all_tied_weights_keys`, ...) and calls `tie_weights(missing_keys=..., recompute_mapping=...)`.
Remote code of the transformers-4 era (LLaDA's, seen in public copies of its modeling
file) neither calls `post_init()` from its `__init__` nor accepts those arguments in its
own `tie_weights()`. `adapt_remote_class` patches both on the loaded class, in place and
once; classes that already follow transformers 5 are left alone, and under transformers 4
nothing is patched.
"""

from __future__ import annotations

import functools
import inspect

import transformers

MARK = "_rcd_transformers5_compat"
TRANSFORMERS_MAJOR = int(transformers.__version__.split(".")[0])


def adapt_remote_class(cls: type) -> type:
    if getattr(cls, MARK, False) or TRANSFORMERS_MAJOR < 5:
        return cls
    original_init = cls.__init__

    @functools.wraps(original_init)
    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        if not hasattr(self, "all_tied_weights_keys"):  # set by post_init, which was skipped
            self.post_init()

    cls.__init__ = __init__
    tie = cls.tie_weights
    if not _accepts_keywords(tie):

        @functools.wraps(tie)
        def tie_weights(self, *args, **kwargs):
            return tie(self)

        cls.tie_weights = tie_weights
    setattr(cls, MARK, True)
    return cls


def _accepts_keywords(fn) -> bool:
    params = inspect.signature(fn).parameters.values()
    return any(p.kind is p.VAR_KEYWORD for p in params) or "recompute_mapping" in {p.name for p in params}
