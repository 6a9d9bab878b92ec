"""Archs of dscnn and nanonas written before the spaces grew (issue 11) keep their ids and networks.

Journals, caches, arch files and tabulated benchmarks name archs by ``Arch.id``, a hash
of the space name and every decision. Growing a space by adding options to its existing
decisions keeps every old arch's id; this file pins archs recorded with the code before
the growth (first and last options, DS-CNN-S, seeded samples): each must still be in the
space, have the same id, and build the same Graph (op kinds, output shapes, weight shapes,
strides, padding and activations, compared by digest).
"""

from __future__ import annotations

import hashlib
import json

import pytest

from tinynas.space import Arch, get_space
from tinynas.space.graph import Graph


def graph_digest(graph: Graph) -> str:
    """16 hex digits over each op's kind, output shape, constant operand shapes, stride, padding, activation."""
    rows = [[op.kind, list(graph.tensor(op.outputs[0]).shape),
             [list(graph.tensor(n).shape) for n in op.inputs if graph.tensor(n).constant],
             [list(op.attrs.get("stride", ())), op.attrs.get("padding"), op.attrs.get("activation")]]
            for op in graph.ops]
    return hashlib.sha1(json.dumps(rows).encode()).hexdigest()[:16]


# (space, input shape, classes) -> [(decisions, id, number of ops, graph digest)], recorded before the growth
PINNED = [
    (("dscnn", (49, 10, 1), 12), [
        ({"blocks": 1, "channels": 16, "stem_kernel": "3x3", "stem_stride": "1x1"},
         "3747f6b92ebb", 6, "c042dbca673ece7f"),
        ({"blocks": 6, "channels": 276, "stem_kernel": "10x4", "stem_stride": "2x2"},
         "90eb88a7a525", 16, "3275e088b07c3e49"),
        ({"blocks": 4, "channels": 64, "stem_kernel": "10x4", "stem_stride": "2x2"},
         "3eec3024072b", 12, "a6bd90414ab7223c"),
        ({"blocks": 1, "channels": 24, "stem_kernel": "10x4", "stem_stride": "2x1"},
         "57cb65564f53", 6, "54e5ccbfeafa7f27"),
        ({"blocks": 4, "channels": 96, "stem_kernel": "10x4", "stem_stride": "1x1"},
         "8b6fb7261af1", 12, "274d67db4a26cee0"),
        ({"blocks": 3, "channels": 24, "stem_kernel": "5x5", "stem_stride": "2x2"},
         "2fc512bfdbc1", 10, "29b10dab57fa6439"),
    ]),
    (("dscnn", (28, 28, 1), 10), [
        ({"blocks": 1, "channels": 16, "stem_kernel": "3x3", "stem_stride": "1x1"},
         "3747f6b92ebb", 6, "231296c2c819ee11"),
        ({"blocks": 6, "channels": 276, "stem_kernel": "10x4", "stem_stride": "2x2"},
         "90eb88a7a525", 16, "9e58fe2429091693"),
        ({"blocks": 1, "channels": 24, "stem_kernel": "10x4", "stem_stride": "2x1"},
         "57cb65564f53", 6, "c619afdeced6be0b"),
        ({"blocks": 4, "channels": 96, "stem_kernel": "10x4", "stem_stride": "1x1"},
         "8b6fb7261af1", 12, "d0e97045bac64827"),
        ({"blocks": 3, "channels": 24, "stem_kernel": "5x5", "stem_stride": "2x2"},
         "2fc512bfdbc1", 10, "4ae3059120271acb"),
        ({"blocks": 4, "channels": 16, "stem_kernel": "5x5", "stem_stride": "1x1"},
         "b362eaaebd79", 12, "f74b87853c781ecb"),
    ]),
    (("dscnn", (40, 1), 10), [
        ({"blocks": 1, "channels": 16, "stem_kernel": "1x3", "stem_stride": "1x1"},
         "798bea20c5d0", 7, "3068b77e52b1ad0f"),
        ({"blocks": 6, "channels": 276, "stem_kernel": "1x9", "stem_stride": "1x2"},
         "113c5ea7bfe5", 17, "02a5c5a3de6f1322"),
        ({"blocks": 1, "channels": 24, "stem_kernel": "1x9", "stem_stride": "1x1"},
         "a420f4a61c87", 7, "b6a07b674f6206eb"),
        ({"blocks": 4, "channels": 96, "stem_kernel": "1x9", "stem_stride": "1x1"},
         "792399ce8992", 13, "0f7e74b0cbdb016e"),
        ({"blocks": 3, "channels": 24, "stem_kernel": "1x5", "stem_stride": "1x2"},
         "53df6e0250c8", 11, "db139da69f32b6ef"),
        ({"blocks": 4, "channels": 16, "stem_kernel": "1x5", "stem_stride": "1x1"},
         "03c62ae890fc", 13, "e9e5b8c5011550d6"),
    ]),
    (("nanonas", (28, 28, 1), 10), [
        ({"k": 1, "c": 0}, "5a528bbe727d", 4, "2e754c390c5b9202"),
        ({"k": 32, "c": 4}, "07b713a60abc", 12, "6b9bd67f8a874805"),
        ({"k": 5, "c": 0}, "d9e71c398bec", 4, "1b1db95195e6ae1e"),
        ({"k": 26, "c": 2}, "685e1c9cff25", 8, "f45ba43d8e3c6773"),
        ({"k": 19, "c": 3}, "bed67523ce73", 10, "e6196b00506d5ad5"),
        ({"k": 23, "c": 0}, "3944f7c532b2", 4, "212ffb90a39044b0"),
    ]),
    (("nanonas", (8, 8, 1), 10), [
        ({"k": 1, "c": 0}, "5a528bbe727d", 4, "cf42800fb4bbba15"),
        ({"k": 32, "c": 3}, "4274d1224f03", 10, "a86f58b435cb5943"),
        ({"k": 5, "c": 0}, "d9e71c398bec", 4, "50c0c3b728cab143"),
        ({"k": 26, "c": 1}, "37adc6d3381f", 6, "aa81167aef7e3184"),
        ({"k": 19, "c": 2}, "83d369292527", 8, "df518d1484f351df"),
        ({"k": 23, "c": 0}, "3944f7c532b2", 4, "2dc96db1f056f6e7"),
    ]),
    (("nanonas", (40, 1), 10), [
        ({"k": 1, "c": 0}, "5a528bbe727d", 5, "abb1a82de399b972"),
        ({"k": 32, "c": 5}, "a8a155c6b214", 15, "81f1510ec5f6f395"),
        ({"k": 5, "c": 0}, "d9e71c398bec", 5, "2c53fad339ca67c3"),
        ({"k": 26, "c": 2}, "685e1c9cff25", 9, "02c75c31efd0cba2"),
        ({"k": 19, "c": 3}, "bed67523ce73", 11, "697173d3b52c8888"),
        ({"k": 23, "c": 0}, "3944f7c532b2", 5, "2ac0bb15f47bc975"),
    ]),
]

