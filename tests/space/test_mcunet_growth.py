"""mcunet grown for the 14 KB-arena boards (issue 12): widths 0.1-0.2, downscaled resolutions, stages left out.

Old archs keep their ids and networks (pinned below, recorded before the growth); the new options
reach nucleo-l010rb (none fitted it before); their models build, convert and run in TFLite Micro
with the arena and flash the cost model predicts; and `tinynas space fit` picks a slice per board.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tinynas.cli.main import cli
from tinynas.hardware import load_profile
from tinynas.pipeline.constraints import CostCheck
from tinynas.space import Arch, get_space

sys.path.insert(0, str(Path(__file__).parent))
from test_space_ids_pinned import graph_digest  # noqa: E402

# (input shape, classes) -> [(decisions, id, number of ops, graph digest)]: decode([0...]), decode([last...])
# and three seeded samples per input, recorded with the code before the growth.
PINNED = [
    ((28, 28, 1), 10), [
        ({"head": False, "resolution": 28, "s1_b1_expand": 3, "s1_b1_kernel": 3, "s1_b2_expand": 3, "s1_b2_kernel": 3, "s1_b3_expand": 3, "s1_b3_kernel": 3, "s1_b4_expand": 3, "s1_b4_kernel": 3, "s1_depth": 1, "s2_b1_expand": 3, "s2_b1_kernel": 3, "s2_b2_expand": 3, "s2_b2_kernel": 3, "s2_b3_expand": 3, "s2_b3_kernel": 3, "s2_b4_expand": 3, "s2_b4_kernel": 3, "s2_depth": 1, "s3_b1_expand": 3, "s3_b1_kernel": 3, "s3_b2_expand": 3, "s3_b2_kernel": 3, "s3_b3_expand": 3, "s3_b3_kernel": 3, "s3_b4_expand": 3, "s3_b4_kernel": 3, "s3_depth": 1, "s4_b1_expand": 3, "s4_b1_kernel": 3, "s4_b2_expand": 3, "s4_b2_kernel": 3, "s4_b3_expand": 3, "s4_b3_kernel": 3, "s4_b4_expand": 3, "s4_b4_kernel": 3, "s4_depth": 1, "s5_b1_expand": 3, "s5_b1_kernel": 3, "s5_b2_expand": 3, "s5_b2_kernel": 3, "s5_b3_expand": 3, "s5_b3_kernel": 3, "s5_b4_expand": 3, "s5_b4_kernel": 3, "s5_depth": 1, "width": 0.25}, 'f5edc4155c70', 22, 'a114f085c0bf8d75'),
        ({"head": True, "resolution": 32, "s1_b1_expand": 6, "s1_b1_kernel": 7, "s1_b2_expand": 6, "s1_b2_kernel": 7, "s1_b3_expand": 6, "s1_b3_kernel": 7, "s1_b4_expand": 6, "s1_b4_kernel": 7, "s1_depth": 4, "s2_b1_expand": 6, "s2_b1_kernel": 7, "s2_b2_expand": 6, "s2_b2_kernel": 7, "s2_b3_expand": 6, "s2_b3_kernel": 7, "s2_b4_expand": 6, "s2_b4_kernel": 7, "s2_depth": 4, "s3_b1_expand": 6, "s3_b1_kernel": 7, "s3_b2_expand": 6, "s3_b2_kernel": 7, "s3_b3_expand": 6, "s3_b3_kernel": 7, "s3_b4_expand": 6, "s3_b4_kernel": 7, "s3_depth": 4, "s4_b1_expand": 6, "s4_b1_kernel": 7, "s4_b2_expand": 6, "s4_b2_kernel": 7, "s4_b3_expand": 6, "s4_b3_kernel": 7, "s4_b4_expand": 6, "s4_b4_kernel": 7, "s4_depth": 4, "s5_b1_expand": 6, "s5_b1_kernel": 7, "s5_b2_expand": 6, "s5_b2_kernel": 7, "s5_b3_expand": 6, "s5_b3_kernel": 7, "s5_b4_expand": 6, "s5_b4_kernel": 7, "s5_depth": 4, "width": 1.0}, '5a8ec4570e36', 82, 'd63a2a3baa29bd9e'),
        ({"head": True, "resolution": 28, "s1_b1_expand": 4, "s1_b1_kernel": 5, "s1_b2_expand": 3, "s1_b2_kernel": 7, "s1_b3_expand": 3, "s1_b3_kernel": 3, "s1_b4_expand": 3, "s1_b4_kernel": 3, "s1_depth": 2, "s2_b1_expand": 4, "s2_b1_kernel": 3, "s2_b2_expand": 6, "s2_b2_kernel": 3, "s2_b3_expand": 6, "s2_b3_kernel": 7, "s2_b4_expand": 3, "s2_b4_kernel": 3, "s2_depth": 3, "s3_b1_expand": 4, "s3_b1_kernel": 3, "s3_b2_expand": 4, "s3_b2_kernel": 5, "s3_b3_expand": 3, "s3_b3_kernel": 3, "s3_b4_expand": 3, "s3_b4_kernel": 3, "s3_depth": 2, "s4_b1_expand": 3, "s4_b1_kernel": 7, "s4_b2_expand": 4, "s4_b2_kernel": 7, "s4_b3_expand": 3, "s4_b3_kernel": 3, "s4_b4_expand": 3, "s4_b4_kernel": 3, "s4_depth": 2, "s5_b1_expand": 6, "s5_b1_kernel": 7, "s5_b2_expand": 3, "s5_b2_kernel": 3, "s5_b3_expand": 4, "s5_b3_kernel": 3, "s5_b4_expand": 3, "s5_b4_kernel": 3, "s5_depth": 3, "width": 0.25}, '93dc2ed6c066', 51, 'eace265580628c2f'),
        ({"head": True, "resolution": 28, "s1_b1_expand": 3, "s1_b1_kernel": 7, "s1_b2_expand": 6, "s1_b2_kernel": 5, "s1_b3_expand": 6, "s1_b3_kernel": 7, "s1_b4_expand": 3, "s1_b4_kernel": 3, "s1_depth": 3, "s2_b1_expand": 6, "s2_b1_kernel": 5, "s2_b2_expand": 3, "s2_b2_kernel": 3, "s2_b3_expand": 6, "s2_b3_kernel": 3, "s2_b4_expand": 3, "s2_b4_kernel": 7, "s2_depth": 4, "s3_b1_expand": 3, "s3_b1_kernel": 3, "s3_b2_expand": 6, "s3_b2_kernel": 7, "s3_b3_expand": 3, "s3_b3_kernel": 3, "s3_b4_expand": 3, "s3_b4_kernel": 3, "s3_depth": 2, "s4_b1_expand": 4, "s4_b1_kernel": 3, "s4_b2_expand": 3, "s4_b2_kernel": 3, "s4_b3_expand": 4, "s4_b3_kernel": 3, "s4_b4_expand": 6, "s4_b4_kernel": 5, "s4_depth": 4, "s5_b1_expand": 6, "s5_b1_kernel": 5, "s5_b2_expand": 6, "s5_b2_kernel": 5, "s5_b3_expand": 3, "s5_b3_kernel": 3, "s5_b4_expand": 3, "s5_b4_kernel": 3, "s5_depth": 2, "width": 1.0}, '4efac2c813ef', 62, '9a267a6b4657ee37'),
        ({"head": False, "resolution": 28, "s1_b1_expand": 4, "s1_b1_kernel": 3, "s1_b2_expand": 6, "s1_b2_kernel": 7, "s1_b3_expand": 3, "s1_b3_kernel": 7, "s1_b4_expand": 3, "s1_b4_kernel": 5, "s1_depth": 4, "s2_b1_expand": 3, "s2_b1_kernel": 7, "s2_b2_expand": 3, "s2_b2_kernel": 3, "s2_b3_expand": 3, "s2_b3_kernel": 3, "s2_b4_expand": 3, "s2_b4_kernel": 3, "s2_depth": 1, "s3_b1_expand": 3, "s3_b1_kernel": 7, "s3_b2_expand": 3, "s3_b2_kernel": 3, "s3_b3_expand": 3, "s3_b3_kernel": 3, "s3_b4_expand": 3, "s3_b4_kernel": 3, "s3_depth": 1, "s4_b1_expand": 4, "s4_b1_kernel": 3, "s4_b2_expand": 6, "s4_b2_kernel": 7, "s4_b3_expand": 3, "s4_b3_kernel": 3, "s4_b4_expand": 3, "s4_b4_kernel": 3, "s4_depth": 2, "s5_b1_expand": 6, "s5_b1_kernel": 7, "s5_b2_expand": 3, "s5_b2_kernel": 7, "s5_b3_expand": 6, "s5_b3_kernel": 5, "s5_b4_expand": 3, "s5_b4_kernel": 3, "s5_depth": 3, "width": 0.35}, 'e779770d88ac', 46, '9e3666b056637abd'),
    ],
    ((32, 32, 3), 10), [
        ({"head": False, "resolution": 32, "s1_b1_expand": 3, "s1_b1_kernel": 3, "s1_b2_expand": 3, "s1_b2_kernel": 3, "s1_b3_expand": 3, "s1_b3_kernel": 3, "s1_b4_expand": 3, "s1_b4_kernel": 3, "s1_depth": 1, "s2_b1_expand": 3, "s2_b1_kernel": 3, "s2_b2_expand": 3, "s2_b2_kernel": 3, "s2_b3_expand": 3, "s2_b3_kernel": 3, "s2_b4_expand": 3, "s2_b4_kernel": 3, "s2_depth": 1, "s3_b1_expand": 3, "s3_b1_kernel": 3, "s3_b2_expand": 3, "s3_b2_kernel": 3, "s3_b3_expand": 3, "s3_b3_kernel": 3, "s3_b4_expand": 3, "s3_b4_kernel": 3, "s3_depth": 1, "s4_b1_expand": 3, "s4_b1_kernel": 3, "s4_b2_expand": 3, "s4_b2_kernel": 3, "s4_b3_expand": 3, "s4_b3_kernel": 3, "s4_b4_expand": 3, "s4_b4_kernel": 3, "s4_depth": 1, "s5_b1_expand": 3, "s5_b1_kernel": 3, "s5_b2_expand": 3, "s5_b2_kernel": 3, "s5_b3_expand": 3, "s5_b3_kernel": 3, "s5_b4_expand": 3, "s5_b4_kernel": 3, "s5_depth": 1, "width": 0.25}, '4060bb479026', 22, '93122b0cf9e80c55'),
        ({"head": True, "resolution": 32, "s1_b1_expand": 6, "s1_b1_kernel": 7, "s1_b2_expand": 6, "s1_b2_kernel": 7, "s1_b3_expand": 6, "s1_b3_kernel": 7, "s1_b4_expand": 6, "s1_b4_kernel": 7, "s1_depth": 4, "s2_b1_expand": 6, "s2_b1_kernel": 7, "s2_b2_expand": 6, "s2_b2_kernel": 7, "s2_b3_expand": 6, "s2_b3_kernel": 7, "s2_b4_expand": 6, "s2_b4_kernel": 7, "s2_depth": 4, "s3_b1_expand": 6, "s3_b1_kernel": 7, "s3_b2_expand": 6, "s3_b2_kernel": 7, "s3_b3_expand": 6, "s3_b3_kernel": 7, "s3_b4_expand": 6, "s3_b4_kernel": 7, "s3_depth": 4, "s4_b1_expand": 6, "s4_b1_kernel": 7, "s4_b2_expand": 6, "s4_b2_kernel": 7, "s4_b3_expand": 6, "s4_b3_kernel": 7, "s4_b4_expand": 6, "s4_b4_kernel": 7, "s4_depth": 4, "s5_b1_expand": 6, "s5_b1_kernel": 7, "s5_b2_expand": 6, "s5_b2_kernel": 7, "s5_b3_expand": 6, "s5_b3_kernel": 7, "s5_b4_expand": 6, "s5_b4_kernel": 7, "s5_depth": 4, "width": 1.0}, '5a8ec4570e36', 82, '3cedae29a30af1ca'),
        ({"head": False, "resolution": 32, "s1_b1_expand": 4, "s1_b1_kernel": 5, "s1_b2_expand": 6, "s1_b2_kernel": 5, "s1_b3_expand": 4, "s1_b3_kernel": 3, "s1_b4_expand": 4, "s1_b4_kernel": 3, "s1_depth": 4, "s2_b1_expand": 3, "s2_b1_kernel": 5, "s2_b2_expand": 3, "s2_b2_kernel": 5, "s2_b3_expand": 6, "s2_b3_kernel": 7, "s2_b4_expand": 4, "s2_b4_kernel": 7, "s2_depth": 4, "s3_b1_expand": 3, "s3_b1_kernel": 5, "s3_b2_expand": 4, "s3_b2_kernel": 5, "s3_b3_expand": 6, "s3_b3_kernel": 5, "s3_b4_expand": 6, "s3_b4_kernel": 3, "s3_depth": 4, "s4_b1_expand": 6, "s4_b1_kernel": 5, "s4_b2_expand": 3, "s4_b2_kernel": 3, "s4_b3_expand": 3, "s4_b3_kernel": 3, "s4_b4_expand": 3, "s4_b4_kernel": 3, "s4_depth": 1, "s5_b1_expand": 6, "s5_b1_kernel": 5, "s5_b2_expand": 3, "s5_b2_kernel": 7, "s5_b3_expand": 3, "s5_b3_kernel": 3, "s5_b4_expand": 6, "s5_b4_kernel": 5, "s5_depth": 4, "width": 0.25}, 'c5bbf09c1700', 70, 'a96386d18ff85e2c'),
        ({"head": True, "resolution": 32, "s1_b1_expand": 4, "s1_b1_kernel": 7, "s1_b2_expand": 3, "s1_b2_kernel": 7, "s1_b3_expand": 3, "s1_b3_kernel": 3, "s1_b4_expand": 3, "s1_b4_kernel": 3, "s1_depth": 2, "s2_b1_expand": 6, "s2_b1_kernel": 3, "s2_b2_expand": 6, "s2_b2_kernel": 5, "s2_b3_expand": 3, "s2_b3_kernel": 3, "s2_b4_expand": 6, "s2_b4_kernel": 3, "s2_depth": 4, "s3_b1_expand": 4, "s3_b1_kernel": 3, "s3_b2_expand": 3, "s3_b2_kernel": 3, "s3_b3_expand": 6, "s3_b3_kernel": 7, "s3_b4_expand": 3, "s3_b4_kernel": 3, "s3_depth": 4, "s4_b1_expand": 6, "s4_b1_kernel": 7, "s4_b2_expand": 4, "s4_b2_kernel": 3, "s4_b3_expand": 3, "s4_b3_kernel": 3, "s4_b4_expand": 3, "s4_b4_kernel": 3, "s4_depth": 3, "s5_b1_expand": 4, "s5_b1_kernel": 7, "s5_b2_expand": 6, "s5_b2_kernel": 5, "s5_b3_expand": 3, "s5_b3_kernel": 3, "s5_b4_expand": 3, "s5_b4_kernel": 3, "s5_depth": 2, "width": 0.5}, 'fe66a5f13fbe', 62, '3092be0b1c00e68d'),
        ({"head": False, "resolution": 32, "s1_b1_expand": 3, "s1_b1_kernel": 3, "s1_b2_expand": 3, "s1_b2_kernel": 7, "s1_b3_expand": 3, "s1_b3_kernel": 3, "s1_b4_expand": 3, "s1_b4_kernel": 3, "s1_depth": 2, "s2_b1_expand": 3, "s2_b1_kernel": 5, "s2_b2_expand": 3, "s2_b2_kernel": 3, "s2_b3_expand": 3, "s2_b3_kernel": 3, "s2_b4_expand": 3, "s2_b4_kernel": 3, "s2_depth": 1, "s3_b1_expand": 3, "s3_b1_kernel": 3, "s3_b2_expand": 6, "s3_b2_kernel": 3, "s3_b3_expand": 4, "s3_b3_kernel": 3, "s3_b4_expand": 3, "s3_b4_kernel": 3, "s3_depth": 4, "s4_b1_expand": 4, "s4_b1_kernel": 3, "s4_b2_expand": 3, "s4_b2_kernel": 5, "s4_b3_expand": 6, "s4_b3_kernel": 5, "s4_b4_expand": 3, "s4_b4_kernel": 7, "s4_depth": 4, "s5_b1_expand": 3, "s5_b1_kernel": 3, "s5_b2_expand": 6, "s5_b2_kernel": 5, "s5_b3_expand": 6, "s5_b3_kernel": 7, "s5_b4_expand": 4, "s5_b4_kernel": 3, "s5_depth": 4, "width": 1.0}, '137325920a73', 61, '6f1ff21f88a7ffe3'),
    ],
    ((40, 1), 10), [
        ({"head": False, "resolution": 40, "s1_b1_expand": 3, "s1_b1_kernel": 3, "s1_b2_expand": 3, "s1_b2_kernel": 3, "s1_b3_expand": 3, "s1_b3_kernel": 3, "s1_b4_expand": 3, "s1_b4_kernel": 3, "s1_depth": 1, "s2_b1_expand": 3, "s2_b1_kernel": 3, "s2_b2_expand": 3, "s2_b2_kernel": 3, "s2_b3_expand": 3, "s2_b3_kernel": 3, "s2_b4_expand": 3, "s2_b4_kernel": 3, "s2_depth": 1, "s3_b1_expand": 3, "s3_b1_kernel": 3, "s3_b2_expand": 3, "s3_b2_kernel": 3, "s3_b3_expand": 3, "s3_b3_kernel": 3, "s3_b4_expand": 3, "s3_b4_kernel": 3, "s3_depth": 1, "s4_b1_expand": 3, "s4_b1_kernel": 3, "s4_b2_expand": 3, "s4_b2_kernel": 3, "s4_b3_expand": 3, "s4_b3_kernel": 3, "s4_b4_expand": 3, "s4_b4_kernel": 3, "s4_depth": 1, "s5_b1_expand": 3, "s5_b1_kernel": 3, "s5_b2_expand": 3, "s5_b2_kernel": 3, "s5_b3_expand": 3, "s5_b3_kernel": 3, "s5_b4_expand": 3, "s5_b4_kernel": 3, "s5_depth": 1, "width": 0.25}, '30895dd4dcbb', 23, '1d98bbf52de75ce9'),
        ({"head": True, "resolution": 40, "s1_b1_expand": 6, "s1_b1_kernel": 7, "s1_b2_expand": 6, "s1_b2_kernel": 7, "s1_b3_expand": 6, "s1_b3_kernel": 7, "s1_b4_expand": 6, "s1_b4_kernel": 7, "s1_depth": 4, "s2_b1_expand": 6, "s2_b1_kernel": 7, "s2_b2_expand": 6, "s2_b2_kernel": 7, "s2_b3_expand": 6, "s2_b3_kernel": 7, "s2_b4_expand": 6, "s2_b4_kernel": 7, "s2_depth": 4, "s3_b1_expand": 6, "s3_b1_kernel": 7, "s3_b2_expand": 6, "s3_b2_kernel": 7, "s3_b3_expand": 6, "s3_b3_kernel": 7, "s3_b4_expand": 6, "s3_b4_kernel": 7, "s3_depth": 4, "s4_b1_expand": 6, "s4_b1_kernel": 7, "s4_b2_expand": 6, "s4_b2_kernel": 7, "s4_b3_expand": 6, "s4_b3_kernel": 7, "s4_b4_expand": 6, "s4_b4_kernel": 7, "s4_depth": 4, "s5_b1_expand": 6, "s5_b1_kernel": 7, "s5_b2_expand": 6, "s5_b2_kernel": 7, "s5_b3_expand": 6, "s5_b3_kernel": 7, "s5_b4_expand": 6, "s5_b4_kernel": 7, "s5_depth": 4, "width": 1.0}, 'db52bf94a8ab', 83, '3baf5cee3fa72023'),
        ({"head": False, "resolution": 40, "s1_b1_expand": 4, "s1_b1_kernel": 5, "s1_b2_expand": 6, "s1_b2_kernel": 5, "s1_b3_expand": 4, "s1_b3_kernel": 3, "s1_b4_expand": 4, "s1_b4_kernel": 3, "s1_depth": 4, "s2_b1_expand": 3, "s2_b1_kernel": 5, "s2_b2_expand": 3, "s2_b2_kernel": 5, "s2_b3_expand": 6, "s2_b3_kernel": 7, "s2_b4_expand": 4, "s2_b4_kernel": 7, "s2_depth": 4, "s3_b1_expand": 3, "s3_b1_kernel": 5, "s3_b2_expand": 4, "s3_b2_kernel": 5, "s3_b3_expand": 6, "s3_b3_kernel": 5, "s3_b4_expand": 6, "s3_b4_kernel": 3, "s3_depth": 4, "s4_b1_expand": 6, "s4_b1_kernel": 5, "s4_b2_expand": 3, "s4_b2_kernel": 3, "s4_b3_expand": 3, "s4_b3_kernel": 3, "s4_b4_expand": 3, "s4_b4_kernel": 3, "s4_depth": 1, "s5_b1_expand": 6, "s5_b1_kernel": 5, "s5_b2_expand": 3, "s5_b2_kernel": 7, "s5_b3_expand": 3, "s5_b3_kernel": 3, "s5_b4_expand": 6, "s5_b4_kernel": 5, "s5_depth": 4, "width": 0.25}, 'dc5bb14369d3', 71, '5d84ca130bb87eba'),
        ({"head": True, "resolution": 40, "s1_b1_expand": 4, "s1_b1_kernel": 7, "s1_b2_expand": 3, "s1_b2_kernel": 7, "s1_b3_expand": 3, "s1_b3_kernel": 3, "s1_b4_expand": 3, "s1_b4_kernel": 3, "s1_depth": 2, "s2_b1_expand": 6, "s2_b1_kernel": 3, "s2_b2_expand": 6, "s2_b2_kernel": 5, "s2_b3_expand": 3, "s2_b3_kernel": 3, "s2_b4_expand": 6, "s2_b4_kernel": 3, "s2_depth": 4, "s3_b1_expand": 4, "s3_b1_kernel": 3, "s3_b2_expand": 3, "s3_b2_kernel": 3, "s3_b3_expand": 6, "s3_b3_kernel": 7, "s3_b4_expand": 3, "s3_b4_kernel": 3, "s3_depth": 4, "s4_b1_expand": 6, "s4_b1_kernel": 7, "s4_b2_expand": 4, "s4_b2_kernel": 3, "s4_b3_expand": 3, "s4_b3_kernel": 3, "s4_b4_expand": 3, "s4_b4_kernel": 3, "s4_depth": 3, "s5_b1_expand": 4, "s5_b1_kernel": 7, "s5_b2_expand": 6, "s5_b2_kernel": 5, "s5_b3_expand": 3, "s5_b3_kernel": 3, "s5_b4_expand": 3, "s5_b4_kernel": 3, "s5_depth": 2, "width": 0.5}, 'c40e993b7031', 63, '117428154ff72579'),
        ({"head": False, "resolution": 40, "s1_b1_expand": 3, "s1_b1_kernel": 3, "s1_b2_expand": 3, "s1_b2_kernel": 7, "s1_b3_expand": 3, "s1_b3_kernel": 3, "s1_b4_expand": 3, "s1_b4_kernel": 3, "s1_depth": 2, "s2_b1_expand": 3, "s2_b1_kernel": 5, "s2_b2_expand": 3, "s2_b2_kernel": 3, "s2_b3_expand": 3, "s2_b3_kernel": 3, "s2_b4_expand": 3, "s2_b4_kernel": 3, "s2_depth": 1, "s3_b1_expand": 3, "s3_b1_kernel": 3, "s3_b2_expand": 6, "s3_b2_kernel": 3, "s3_b3_expand": 4, "s3_b3_kernel": 3, "s3_b4_expand": 3, "s3_b4_kernel": 3, "s3_depth": 4, "s4_b1_expand": 4, "s4_b1_kernel": 3, "s4_b2_expand": 3, "s4_b2_kernel": 5, "s4_b3_expand": 6, "s4_b3_kernel": 5, "s4_b4_expand": 3, "s4_b4_kernel": 7, "s4_depth": 4, "s5_b1_expand": 3, "s5_b1_kernel": 3, "s5_b2_expand": 6, "s5_b2_kernel": 5, "s5_b3_expand": 6, "s5_b3_kernel": 7, "s5_b4_expand": 4, "s5_b4_kernel": 3, "s5_depth": 4, "width": 1.0}, '147c6cab4e8d', 62, 'a12e661bc6b7159f'),
    ],
    ((96, 96, 3), 2), [
        ({"head": False, "resolution": 32, "s1_b1_expand": 3, "s1_b1_kernel": 3, "s1_b2_expand": 3, "s1_b2_kernel": 3, "s1_b3_expand": 3, "s1_b3_kernel": 3, "s1_b4_expand": 3, "s1_b4_kernel": 3, "s1_depth": 1, "s2_b1_expand": 3, "s2_b1_kernel": 3, "s2_b2_expand": 3, "s2_b2_kernel": 3, "s2_b3_expand": 3, "s2_b3_kernel": 3, "s2_b4_expand": 3, "s2_b4_kernel": 3, "s2_depth": 1, "s3_b1_expand": 3, "s3_b1_kernel": 3, "s3_b2_expand": 3, "s3_b2_kernel": 3, "s3_b3_expand": 3, "s3_b3_kernel": 3, "s3_b4_expand": 3, "s3_b4_kernel": 3, "s3_depth": 1, "s4_b1_expand": 3, "s4_b1_kernel": 3, "s4_b2_expand": 3, "s4_b2_kernel": 3, "s4_b3_expand": 3, "s4_b3_kernel": 3, "s4_b4_expand": 3, "s4_b4_kernel": 3, "s4_depth": 1, "s5_b1_expand": 3, "s5_b1_kernel": 3, "s5_b2_expand": 3, "s5_b2_kernel": 3, "s5_b3_expand": 3, "s5_b3_kernel": 3, "s5_b4_expand": 3, "s5_b4_kernel": 3, "s5_depth": 1, "width": 0.25}, '4060bb479026', 22, 'e566393c92d4eb0d'),
        ({"head": True, "resolution": 96, "s1_b1_expand": 6, "s1_b1_kernel": 7, "s1_b2_expand": 6, "s1_b2_kernel": 7, "s1_b3_expand": 6, "s1_b3_kernel": 7, "s1_b4_expand": 6, "s1_b4_kernel": 7, "s1_depth": 4, "s2_b1_expand": 6, "s2_b1_kernel": 7, "s2_b2_expand": 6, "s2_b2_kernel": 7, "s2_b3_expand": 6, "s2_b3_kernel": 7, "s2_b4_expand": 6, "s2_b4_kernel": 7, "s2_depth": 4, "s3_b1_expand": 6, "s3_b1_kernel": 7, "s3_b2_expand": 6, "s3_b2_kernel": 7, "s3_b3_expand": 6, "s3_b3_kernel": 7, "s3_b4_expand": 6, "s3_b4_kernel": 7, "s3_depth": 4, "s4_b1_expand": 6, "s4_b1_kernel": 7, "s4_b2_expand": 6, "s4_b2_kernel": 7, "s4_b3_expand": 6, "s4_b3_kernel": 7, "s4_b4_expand": 6, "s4_b4_kernel": 7, "s4_depth": 4, "s5_b1_expand": 6, "s5_b1_kernel": 7, "s5_b2_expand": 6, "s5_b2_kernel": 7, "s5_b3_expand": 6, "s5_b3_kernel": 7, "s5_b4_expand": 6, "s5_b4_kernel": 7, "s5_depth": 4, "width": 1.0}, 'd474e5e82126', 82, '974687adff14532f'),
        ({"head": True, "resolution": 32, "s1_b1_expand": 4, "s1_b1_kernel": 5, "s1_b2_expand": 3, "s1_b2_kernel": 7, "s1_b3_expand": 3, "s1_b3_kernel": 3, "s1_b4_expand": 3, "s1_b4_kernel": 3, "s1_depth": 2, "s2_b1_expand": 4, "s2_b1_kernel": 3, "s2_b2_expand": 6, "s2_b2_kernel": 3, "s2_b3_expand": 6, "s2_b3_kernel": 7, "s2_b4_expand": 3, "s2_b4_kernel": 3, "s2_depth": 3, "s3_b1_expand": 4, "s3_b1_kernel": 3, "s3_b2_expand": 4, "s3_b2_kernel": 5, "s3_b3_expand": 3, "s3_b3_kernel": 3, "s3_b4_expand": 3, "s3_b4_kernel": 3, "s3_depth": 2, "s4_b1_expand": 3, "s4_b1_kernel": 7, "s4_b2_expand": 4, "s4_b2_kernel": 7, "s4_b3_expand": 3, "s4_b3_kernel": 3, "s4_b4_expand": 3, "s4_b4_kernel": 3, "s4_depth": 2, "s5_b1_expand": 6, "s5_b1_kernel": 7, "s5_b2_expand": 3, "s5_b2_kernel": 3, "s5_b3_expand": 4, "s5_b3_kernel": 3, "s5_b4_expand": 3, "s5_b4_kernel": 3, "s5_depth": 3, "width": 0.25}, 'de239d83aa3c', 51, '8ababb04b46cc618'),
        ({"head": True, "resolution": 48, "s1_b1_expand": 3, "s1_b1_kernel": 7, "s1_b2_expand": 6, "s1_b2_kernel": 5, "s1_b3_expand": 6, "s1_b3_kernel": 7, "s1_b4_expand": 3, "s1_b4_kernel": 3, "s1_depth": 3, "s2_b1_expand": 6, "s2_b1_kernel": 5, "s2_b2_expand": 3, "s2_b2_kernel": 3, "s2_b3_expand": 6, "s2_b3_kernel": 3, "s2_b4_expand": 3, "s2_b4_kernel": 7, "s2_depth": 4, "s3_b1_expand": 3, "s3_b1_kernel": 3, "s3_b2_expand": 6, "s3_b2_kernel": 7, "s3_b3_expand": 3, "s3_b3_kernel": 3, "s3_b4_expand": 3, "s3_b4_kernel": 3, "s3_depth": 2, "s4_b1_expand": 4, "s4_b1_kernel": 3, "s4_b2_expand": 3, "s4_b2_kernel": 3, "s4_b3_expand": 4, "s4_b3_kernel": 3, "s4_b4_expand": 6, "s4_b4_kernel": 5, "s4_depth": 4, "s5_b1_expand": 6, "s5_b1_kernel": 5, "s5_b2_expand": 6, "s5_b2_kernel": 5, "s5_b3_expand": 3, "s5_b3_kernel": 3, "s5_b4_expand": 3, "s5_b4_kernel": 3, "s5_depth": 2, "width": 1.0}, '17945229b221', 62, '2d40f42e7e3c9374'),
        ({"head": False, "resolution": 32, "s1_b1_expand": 4, "s1_b1_kernel": 3, "s1_b2_expand": 6, "s1_b2_kernel": 7, "s1_b3_expand": 3, "s1_b3_kernel": 7, "s1_b4_expand": 3, "s1_b4_kernel": 5, "s1_depth": 4, "s2_b1_expand": 3, "s2_b1_kernel": 7, "s2_b2_expand": 3, "s2_b2_kernel": 3, "s2_b3_expand": 3, "s2_b3_kernel": 3, "s2_b4_expand": 3, "s2_b4_kernel": 3, "s2_depth": 1, "s3_b1_expand": 3, "s3_b1_kernel": 7, "s3_b2_expand": 3, "s3_b2_kernel": 3, "s3_b3_expand": 3, "s3_b3_kernel": 3, "s3_b4_expand": 3, "s3_b4_kernel": 3, "s3_depth": 1, "s4_b1_expand": 4, "s4_b1_kernel": 3, "s4_b2_expand": 6, "s4_b2_kernel": 7, "s4_b3_expand": 3, "s4_b3_kernel": 3, "s4_b4_expand": 3, "s4_b4_kernel": 3, "s4_depth": 2, "s5_b1_expand": 6, "s5_b1_kernel": 7, "s5_b2_expand": 3, "s5_b2_kernel": 7, "s5_b3_expand": 6, "s5_b3_kernel": 5, "s5_b4_expand": 3, "s5_b4_kernel": 3, "s5_depth": 3, "width": 0.35}, '967cc2f638e7', 46, '7cd69a5e1288c234'),
    ],
]


def _pins():
    for i in range(0, len(PINNED), 2):
        (shape, classes), rows = PINNED[i], PINNED[i + 1]
        for decisions, arch_id, n_ops, digest in rows:
            yield shape, classes, decisions, arch_id, n_ops, digest


@pytest.mark.parametrize("shape, classes, decisions, arch_id, n_ops, digest", list(_pins()))
def test_old_archs_keep_their_ids_and_networks(shape, classes, decisions, arch_id, n_ops, digest):
    space = get_space("mcunet", input_shape=shape, num_classes=classes)
    arch = Arch.from_dict("mcunet", decisions)
    space.validate(arch)
    graph = space.graph(arch)
    assert (arch.id, len(graph.ops), graph_digest(graph)) == (arch_id, n_ops, digest)


def tiny(width: float, resolution: int, depths: tuple[int, ...], head: bool = False) -> dict:
    """A canonical mcunet decision dict: k3 e3 blocks, the given width, resolution and stage depths."""
    values: dict = {"width": width, "resolution": resolution, "head": head}
    for s, depth in enumerate(depths, start=1):
        values[f"s{s}_depth"] = depth
        for b in range(1, 5):
            values[f"s{s}_b{b}_kernel"] = 3
            values[f"s{s}_b{b}_expand"] = 3
    return values


NEW = [tiny(0.1, 12, (1, 0, 1, 0, 1)), tiny(0.15, 20, (2, 1, 0, 1, 0)), tiny(0.2, 16, (1, 1, 1, 1, 0), head=True),
       tiny(0.25, 24, (0, 0, 0, 0, 0))]
NEW_IDS = ["w0.1-r12", "w0.15-r20", "w0.2-r16-head", "w0.25-r24-no-stages"]


def test_the_tiny_board_has_many_feasible_archs():
    space = get_space("mcunet", input_shape=(28, 28, 1), num_classes=10)
    check = CostCheck(space=space, profile=load_profile("nucleo-l010rb"))
    rng = np.random.default_rng(0)
    fits = sum(check(space.sample(rng)) for _ in range(1500))
    assert fits >= 15, fits  # about 2.4 % of uniform samples (scripts/bench_space_feasible.py); none before
    assert all(check(Arch.from_dict("mcunet", d)) for d in NEW[:2])


@pytest.mark.parametrize("decisions", NEW, ids=NEW_IDS)
def test_new_archs_are_canonical_and_narrow(decisions):
    space = get_space("mcunet", input_shape=(28, 28, 1), num_classes=10)
    arch = Arch.from_dict("mcunet", decisions)
    space.validate(arch)
    assert space.canonical(arch) == arch
    graph = space.graph(arch)
    assert graph.input_shape[1:3] == (decisions["resolution"],) * 2
    convs = [op for op in graph.ops if op.kind == "CONV_2D"]
    if decisions["width"] < 0.25:  # channels in multiples of 4, down to 4
        assert all(op.attrs["filters"] % 4 == 0 for op in convs) and min(op.attrs["filters"] for op in convs) == 4
    assert space.summary(arch).count("|") == 4


@pytest.mark.slow
@pytest.mark.parametrize("decisions", NEW, ids=NEW_IDS)
def test_new_archs_run_in_tflm_as_the_cost_model_says(decisions):
    """Keras shapes match the Graph, and the int8 model's TFLM arena and file size are within 5 % of the cost model."""
    from tinynas.cost import estimate
    from tinynas.deploy.arena import measure_arena_bytes
    from tinynas.deploy.flatbuffer import strip_tensor_names
    from tinynas.deploy.quantize import quantize_untrained
    from tinynas.space.keras_builder import build_keras_model

    graph = get_space("mcunet", input_shape=(28, 28, 1), num_classes=10).graph(Arch.from_dict("mcunet", decisions))
    model = build_keras_model(graph, seed=0)
    for op in graph.ops:
        assert tuple(model.get_layer(op.outputs[0]).output.shape[1:]) == graph.tensor(op.outputs[0]).shape[1:]
    data, _ = strip_tensor_names(quantize_untrained(graph, seed=3, num_samples=8))  # as deploy writes it
    cost, real_arena = estimate(graph), measure_arena_bytes(data)
    assert abs(cost.arena_bytes - real_arena) <= 0.05 * real_arena, (cost.arena_bytes, real_arena)
    assert abs(cost.flash_bytes - len(data)) <= 0.05 * len(data), (cost.flash_bytes, len(data))


