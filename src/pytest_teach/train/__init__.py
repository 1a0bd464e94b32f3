"""Language-model fine-tuning with TRL: SFT, DPO and GRPO on JSONL datasets, the tiny offline
base model, and :func:`train_model`, the one training run they share; under torchrun or
accelerate launch, :func:`ranks` says which process this is.

Light to import: the names below load on first use, and torch, transformers, trl, peft and
datasets only when a model is built or trained.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "_common": (
        "StepCallback",
        "base_ref",
        "check_args",
        "ensure_tiny_base",
        "fit_trl",
        "load_base",
        "lora_config",
    ),
    "_dist": ("LaunchError", "RankError", "Ranks", "dist_timeout", "ranks", "share_from_main"),
    "_run": (
        "METHODS",
        "BaseModel",
        "TrainPlan",
        "TrainSettings",
        "TrainedRun",
        "load_rows",
        "train_model",
    ),
    "sft": ("SFTDataError", "load_chat_rows", "train_sft"),
    "dpo": ("DPODataError", "load_preference_rows", "train_dpo"),
    "grpo": ("GRPODataError", "load_prompt_rows", "tool_selection_reward", "train_grpo"),
    "tiny": (
        "DEFAULT_CORPUS",
        "MAX_TEXTS",
        "build_tiny_model",
        "corpus_from_file",
        "corpus_from_store",
        "tiny_base_cache",
        "write_tiny_model",
    ),
}

__all__ = sorted(name for names in _EXPORTS.values() for name in names)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
