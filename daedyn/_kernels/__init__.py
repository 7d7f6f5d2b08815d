"""Fused kernels for the hot loops (Pallas on GPU, pure-jnp fallback elsewhere).

Private: the public entry points in ``daedyn.dynamics`` / ``daedyn.theory`` dispatch here.
"""

from daedyn._kernels.scalar_gd import pallas_available, scalar_gd_fused

__all__ = ["pallas_available", "scalar_gd_fused"]
