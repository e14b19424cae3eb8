# One image for every Python/Spark service of docker-compose.yml: the Dagster webserver, daemon
# and user-code server, the MovieLens loader, and the Spark master and workers (pyspark ships
# Spark's jars and bin/spark-class, so executors run exactly the driver's Spark version).
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless libopenblas0-pthread \
      libpostgresql-jdbc-java procps curl \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/als_assets
COPY pyproject.toml README.md ./
COPY als_assets ./als_assets
RUN pip install --no-cache-dir . "dagster-postgres==0.29.27"

ENV DAGSTER_HOME=/opt/dagster/home \
    ALS_STORAGE_ROOT=/opt/als/storage \
    PYSPARK_PYTHON=python3
COPY deploy/dagster.yaml deploy/workspace.yaml /opt/dagster/home/
RUN mkdir -p /opt/als/storage