CASES = [(space, shape, classes, decisions, arch_id, n_ops, digest)
         for (space, shape, classes), rows in PINNED for decisions, arch_id, n_ops, digest in rows]


@pytest.mark.parametrize("space_name, shape, classes, decisions, arch_id, n_ops, digest", CASES,
                         ids=[f"{c[0]}-{'x'.join(map(str, c[1]))}-{c[4]}" for c in CASES])
def test_old_arch_keeps_its_id_and_network(space_name, shape, classes, decisions, arch_id, n_ops, digest):
    space = get_space(space_name, input_shape=shape, num_classes=classes)
    arch = Arch.from_dict(space_name, decisions)
    space.validate(arch)
    assert space.canonical(arch) == arch
    assert arch.id == arch_id
    assert space.decode(space.encode(arch)).id == arch_id
    graph = space.graph(arch)
    assert len(graph.ops) == n_ops
    assert graph_digest(graph) == digest


def test_digest_sees_a_changed_network():
    """The digest is not blind: a different arch of the same op count gives a different digest."""
    space = get_space("nanonas", input_shape=(28, 28, 1), num_classes=10)
    a = space.graph(Arch.from_dict("nanonas", {"k": 26, "c": 2}))
    b = space.graph(Arch.from_dict("nanonas", {"k": 25, "c": 2}))
    assert len(a.ops) == len(b.ops) and graph_digest(a) != graph_digest(b)
