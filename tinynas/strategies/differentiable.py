"""``darts``, ``drnas``, ``rdarts``: differentiable search (DARTS, Liu et al. 2019; DrNAS, Chen et al. 2021;
RobustDARTS, Zela et al. 2020) over a layer-wise supernet of ``mcunet`` or ``dscnn`` (tinynas.darts.layerwise).

The pipeline (tinynas.pipeline.stages) trains the supernet in its ``differentiable`` stage around a base arch
(the largest of a few feasible samples), derives the arch by argmax per block, repairs it to the nearest
feasible one when the cost model says it does not fit, and journals it (fidelity "supernet"). The ``search``
stage then runs this strategy: evolution seeded with the derived arch, so the derived arch is trained first
and the rest of the candidate budget checks its one-decision neighbours. The supernet's hyperparameters
live here so ``--strategy-option`` sets them and config.toml records them.
"""

from __future__ import annotations

from typing import Callable, Sequence

from tinynas.darts.layerwise import RELAXABLE_SPACES
from tinynas.errors import SearchError
from tinynas.space.arch import Arch
from tinynas.space.base import SearchSpace
from tinynas.strategies.base import register_strategy
from tinynas.strategies.staged import StagedSearch


class DifferentiableSearch(StagedSearch):
    """Evolution seeded with the differentiable stage's derived arch (``seed_archs``).

    ``supernet_epochs`` (None: ``--search-epochs``) and ``supernet_samples`` (None: ``--search-samples``)
    size the supernet training; ``alpha_lr`` is the architecture step (the papers' 3e-4 is for 50 epochs;
    a few-epoch TinyML search needs a larger one, 0.01 here); ``hw_lambda`` the weight of the latency and
    arena hinges (ramped over the first half of the epochs); ``base_samples``: feasible random archs whose
    largest (by MACs) with at most the branches of ``max_mixed_blocks`` mcunet blocks fixes the supernet's
    width, resolution, channels and depths (an mcunet block is 9 branches of the supernet: its tracing and
    training time grow with them; a dscnn supernet is always under the cap, tinynas.pipeline.differentiable).
    """

    supported_spaces = RELAXABLE_SPACES
    method = "darts"

    def __init__(
        self,
        *,
        space: SearchSpace,
        seed: int = 0,
        feasible: Callable[[Arch], bool] | None = None,
        max_tries: int = 1000,
        population_size: int = 12,
        sample_size: int = 4,
        mutations: int = 1,
        seed_archs: Sequence[Arch] = (),
        supernet_epochs: int | None = None,
        supernet_samples: int | None = None,
        alpha_lr: float = 0.01,
        hw_lambda: float = 1.0,
        base_samples: int = 16,
        max_mixed_blocks: int = 4,
    ) -> None:
        super().__init__(space=space, seed=seed, feasible=feasible, max_tries=max_tries,
                         population_size=population_size, sample_size=sample_size, mutations=mutations,
                         seed_archs=seed_archs)
        if supernet_epochs is not None and int(supernet_epochs) < 1:
            raise SearchError(f"{self.name} supernet_epochs must be at least 1, got {supernet_epochs}")
        if supernet_samples is not None and int(supernet_samples) < 8:
            raise SearchError(f"{self.name} supernet_samples must be at least 8, got {supernet_samples}")
        if int(max_mixed_blocks) < 1:
            raise SearchError(f"{self.name} max_mixed_blocks must be at least 1, got {max_mixed_blocks}")
        if float(alpha_lr) <= 0.0 or float(hw_lambda) < 0.0 or int(base_samples) < 1:
            raise SearchError(f"{self.name} needs alpha_lr > 0, hw_lambda >= 0 and base_samples >= 1; got "
                              f"{alpha_lr}, {hw_lambda}, {base_samples}")
        self.supernet_epochs = None if supernet_epochs is None else int(supernet_epochs)
        self.supernet_samples = None if supernet_samples is None else int(supernet_samples)
        self.alpha_lr = float(alpha_lr)
        self.hw_lambda = float(hw_lambda)
        self.base_samples = int(base_samples)
        self.max_mixed_blocks = int(max_mixed_blocks)

    def config(self, *, epochs: int, batch_size: int, epoch_passes: int = 1) -> object:
        """The ``DartsConfig`` of this strategy's supernet search."""
        from tinynas.darts import DartsConfig

        robust = self.name == "rdarts"
        # RobustDARTS: Hessian eigenvalue each epoch (power iteration: blocks x 9 alphas) and its early stop
        return DartsConfig(method=self.method, epochs=int(epochs), batch_size=int(batch_size),
                           epoch_passes=int(epoch_passes), seed=self.seed,
                           alpha_lr=self.alpha_lr, hw_lambda=self.hw_lambda, hessian="power",
                           hessian_every=1 if robust else 0, early_stop=robust,
                           min_epoch=min(10, max(1, int(epochs) - 1)))


@register_strategy
class Darts(DifferentiableSearch):
    """First-order DARTS: softmax mixing weights."""

    name = "darts"
    method = "darts"


@register_strategy
class DrNas(DifferentiableSearch):
    """DrNAS: mixing weights sampled from Dirichlet(ELU(alpha) + 1) at every forward pass."""

    name = "drnas"
    method = "drnas"


@register_strategy
class RobustDarts(DifferentiableSearch):
    """RobustDARTS: DARTS with the Hessian-eigenvalue early stop (the arch at the stop is kept)."""

    name = "rdarts"
    method = "darts"
