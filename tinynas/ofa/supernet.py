"""The elastic mcunet supernet: one set of weights from which every covered arch is sliced.

Once-for-All (Cai et al. 2020, sec. 3.2): a subnet uses the first ``d`` blocks
of each stage (elastic depth), the first channels of each expansion (elastic
expand ratio; ``sort_expansions`` puts the important ones first), and a kxk
depthwise kernel that is the centre of the 7x7 kernel passed through a learned
per-layer transformation matrix (25x25 for 7->5, 9x9 for 5->3, both initialised
to identity). Input resolution is free: the weights do not depend on it.

Width multiplier: elastic by channel slicing (slimmable networks, Yu et al.
2019), not one supernet per width. Every width's channel counts are prefixes
of the widest's, and a subnet's BatchNorm statistics are recalibrated anyway,
which is the part that slimmable networks found to break under sharing. One
supernet per width group would multiply the training time by the number of
groups on a 2-core machine, and the tiny boards need widths 0.1-0.35 while the
roomy ones want 0.5-1.0, so a sweep would train several. The supernet is built
at ``max_width`` (archs with a wider multiplier are not covered: SupernetError).

Left-out stages (depth 0, the space's addition for 14 KB boards; OFA keeps at
least two blocks per stage): the reader after the gap gets an earlier stage's
features, fewer channels, and so a smaller expansion. With ``predecessor_inputs``
that reader (the next stage's first block: expand, depthwise, project with their
BatchNorms; else the head conv or classifier) has slots per actual predecessor
(``plan.input_slot``), initialised from the shared ones when depth becomes elastic
(``init_input_slots``). Shared, they kept stage-2 skips at 0.2 inherited against
0.95 trained alone; training only that block of such a subnet lifts it to 0.85
(benchmarks/ofa/README.md (e), (f)).

The supernet computes in eager TensorFlow over plain ``tf.Variable``s keyed by
slot (training runs the same maths through ``tinynas.ofa.compiled``); ``extract`` writes the sliced weights into the model that
``tinynas.space.keras_builder`` builds from the space's Graph, so cost model,
int8 conversion and deployment see an ordinary model.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import numpy as np

from tinynas.errors import SupernetError
from tinynas.ofa.plan import Step, SubnetPlan, largest_archs, shared_slot, skip_archs, subnet_plan
from tinynas.space.arch import Arch
from tinynas.space.base import SearchSpace

BN_EPSILON = 1e-3  # Keras BatchNormalization's default, so extraction changes nothing
MAX_KERNEL = 7


def _tf() -> Any:
    from tinynas.tf_runtime import quiet_import

    quiet_import()
    import tensorflow as tf

    return tf


class ElasticMCUNet:
    """Weights of the elastic network over ``space`` (mcunet, square image input) up to ``max_width``;
    ``predecessor_inputs``: a slot per predecessor for the op after a left-out stage (module docstring)."""

    def __init__(self, *, space: SearchSpace, max_width: float, seed: int = 0,
                 predecessor_inputs: bool = True) -> None:
        tf = _tf()
        self.tf = tf
        self.space = space
        self.max_width = float(max_width)
        self.predecessor_inputs = bool(predecessor_inputs)
        widths = [o for o in space.decisions()[0].options]
        if self.max_width not in widths:
            raise SupernetError(f"supernet max_width {max_width} is not a width of the mcunet space {sorted(widths)}")
        self._plans: dict[str, SubnetPlan] = {}
        sizes: dict[str, tuple[str, int, int, int]] = {}
        sizing = largest_archs(space, max_width=self.max_width)
        if self.predecessor_inputs:
            sizing += skip_archs(space, max_width=self.max_width)
        for arch in sizing:
            for step in self.plan(arch).steps:
                if not step.slot:
                    continue
                kind, cin, cout, k = sizes.get(step.slot, (step.kind, 0, 0, 0))
                sizes[step.slot] = (step.kind, max(cin, step.in_channels), max(cout, step.out_channels),
                                    max(k, step.kernel))
        self._plans.clear()
        self.slot_sizes = sizes
        rng = np.random.default_rng(seed)
        self.variables: dict[str, Any] = {}
        for slot, (kind, cin, cout, k) in sizes.items():
            if kind == "FULLY_CONNECTED":
                self._add(f"{slot}/kernel", rng.normal(0, np.sqrt(1.0 / cin), (cin, cout)))
                self._add(f"{slot}/bias", np.zeros(cout))
                continue
            if kind == "DEPTHWISE_CONV_2D":
                self._add(f"{slot}/kernel", rng.normal(0, np.sqrt(2.0 / (k * k)), (k, k, cin, 1)))
                channels = cin
                if k == MAX_KERNEL:  # the 7->5 and 5->3 transformation matrices (OFA sec. 3.2)
                    self._add(f"{slot}/t75", np.eye(25))
                    self._add(f"{slot}/t53", np.eye(9))
            else:
                self._add(f"{slot}/kernel", rng.normal(0, np.sqrt(2.0 / (k * k * cin)), (k, k, cin, cout)))
                channels = cout
            self._add(f"{slot}/gamma", np.ones(channels))
            self._add(f"{slot}/beta", np.zeros(channels))

    def _add(self, name: str, value: np.ndarray) -> None:
        self.variables[name] = self.tf.Variable(value.astype(np.float32), name=name.replace("/", "_"))

    # -- coverage -------------------------------------------------------------
    def plan(self, arch: Arch) -> SubnetPlan:
        """The arch's plan; raises SupernetError when an op needs more channels than its slot has."""
        plan = self._plans.get(arch.id)
        if plan is None:
            plan = subnet_plan(self.space, arch, predecessor_inputs=self.predecessor_inputs)
            if hasattr(self, "slot_sizes"):
                self._check_covered(plan)
            self._plans[arch.id] = plan
        return plan

    def _check_covered(self, plan: SubnetPlan) -> None:
        for step in plan.steps:
            if not step.slot:
                continue
            _, cin, cout, k = self.slot_sizes[step.slot]
            if step.in_channels > cin or (step.kind != "DEPTHWISE_CONV_2D" and step.out_channels > cout) \
                    or step.kernel > k:
                raise SupernetError(
                    f"arch {plan.arch.id} (width {plan.arch['width']}) is not covered by this supernet "
                    f"(max width {self.max_width}): op {step.layer} needs {step.in_channels}->{step.out_channels} "
                    f"channels, the supernet has {cin}->{cout}; search widths <= {self.max_width} or train a "
                    "supernet with a larger max_width"
                )

    def covers(self, arch: Arch) -> bool:
        try:
            self.plan(arch)
        except SupernetError:
            return False
        return True

    # -- weights of one subnet ------------------------------------------------
    def depthwise_kernel(self, slot: str, kernel: int, channels: int, variables: dict[str, Any] | None = None) -> Any:
        """The kxk depthwise kernel of ``slot``: centre crops chained through the transformation matrices."""
        v = self.variables if variables is None else variables
        w = shrink_depthwise(self.tf, v[f"{slot}/kernel"][:, :, :channels, :], kernel, t75=v.get(f"{slot}/t75"),
                             t53=v.get(f"{slot}/t53"))
        if int(w.shape[0]) != kernel:
            raise SupernetError(f"supernet slot {slot}: no {kernel}x{kernel} kernel (has {w.shape[0]}x{w.shape[0]})")
        return w

    def _weights(self, step: Step, variables: dict[str, Any]) -> tuple[Any, Any, Any]:
        """(kernel, gamma or bias, beta or None) of one op, sliced to its channels."""
        slot, cin, cout = step.slot, step.in_channels, step.out_channels
        if step.kind == "FULLY_CONNECTED":
            return variables[f"{slot}/kernel"][:cin, :cout], variables[f"{slot}/bias"][:cout], None
        if step.kind == "DEPTHWISE_CONV_2D":
            kernel = self.depthwise_kernel(slot, step.kernel, cin, variables)
            c = cin
        else:
            full = variables[f"{slot}/kernel"]
            off = (int(full.shape[0]) - step.kernel) // 2
            kernel = full[off:off + step.kernel, off:off + step.kernel, :cin, :cout]
            c = cout
        return kernel, variables[f"{slot}/gamma"][:c], variables[f"{slot}/beta"][:c]

    # -- forward --------------------------------------------------------------
    def prepare_inputs(self, x: Any, resolution: int) -> Any:
        """Images at the subnet's resolution, resized as the trainer resizes them (bilinear)."""
        tf = self.tf
        x = tf.convert_to_tensor(x, tf.float32)
        if int(x.shape[1]) != resolution:
            x = tf.image.resize(x, (resolution, resolution), method="bilinear")
        return x

    def logits(self, arch: Arch, x: Any, *, bn_stats: dict[str, tuple[Any, Any]] | None = None,
               collect: dict[str, list] | None = None, variables: dict[str, Any] | None = None) -> Any:
        """Pre-softmax outputs of ``arch`` on images ``x`` (resized here).

        BatchNorm uses the batch's statistics unless ``bn_stats`` (slot -> mean, variance) is given;
        ``collect`` receives each slot's batch statistics (for recalibration).
        """
        tf = self.tf
        v = self.variables if variables is None else variables
        plan = self.plan(arch)
        x = self.prepare_inputs(x, plan.resolution)
        block_in = x
        for step in plan.steps:
            if step.kind == "ADD":
                x = block_in + x
                continue
            if step.kind == "MEAN":
                x = tf.reduce_mean(x, axis=[1, 2])
                continue
            if step.kind == "SOFTMAX":
                continue
            if step.block_start:
                block_in = x
            kernel, a, b = self._weights(step, v)
            if step.kind == "FULLY_CONNECTED":
                x = tf.matmul(x, kernel) + a
                continue
            strides = [1, step.stride, step.stride, 1]
            if step.kind == "DEPTHWISE_CONV_2D":
                x = tf.nn.depthwise_conv2d(x, kernel, strides=strides, padding="SAME")
            else:
                x = tf.nn.conv2d(x, kernel, strides=strides, padding="SAME")
            if bn_stats is not None:
                mean, var = bn_stats[step.slot]
            else:
                mean, var = tf.nn.moments(x, axes=[0, 1, 2])
                if collect is not None:
                    collect.setdefault(step.slot, []).append((mean.numpy(), var.numpy()))
            x = tf.nn.batch_normalization(x, mean, var, b, a, BN_EPSILON)
            if step.activation == "relu6":
                x = tf.nn.relu6(x)
            elif step.activation == "relu":
                x = tf.nn.relu(x)
        return x

    def recalibrate(self, arch: Arch, x: np.ndarray, *, batch_size: int = 256) -> dict[str, tuple[Any, Any]]:
        """BatchNorm statistics of ``arch`` averaged over ``x`` (OFA sec. 3.3: before judging a subnet)."""
        collect: dict[str, list] = {}
        sizes = []
        for start in range(0, len(x), batch_size):
            sizes.append(len(x[start:start + batch_size]))
            self.logits(arch, x[start:start + batch_size], collect=collect)
        weights = np.asarray(sizes, np.float64) / float(sum(sizes))
        out = {}
        for slot, vals in collect.items():
            means = np.stack([m for m, _ in vals]).astype(np.float64)
            variances = np.stack([v for _, v in vals]).astype(np.float64)
            mean = weights @ means
            # the variance over all samples, not the mean of per-batch variances (which misses the
            # spread of the batch means): E[var_b + mean_b^2] - mean^2, batches weighted by size
            var = np.maximum(weights @ (variances + means ** 2) - mean ** 2, 0.0)
            out[slot] = (mean.astype(np.float32), var.astype(np.float32))
        return out

    def predict(self, arch: Arch, x: np.ndarray, bn_stats: dict[str, tuple[Any, Any]], *,
                batch_size: int = 512) -> np.ndarray:
        """Softmax probabilities of ``arch`` with recalibrated statistics."""
        tf = self.tf
        out = [tf.nn.softmax(self.logits(arch, x[i:i + batch_size], bn_stats=bn_stats)).numpy()
               for i in range(0, len(x), batch_size)]
        return np.concatenate(out)

    def input_slots(self) -> list[str]:
        """The slots used only after a left-out stage (``plan.input_slot``); empty without predecessor_inputs."""
        return [slot for slot in self.slot_sizes if shared_slot(slot) != slot]

    def init_input_slots(self) -> None:
        """Set every input slot to the shared slot's weights for its channels, so a subnet with a
        left-out stage starts from what it inherited before, then trains its own reader."""
        v = self.variables
        for slot in self.input_slots():
            for name in ("kernel", "bias", "gamma", "beta", "t75", "t53"):
                if f"{slot}/{name}" in v:
                    var = v[f"{slot}/{name}"]
                    var.assign(v[f"{shared_slot(slot)}/{name}"][tuple(slice(0, int(n)) for n in var.shape)])

    # -- importance sorting ---------------------------------------------------
    def sort_expansions(self) -> None:
        """Reorder every block's expansion channels by importance, most important first.

        Importance is the L1 norm of the projection's input weights of a channel
        (OFA sec. 3.2, elastic width); the expand conv's outputs, the depthwise
        kernel and their BatchNorm parameters follow the same permutation, so the
        full network computes the same function. A predecessor's copy of a block
        (``input_slot``) is sorted by its own projection.
        """
        tf = self.tf
        v = self.variables
        for slot in self.slot_sizes:
            shared = shared_slot(slot)
            if not shared.endswith("_project"):
                continue
            block, tag = shared[: -len("_project")], slot[len(shared):]
            expand, dw = f"{block}_expand{tag}", f"{block}_dw{tag}"
            importance = tf.reduce_sum(tf.abs(v[f"{slot}/kernel"]), axis=[0, 1, 3])
            order = tf.argsort(importance, direction="DESCENDING")
            v[f"{expand}/kernel"].assign(tf.gather(v[f"{expand}/kernel"], order, axis=3))
            for name in (f"{expand}/gamma", f"{expand}/beta", f"{dw}/gamma", f"{dw}/beta"):
                v[name].assign(tf.gather(v[name], order))
            v[f"{dw}/kernel"].assign(tf.gather(v[f"{dw}/kernel"], order, axis=2))
            v[f"{slot}/kernel"].assign(tf.gather(v[f"{slot}/kernel"], order, axis=2))

    # -- extraction -------------------------------------------------------------
    def extract(self, arch: Arch, bn_stats: dict[str, tuple[Any, Any]]) -> Any:
        """A plain ``keras.Model`` of ``arch`` (built from the space's Graph) holding this supernet's weights.

        ``bn_stats`` come from ``recalibrate``. Raises SupernetError for an arch not covered.
        """
        from tinynas.space.keras_builder import build_keras_model

        plan = self.plan(arch)
        model = build_keras_model(self.space.graph(arch))
        for step in plan.steps:
            if not step.slot:
                continue
            kernel, a, b = self._weights(step, self.variables)
            layer = model.get_layer(step.layer)
            if step.kind == "FULLY_CONNECTED":
                layer.set_weights([np.asarray(kernel), np.asarray(a)])
                continue
            layer.set_weights([np.asarray(kernel)])
            mean, var = bn_stats[step.slot]
            model.get_layer(f"{step.layer}_bn").set_weights(
                [np.asarray(a), np.asarray(b), np.asarray(mean), np.asarray(var)])
        return model

    # -- state ------------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        return {name: var.numpy() for name, var in self.variables.items()}

    def load_state(self, state: dict[str, np.ndarray], *, source: str) -> None:
        """Set every variable from ``state``; raises SupernetError naming ``source`` on a mismatch."""
        missing = sorted(set(self.variables) - set(state))
        if missing:
            raise SupernetError(f"{source}: supernet weights lack {missing[:3]}; it was saved by another supernet")
        for name, var in self.variables.items():
            if tuple(state[name].shape) != tuple(var.shape):
                raise SupernetError(f"{source}: weight {name} has shape {state[name].shape}, the supernet "
                                    f"needs {tuple(var.shape)}; it was saved by another supernet")
            var.assign(state[name])


