"""Fine-tuning selects a persona: LoRA fine-tunes on trait-expressing, flawed and neutral data, the shift of the
model along persona vectors, trait expression, emergent misalignment, preventative steering and emergence over
training steps (``featurescope finetune-shift``). :func:`run_finetune_shift` returns a :class:`FinetuneShiftResult`
(dict access as before, shift-vs-expression r with its null and the emergent-misalignment table in Jupyter,
``plot()``, ``to_frame()``)."""

from .config import FinetuneShiftConfig
from .data import DATA, TRAITS, Example, FinetuneSet, check_disjoint, load_set, math_rows, read_rows, set_names
from .measure import correlation_with_null, paired_effect, projection_difference, projection_shift, projections
from .results import EmergentMisalignmentRow, FinetuneShiftResult, ShiftCorrelation
from .run import run_finetune_shift, summarise

__all__ = [
    "DATA",
    "TRAITS",
    "EmergentMisalignmentRow",
    "Example",
    "FinetuneSet",
    "FinetuneShiftConfig",
    "FinetuneShiftResult",
    "ShiftCorrelation",
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
