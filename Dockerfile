# taskql API image: the locked dependencies, our packages, a non-root user.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_COMPILE_BYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app

RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /app
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev
COPY core/ core/
COPY models/ models/
COPY auth/ auth/
COPY resolvers/ resolvers/
COPY schema/ schema/
COPY taskql/ taskql/
COPY graphql/ graphql/

RUN useradd --system --uid 10001 taskql
USER taskql
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz').status != 200)"]
# Migrations run as their own step (the `migrate` service), never racing from each replica.
CMD ["python", "-m", "taskql", "serve", "--host", "0.0.0.0", "--port", "8000", "--no-migrate"]
