"""JAX engine for discrete toy policies under stale GRPO: exact population
gradients and staleness bias, local constants, and vectorised async-GRPO sweeps."""
