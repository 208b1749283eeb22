"""Fine-tuning selects a persona: LoRA fine-tunes on trait-expressing, flawed and neutral data, the shift of the
model along persona vectors, trait expression, emergent misalignment, preventative steering and emergence over
training steps (``featurescope finetune-shift``)."""

from .config import FinetuneShiftConfig
from .data import DATA, TRAITS, Example, FinetuneSet, check_disjoint, load_set, math_rows, read_rows, set_names
from .measure import correlation_with_null, paired_effect, projection_difference, projection_shift, projections
from .run import run_finetune_shift, summarise

__all__ = [
    "DATA",
    "TRAITS",
    "Example",
    "FinetuneSet",
    "FinetuneShiftConfig",
    "check_disjoint",
    "correlation_with_null",
    "load_set",
    "math_rows",
    "paired_effect",
    "projection_difference",
    "projection_shift",
    "projections",
    "read_rows",
    "run_finetune_shift",
    "set_names",
    "summarise",
]
