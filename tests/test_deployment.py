"""What can be checked of the deployment files here (no Docker engine, no cluster): they parse and validate
where a validator exists (docker-compose's schema, ``nginx -t``, Kubernetes' JSON schemas), their services,
dependencies and health checks agree, their variables are settings taskql knows, their commands and flags
exist, their probes, ports and scrape targets point at the app's real routes and port, and the shipped nginx
config really passes HTTP and WebSockets to a taskql server."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import typer.main
import yaml
from pydantic import TypeAdapter
from starlette.routing import BaseRoute, Route, WebSocketRoute

from core.settings import Settings
from taskql.app import create_app
from taskql.cli.main import app as cli
from taskql.jobs.worker import QUEUE_CONNECTIONS as WORKER_QUEUE_CONNECTIONS
from tests import nginx
from tests.factories import register
from tests.graphql_client import GraphQLClient
from tests.processes import ROOT, TEST_SECRET, free_port, servers_on
from tests.services import Services
from tests.ws_client import Subscriber

SETTINGS = {name.upper() for name in Settings.model_fields}
# Named by the deployment files ahead of the telemetry work (JSON logs), which adds it to the settings.
STANDARD = re.compile(r"^(OTEL|PROMETHEUS)_[A-Z0-9_]+$")  # read by OpenTelemetry / prometheus_client
METRICS_PATH = "/metrics"
SERVE_PORT = 8000
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
REPLICAS = ["api-1", "api-2", "api-3"]
WORKERS = ["worker-1", "worker-2"]
WORKER_COMMAND = ["python", "-m", "taskql", "worker"]
OBSERVABILITY = {"otel-collector", "jaeger", "prometheus", "grafana"}
DOCKER_COMPOSE = shutil.which("docker-compose")
# PostgreSQL's default max_connections, of which 3 are kept for superusers.
MAX_CONNECTIONS = 100 - 3
# A worker's PostgreSQL connections besides its pools as an API pod's are counted (two; a worker has one):
# the queue's own pool (pgqueuer's LISTEN and queries), and one per endpoint its webhook pumps deliver to
# at once (each holds its endpoint's lock).
QUEUE_CONNECTIONS = WORKER_QUEUE_CONNECTIONS
# An API process's besides its pools: the live inbox's LISTEN (taskql.realtime.inbox).
INBOX_CONNECTIONS = 1


def webhook_locks(environment: dict[str, Any]) -> int:
    return int(environment.get("WEBHOOK_CONCURRENCY", Settings.model_fields["webhook_concurrency"].default))


# Reading the files ------------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def services() -> dict[str, dict[str, Any]]:
    return dict(compose()["services"])


def taskql_services() -> dict[str, dict[str, Any]]:
    """The services that run the taskql image."""
    return {name: service for name, service in services().items() if service.get("image") == "taskql:local"}


def dockerfile_json(instruction: str) -> list[str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    match = re.search(rf"^{instruction}\s+(?:--\S+\s+)*(?:CMD\s+)?(\[.*\])\s*$", text, re.MULTILINE)
    assert match, instruction
    return list(yaml.safe_load(match.group(1)))


def cli_commands() -> dict[str, set[str]]:
    """Each command of the CLI and the options it takes."""
    group: Any = typer.main.get_command(cli)
    return {
        name: {option for param in command.params for option in (*param.opts, *param.secondary_opts)}
        for name, command in group.commands.items()
    }


def app_routes() -> dict[str, type[BaseRoute]]:
    routes = create_app(Settings(jwt_secret=TEST_SECRET)).routes
    return {route.path: type(route) for route in routes if isinstance(route, Route | WebSocketRoute)}


def http_routes() -> set[str]:
    return {path for path, kind in app_routes().items() if kind is Route}


def setting(name: str, environment: dict[str, Any]) -> Any:
    """The value taskql reads for setting ``name`` from ``environment`` (as pydantic parses it: "false" is
    False), or its default."""
    model_field = Settings.model_fields[name.lower()]
    if name not in environment:
        return model_field.get_default(call_default_factory=True)
    assert model_field.annotation is not None
    return TypeAdapter(model_field.annotation).validate_python(environment[name])


def seconds(duration: str) -> int:
    """A Compose duration in seconds ("35s", "1m30s")."""
    parts = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert duration, duration
    assert parts, duration
    return int(parts.group(1) or 0) * 60 + int(parts.group(2) or 0)


def assert_real_command(command: list[str]) -> str:
    """``command`` is ``python -m taskql <subcommand> [options]`` with options the subcommand takes; the
    subcommand."""
    assert command[:3] == ["python", "-m", "taskql"], command
    subcommand, *options = command[3:]
    known = cli_commands()
    assert subcommand in known, subcommand
    assert {option for option in options if option.startswith("--")} <= known[subcommand], command
    return subcommand


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def k8s_files() -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every document of deploy/k8s's files, with its file."""
    for path in sorted(K8S.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            yield path, document


def k8s_objects() -> list[dict[str, Any]]:
    """Every Kubernetes object of deploy/k8s (the Kustomization included)."""
    return [document for _, document in k8s_files()]


def k8s(kind: str, name: str | None = None) -> dict[str, Any]:
    """The object of deploy/k8s of that kind (and that name, where there are several of the kind)."""
    found = [
        document
        for document in k8s_objects()
        if document["kind"] == kind and name in (None, document.get("metadata", {}).get("name"))
    ]
    assert len(found) == 1, f"{len(found)} {kind} objects named {name or 'anything'}"
    return found[0]


def pod_spec(kind: str, name: str | None = None) -> dict[str, Any]:
    return dict(k8s(kind, name)["spec"]["template"]["spec"])


def env_file_names(path: Path) -> set[str]:
    """The variables an env file sets (``NAME=value``), commented out or not."""
    return set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", path.read_text(), re.MULTILINE))


def assert_known_variables(names: set[str], where: str) -> None:
    unknown = {name for name in names if name not in SETTINGS and not STANDARD.match(name)}
    assert not unknown, f"{where} sets variables taskql does not read: {sorted(unknown)}"


def nginx_conf() -> str:
    return (DEPLOY / "nginx" / "nginx.conf").read_text()


def local_nginx_conf(upstream_port: int, listen_port: int) -> str:
    """The shipped nginx config with its upstream hosts on this machine (the compose service names do not
    resolve here) and listening on a free loopback port."""
    text, replaced = re.subn(r"server api-\d+:8000", f"server 127.0.0.1:{upstream_port}", nginx_conf())
    assert replaced == len(REPLICAS)
    text, listens = re.subn(r"listen 80;", f"listen 127.0.0.1:{listen_port};", text)
    assert listens == 1
    return text


# Compose -----------------------------------------------------------------------------------------------


def test_compose_runs_postgres_redis_a_migration_three_replicas_a_load_balancer_two_workers_and_mailpit() -> (
    None
):
    defined = services()
    core = {name for name, service in defined.items() if "profiles" not in service}
    assert core == {"postgres", "redis", "migrate", *REPLICAS, "lb", *WORKERS, "mailpit"}
    assert {name for name, service in defined.items() if service.get("profiles") == ["observability"]} == (
        OBSERVABILITY
    )
    assert "postgres-data:/var/lib/postgresql/data" in defined["postgres"]["volumes"]
    assert defined["lb"]["ports"] == ["8000:80"]
    assert all("ports" not in defined[name] for name in [*REPLICAS, *WORKERS]), "only the load balancer"
    # Mailpit's web UI shows every mail (password-reset links among them): on this machine only.
    assert defined["mailpit"]["ports"] == ["127.0.0.1:8025:8025"]


def test_compose_dependencies_exist_and_wait_for_what_they_need() -> None:
    defined = services()
    for name, service in defined.items():
        depends = service.get("depends_on", {})
        conditions = depends if isinstance(depends, dict) else {target: {} for target in depends}
        for target, how in conditions.items():
            assert target in defined, f"{name} depends on a service that does not exist: {target}"
            if "profiles" not in service:
                assert "profiles" not in defined[target], f"{name} needs {target}, which is optional"
            condition = how.get("condition", "service_started")
            if condition == "service_healthy":
                assert "healthcheck" in defined[target], f"{name} waits for {target}'s health, it has none"
            if condition == "service_completed_successfully":
                assert defined[target].get("restart") == "no", f"{target} runs once"
    migrate = defined["migrate"]
    assert assert_real_command(migrate["command"]) == "migrate"
    # It flushes the response cache after migrating: Redis must be up too.
    assert {target: how["condition"] for target, how in migrate["depends_on"].items()} == {
        "postgres": "service_healthy",
        "redis": "service_healthy",
    }
    for name in REPLICAS:
        assert defined[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert defined["lb"]["depends_on"][name]["condition"] == "service_healthy"
    for name in WORKERS:
        conditions = {target: how["condition"] for target, how in defined[name]["depends_on"].items()}
        assert conditions["migrate"] == "service_completed_successfully", "the worker never migrates"
        assert conditions["postgres"] == conditions["redis"] == "service_healthy"


def test_the_replicas_serve_on_the_probed_port_never_migrate_and_outlast_their_drain() -> None:
    routes = http_routes()
    for name, service in taskql_services().items():
        if name == "migrate" or name in WORKERS:
            continue
        assert name in REPLICAS
        command = service["command"]
        assert assert_real_command(command) == "serve"
        assert "--no-migrate" in command
        assert int(option(command, "--port")) == SERVE_PORT
        probe = " ".join(service["healthcheck"]["test"])
        url = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", probe)
        assert url, probe
        assert (int(url.group(1)), url.group(2)) == (SERVE_PORT, "/readyz")
        assert url.group(2) in routes
        grace = seconds(service["stop_grace_period"])
        assert grace > int(service["environment"]["SHUTDOWN_TIMEOUT_SECONDS"]), "Docker kills after it"


def test_the_replicas_leave_the_jobs_to_the_workers() -> None:
    for name in REPLICAS:
        assert setting("JOBS_EMBEDDED_WORKER", services()[name]["environment"]) is False, name
    assert Settings.model_fields["jobs_embedded_worker"].default is True, "else this would prove nothing"


def test_the_workers_run_the_worker_command_after_the_migration_and_outlast_their_drain() -> None:
    defined = taskql_services()
    api = defined[REPLICAS[0]]
    for name in WORKERS:
        worker = defined[name]
        # Not told to migrate; it starts once the migration has run (the dependencies' test).
        assert worker["command"] == WORKER_COMMAND
        assert worker["image"] == api["image"]
        assert worker["build"] == api["build"]
        # The replicas' settings, but their pools, which are the workers' own.
        differences = {
            key
            for key in {*worker["environment"], *api["environment"]}
            if worker["environment"].get(key) != api["environment"].get(key)
        }
        assert differences == {"DB_POOL_SIZE", "DB_MAX_OVERFLOW", "JOBS_EMBEDDED_WORKER"}
        drain = setting("JOBS_DRAIN_SECONDS", worker["environment"])
        assert seconds(worker["stop_grace_period"]) > drain, "Docker kills after it"
        assert worker["restart"] == "unless-stopped"


def test_the_workers_mail_through_mailpit_unless_told_otherwise_with_links_to_the_load_balancer() -> None:
    environment = services()[WORKERS[0]]["environment"]
    smtp = re.fullmatch(r"\$\{SMTP_URL:-(.+)\}", environment["SMTP_URL"])
    assert smtp, "SMTP_URL is passed through, with a default"
    address = urlparse(smtp.group(1))
    assert (address.scheme, address.hostname) == ("smtp", "mailpit")
    assert address.port == 1025  # Mailpit's SMTP port
    public = re.fullmatch(r"\$\{PUBLIC_URL:-(.+)\}", environment["PUBLIC_URL"])
    assert public
    (published,) = services()["lb"]["ports"]
    assert urlparse(public.group(1)).port == int(published.split(":")[0])


def test_the_replicas_and_workers_fit_in_postgresqls_connections() -> None:
    defined = services()
    used = 0
    for name in [*REPLICAS, *WORKERS]:
        environment = defined[name]["environment"]
        used += 2 * (int(environment["DB_POOL_SIZE"]) + int(environment["DB_MAX_OVERFLOW"]))
        used += QUEUE_CONNECTIONS + webhook_locks(environment) if name in WORKERS else INBOX_CONNECTIONS
    assert used <= MAX_CONNECTIONS  # the migration has ended before any of them starts


def test_every_variable_given_to_taskql_is_a_setting_or_a_standard_one() -> None:
    for name, service in taskql_services().items():
        assert_known_variables(set(service["environment"]), f"docker-compose.yml ({name})")
    assert_known_variables(set(k8s("ConfigMap")["data"]), "deploy/k8s/configmap.yaml")
    for _, container in containers():
        assert_known_variables({variable["name"] for variable in container.get("env", [])}, container["name"])
    assert_known_variables(env_file_names(K8S / "secret.env.example"), "deploy/k8s/secret.env.example")
    assert_known_variables(env_file_names(ROOT / ".env.example"), ".env.example")


def test_env_example_names_every_setting() -> None:
    names = env_file_names(ROOT / ".env.example")
    assert {name for name in names if not STANDARD.match(name)} == SETTINGS


def test_compose_with_a_jwt_secret_passes_docker_composes_own_validation() -> None:
    result = docker_compose_config({"JWT_SECRET": TEST_SECRET})
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == set(services())


def test_compose_refuses_to_start_without_a_jwt_secret() -> None:
    result = docker_compose_config({})
    assert result.returncode != 0
    assert "set JWT_SECRET to 32 or more random characters" in result.stderr
    assert ".env" in (ROOT / ".dockerignore").read_text().split()  # local secrets stay out of the image


def docker_compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``docker-compose config`` (Debian's docker-compose validates against the Compose schema; it needs no
    engine). Skipped locally without it; CI installs it."""
    if DOCKER_COMPOSE is None:
        if os.environ.get("CI"):
            pytest.fail("docker-compose is required in CI: apt-get install docker-compose (.ci/run does)")
        pytest.skip("needs Debian's docker-compose (apt-get install docker-compose); CI always runs this")
    clean = {key: value for key, value in os.environ.items() if not key.startswith(("JWT_", "COMPOSE_"))}
    with tempfile.TemporaryDirectory() as folder:
        no_env_file = Path(folder) / "empty.env"  # a developer's .env must not answer for the environment
        no_env_file.touch()
        return subprocess.run(
            [
                DOCKER_COMPOSE,
                "--env-file",
                str(no_env_file),
                "--profile",
                "observability",
                "config",
                "--services",
            ],
            cwd=ROOT,
            env={**clean, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )


# The load balancer -------------------------------------------------------------------------------------


def test_the_load_balancer_spreads_over_the_three_replicas_without_sticky_sessions() -> None:
    text = nginx_conf()
    upstream = re.search(r"upstream taskql \{(.*?)\}", text, re.DOTALL)
    assert upstream
    servers = re.findall(r"^\s*server (\S+?):(\d+)\b", upstream.group(1), re.MULTILINE)
    assert servers == [(name, str(SERVE_PORT)) for name in REPLICAS]
    assert not re.search(r"^\s*(ip_hash|hash|sticky)\b", upstream.group(1), re.MULTILINE)
    assert "proxy_set_header Upgrade $http_upgrade;" in text
    assert "proxy_set_header Connection $connection_upgrade;" in text
    assert "proxy_http_version 1.1;" in text
    volumes = services()["lb"]["volumes"]
    assert "./deploy/nginx/nginx.conf:/etc/nginx/nginx.conf:ro" in volumes


@nginx.needs_nginx
def test_the_load_balancer_config_passes_nginx_t_with_its_upstreams_resolved(tmp_path: Path) -> None:
    config = tmp_path / "nginx.conf"
    config.write_text(local_nginx_conf(SERVE_PORT, 18080))
    result = nginx.check(config)
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr


@nginx.needs_nginx
async def test_the_load_balancer_passes_queries_and_subscriptions_to_a_replica_and_hides_metrics(
    database: Services, tmp_path: Path
) -> None:
    with servers_on(database.database_url, database.redis_url, tmp_path) as [base]:
        listen = free_port()
        config = tmp_path / "nginx.conf"
        config.write_text(local_nginx_conf(int(urlparse(base).port or 0), listen))
        with nginx.running(config, listen):
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{listen}", timeout=30) as http:
                gql = GraphQLClient(http)
                account = await register(gql)
                subscriber = await Subscriber.open(
                    f"ws://127.0.0.1:{listen}/graphql", {"authorization": f"Bearer {account.token}"}
                )
                try:
                    await subscriber.subscribe()
                    await subscriber.silent_for(0.3)  # subscribed before the write
                    created = (
                        await gql.run(
                            "CreateTask", {"input": {"title": "through nginx"}}, token=account.token
                        )
                    ).ok()["createTask"]
                    event = await subscriber.event()
                finally:
                    await subscriber.close()
                hidden = await http.get(METRICS_PATH)
    assert (event["kind"], event["taskId"]) == ("CREATED", created["id"])
    assert hidden.status_code == 404


# Observability -----------------------------------------------------------------------------------------


def test_prometheus_scrapes_the_metrics_of_each_replica_directly() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "taskql"]
    assert job["metrics_path"] == METRICS_PATH
    targets = [target for group in job["static_configs"] for target in group["targets"]]
    # Not the API port: there, production answers /metrics only with METRICS_TOKEN.
    metrics_port = taskql_services()["api-1"]["environment"]["METRICS_PORT"]
    assert targets == [f"{name}:{metrics_port}" for name in REPLICAS]
    # The workers, as a job of their own (the dashboard's panels are the API's).
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "taskql-worker"]
    assert job["metrics_path"] == METRICS_PATH
    targets = [target for group in job["static_configs"] for target in group["targets"]]
    assert targets == [f"{name}:{services()[name]['environment']['METRICS_PORT']}" for name in WORKERS]
    mount = "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro"
    assert mount in services()["prometheus"]["volumes"]


def test_the_collector_receives_otlp_where_the_replicas_send_it_and_exports_what_it_defines() -> None:
    config = yaml.safe_load((DEPLOY / "otel" / "collector.yaml").read_text())
    for pipeline in config["service"]["pipelines"].values():
        for part in ("receivers", "processors", "exporters"):
            assert set(pipeline.get(part, [])) <= set(config.get(part) or {}), part
    endpoint = urlparse(taskql_services()["api-1"]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert endpoint.hostname in services()
    # taskql exports OTLP over HTTP/protobuf (taskql.ops.telemetry's default protocol): the collector's
    # HTTP port
    assert config["receivers"]["otlp"]["protocols"]["http"]["endpoint"] == f"0.0.0.0:{endpoint.port}"
    jaeger = urlparse("//" + config["exporters"]["otlp/jaeger"]["endpoint"])
    assert jaeger.hostname in services()
    assert any("collector.yaml" in volume for volume in services()["otel-collector"]["volumes"])


def test_grafana_is_provisioned_with_prometheus_and_a_dashboard_whose_panels_query_it() -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert urlparse(source["url"]).hostname == "prometheus"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "taskql.yml").read_text())["providers"]
    mounts = dict(volume.split(":")[:2] for volume in services()["grafana"]["volumes"])
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "taskql.json").read_text())
    assert dashboard["panels"]
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        assert panel["targets"]
        assert all('job="taskql"' in target["expr"] for target in panel["targets"])


# Kubernetes --------------------------------------------------------------------------------------------

API_VERSIONS = {
    "Namespace": "v1",
    "ConfigMap": "v1",
    "Service": "v1",
    "Deployment": "apps/v1",
    "Job": "batch/v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "PodDisruptionBudget": "policy/v1",
    "Kustomization": "kustomize.config.k8s.io/v1beta1",
}
REQUIRED = {
    "ConfigMap": ["data"],
    "Service": ["spec.selector", "spec.ports"],
    "Deployment": [
        "spec.selector.matchLabels",
        "spec.template.metadata.labels",
        "spec.template.spec.containers",
    ],
    "Job": ["spec.template.spec.containers", "spec.template.spec.restartPolicy"],
    "HorizontalPodAutoscaler": ["spec.scaleTargetRef.name", "spec.maxReplicas", "spec.metrics"],
    "PodDisruptionBudget": ["spec.selector.matchLabels"],
    "Kustomization": ["resources"],
}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
API = "taskql"  # the API's Deployment, Service, HPA and PodDisruptionBudget
WORKER = "taskql-worker"  # the job workers' Deployment and PodDisruptionBudget
# The newest Kubernetes whose schemas kubernetes-validate bundles (1.37 with kubernetes-validate 1.37.0).
KUBERNETES_VERSION: str = kubernetes_validate.latest_version()


def field(document: dict[str, Any], path: str) -> Any:
    value: Any = document
    for key in path.split("."):
        assert isinstance(value, dict), f"{document['kind']}: {path} is not a mapping"
        assert key in value, f"{document['kind']} has no {path}"
        value = value[key]
    return value


def containers() -> Iterator[tuple[str, dict[str, Any]]]:
    """The container of every pod template (Deployments', the Job's), with its object's kind."""
    for document in k8s_objects():
        if document["kind"] in ("Deployment", "Job"):
            for container in document["spec"]["template"]["spec"]["containers"]:
                yield document["kind"], container


def manifests() -> list[Any]:
    """Every object kustomize applies (the files the Kustomization lists), one test parameter each."""
    listed = k8s("Kustomization")["resources"]
    return [
        pytest.param(document, id=f"{path.name}:{document['kind']}/{document['metadata']['name']}")
        for path, document in k8s_files()
        if path.name in listed
    ]


def test_every_kubernetes_file_is_an_object_of_a_known_kind_with_its_required_fields() -> None:
    documents = k8s_objects()
    assert {document["kind"] for document in documents} == set(API_VERSIONS)
    names = [(document["kind"], document.get("metadata", {}).get("name")) for document in documents]
    assert len(names) == len(set(names)), "two objects of a kind with the same name"
    for document in documents:
        kind = document["kind"]
        assert document["apiVersion"] == API_VERSIONS[kind], kind
        if kind != "Kustomization":
            assert DNS_LABEL.match(document["metadata"]["name"]), kind
        for path in REQUIRED.get(kind, []):
            assert field(document, path), f"{kind}: {path} is empty"
    for _, container in containers():
        assert DNS_LABEL.match(container["name"])
        assert container["image"]
        for port in container.get("ports", []):
            assert isinstance(port["containerPort"], int)
            assert len(port["name"]) <= 15


@pytest.mark.parametrize("document", manifests())
def test_every_kubernetes_manifest_passes_the_kubernetes_json_schemas(document: dict[str, Any]) -> None:
    """Strict: a field Kubernetes does not have (a typo, a field at the wrong level) fails too, as
    ``kubectl apply --validate=strict`` would. Offline: the schemas come with kubernetes-validate. (The
    Kustomization is kustomize's own file, no Kubernetes object: it has no schema there.)"""
    try:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        where = ".".join(str(part) for part in error.absolute_path)
        problem = f"{document['kind']} {document['metadata']['name']}, at {where}: {error.message}"
    else:
        return
    pytest.fail(problem)  # outside the except: the message alone, without jsonschema's whole schema


def test_the_kustomization_lists_every_manifest_and_keeps_the_secret_out_of_git() -> None:
    kustomization = k8s("Kustomization")
    listed = set(kustomization["resources"])
    assert listed == {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    (generator,) = kustomization["secretGenerator"]
    for env_file in generator["envs"]:
        assert env_file == "secret.env"
        assert (K8S / f"{env_file}.example").exists()
        assert f"deploy/k8s/{env_file}" in (ROOT / ".gitignore").read_text().split()
    assert not (K8S / "secret.env").exists() or not _tracked("deploy/k8s/secret.env")
    assert re.search(r"^JWT_SECRET=$", (K8S / "secret.env.example").read_text(), re.MULTILINE), (
        "no secret is committed"
    )
    references = {
        source[kind]["name"]
        for _, container in containers()
        for source in container["envFrom"]
        for kind in ("configMapRef", "secretRef")
        if kind in source
    }
    assert references == {k8s("ConfigMap")["metadata"]["name"], generator["name"]}
    assert {image["name"] for image in kustomization["images"]} == {c["image"] for _, c in containers()}


def _tracked(path: str) -> bool:
    result = subprocess.run(["git", "ls-files", "--error-unmatch", path], cwd=ROOT, capture_output=True)
    return result.returncode == 0


def test_the_deployment_serves_on_its_container_port_and_probes_real_routes() -> None:
    (container,) = pod_spec("Deployment", API)["containers"]
    command = container["command"]
    assert assert_real_command(command) == "serve"
    assert "--no-migrate" in command
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports["http"] == int(option(command, "--port")) == SERVE_PORT
    routes = http_routes()
    assert METRICS_PATH in routes
    probes = {
        name: container[name]["httpGet"] for name in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == "/readyz"
    for probe in probes.values():
        assert probe["path"] in routes
        assert probe["port"] in ports
    template = k8s("Deployment", API)["spec"]["template"]["metadata"]
    metrics_port = k8s("ConfigMap")["data"]["METRICS_PORT"]
    assert template["annotations"]["prometheus.io/port"] == metrics_port
    (container,) = pod_spec("Deployment", API)["containers"]
    assert int(metrics_port) in [port["containerPort"] for port in container["ports"]]
    assert template["annotations"]["prometheus.io/path"] == METRICS_PATH
    uid = re.search(r"useradd .*--uid (\d+)", (ROOT / "Dockerfile").read_text())
    assert uid
    assert pod_spec("Deployment", API)["securityContext"]["runAsUser"] == int(uid.group(1))


def test_a_pod_is_given_longer_than_its_pre_stop_sleep_and_drain_before_it_is_killed() -> None:
    spec = pod_spec("Deployment", API)
    (container,) = spec["containers"]
    sleep = container["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep"
    drain = int(k8s("ConfigMap")["data"]["SHUTDOWN_TIMEOUT_SECONDS"])
    assert spec["terminationGracePeriodSeconds"] > int(sleep[1]) + drain
    resources = container["resources"]
    assert resources["requests"]["cpu"]
    assert resources["requests"]["memory"]
    assert resources["limits"]["memory"]


def test_the_service_hpa_and_budget_select_the_api_pods_and_not_the_migration_or_the_workers() -> None:
    deployment = k8s("Deployment", API)
    pods = deployment["spec"]["template"]["metadata"]["labels"]
    others = [
        k8s("Job")["spec"]["template"]["metadata"]["labels"],
        k8s("Deployment", WORKER)["spec"]["template"]["metadata"]["labels"],
    ]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pods.items()
    for selector in (
        k8s("Service", API)["spec"]["selector"],
        k8s("PodDisruptionBudget", API)["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= pods.items()
        assert not any(selector.items() <= labels.items() for labels in others)
    service = k8s("Service", API)["spec"]
    assert service["sessionAffinity"] == "None"
    (container,) = pod_spec("Deployment", API)["containers"]
    assert {port["targetPort"] for port in service["ports"]} <= {port["name"] for port in container["ports"]}
    hpa = k8s("HorizontalPodAutoscaler", API)["spec"]
    assert (hpa["scaleTargetRef"]["kind"], hpa["scaleTargetRef"]["name"]) == ("Deployment", API)
    assert (
        hpa["minReplicas"]
        == deployment["spec"]["replicas"]
        > k8s("PodDisruptionBudget", API)["spec"]["maxUnavailable"]
    )


def test_at_most_replicas_postgresql_keeps_room_for_the_workers_the_migration_and_an_operator() -> None:
    config = k8s("ConfigMap")["data"]

    def connections(environment: dict[str, Any]) -> int:
        # Two pools per process (reads on asyncpg, writes on SQLAlchemy), each up to size + overflow.
        return 2 * (int(environment["DB_POOL_SIZE"]) + int(environment["DB_MAX_OVERFLOW"]))

    per_pod = connections(config)
    most = k8s("HorizontalPodAutoscaler", API)["spec"]["maxReplicas"] * (per_pod + INBOX_CONNECTIONS)
    workers = k8s("Deployment", WORKER)["spec"]
    (worker,) = workers["template"]["spec"]["containers"]
    environment = {**config, **container_env(worker)}
    per_worker = connections(environment) + QUEUE_CONNECTIONS + webhook_locks(environment)
    # Never more than `replicas` worker pods: a rollout replaces them without a surge.
    assert workers["strategy"]["rollingUpdate"]["maxSurge"] == 0
    assert most + workers["replicas"] * per_worker + per_pod <= MAX_CONNECTIONS


def test_the_migration_job_runs_migrate_with_the_api_image_and_configuration() -> None:
    job = pod_spec("Job")
    (migrate,) = job["containers"]
    (api,) = pod_spec("Deployment", API)["containers"]
    assert assert_real_command(migrate["command"]) == "migrate"
    assert migrate["image"] == api["image"]
    assert migrate["envFrom"] == api["envFrom"]
    assert job["restartPolicy"] in {"OnFailure", "Never"}


def container_env(container: dict[str, Any]) -> dict[str, str]:
    """The variables a container sets itself (they win over its envFrom's)."""
    return {variable["name"]: variable["value"] for variable in container.get("env", [])}


def test_the_api_pods_leave_the_jobs_to_the_workers() -> None:
    (api,) = pod_spec("Deployment", API)["containers"]
    environment = {**k8s("ConfigMap")["data"], **container_env(api)}
    assert setting("JOBS_EMBEDDED_WORKER", environment) is False


def test_the_worker_pods_run_the_worker_command_with_the_api_image_and_settings_and_outlast_their_drain() -> (
    None
):
    deployment = k8s("Deployment", WORKER)
    spec = pod_spec("Deployment", WORKER)
    api_spec = pod_spec("Deployment", API)
    (worker,) = spec["containers"]
    (api,) = api_spec["containers"]
    assert worker["command"] == WORKER_COMMAND
    assert worker["image"] == api["image"]
    assert worker["envFrom"] == api["envFrom"]
    assert set(container_env(worker)) <= {"DB_POOL_SIZE", "DB_MAX_OVERFLOW"}, "the API's settings otherwise"
    assert deployment["spec"]["replicas"] == 2
    drain = setting("JOBS_DRAIN_SECONDS", {**k8s("ConfigMap")["data"], **container_env(worker)})
    assert spec["terminationGracePeriodSeconds"] > drain, "the kubelet kills after it"
    assert "lifecycle" not in worker, "no preStop sleep: no Service sends it anything"
    resources = worker["resources"]
    assert resources["requests"]["cpu"]
    assert resources["requests"]["memory"]
    assert resources["limits"]["memory"]
    assert spec["securityContext"] == api_spec["securityContext"]
    assert worker["securityContext"] == api["securityContext"]
    assert worker["volumeMounts"] == api["volumeMounts"]
    assert spec["volumes"] == api_spec["volumes"]
    # Scraped as the API pods are, on the ConfigMap's METRICS_PORT.
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations == k8s("Deployment", API)["spec"]["template"]["metadata"]["annotations"]
    metrics_port = int(k8s("ConfigMap")["data"]["METRICS_PORT"])
    assert [port["containerPort"] for port in worker["ports"]] == [metrics_port]


def test_the_workers_budget_selects_the_workers_only() -> None:
    deployment = k8s("Deployment", WORKER)
    pods = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pods.items()
    budget = k8s("PodDisruptionBudget", WORKER)["spec"]
    assert budget["selector"]["matchLabels"].items() <= pods.items()
    for other in (k8s("Deployment", API), k8s("Job")):
        labels = other["spec"]["template"]["metadata"]["labels"]
        assert not budget["selector"]["matchLabels"].items() <= labels.items()
        assert not deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert budget["maxUnavailable"] < deployment["spec"]["replicas"]


# The worker command ------------------------------------------------------------------------------------


def test_the_worker_command_compose_and_kubernetes_run_is_a_real_command_told_not_to_migrate() -> None:
    (worker,) = pod_spec("Deployment", WORKER)["containers"]
    for command in [*(services()[name]["command"] for name in WORKERS), worker["command"]]:
        assert assert_real_command(command) == "worker"
        assert "--migrate" not in command
        # Were it to migrate unless told not to, as serve does, it would have to be told.
        if "--no-migrate" in cli_commands()["worker"]:
            assert "--no-migrate" in command


# The image ---------------------------------------------------------------------------------------------


def test_the_image_command_and_probe_point_at_real_commands_and_routes() -> None:
    command = dockerfile_json("CMD")
    assert assert_real_command(command) == "serve"
    assert int(option(command, "--port")) == SERVE_PORT
    probe = " ".join(dockerfile_json("HEALTHCHECK"))
    path = re.search(rf"http://127\.0\.0\.1:{SERVE_PORT}(/\w+)", probe)
    assert path
    assert path.group(1) in http_routes()


def test_the_image_copies_every_package_the_app_imports() -> None:
    copied = set(re.findall(r"^COPY (\w+)/ ", (ROOT / "Dockerfile").read_text(), re.MULTILINE))
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")} - {"tests", "bench"}
    assert packages <= copied
    assert "graphql" in copied  # the committed schema and the client operations


def test_the_graphql_endpoint_the_load_balancer_fronts_takes_http_and_websockets() -> None:
    routes = [
        route
        for route in create_app(Settings(jwt_secret=TEST_SECRET)).routes
        if getattr(route, "path", "") == "/graphql"
    ]
    assert {type(route) for route in routes} == {Route, WebSocketRoute}
