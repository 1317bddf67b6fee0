# The kubegate image: one Python package, two commands (`kubegate operator`, `kubegate server`).
# Built with `docker build -t kubegate:dev .`; not built or run on the development machines (no Docker).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY operator ./operator
RUN pip install --no-cache-dir -c constraints.txt . && rm -rf /root/.cache
USER 65532:65532
ENTRYPOINT ["kubegate"]
