"""Once-for-all weight sharing over the ``mcunet`` space (issue 12).

``plan`` maps an arch's Graph onto the supernet's weight slots, ``supernet``
holds the elastic weights and extracts plain Keras subnets, ``shrinking``
trains it by progressive shrinking with checkpoints, ``cache`` keys and guards
the trained supernet in the cache directory, ``evaluate`` scores subnets by
inherited accuracy after BatchNorm recalibration, ``pipeline`` is the run's
``supernet`` stage (``--strategy ofa``), ``predictor`` an MLP accuracy predictor and
``pairs`` the inherited accuracies it learns from, kept beside the supernet.
"""

from tinynas.ofa.plan import Step, SubnetPlan, subnet_plan


__all__ = ["Step", "SubnetPlan", "subnet_plan"]
