"""mcunet at phone and GPU sizes (issue 15): 224x224 inputs and widths above 1 build, convert and cost."""

from __future__ import annotations

import numpy as np
import pytest

from tinynas.cost import estimate
from tinynas.hardware import load_profile
from tinynas.pipeline.constraints import CostCheck
from tinynas.space import Arch, get_space


def _wide(width: float, resolution: int) -> Arch:
    values: dict = {"width": width, "resolution": resolution, "head": True}
    for s, depth in enumerate((2, 3, 4, 3, 1), start=1):
        values[f"s{s}_depth"] = depth
        for b in range(1, 5):
            values[f"s{s}_b{b}_kernel"], values[f"s{s}_b{b}_expand"] = (5, 6) if b <= depth else (3, 3)
    return Arch.from_dict("mcunet", values)


def test_a_224_pixel_input_offers_resolutions_up_to_224_and_widths_up_to_1_5():
    space = get_space("mcunet", input_shape=(224, 224, 3), num_classes=1000)
    options = {d.name: d.options for d in space.decisions()}
    assert max(options["resolution"]) == 224 and {1.25, 1.5} <= set(options["width"])
    arch = _wide(1.5, 224)
    space.validate(arch)
    graph = space.graph(arch)
    assert graph.input_shape[1:] == (224, 224, 3)
    assert 480 in {op.attrs.get("filters") for op in graph.ops}  # the 320-channel head at 1.5x


def test_wide_networks_fit_phones_and_gpus_but_no_microcontroller():
    space = get_space("mcunet", input_shape=(224, 224, 3), num_classes=1000)
    arch = _wide(1.5, 224)
    cost = estimate(space.graph(arch), profile=load_profile("rpi4"))
    assert cost.macs > 300e6 and cost.params > 2e6  # MobileNetV2-1.4 class: ~0.6 GMACs, ~6 M params
    assert CostCheck(space=space, profile=load_profile("rtx-4090"))(arch)
    assert not CostCheck(space=space, profile=load_profile("nucleo-h743zi"))(arch)
    rng = np.random.default_rng(0)
    widths = {space.sample(rng)["width"] for _ in range(300)}
    assert {1.25, 1.5} <= widths


@pytest.mark.slow
def test_a_wide_arch_converts_to_int8_with_the_cost_models_size():
    """Keras builds a 1.25x network, and the int8 file is within 5 % of the flash estimate."""
    from tinynas.deploy.quantize import quantize_untrained

    space = get_space("mcunet", input_shape=(32, 32, 3), num_classes=10)
    arch = _wide(1.25, 32)
    graph = space.graph(arch)
    data = quantize_untrained(graph, seed=0, num_samples=4)
    cost = estimate(graph, profile=load_profile("rpi4"))
    assert abs(len(data) - cost.flash_bytes) / len(data) < 0.05
