# The learner image used by docker-compose.yml.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY stream stream
COPY consumers consumers
COPY learning learning
COPY model_store model_store
COPY monitoring monitoring
COPY lifelong lifelong
COPY deploy deploy
RUN pip install --no-cache-dir .
ENV LIFELONG_METRICS_ADDR=0.0.0.0
CMD ["lifelong", "learn"]
