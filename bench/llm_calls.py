"""Model calls, prompt and completion tokens and USD per booking run, over the reference briefs, with a model that
answers every task perfectly at the first try (the policy's own decision, as a model would give it) and reports
real token counts (litellm's tokenizer). What the agents cost at best: the caps bound what a real model adds.

    .venv/bin/python bench/llm_calls.py            # a scratch SQLite database and an in-process sandbox seller

Prints a row per brief and a markdown table for the README. USD is priced as DEFAULT_LLM_MODEL and
MANAGER_LLM_MODEL would be (their defaults: Claude Sonnet 4.5 and Opus 4) from litellm's local cost map.
The reference buyer, measured the same way on the 3-channel reference brief: 7 calls, about 11,500 prompt
tokens.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))

BRIEFS = ROOT / "tests" / "fixtures" / "briefs"
PRICED_AS = {"manager": "anthropic/claude-opus-4-20250514", "specialist": "anthropic/claude-sonnet-4-5-20250929"}


def _setup(workdir: Path) -> None:
    os.environ.update(
        {
            "DATABASE_URL": f"sqlite:///{workdir / 'bench.db'}",
            "BUYER_VAR_DIR": str(workdir),
            "REDIS_URL": "",
            "LLM_MODE": "on",
            "MANAGER_LLM_MODEL": "perfect/manager",
            "DEFAULT_LLM_MODEL": "perfect/specialist",
            "SELLER_ENDPOINTS": "",
            "LOG_LEVEL": "WARNING",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }
    )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "buyer.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _perfect_model():  # type: ignore[no-untyped-def]
    """A litellm provider that answers each agent's task as the deterministic policy would, first time."""
    import litellm
    from litellm import CustomLLM
    from litellm.types.utils import ChatCompletionMessageToolCall, Choices, Function, Message, Usage

    def answer(model: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
        content = str(messages[1]["content"])
        facts = json.loads(content.split("<data>\n", 1)[1].rsplit("\n</data>", 1)[0])
        if model == "manager":
            return {
                "shares": [
                    {"channel": c, "percentage": float(p), "rationale": f"{c}: its share of the objectives"}
                    for c, p in facts["policy_split_pct"].items()
                ],
                "rationale": "The split follows the objectives' weights.",
            }
        return {
            "picks": [{"line": line["id"], "reason": "fits the brief at the quoted price"} for line in facts["lines"]],
            "rationale": "Every quoted line fits; best ranked first.",
        }

    class Perfect(CustomLLM):
        def completion(self, model, messages, api_base, custom_prompt_dict, model_response, *args, **kwargs):  # type: ignore[no-untyped-def]
            params = kwargs.get("optional_params") or {}
            arguments = json.dumps(answer(model, messages))
            prompt = litellm.token_counter(model="gpt-4o", messages=messages, tools=params.get("tools"))
            completion = litellm.token_counter(model="gpt-4o", text=arguments)
            call = ChatCompletionMessageToolCall(
                id="c1", type="function", function=Function(name="submit", arguments=arguments)
            )
            model_response.choices = [
                Choices(message=Message(content=None, tool_calls=[call]), finish_reason="stop", index=0)
            ]
            model_response.usage = Usage(
                prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
            )
            model_response.model = model
            return model_response

    litellm.custom_provider_map = [{"provider": "perfect", "custom_handler": Perfect()}]


def _serve_sandbox() -> str:
    import socket

    import uvicorn

    from buyer.sandbox import create_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    return f"http://127.0.0.1:{port}"


def _briefs() -> list[tuple[str, dict[str, Any]]]:
    from django.utils import timezone

    start = timezone.localdate() + timedelta(days=14)
    briefs = [
        (path.stem, json.loads(path.read_text()))
        for path in (BRIEFS / "reference-brief-basic.json", BRIEFS / "reference-brief-q1.json")
    ]
    from campaigns.brief_parse import parse_text

    # The agency's informal notes, as brief intake reads them (an objective added where they state none).
    for notes in json.loads((BRIEFS / "reference-briefs-informal.json").read_text()):
        brief = parse_text(json.dumps(notes), today=start).brief
        brief.setdefault("objectives", ["brand awareness"])
        briefs.append((notes["id"], brief))
    for name, brief in briefs:
        length = (
            timezone.datetime.fromisoformat(brief["end_date"]) - timezone.datetime.fromisoformat(brief["start_date"])
        ).days
        brief["start_date"], brief["end_date"] = start.isoformat(), (start + timedelta(days=length)).isoformat()
        brief["name"] = f"{brief['name'][:60]} ({name})"
    return briefs


def run() -> list[dict[str, Any]]:
    from django.db.models import Sum

    from buyer.llm.gateway import price_micros
    from buyer.llm.models import LlmCall
    from buyer.sellers.models import Seller
    from campaigns import services, tasks
    from campaigns.schemas import CampaignBriefIn

    Seller.objects.create(name="Sandbox", base_url=_serve_sandbox())
    rows = []
    for name, raw in _briefs():
        job = services.job_create_from_brief(CampaignBriefIn.model_validate(raw), auto_approve=False)
        tasks.job_plan.run(str(job.pk))
        tasks.job_research.run(str(job.pk))
        job.refresh_from_db()
        calls = LlmCall.objects.filter(job=job)
        sums = calls.aggregate(prompt=Sum("input_tokens"), completion=Sum("output_tokens"))
        usd = sum(
            price_micros(PRICED_AS[c.served_model], c.input_tokens, c.output_tokens) for c in calls if c.served_model
        )
        rows.append(
            {
                "brief": name,
                "channels": len(job.budget_allocations),
                "calls": calls.count(),
                "prompt_tokens": sums["prompt"] or 0,
                "completion_tokens": sums["completion"] or 0,
                "usd": usd / 1_000_000,
                "decided_by": sorted({r["decided_by"] for r in job.agents.values()}),
                "status": job.status,
            }
        )
    return rows


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-llm-") as workdir:
        _setup(Path(workdir))
        _perfect_model()
        rows = run()
    print("| brief | funded channels | model calls | prompt tokens | completion tokens | USD (Opus + Sonnet prices) |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['brief']} | {row['channels']} | {row['calls']} | {row['prompt_tokens']:,} | "
            f"{row['completion_tokens']:,} | ${row['usd']:.4f} |"
        )
        if row["decided_by"] != ["model"]:
            print(f"  warning: decided by {row['decided_by']} ({row['status']})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
