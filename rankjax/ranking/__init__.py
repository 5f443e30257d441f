"""Ranking core: losses, metrics, lambda weights and their shared utilities (pure jnp)."""
