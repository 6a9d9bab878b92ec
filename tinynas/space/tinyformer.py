"""The ``tinyformer`` space: small pre-norm transformers for sequences and small images,
built only from ops TFLite Micro runs in int8.

Network (ViT, Dosovitskiy et al. 2021, with pre-norm blocks): a tokenizer (1-D input
(L, C): a CONV_2D over frames of ``k`` samples every ``s``, on the (1, 1, L, C) view
dscnn uses; 2-D input: a p x p patch embedding, stride p), an optional class token
and learned positional embedding, ``depth`` blocks of [norm -> multi-head
self-attention -> ADD, norm -> FFN (FULLY_CONNECTED x ratio, relu or hard_swish,
FULLY_CONNECTED) -> ADD], a final norm, mean over tokens or the class token,
FULLY_CONNECTED, SOFTMAX.

The norm is BatchNormalization over the embedding, as LeViT (Graham et al. 2021)
uses, not LayerNorm. What TFLite Micro has rules LayerNorm out in int8 (issue 14): it
has no LAYER_NORM builtin, and LayerNorm written out as MEAN, SUB, SQUARED_DIFFERENCE,
MEAN, ADD(eps), RSQRT, MUL quantizes its per-token variance with one per-tensor scale,
so a quiet token (a still sensor: variance near 0) rounds to variance 0 and RSQRT
blows it up: on BasicMotions that cost 23-45 points of int8 accuracy against float
(3 seeds), and 1.9 points on digits. BatchNormalization at inference is a fixed
per-channel scale and shift: in front of the FULLY_CONNECTED layers the converter
folds it into their weights (no op at all), and the final one becomes one MUL and one
ADD by constants. Measured on the same archs (float / int8 test accuracy): BasicMotions
95.0 / 92.5 (LayerNorm 90.0 / 67.5), GunPoint 80.7 / 81.3 (69.3 / 64.7), digits 92.9 /
92.6 (90.0 / 88.1), mnist1d 89.6 / 89.0 (91.1 / 90.6).

The rest follows TFLite Micro's kernels as well: no GELU kernel, so the FFN uses relu
or hard_swish. Attention is FULLY_CONNECTED projections, RESHAPE/TRANSPOSE into heads,
BATCH_MATMUL(Q, K, adj_y), SOFTMAX, BATCH_MATMUL(P, V^T, adj_y): with adj_y TFLM keeps
no persistent transposed copy of the right operand. The 1/sqrt(d) scale is left to
the query projection to learn (it would be one more MUL). The op order and shapes are
the converter's, e.g. its batch-less RESHAPE before the output projection of
multi-head attention.
"""

from __future__ import annotations

from typing import Sequence

from tinynas.errors import SpaceError
from tinynas.space.arch import Arch
from tinynas.space.base import Decision, SearchSpace, register_space
from tinynas.space.graph import Graph, GraphBuilder

#: 1-D tokenizers: frames of k samples every s (k >= s, so no sample is skipped).
FRAMES_1D = ("k2s2", "k4s2", "k4s4", "k8s4", "k8s8", "k16s8", "k16s16")
#: 2-D tokenizers: p x p patches, stride p.
PATCHES_2D = ("p2", "p4", "p8")
EMBED_DIMS = (16, 24, 32, 48, 64, 96)
DEPTHS = (1, 2, 3, 4)
HEADS = (1, 2, 3, 4)
FFN_RATIOS = (1, 2, 3, 4)
FFN_ACTIVATIONS = ("relu", "hard_swish")
POOLINGS = ("mean", "class_token")
POSITIONALS = ("learned", "none")
#: The fewest and most tokens a tokenizer may make: attention over one token is a no-op, and
#: attention's T x T scores grow fast while a board's arena holds few. Other tokenizers are not offered.
MIN_TOKENS = 2
MAX_TOKENS = 256


def parse_tokenizer(text: str) -> tuple[int, int]:
    """``"k4s2"`` -> (4, 2); ``"p4"`` -> (4, 4). SpaceError for anything else."""
    try:
        if text.startswith("p"):
            p = int(text[1:])
            return p, p
        if text.startswith("k") and "s" in text:
            k, s = text[1:].split("s")
            return int(k), int(s)
    except ValueError:
        pass
    raise SpaceError(f"tinyformer tokenizer must be 'k<kernel>s<stride>' (1-D) or 'p<patch>' (2-D), got {text!r}")


