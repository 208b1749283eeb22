"""featurescope: study personas inside language models.

>>> import featurescope as fs
>>> base = fs.load_model("offline:gemma-3-270m")
>>> acts = fs.capture(base, ["Who are you?"], reduction="last_prompt")
"""

from . import paper, versions  # fs.paper.NUMBERS: published numbers; fs.versions: installed versions
from .axis import AssistantAxis, AxisRunResult, DriftResult, collect_axis, run_axis
from .capture import Activations, CaptureConfig, capture, default_hooks
from .decompose_run import VectorDecomposition, decompose_vector
from .errors import FeaturescopeError
from .exports import export_control_vector, export_neuronpedia, load_pretrained, save_pretrained
from .features import InterpretResult, SharedLatentsResult
from .formatting import FormattedPrompt, Message, TranscriptFormat, format_conversation
from .generate import Generation, GenerationConfig, generate
from .judge import EmbeddingJudge, OpenAIJudge, default_judge
from .models import (
    DEFAULT_BASE,
    DEFAULT_POST_TRAINED,
    FLAGSHIP_BASE,
    FLAGSHIP_POST_TRAINED,
    Model,
    ModelInfo,
    from_hooked_transformer,
    hf_hidden_state_for_hook,
    hook_for_hf_hidden_state,
    list_models,
    load_model,
)
from .persona import PersonaVector, extract_written, run_persona, steer, steering_sweep
from .persona import extract as extract_persona
from .report import write_report
from .saes import evaluate_sae, load_sae
from .stages import run_stages
from .store import ActivationStore
from .traits import Trait, list_traits, load_trait

__version__ = "0.1.0"

__all__ = [
    "AssistantAxis",
    "AxisRunResult",
    "InterpretResult",
    "SharedLatentsResult",
    "DriftResult",
    "collect_axis",
    "run_axis",
    "write_report",
    "load_sae",
    "evaluate_sae",
    "VectorDecomposition",
    "decompose_vector",
    "export_control_vector",
    "export_neuronpedia",
    "load_pretrained",
    "save_pretrained",
    "paper",
    "versions",
    "Activations",
    "ActivationStore",
    "CaptureConfig",
    "DEFAULT_BASE",
    "DEFAULT_POST_TRAINED",
    "FLAGSHIP_BASE",
    "FLAGSHIP_POST_TRAINED",
    "FeaturescopeError",
    "FormattedPrompt",
    "Generation",
    "GenerationConfig",
    "Message",
    "Model",
    "ModelInfo",
    "TranscriptFormat",
    "capture",
    "default_hooks",
    "format_conversation",
    "from_hooked_transformer",
    "generate",
    "hf_hidden_state_for_hook",
    "hook_for_hf_hidden_state",
    "list_models",
    "load_model",
    "EmbeddingJudge",
    "OpenAIJudge",
    "default_judge",
    "PersonaVector",
    "extract_persona",
    "extract_written",
    "run_persona",
    "steer",
    "steering_sweep",
    "run_stages",
    "Trait",
    "list_traits",
    "load_trait",
]
