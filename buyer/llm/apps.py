from django.apps import AppConfig


class LlmConfig(AppConfig):
    name = "buyer.llm"
    label = "llm"
    verbose_name = "LLM calls"
