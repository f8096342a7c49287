# The Dynaseal image: one package, both services (`dynaseal gateway` / `dynaseal backend`).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir . && useradd --create-home dynaseal
USER dynaseal
EXPOSE 8000 9000
CMD ["dynaseal", "gateway", "--host", "0.0.0.0", "--port", "8000"]