def token_count(input_shape: Sequence[int], tokenizer: str) -> int:
    """Tokens the tokenizer makes of an input (VALID padding: a trailing partial frame is dropped)."""
    k, s = parse_tokenizer(tokenizer)
    if len(input_shape) == 2:
        return (int(input_shape[0]) - k) // s + 1 if input_shape[0] >= k else 0
    h, w = int(input_shape[0]), int(input_shape[1])
    return ((h - k) // s + 1) * ((w - k) // s + 1) if min(h, w) >= k else 0


@register_space
class TinyFormerSpace(SearchSpace):
    """Pre-norm transformer: tokenizer, depth x (attention + FFN), mean or class-token pooling."""

    name = "tinyformer"
    description = (
        "small pre-norm transformer (ViT-style) in int8 TFLM ops: 1-D frame or 2-D patch tokenizer, "
        "embedding 16-96, depth 1-4, heads 1-4, FFN ratio 1-4 (relu/hard_swish), mean or class-token "
        "pooling, learned or no positional embedding"
    )
    default_input_shape = (40, 1)
    summary_legend = (
        "the tokenizer kKsS cuts frames of K samples every S (pP: P x P patches); then depth x [attention, FFN "
        "whose hidden width is the ratio x the embedding width] @ embedding width; pooling and positional "
        "embedding as named")
    # depth >= 1: every arch has attention, and the ops around it
    ops_in_every_arch = frozenset({"BATCH_MATMUL", "SOFTMAX", "FULLY_CONNECTED"})

    def __init__(self, *, input_shape: Sequence[int], num_classes: int) -> None:
        super().__init__(input_shape=input_shape, num_classes=num_classes)
        self._one_d = len(self.input_shape) == 2
        self.decisions()  # an input the space cannot take fails here, with the reason

    def _decisions_for_input(self) -> list[Decision]:
        options = FRAMES_1D if self._one_d else PATCHES_2D
        fitting = tuple(t for t in options if MIN_TOKENS <= token_count(self.input_shape, t) <= MAX_TOKENS)
        if not fitting:
            if self._one_d:
                length = self.input_shape[0]
                smallest = min(parse_tokenizer(t)[0] for t in options)
                fix = (f"a sequence of at least {smallest + 2} samples" if length < smallest + 2 else
                       f"a sequence of at most {(MAX_TOKENS - 1) * 16 + 16} samples (resample or window it)")
                what = f"sequence of {length} samples"
            else:
                fix = ("an image of at least 2x4 pixels" if min(self.input_shape[:2]) < 4 else
                       f"an image of at most {MAX_TOKENS} 8x8 patches (resize it)")
                what = f"image of {self.input_shape[0]}x{self.input_shape[1]} pixels"
            raise SpaceError(
                f"tinyformer: no tokenizer of {list(options)} makes {MIN_TOKENS} to {MAX_TOKENS} tokens of a {what} "
                f"(input shape {self.input_shape}); use {fix}"
            )
        return [
            Decision("tokenizer", fitting),
            Decision("embed_dim", EMBED_DIMS),
            Decision("depth", DEPTHS),
            Decision("heads", HEADS),
            Decision("ffn_ratio", FFN_RATIOS),
            Decision("ffn_activation", FFN_ACTIVATIONS),
            Decision("pooling", POOLINGS),
            Decision("positional", POSITIONALS),
        ]

    def validate(self, arch: Arch) -> None:
        super().validate(arch)
        dim, heads = int(arch["embed_dim"]), int(arch["heads"])
        if dim % heads:
            fits = [h for h in HEADS if dim % h == 0]
            raise SpaceError(
                f"tinyformer arch: embed_dim {dim} is not divisible by heads {heads}; with embed_dim {dim} "
                f"pick heads from {fits} (or an embed_dim divisible by {heads})"
            )

    def summary(self, arch: Arch) -> str:
        return (f"{arch['tokenizer']} -> {arch['depth']} x [{arch['heads']}-head attention, "
                f"FFN x{arch['ffn_ratio']} {arch['ffn_activation']}] @ {arch['embed_dim']}, "
                f"{arch['pooling']} pooling, positional {arch['positional']}")

    # -- the graph ----------------------------------------------------------------
    def _build(self, arch: Arch) -> Graph:
        dim = int(arch["embed_dim"])
        b = GraphBuilder(input_shape=self.input_shape, name=f"tinyformer_{arch.id}")
        x = self._tokenize(b, str(arch["tokenizer"]), dim)  # (1, h, w, D)
        _, h, w, _ = b.shape(x)
        learned = arch["positional"] == "learned"
        if arch["pooling"] == "class_token":
            x = b.concat_constant(b.reshape(x, (1, h * w, dim)), length=1, axis=1)
            if learned:
                x = b.add_constant(x, shape=b.shape(x), constant="learned")
        else:
            # the converter moves a constant ADD in front of the RESHAPE to tokens
            if learned:
                x = b.add_constant(x, shape=b.shape(x), constant="learned")
            x = b.reshape(x, (1, h * w, dim))
        for _ in range(int(arch["depth"])):
            x = self._attention(b, x, heads=int(arch["heads"]))
            x = self._ffn(b, x, ratio=int(arch["ffn_ratio"]), activation=str(arch["ffn_activation"]))
        x = b.batch_norm(x)  # no FULLY_CONNECTED follows directly: the converter keeps its MUL and ADD
        x = b.mean(x, axes=(1,), keepdims=False) if arch["pooling"] == "mean" else b.take_token(x, index=0)
        x = b.fully_connected(x, units=self.num_classes)
        x = b.softmax(x)
        return b.build(outputs=[x])

    def _tokenize(self, b: GraphBuilder, tokenizer: str, dim: int) -> str:
        k, s = parse_tokenizer(tokenizer)
        x = b.input
        if self._one_d:
            length, channels = self.input_shape
            x = b.reshape(x, (1, 1, length, channels))
            kernel, stride = (1, k), (1, s)
        else:
            kernel, stride = (k, k), (s, s)
        return b.conv2d(x, filters=dim, kernel=kernel, stride=stride, padding="valid", activation=None,
                        batch_norm=False)

    @staticmethod
    def _attention(b: GraphBuilder, x: str, *, heads: int) -> str:
        """x + MHSA(BatchNorm(x)), in the converter's op order; the norm folds into Q, K and V."""
        _, tokens, dim = b.shape(x)

        def project(t: str) -> str:
            return b.fully_connected(t, units=dim, batch_norm_in=True)

        if heads == 1:
            q = project(x)
            k = project(x)
            p = b.softmax(b.batch_matmul(q, k, adj_y=True))
            v = b.transpose(project(x), perm=(0, 2, 1))
            o = b.batch_matmul(p, v, adj_y=True)
            return b.add(x, b.fully_connected(o, units=dim))
        head_dim = dim // heads

        def split(t: str, perm: tuple[int, ...]) -> str:
            return b.transpose(b.reshape(t, (1, tokens, heads, head_dim)), perm=perm)

        q = split(project(x), (0, 2, 1, 3))  # (1, H, T, d)
        k = split(project(x), (0, 2, 1, 3))  # (1, H, T, d)
        p = b.softmax(b.batch_matmul(q, k, adj_y=True))  # (1, H, T, T)
        v = split(project(x), (0, 2, 3, 1))  # (1, H, d, T)
        o = b.transpose(b.batch_matmul(p, v, adj_y=True), perm=(0, 2, 1, 3))  # (1, T, H, d)
        o = b.reshape(o, (tokens, dim), batch_axis=False)  # the converter's (T, D) before the projection
        return b.add(x, b.fully_connected(o, units=dim))

    @staticmethod
    def _ffn(b: GraphBuilder, x: str, *, ratio: int, activation: str) -> str:
        """x + FC(act(FC(BatchNorm(x)))); the norm folds into the first FULLY_CONNECTED, relu fuses
        into it."""
        dim = b.shape(x)[-1]
        if activation == "relu":
            h = b.fully_connected(x, units=ratio * dim, activation="relu", batch_norm_in=True)
        else:
            h = b.hard_swish(b.fully_connected(x, units=ratio * dim, batch_norm_in=True))
        return b.add(x, b.fully_connected(h, units=dim))
