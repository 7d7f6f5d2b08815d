"""daedyn benchmarks: one module per question; ``python -m benchmarks`` runs them all."""
