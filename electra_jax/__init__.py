"""electra_jax: ELECTRA pre-training (replaced token detection) in JAX/Flax."""
