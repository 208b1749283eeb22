"""Evidence: nulls, intervals and massive-activation handling for every headline number.

``massive`` (massive dimensions and outlier-norm tokens, the handlings compared side by side, a vector's share on
them), ``nulls`` (the verdict, held-out separation with a shuffled-label null, random directions), ``axis`` (role
resampling and the "any role as default" null for cos(axis, PC1), split-half PC cosines), ``decomposition``
(fraction explained by random directions). Pure functions; the commands call them on the data they hold.
"""

from .axis import axis_pc1_cosine, axis_pc1_evidence, split_half_pc_cosines
from .massive import (
    DIM_RATIO,
    HANDLINGS,
    OUTLIER_K,
    LayerMassive,
    handle_vector,
    layer_profile,
    massive_dims,
    outlier_tokens,
    robust_mean,
    share_on_dims,
    share_on_direction,
    vector_shares,
)
from .nulls import EFFECT, Evidence, Null, evidence, held_out_separation, random_directions, summarise_null, verdict

__all__ = [
    "DIM_RATIO",
    "EFFECT",
    "HANDLINGS",
    "OUTLIER_K",
    "Evidence",
    "LayerMassive",
    "Null",
    "axis_pc1_cosine",
    "axis_pc1_evidence",
    "evidence",
    "handle_vector",
    "held_out_separation",
    "layer_profile",
    "massive_dims",
    "outlier_tokens",
    "random_directions",
    "robust_mean",
    "share_on_dims",
    "share_on_direction",
    "split_half_pc_cosines",
    "summarise_null",
    "vector_shares",
    "verdict",
]
