"""A lean training loop for microcontroller-sized Keras models: one traced step, Adam in raw ops.

``keras.Model.fit`` spends most of a low-fidelity run tracing its generic train
function (several seconds of CPU per candidate for an mcunet net); this loop
traces one small step (forward, gradients, fused Adam per variable) and one
inference function per model, which is what makes thousands of candidate
trainings affordable; a training of a few steps (``EAGER_MAX_STEPS``) skips
even that and runs op by op. The maths is standard: Adam (Kingma & Ba 2015) with
decoupled weight decay (AdamW, Loshchilov & Hutter 2019) and a cosine learning
rate decaying to zero (SGDR, Loshchilov & Hutter 2017).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

BETA_1, BETA_2, EPSILON = 0.9, 0.999, 1e-7
EVAL_BATCH = 256
# A training of at most this many steps (recalibration's included) runs op by op: tracing the step and the
# inference function costs about 2 s of CPU for an mcunet net, a step run eagerly about 0.15 s more than a
# traced one (scripts/bench_train_loop.py; benchmarks/train/eager_short_trainings.txt: 2 steps take 0.4x the
# traced time, 10 steps 0.95x, 20 steps 1.3x), so a short search candidate is faster untraced.
EAGER_MAX_STEPS = 8


@dataclass
class LoopConfig:
    epochs: int
    batch_size: int
    learning_rate: float
    weight_decay: float
    label_smoothing: float
    patience: int | None
    bn_momentum: float
    recalibration_samples: int
    seed: int
    epoch_passes: int = 1


def _cross_entropy(probs: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0)
    return float(-np.mean(np.log(p)))


class KerasTrainLoop:
    """Trains one functional Keras model (softmax output) on numpy arrays."""

    def __init__(self, model: Any, *, num_classes: int, config: LoopConfig) -> None:
        from tinynas.tf_runtime import quiet_import

        quiet_import()
        import keras
        import tensorflow as tf

        self.tf = tf
        self.model = model
        self.config = config
        self.num_classes = num_classes
        self.batch_norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
        self._saved_momentum = [bn.momentum for bn in self.batch_norms]
        # A variable, not a float, so the traced step reads it and recalibration can change it.
        self.momentum = tf.Variable(float(config.bn_momentum), trainable=False, dtype=tf.float32)
        for bn in self.batch_norms:
            bn.momentum = self.momentum
        self.variables = list(model.trainable_variables)
        self.slots_m = [tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False) for v in self.variables]
        self.slots_v = [tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False) for v in self.variables]
        self.step = tf.Variable(0.0, trainable=False, dtype=tf.float32)
        in_spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
        y_spec = tf.TensorSpec((None,), tf.int32)
        lr_spec = tf.TensorSpec((), tf.float32)
        self._traced_step = tf.function(self._step, input_signature=[in_spec, y_spec, lr_spec], autograph=False)
        self._traced_predict = tf.function(lambda x: model(x, training=False), input_signature=[in_spec],
                                           autograph=False)
        self.eager = False  # set by fit for a training of at most EAGER_MAX_STEPS steps

    def _train_step(self, x: Any, y: Any, lr: Any) -> Any:
        return self._step(x, y, lr) if self.eager else self._traced_step(x, y, lr)

    def _predict(self, x: Any) -> Any:
        return self.model(x, training=False) if self.eager else self._traced_predict(x)

    def _step(self, x: Any, y: Any, lr: Any) -> Any:
        tf = self.tf
        cfg = self.config
        with tf.GradientTape() as tape:
            probs = self.model(x, training=True)
            target = tf.one_hot(y, self.num_classes)
            if cfg.label_smoothing > 0:
                target = target * (1.0 - cfg.label_smoothing) + cfg.label_smoothing / self.num_classes
            loss = -tf.reduce_mean(tf.reduce_sum(target * tf.math.log(tf.clip_by_value(probs, 1e-7, 1.0)), axis=-1))
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(probs, axis=-1, output_type=tf.int32), y), tf.float32))
        grads = tape.gradient(loss, self.variables)
        self.step.assign_add(1.0)
        b1p, b2p = tf.pow(BETA_1, self.step), tf.pow(BETA_2, self.step)
        for var, grad, m, v in zip(self.variables, grads, self.slots_m, self.slots_v):
            if grad is None:
                continue
            if cfg.weight_decay > 0:
                var.assign_sub(lr * cfg.weight_decay * var)
            tf.raw_ops.ResourceApplyAdam(var=var.handle, m=m.handle, v=v.handle, beta1_power=b1p, beta2_power=b2p,
                                         lr=lr, beta1=BETA_1, beta2=BETA_2, epsilon=EPSILON, grad=grad)
        return loss, correct

    def predict(self, x: np.ndarray) -> np.ndarray:
        out = [self._predict(self.tf.constant(x[i:i + EVAL_BATCH])).numpy() for i in range(0, len(x), EVAL_BATCH)]
        return np.concatenate(out) if out else np.zeros((0, self.num_classes), np.float32)

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """(loss, accuracy) in inference mode."""
        probs = self.predict(x)
        return _cross_entropy(probs, y), float(np.mean(probs.argmax(axis=1) == y))

    def recalibrate_batch_norm(self, x: np.ndarray, rng: np.random.Generator) -> None:
        """Set BN moving statistics to the plain average over training batches (learning rate 0).

        Once-for-All (Cai et al. 2020, sec. 3.3) recalibrates BN statistics
        before judging a network; after a few hundred steps the moving averages
        still lag the weights, which would make a 2-epoch candidate look near
        chance. Momentum ``i / (i + 1)`` on batch ``i`` gives the exact mean.
        """
        if not self.batch_norms or not len(x):
            return
        sample = x[rng.permutation(len(x))[: self.config.recalibration_samples]]
        dummy_y = self.tf.zeros((EVAL_BATCH,), self.tf.int32)
        zero = self.tf.constant(0.0)
        for i, start in enumerate(range(0, len(sample), EVAL_BATCH)):
            batch = sample[start:start + EVAL_BATCH]
            self.momentum.assign(i / (i + 1))
            self._train_step(self.tf.constant(batch), dummy_y[: len(batch)], zero)
        self.momentum.assign(self.config.bn_momentum)

    def fit(self, x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray) -> tuple[dict[str, list[float]], int]:
        """Train; returns the per-epoch history and the index of the epoch whose weights the model holds.

        With ``patience`` the weights of the epoch with the lowest validation
        loss are restored. Call ``recalibrate_batch_norm`` afterwards.
        """
        tf = self.tf
        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        epoch_samples = len(y) * cfg.epoch_passes
        steps_per_epoch = max(1, math.ceil(epoch_samples / cfg.batch_size))
        total = steps_per_epoch * cfg.epochs
        recalibration = math.ceil(min(len(y), cfg.recalibration_samples) / EVAL_BATCH) if self.batch_norms else 0
        self.eager = total + recalibration <= EAGER_MAX_STEPS
        y32 = y.astype(np.int32)
        history: dict[str, list[float]] = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}
        best_loss, best_epoch, best_weights, waited = math.inf, -1, None, 0
        step = 0
        for epoch in range(cfg.epochs):
            order = np.concatenate([rng.permutation(len(y)) for _ in range(cfg.epoch_passes)])
            loss_sum, correct = 0.0, 0.0
            for start in range(0, epoch_samples, cfg.batch_size):
                idx = order[start:start + cfg.batch_size]
                lr = 0.5 * cfg.learning_rate * (1.0 + math.cos(math.pi * step / total))
                loss, hits = self._train_step(tf.constant(x[idx]), tf.constant(y32[idx]), tf.constant(lr, tf.float32))
                loss_sum += float(loss) * len(idx)
                correct += float(hits)
                step += 1
            val_loss, val_acc = self.evaluate(x_val, y_val)
            history["loss"].append(loss_sum / epoch_samples)
            # in training mode, during the epoch, as Keras reports it
            history["accuracy"].append(correct / epoch_samples)
            history["val_loss"].append(val_loss)
            history["val_accuracy"].append(val_acc)
            if cfg.patience is None:
                continue
            if val_loss < best_loss:
                best_loss, best_epoch, waited = val_loss, epoch, 0
                best_weights = self.model.get_weights()
            else:
                waited += 1
                if waited >= cfg.patience:
                    break
        epochs_run = len(history["loss"])
        if cfg.patience is not None and best_weights is not None and best_epoch != epochs_run - 1:
            self.model.set_weights(best_weights)
            return history, best_epoch
        return history, epochs_run - 1

    def restore_layers(self) -> None:
        """Give the BN layers their float momentum back (the model must serialize)."""
        for bn, momentum in zip(self.batch_norms, self._saved_momentum):
            bn.momentum = momentum
