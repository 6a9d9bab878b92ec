"""The traced training forward computes what the eager supernet computes, and traces per block
signature, not per subnet."""

from __future__ import annotations

import numpy as np

from tinynas.space import get_space

SHAPE = (28, 28, 1)


def test_compiled_loss_and_gradients_equal_the_eager_ones():
    from tinynas.ofa.compiled import CompiledForward
    from tinynas.ofa.shrinking import PHASES, _sample
    from tinynas.ofa.supernet import ElasticMCUNet

    space = get_space("mcunet", input_shape=SHAPE, num_classes=5)
    net = ElasticMCUNet(space=space, max_width=0.25, seed=0)
    tf = net.tf
    forward = CompiledForward(net)
    rng = np.random.default_rng(0)
    x = rng.random((16, *SHAPE), dtype=np.float32)
    target = tf.one_hot(rng.integers(0, 5, 16), 5)
    variables = list(net.variables.values())
    archs = [_sample(space, rng, phase, max_width=0.25, resolution=r)
             for phase, r in zip(PHASES[1:], (28, 20, 12, 16))]
    archs.append(space.canonical(archs[-1].replace(s2_depth=0, s4_depth=0, head=False)))
    for arch in archs:
        results = []
        for logits in (net.logits, forward.logits):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(target, logits(arch, x)))
            grads = tape.gradient(loss, variables)
            results.append((float(loss), grads))
        (eager_loss, eager_grads), (loss, grads) = results
        assert abs(eager_loss - loss) < 1e-5, space.summary(arch)
        for var, a, b in zip(variables, eager_grads, grads):
            assert (a is None) == (b is None), var.name
            if a is not None:
                np.testing.assert_allclose(tf.convert_to_tensor(b), tf.convert_to_tensor(a), atol=1e-5,
                                           err_msg=var.name)
    traced = forward.traces
    # more subnets of known block signatures and resolutions: no new trace
    for _ in range(4):
        arch = _sample(space, rng, "depth", max_width=0.25, resolution=20).replace(
            **{f"s{s}_b{b}_kernel": 7 for s in range(1, 6) for b in range(1, 5)})
        forward.logits(space.canonical(arch), x)
    assert forward.traces <= traced + 2  # at most a stride or residual pattern not met above
    traced = forward.traces
    forward.logits(archs[0], x[:5])  # another batch size (an epoch's last batch): no new trace
    assert forward.traces == traced


def test_new_unit_traces_print_no_retracing_warning_and_other_tensorflow_warnings_pass(caplog):
    """Every unit signature is traced once, in its own tf.function; TensorFlow would call a dozen of those
    first traces "retracing" and warn into every ofa run's output (seen before tinynas.tf_runtime's filter:
    "5 out of the last 5 calls to <function CompiledForward._function.<locals>.<lambda>> triggered
    tf.function retracing")."""
    import logging

    from tinynas.ofa.compiled import CompiledForward
    from tinynas.ofa.shrinking import PHASES, _sample
    from tinynas.ofa.supernet import ElasticMCUNet

    space = get_space("mcunet", input_shape=SHAPE, num_classes=5)
    net = ElasticMCUNet(space=space, max_width=0.25, seed=0)
    forward = CompiledForward(net)
    rng = np.random.default_rng(0)
    x = rng.random((8, *SHAPE), dtype=np.float32)
    with caplog.at_level(logging.WARNING):
        for i in range(12):
            arch = _sample(space, rng, PHASES[1 + i % 4], max_width=0.25, resolution=(28, 20, 12, 16)[i % 4])
            forward.logits(arch, x)
        logging.getLogger("tensorflow").warning("another tensorflow warning")
    assert forward.traces >= 6  # enough new traces for TensorFlow's heuristic to have warned
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "retracing" in m], messages
    assert "another tensorflow warning" in messages