def test_space_fit_picks_a_slice_that_fits_the_tiny_board():
    args = ["space", "fit", "--profile", "nucleo-l010rb", "--input-shape", "28,28,1", "--samples", "30", "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    fit = json.loads(result.output)
    assert fit["decisions"] == ["width", "resolution"]
    assert len(fit["slices"]) == 10 * 6  # widths x resolutions at 28x28
    best = fit["best"]
    assert best["feasible"] > 0 and best["fit_fraction"] >= 0.1
    eligible = [s for s in fit["slices"] if s["fit_fraction"] >= 0.1]
    assert best["macs_mean"] == max(s["macs_mean"] for s in eligible)
    big = {(s["values"]["width"], s["values"]["resolution"]): s for s in fit["slices"]}[(1.0, 28)]
    assert big["feasible"] == 0  # the full-width, full-resolution slice cannot fit 14 KB
    table = CliRunner().invoke(cli, args[:-1])
    assert table.exit_code == 0 and "<- best" in table.output


def test_space_fit_on_a_roomy_board_prefers_bigger_networks():
    from tinynas.pipeline.space_fit import fit_space

    space = get_space("mcunet", input_shape=(28, 28, 1), num_classes=10)
    tight = fit_space(space=space, profile=load_profile("nucleo-l010rb"), samples=20)
    roomy = fit_space(space=space, profile=load_profile("nucleo-h743zi"), samples=20)
    assert roomy.slices[roomy.best].macs_mean > 3 * tight.slices[tight.best].macs_mean


@pytest.mark.parametrize("extra, code", [(["--samples", "0"], 2), (["--profile", "no-such-board"], 1)])
def test_space_fit_bad_input(extra, code):
    args = ["space", "fit", "--profile", "nucleo-l010rb", "--input-shape", "28,28,1", *extra]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == code, result.output
