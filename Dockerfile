# The kubegate image: the operator and the auth server (`kubegate operator`, `kubegate server`), installed from
# the wheel with their extras. The wheel leaves out the local control plane (kubegate.devcluster, development
# tooling), and so does the image: its sources stay in the build stage.
# Built with `docker build -t kubegate:dev .`; not built or run on the development machines (no Docker).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
COPY constraints.txt /tmp/constraints.txt
COPY --from=build /wheels /tmp/wheels
RUN pip install --no-cache-dir -c /tmp/constraints.txt "$(echo /tmp/wheels/kubegate-*.whl)[operator,server]" \
    && rm -rf /tmp/wheels /tmp/constraints.txt /root/.cache
USER 65532:65532
ENTRYPOINT ["kubegate"]
