"""A scripted model provider for tests, registered with litellm as ``scripted/…``: each call takes the next step
of its model's script (an answer, a tool call, text, an exception) or asks a responder. Every request is kept,
so a test can read what reached the model. No network."""

from __future__ import annotations

import json
from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Request:
    model: str
    messages: list[dict[str, Any]]
    params: dict[str, Any]

    @property
    def text(self) -> str:
        return json.dumps(self.messages, default=str) + json.dumps(self.params, default=str)

    @property
    def system(self) -> str:
        return str(self.messages[0].get("content") or "")

    def data(self) -> Any:
        """The JSON facts inside the <data> tags of the first user message."""
        content = str(self.messages[1]["content"])
        return json.loads(content.split("<data>\n", 1)[1].rsplit("\n</data>", 1)[0])


@dataclass(frozen=True)
class Step:
    kind: str  # submit | tool | text | raw
    value: Any = None
    name: str = ""
    prompt_tokens: int = 200
    completion_tokens: int = 60


def submit(answer: dict[str, Any], **tokens: int) -> Step:
    return Step("submit", answer, **tokens)


def tool(name: str, arguments: dict[str, Any]) -> Step:
    return Step("tool", arguments, name=name)


def text(content: str) -> Step:
    return Step("text", content)


def raw_arguments(arguments: str) -> Step:
    """A submit call whose arguments are not valid JSON."""
    return Step("raw", arguments)


def rate_limited(retry_after: float | None = 7) -> Exception:
    import litellm

    headers = {"retry-after": str(retry_after)} if retry_after is not None else {}
    response = httpx.Response(429, headers=headers, request=httpx.Request("POST", "http://model.invalid"))
    return litellm.RateLimitError("slow down", llm_provider="scripted", model="m", response=response)


def server_error() -> Exception:
    import litellm

    return litellm.InternalServerError("overloaded", llm_provider="scripted", model="m")


def timed_out() -> Exception:
    import litellm

    return litellm.Timeout("no answer in time", model="m", llm_provider="scripted")


def unauthorized() -> Exception:
    import litellm

    return litellm.AuthenticationError("invalid x-api-key", llm_provider="scripted", model="m")


@dataclass
class ScriptedLLM:
    """The handler litellm calls for ``scripted/<name>`` models."""

    scripts: dict[str, list[Any]] = field(default_factory=dict)
    responder: Callable[[Request], Any] | None = None
    requests: list[Request] = field(default_factory=list)

    def script(self, model: str, *steps: Any) -> None:
        self.scripts.setdefault(model.removeprefix("scripted/"), []).extend(steps)

    def calls_to(self, model: str) -> list[Request]:
        return [r for r in self.requests if r.model == model.removeprefix("scripted/")]

    def handler(self):  # type: ignore[no-untyped-def]
        from litellm import CustomLLM

        fake = self

        class Handler(CustomLLM):
            def completion(self, model, messages, api_base, custom_prompt_dict, model_response, *args, **kwargs):  # type: ignore[no-untyped-def]
                params = dict(kwargs.get("optional_params") or (args[4] if len(args) > 4 else {}))
                return fake.answer(model, messages, params, model_response)

        return Handler()

    def answer(self, model: str, messages: list[dict[str, Any]], params: dict[str, Any], response: Any) -> Any:
        from litellm.types.utils import ChatCompletionMessageToolCall, Choices, Function, Message, Usage

        request = Request(model, deepcopy(messages), params)
        self.requests.append(request)
        queue = self.scripts.get(model)
        if queue:
            step = queue.pop(0)
        elif self.responder is not None:
            step = self.responder(request)
        else:
            raise AssertionError(f"the scripted model {model} was called with nothing left to answer")
        if callable(step) and not isinstance(step, Step):
            step = step(request)
        if isinstance(step, BaseException):
            raise step
        if step.kind == "text":
            message = Message(content=step.value)
        else:
            name = step.name or "submit"
            arguments = step.value if step.kind == "raw" else json.dumps(step.value)
            call = ChatCompletionMessageToolCall(
                id=f"call-{len(self.requests)}", type="function", function=Function(name=name, arguments=arguments)
            )
            message = Message(content=None, tool_calls=[call])
        response.choices = [Choices(message=message, finish_reason="stop", index=0)]
        response.usage = Usage(
            prompt_tokens=step.prompt_tokens,
            completion_tokens=step.completion_tokens,
            total_tokens=step.prompt_tokens + step.completion_tokens,
        )
        response.model = model
        return response
