"""Whether the agents run (``LLM_MODE``): without a provider key the deterministic policies make every decision,
through the same flow and the same events. Cheap: reads settings and the environment, never imports litellm."""

from __future__ import annotations

import os
from dataclasses import dataclass

from django.conf import settings

# The variable that holds each common provider's key (litellm reads them from the environment).
PROVIDER_KEYS: dict[str, tuple[str, ...]] = {
    "anthropic": ("ANTHROPIC_API_KEY",),
    "openai": ("OPENAI_API_KEY",),
    "azure": ("AZURE_API_KEY",),
    "gemini": ("GEMINI_API_KEY",),
    "vertex_ai": ("GOOGLE_APPLICATION_CREDENTIALS",),
    "bedrock": ("AWS_ACCESS_KEY_ID", "AWS_PROFILE"),
    "mistral": ("MISTRAL_API_KEY",),
    "groq": ("GROQ_API_KEY",),
    "cohere": ("COHERE_API_KEY",),
    "openrouter": ("OPENROUTER_API_KEY",),
    "deepseek": ("DEEPSEEK_API_KEY",),
    "together_ai": ("TOGETHERAI_API_KEY", "TOGETHER_API_KEY"),
}
# Providers served on this machine or network, which need no key.
KEYLESS_PROVIDERS = frozenset({"ollama", "ollama_chat", "llamafile", "lm_studio", "hosted_vllm", "llamacpp"})


@dataclass(frozen=True)
class Mode:
    active: bool
    why: str

    @property
    def label(self) -> str:
        return "agents (LLM)" if self.active else "deterministic policies"


def _has_key(model: str) -> bool:
    provider = model.split("/", 1)[0] if "/" in model else ""
    if provider in KEYLESS_PROVIDERS:
        return True
    if provider == "anthropic" and settings.ANTHROPIC_API_KEY:
        return True
    return any(os.environ.get(name) for name in PROVIDER_KEYS.get(provider, ()))


def llm_mode() -> Mode:
    """Which decides: the agents, or the deterministic policies, and why."""
    if settings.LLM_MODE == "off":
        return Mode(False, "LLM_MODE=off")
    models = {settings.DEFAULT_LLM_MODEL, settings.MANAGER_LLM_MODEL}
    if settings.LLM_MODE == "on":
        return Mode(True, f"LLM_MODE=on ({', '.join(sorted(models))})")
    missing = sorted(m for m in models if not _has_key(m))
    if missing:
        return Mode(False, f"no provider key for {', '.join(missing)} (LLM_MODE=auto)")
    return Mode(True, f"provider keys found for {', '.join(sorted(models))} (LLM_MODE=auto)")
