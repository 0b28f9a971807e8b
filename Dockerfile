# The image of docker-compose.yml's learner and finetuner services.
# torch comes from the CPU index by default (a few hundred MB instead of several GB of CUDA
# libraries); for a GPU host build with
#   --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126
FROM python:3.11-slim
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
WORKDIR /app
COPY pyproject.toml README.md ./
RUN pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" \
        "$(grep -o '"torch==[^"]*"' pyproject.toml | tr -d '"')"
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
