"""The demo's trace.png shades still-masked positions by the alpha fed back, or by confidence where alpha is flat."""

import numpy as np
import pytest
from matplotlib.axes import Axes

import rcd
from conftest import random_prompts
from rcd.eval.report import shaded_quantity, trace_plot


def decode_trace(model, residual):
    out = rcd.generate(
        model,
        random_prompts(1, 4),
        gen_length=8,
        block_length=8,
        steps=4,
        residual=residual,
        return_trace=True,
    )
    return out.trace


@pytest.fixture
def drawn(monkeypatch):
    """The arrays trace_plot hands to imshow, one per panel."""
    arrays = []
    imshow = Axes.imshow

    def recording(self, data, *args, **kw):
        arrays.append(np.array(data))
        return imshow(self, data, *args, **kw)

    monkeypatch.setattr(Axes, "imshow", recording)
    return arrays


def test_a_fixed_alpha_trace_is_shaded_by_confidence_not_flat(bidirectional, drawn, tmp_path):
    traces = {
        "seqd": decode_trace(bidirectional, None),
        "rcd": decode_trace(bidirectional, rcd.ResidualConfig(alpha="fixed", fixed_alpha=0.5)),
    }
    masked = np.concatenate([s.confidence[0].numpy() for s in traces["rcd"]])
    assert np.nanstd(masked) > 0.01  # the confidences vary, so a faithful picture must too
    trace_plot(traces, tmp_path / "trace.png")
    assert (tmp_path / "trace.png").read_bytes()[:4] == b"\x89PNG"
    assert [shaded_quantity(t) for t in traces.values()] == ["confidence", "confidence"]
    for shade in drawn:
        assert np.nanstd(shade) > 0.01  # not one flat colour
        assert np.nanmin(shade) >= 0 and np.nanmax(shade) <= 1


def test_an_entropy_alpha_trace_is_shaded_by_alpha(bidirectional, drawn, tmp_path):
    trace = decode_trace(bidirectional, rcd.ResidualConfig(init="self"))
    assert shaded_quantity(trace) == "alpha"
    trace_plot({"rcd": trace}, tmp_path / "trace.png")
    (shade,) = drawn
    fed = np.stack([s.alpha[0].numpy() for s in trace])
    np.testing.assert_allclose(shade, fed)  # one block: the picture is the alpha of every step