def save_weights(path: Path, state: dict[str, np.ndarray]) -> str:
    """Write ``state`` as .npz atomically; returns its sha256 (the checkpoint manifest keeps it)."""
    buf = io.BytesIO()
    np.savez(buf, **{k.replace("/", "__"): v for k, v in state.items()})
    data = buf.getvalue()
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return hashlib.sha256(data).hexdigest()


def load_weights(path: Path, *, sha256: str | None = None) -> dict[str, np.ndarray]:
    """Read a .npz written by ``save_weights``; raises SupernetError when missing, truncated or altered."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SupernetError(f"{path}: cannot read supernet weights ({exc})") from exc
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise SupernetError(f"{path}: checksum mismatch (the file is truncated or altered)")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {k.replace("__", "/"): npz[k] for k in npz.files}
    except Exception as exc:  # zip/npy format errors of a damaged file
        raise SupernetError(f"{path}: not a readable supernet weight file ({exc})") from exc


def copy_variables(variables: dict[str, Any]) -> dict[str, Any]:
    """Frozen tensors of the current weights (the distillation teacher)."""
    tf = _tf()
    return {name: tf.constant(var.numpy()) for name, var in variables.items()}


def shrink_depthwise(tf: Any, w: Any, kernel: int, *, t75: Any, t53: Any) -> Any:
    """A (size, size, c, 1) depthwise kernel cut down towards ``kernel``: each step takes the centre crop
    (7 -> 5 -> 3) times its learned transformation matrix (OFA's elastic kernel). The channel count is
    read from the tensor, so a traced caller may leave it open; a kernel it cannot reach is returned as is."""
    size = int(w.shape[0])
    for target, matrix in ((5, t75), (3, t53)):
        if kernel >= size or size != target + 2:
            continue
        crop = w[1:-1, 1:-1]  # (target, target, c, 1)
        flat = tf.reshape(tf.transpose(crop, [2, 3, 0, 1]), [-1, target * target])
        flat = tf.matmul(flat, matrix)
        w = tf.transpose(tf.reshape(flat, [-1, 1, target, target]), [2, 3, 0, 1])
        size = target
    return w
