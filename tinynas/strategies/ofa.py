"""``ofa``: once-for-all specialization (Cai et al. 2020): regularized evolution over the subnets
of one trained supernet, scored by inherited accuracy (tinynas.ofa.evaluate).

The pipeline (tinynas.pipeline.stages) trains or reuses the supernet in its ``supernet``
stage, runs this strategy in ``search`` against the subnet evaluator (journal fidelity
"ofa": a weight slice, a BatchNorm recalibration and one validation pass per subnet),
then fine-tunes the top few from their inherited weights (``finetune_keep``) in ``final``. The supernet
hyperparameters live here so ``--strategy-option`` sets them and config.toml records them.
"""

from __future__ import annotations

from typing import Callable

from tinynas.errors import SearchError
from tinynas.space.arch import Arch
from tinynas.space.base import SearchSpace
from tinynas.strategies.base import register_strategy
from tinynas.strategies.evolution import RegularizedEvolution

#: how the search scores a subnet: BN-recalibrated inherited accuracy (about a second), or the accuracy
#: predictor fitted once per supernet on ``predictor_samples`` inherited accuracies (microseconds)
SCORES = ("inherited", "predictor")


@register_strategy
class OnceForAll(RegularizedEvolution):
    """Evolution over the subnets the supernet covers (width <= ``max_width``).

    A subnet costs about a second, not a training, so the population is larger than
    plain evolution's (OFA's own search uses 100; 32 fits a budget of a few hundred).
    ``max_width``: the supernet's widest multiplier (0.35 by default, as benchmarked: on glyphs
    at 10 search minutes 0.5 deployed 0.6-1 point lower on nucleo-l010rb and nano33ble and its
    supernet took 40 % longer, benchmarks/ofa/README.md (l); nano33ble-class boards hold little
    more at 28x28).
    ``steps_per_phase``: optimizer steps per shrinking phase (200: the benchmarked schedule; on
    glyphs, 10 search minutes, 48 steps per phase on 1,000 samples deployed 4.6-5 points below it,
    benchmarks/ofa/README.md (l)). ``supernet_samples``: training samples the supernet trains on
    (None: every one; it is trained once per dataset and shared by every board, so ``--search-samples``
    and ``--search-epochs``, the per-candidate training of the other strategies, do not apply).
    ``subnets_per_step``: subnets sampled per step; ``recalibration_samples``: training
    samples that re-estimate a subnet's BatchNorm statistics (OFA uses 2000).
    ``finetune_keep``: share of each inherited kernel the final candidates start from, the rest a
    fresh initialisation (shrink and perturb; 1.0: the inherited weights as they are). 0.5 by
    default: on glyphs, nucleo-l010rb, the 10-epoch fine-tune from inherited weights ended 0.82 point
    below the same nets trained from scratch for 20 epochs (mean of 3 winners), from the blend 0.09
    below; it was ahead of the plain warm start on all 9 winners of 3 boards (benchmarks/ofa/README.md (m)).
    ``score``: ``inherited`` scores each subnet the search visits; ``predictor`` scores
    ``predictor_samples`` uniformly sampled subnets once per supernet (kept beside it, shared by every
    board and later run), fits the MLP predictor on them and searches by prediction, so a board's search
    costs seconds at thousands of candidates (OFA sec. 3.4); a ``verify`` stage then scores the
    ``verify_top`` best predicted by inherited accuracy, and the final stage takes its top from those.
    ``verify_rounds``: it measures them in that many rounds, refitting the predictor with the measured
    subnets before each later round (4: on glyphs the best measured on nucleo-l010rb rose from 0.54 to 0.61
    inherited accuracy, mean of 3 supernets, at the same 20 measurements; the roomier boards moved less than
    0.02, and deployed int8 stayed within the seeds' spread, benchmarks/ofa/README.md (r)).
    ``readers_phase``: the supernet ends with one more phase of ``steps_per_phase`` steps on subnets with a
    left-out stage, cycling over every (reader, predecessor) gap, that trains the blocks reading a left-out
    stage's predecessor and, at a tenth of their rate, every other weight, with the full network in each step
    (tinynas.ofa.shrinking's readers phase). Subnets with stage 4 or 5 left out trained alone as well as
    full-depth ones but inherited 0.1-0.2 less; on glyphs the phase lifted Kendall tau against stand-alone
    training from 0.518 / 0.526 / 0.556 to 0.580 / 0.569 / 0.568 over three supernets, for 130-160 s more
    training. Off by default: deployed int8 on the 3-board table did not follow (-0.1 to -0.5 points on the
    means, within the seeds' spread; benchmarks/ofa/README.md (t)).
    ``fill_budget``: with ``--budget-minutes``, the final stage spends the minutes the search left (most of
    them, once the supernet exists) on more candidates and epochs, chosen after timing the best candidate's
    planned training (tinynas.pipeline.fill). Off by default: a board then costs seconds beyond its final,
    which is what a sweep over many boards wants.
    """

    name = "ofa"
    supported_spaces = ("mcunet",)

    def __init__(
        self,
        *,
        space: SearchSpace,
        seed: int = 0,
        feasible: Callable[[Arch], bool] | None = None,
        max_tries: int = 1000,
        population_size: int = 32,
        sample_size: int = 8,
        mutations: int = 1,
        max_width: float = 0.35,
        steps_per_phase: int = 200,
        supernet_samples: int | None = None,
        subnets_per_step: int = 2,
        recalibration_samples: int = 2000,
        finetune_keep: float = 0.5,
        score: str = "inherited",
        predictor_samples: int = 1000,
        verify_top: int = 20,
        verify_rounds: int = 4,
        fill_budget: bool = False,
        readers_phase: bool = False,
    ) -> None:
        widths = [float(w) for w in space.decisions()[0].options] if space.name == "mcunet" else [float(max_width)]
        if float(max_width) not in widths:
            raise SearchError(f"ofa max_width must be one of the space's widths {sorted(widths)}, got {max_width}")
        if int(steps_per_phase) < 1:
            raise SearchError(f"ofa steps_per_phase must be at least 1, got {steps_per_phase}")
        if supernet_samples is not None and int(supernet_samples) < 1:
            raise SearchError(f"ofa supernet_samples must be at least 1 (or unset: every training sample), "
                              f"got {supernet_samples}")
        if int(subnets_per_step) < 1 or int(recalibration_samples) < 1:
            raise SearchError("ofa subnets_per_step and recalibration_samples must be at least 1")
        if not 0.0 <= float(finetune_keep) <= 1.0:
            raise SearchError(f"ofa finetune_keep must be within 0..1 (1: fine-tune the inherited weights as they "
                              f"are, 0: from scratch), got {finetune_keep}")
        if score not in SCORES:
            raise SearchError(f"ofa score must be one of {list(SCORES)}, got {score!r}")
        if int(predictor_samples) < 10:
            raise SearchError(f"ofa predictor_samples must be at least 10 (Once-for-All uses about 1,000), "
                              f"got {predictor_samples}")
        if int(verify_top) < 1:
            raise SearchError(f"ofa verify_top must be at least 1 (the predicted best subnets scored by inherited "
                              f"accuracy before final training), got {verify_top}")
        self.max_width = float(max_width)
        self.steps_per_phase = int(steps_per_phase)
        self.supernet_samples = None if supernet_samples is None else int(supernet_samples)
        self.subnets_per_step = int(subnets_per_step)
        self.recalibration_samples = int(recalibration_samples)
        self.finetune_keep = float(finetune_keep)
        self.score = score
        self.predictor_samples = int(predictor_samples)
        if int(verify_rounds) < 1:
            raise SearchError(f"ofa verify_rounds must be at least 1 (1: measure the search's best predicted "
                              f"only, without refitting the predictor), got {verify_rounds}")
        self.verify_top = int(verify_top)
        self.verify_rounds = int(verify_rounds)
        if not isinstance(fill_budget, bool):
            raise SearchError(f"ofa fill_budget must be true or false, got {fill_budget!r}")
        self.fill_budget = fill_budget  # read by the final stage (tinynas.pipeline.fill)
        if not isinstance(readers_phase, bool):
            raise SearchError(f"ofa readers_phase must be true or false, got {readers_phase!r}")
        self.readers_phase = readers_phase  # read by tinynas.ofa.pipeline.schedule_for
        limit = self.max_width

        def covered(arch: Arch) -> bool:
            return float(arch["width"]) <= limit and (feasible is None or feasible(arch))

        super().__init__(space=space, seed=seed, feasible=covered, max_tries=max_tries,
                         population_size=population_size, sample_size=sample_size, mutations=mutations)
