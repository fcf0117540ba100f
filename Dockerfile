# agentctl in a container: the CLI only, as a non-root user.
#   docker build -t agentctl .
#   docker run --rm -v "$PWD/contracts:/work/contracts:ro" agentctl validate contracts/
# Credentials come from the environment (AWS_*, AGENTCTL_CONFIG) or mounted files;
# nothing is baked into the image. The keyring backends need a desktop session,
# so in a container use `secrets.backend: aws-secretsmanager` (see README).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY agentctl ./agentctl
COPY schemas ./schemas
COPY policies ./policies
RUN pip wheel --no-cache-dir --no-deps -w /dist .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 agentctl
COPY --from=build /dist /dist
RUN pip install --no-cache-dir /dist/*.whl && rm -rf /dist
USER agentctl
WORKDIR /work
ENTRYPOINT ["agentctl"]
CMD ["--help"]
