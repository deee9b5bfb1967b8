# The product's image: web, worker and beat are the same image with different commands (compose.yaml).
# Slim, non-root, installed from the lock file with the same `make install` CI runs, healthy when /health answers.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LITELLM_LOCAL_MODEL_COST_MAP=True \
    BUYER_VAR_DIR=/app/var \
    WEB_HOST=0.0.0.0 \
    PORT=8001 \
    PATH=/opt/venv/bin:$PATH

# make runs the install; the PostgreSQL client is what `manage.py backup` / `restore` call.
RUN apt-get update \
    && apt-get install -y --no-install-recommends make postgresql-client \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY Makefile requirements.lock ./
RUN make install VENV=/opt/venv PYTHON=python3 && rm -rf /root/.cache

COPY . .
RUN useradd --create-home --uid 10001 buyer && mkdir -p /app/var && chown -R buyer:buyer /app/var
USER buyer

EXPOSE 8001
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('PORT', '8001')}/health\", timeout=2)"]

CMD ["python", "-m", "buyer.serve"]
