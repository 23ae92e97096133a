"""docker-compose.yaml, the Dockerfile and deploy/ hold together (no Docker engine runs here)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CORE = ("postgres", "redis", "migrate", "api", "worker")
HERALD_SERVICES = ("migrate", "api", "worker")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


def depends(service: dict[str, Any]) -> dict[str, str]:
    """depends_on as {service: condition}, whichever of the two syntaxes is used."""
    raw = service.get("depends_on", {})
    if isinstance(raw, list):
        return dict.fromkeys(raw, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in raw.items()}


def test_core_services_run_without_a_profile(services: dict[str, dict[str, Any]]) -> None:
    for name in CORE:
        assert name in services, name
        assert "profiles" not in services[name], f"{name} must start with a plain `up`"


def test_migrate_runs_once_after_postgres_is_healthy(services: dict[str, dict[str, Any]]) -> None:
    migrate = services["migrate"]
    assert migrate["command"] == ["herald", "migrate"]
    assert depends(migrate) == {"postgres": "service_healthy"}
    assert migrate["restart"] == "no"


@pytest.mark.parametrize("name", ["api", "worker"])
def test_api_and_worker_wait_for_migrations_and_healthy_stores(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    assert depends(services[name]) == {
        "migrate": "service_completed_successfully",
        "postgres": "service_healthy",
        "redis": "service_healthy",
    }


@pytest.mark.parametrize("name", ["postgres", "redis"])
def test_stores_have_healthchecks_and_volumes(
    compose: dict[str, Any], services: dict[str, dict[str, Any]], name: str
) -> None:
    service = services[name]
    assert service["healthcheck"]["test"], name
    named_volumes = [v.split(":")[0] for v in service["volumes"]]
    assert named_volumes, name
    for volume in named_volumes:
        assert volume in compose["volumes"], f"{name}: volume {volume} is not declared"


def test_worker_is_scalable(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    # `--scale worker=N` fails on a fixed container name or a fixed host port.
    assert "container_name" not in worker
    assert "ports" not in worker
    assert worker["stop_grace_period"]


def test_herald_services_share_one_image_and_configuration(
    services: dict[str, dict[str, Any]],
) -> None:
    images = {services[name]["image"] for name in HERALD_SERVICES}
    assert len(images) == 1
    for name in HERALD_SERVICES:
        env = services[name]["environment"]
        assert env["HERALD_DATABASE_URL"].startswith("postgresql+asyncpg://")
        assert "@postgres:5432/" in env["HERALD_DATABASE_URL"]
        assert env["HERALD_REDIS_URL"].startswith("redis://:${REDIS_PASSWORD:?")
        assert env["HERALD_REDIS_URL"].endswith("}@redis:6379/0")
        # The secret comes from the operator's environment, never from this file.
        assert env["HERALD_JWT_SECRET"] == "${HERALD_JWT_SECRET:-}"


def test_optional_parts_sit_behind_profiles(services: dict[str, dict[str, Any]]) -> None:
    assert services["nginx"]["profiles"] == ["edge"]
    assert services["prometheus"]["profiles"] == ["monitoring"]
    assert services["grafana"]["profiles"] == ["monitoring"]
    assert services["emulator"]["profiles"] == ["emulator"]
    assert any(p.endswith(":443") for p in services["nginx"]["ports"])


def test_mounted_deploy_files_exist(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_prometheus_scrapes_the_api_and_every_worker(services: dict[str, dict[str, Any]]) -> None:
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["herald-api"]["static_configs"][0]["targets"] == ["api:8000"]
    worker_sd = jobs["herald-worker"]["dns_sd_configs"][0]
    assert worker_sd["names"] == ["worker"]
    command = services["worker"]["command"]
    assert str(worker_sd["port"]) == command[command.index("--metrics-port") + 1]
    # Prometheus runs in another container: the default loopback host would hide them.
    assert command[command.index("--metrics-host") + 1] == "0.0.0.0"


def test_nginx_terminates_tls_for_the_api() -> None:
    conf = (ROOT / "deploy/nginx/herald.conf").read_text()
    assert re.search(r"listen 443 ssl;", conf)
    assert "server api:8000;" in conf
    assert "ssl_certificate     /etc/nginx/certs/fullchain.pem;" in conf


def test_dockerfile_is_multi_stage_and_not_root() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    stages = [line for line in lines if line.startswith("FROM ")]
    assert len(stages) >= 2
    final_stage = lines[lines.index(stages[-1]) :]
    users = [line.split()[1] for line in final_stage if line.startswith("USER ")]
    assert users
    assert users[-1].split(":")[0] not in {"root", "0"}


def readme_compose_section() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"^## Run with Docker Compose\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, "README.md has no 'Run with Docker Compose' section"
    return match.group(1)


def test_readme_names_exactly_the_compose_services(compose: dict[str, Any]) -> None:
    section = readme_compose_section()
    table_names = set(re.findall(r"^\| `([a-z-]+)` \|", section, re.M))
    assert table_names == set(compose["services"])
    for profile in re.findall(r"--profile ([a-z-]+)", section):
        assert any(profile in s.get("profiles", []) for s in compose["services"].values())
    for service in re.findall(r"--scale ([a-z-]+)=", section):
        assert service in compose["services"]


def _compose_cli() -> list[str] | None:
    """`docker compose` (v2 plugin) or `docker-compose` (v1), whichever works here."""
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


# What an operator must set; nothing else is needed for `docker compose config`.
REQUIRED = {"POSTGRES_PASSWORD": "pg-secret-1", "REDIS_PASSWORD": "redis-secret-2"}
PROFILES = ["--profile", "edge", "--profile", "monitoring", "--profile", "emulator"]


def _render(*args: str, **variables: str) -> subprocess.CompletedProcess[str]:
    """`docker compose config` with only `variables` set (and HERALD_JWT_SECRET)."""
    cli = _compose_cli()
    assert cli is not None, "install `docker-compose` (scripts/bootstrap.sh does, as root)"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HERALD_", "POSTGRES_", "REDIS_", "GRAFANA_"))
    }
    env.update(HERALD_JWT_SECRET="x" * 40, **variables)
    return subprocess.run(
        [*cli, "-f", str(ROOT / "docker-compose.yaml"), *args, "config"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )


def test_compose_cli_accepts_the_file() -> None:
    for profiles in ([], PROFILES):
        result = _render(*profiles, **REQUIRED)
        assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_passwords_have_no_default(missing: str) -> None:
    given = {k: v for k, v in REQUIRED.items() if k != missing}
    result = _render(**given)
    assert result.returncode != 0
    assert f"set {missing}" in result.stderr


def test_stores_use_the_passwords() -> None:
    result = _render(*PROFILES, **REQUIRED)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    env = services["api"]["environment"]
    assert env["HERALD_DATABASE_URL"] == (
        "postgresql+asyncpg://herald:pg-secret-1@postgres:5432/herald"
    )
    assert env["HERALD_REDIS_URL"] == "redis://:redis-secret-2@redis:6379/0"
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == "pg-secret-1"
    redis = services["redis"]
    assert redis["environment"]["REDIS_PASSWORD"] == "redis-secret-2"
    command = " ".join(redis["command"])
    assert '--requirepass "$$REDIS_PASSWORD"' in command
    # The image's entrypoint runs redis-server as the redis user, not root.
    assert "exec docker-entrypoint.sh redis-server " in command
    # The healthcheck authenticates, and an unauthenticated NOAUTH answer does not pass.
    check = " ".join(redis["healthcheck"]["test"])
    assert 'REDISCLI_AUTH="$$REDIS_PASSWORD"' in check
    assert "grep -q PONG" in check
    # Only the emulator's own setting reaches it: no database, Redis or JWT secret.
    assert set(services["emulator"]["environment"]) == {"HERALD_EMULATOR_TOKEN", "HERALD_LOG_JSON"}
    assert "--token" not in services["emulator"]["command"]


def _host_ip(port: str | dict[str, Any]) -> str:
    """The host address of a rendered port, whichever syntax the CLI printed."""
    if isinstance(port, dict):
        return str(port.get("host_ip", "0.0.0.0"))
    parts = port.split(":")
    return parts[0] if len(parts) == 3 else "0.0.0.0"


def test_published_ports_are_on_the_loopback_except_the_edge() -> None:
    result = _render(*PROFILES, **REQUIRED)
    assert result.returncode == 0, result.stderr
    published = {
        name: [_host_ip(p) for p in service.get("ports", [])]
        for name, service in yaml.safe_load(result.stdout)["services"].items()
    }
    assert published.pop("nginx") == ["0.0.0.0", "0.0.0.0"]  # TLS on 443, the redirect on 80
    assert published == {
        "postgres": [],
        "redis": [],
        "migrate": [],
        "api": ["127.0.0.1"],
        "worker": [],
        "emulator": ["127.0.0.1"],
        "prometheus": ["127.0.0.1"],
        "grafana": ["127.0.0.1"],
    }
    # Exposing the api is a deliberate act (docs/operations.md).
    exposed = _render(**REQUIRED, HERALD_API_BIND="0.0.0.0")
    api = yaml.safe_load(exposed.stdout)["services"]["api"]
    assert [_host_ip(p) for p in api["ports"]] == ["0.0.0.0"]


@pytest.mark.parametrize(
    ("password", "starts"), [("", False), ("admin", False), ("a-real-one", True)]
)
def test_grafana_refuses_to_start_without_a_password(
    services: dict[str, dict[str, Any]], password: str, starts: bool
) -> None:
    grafana = services["grafana"]
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "${GRAFANA_ADMIN_PASSWORD:-}"
    # The entrypoint as the container's shell runs it (compose turns $$ into $).
    argv = [part.replace("$$", "$") for part in grafana["entrypoint"]]
    result = subprocess.run(
        argv,
        env={"PATH": os.environ["PATH"], "GF_SECURITY_ADMIN_PASSWORD": password},
        capture_output=True,
        text=True,
        check=False,
    )
    if starts:  # past the check: it execs Grafana's /run.sh, absent here
        assert result.returncode == 127, result.stderr
        assert "/run.sh" in result.stderr
    else:
        assert result.returncode == 2
        assert "set GRAFANA_ADMIN_PASSWORD" in result.stderr


def _herald_series() -> set[str]:
    """Every series name Herald's metrics can expose."""
    from prometheus_client import REGISTRY

    import herald.metrics  # noqa: F401 - registers them

    families = {
        family.name
        for collector in list(REGISTRY._collector_to_names)  # no public listing
        for family in getattr(collector, "describe", list)()
        if family.name.startswith("herald_")
    }
    suffixes = ("", "_total", "_bucket", "_count", "_sum")
    return {name + suffix for name in families for suffix in suffixes}


def test_dashboard_and_docs_use_only_real_metrics() -> None:
    series = _herald_series()
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/herald.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    used = set(re.findall(r"\bherald_[a-z_]+", exprs))
    assert used, "the dashboard shows no Herald metric"
    assert used <= series, used - series
    guide = (ROOT / "docs/operations.md").read_text()
    documented = set(re.findall(r"`(herald_[a-z_]+)", guide))
    assert documented <= series, documented - series
