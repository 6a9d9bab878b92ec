"""How the search's candidates are ranked for the final training, and the finalists for the winner."""

from tinynas.pipeline.stages import top_candidates


def _entry(arch_id, accuracy, val_loss, latency_ms, *, fits=True):
    return {"id": arch_id, "accuracy": accuracy, "val_loss": val_loss,
            "cost": {"latency_ms": latency_ms, "fits": fits}}


def test_equal_accuracies_rank_by_validation_loss_then_latency():
    """On 8 validation series accuracy moves in steps of 12.5 points and well-trained candidates tie at 1.0;
    their loss still tells them apart, where latency alone picked the smallest of them."""
    entries = [_entry("small", 1.0, 0.30, 2.0), _entry("sure", 1.0, 0.05, 9.0), _entry("worse", 0.875, 0.01, 1.0),
               _entry("sure-faster", 1.0, 0.05, 3.0), _entry("too-big", 1.0, 0.01, 50.0, fits=False),
               _entry("sure", 0.5, 2.0, 9.0)]  # an arch's best entry counts
    assert [e["id"] for e in top_candidates(entries, 4)] == ["sure-faster", "sure", "small", "worse"]
    # scores without a loss (an accuracy predictor's) rank among themselves by latency
    predicted = [_entry("slow", 0.9, None, 8.0), _entry("fast", 0.9, None, 2.0), _entry("best", 0.95, None, 9.0)]
    assert [e["id"] for e in top_candidates(predicted, 3)] == ["best", "fast", "slow"]
