"""The deployment files run the commands we test: `rul-serve` as a real process with the
Dockerfile's environment, the Dockerfile's and compose's health checks, the README's curl
example. The image itself is built and run by deploy/image_check.sh (buildah, called by
.ci/run); here, that compose runs it the way that script checks it."""

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
import yaml

from tests.conftest import MODELS_DIR, ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _dockerfile_env() -> dict[str, str]:
    block = re.search(r"USER \S+\nENV (.*?)\nEXPOSE", DOCKERFILE, re.S).group(1)
    return dict(re.findall(r"(RUL_\w+)=(\S+)", block))


def _healthcheck_argv() -> list[str]:
    cmd = re.search(r"HEALTHCHECK .*?\n\s+CMD (\[[^\n]*\])", DOCKERFILE, re.S).group(1)
    return json.loads(cmd)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server() -> Iterator[dict[str, str]]:
    """`rul-serve` (the image's CMD) with the image's RUL_* environment, on loopback."""
    env = {
        **os.environ,
        **_dockerfile_env(),
        "RUL_HOST": "127.0.0.1",
        "RUL_PORT": str(_free_port()),
        "RUL_MODELS_DIR": str(MODELS_DIR),
        "RUL_PROVIDERS": "cpu",
    }
    process = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "rul-serve")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{env['RUL_PORT']}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail("rul-serve did not become ready in 60 s")
        yield env
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_dockerfile_runs_rul_serve_on_all_interfaces():
    assert 'CMD ["rul-serve"]' in DOCKERFILE
    assert _dockerfile_env() == {
        "RUL_HOST": "0.0.0.0",
        "RUL_PORT": "8000",
        "RUL_MODELS_DIR": "/app/models",
        "RUL_PROVIDERS": "auto",
    }
    assert "USER 10001" in DOCKERFILE and "torch" not in DOCKERFILE.split("pip install")[1].split("\n")[0]


def test_compose_healthcheck_is_the_dockerfile_one_and_reserves_a_gpu():
    service = COMPOSE["services"]["rul"]
    assert service["healthcheck"]["test"] == ["CMD", *_healthcheck_argv()]
    assert service["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert "./models:/app/models:ro" in service["volumes"]


class _ComposeLoader(yaml.SafeLoader):
    """YAML with Compose's merge tags: `!reset` (drop what the base file sets)."""


_ComposeLoader.add_constructor("!reset", lambda loader, node: RESET)
RESET = object()


def _merged(base: dict, override: dict) -> dict:
    """Compose's merge of an override file into a base, as far as these files use it: mappings
    merge key by key, `!reset` removes the key, anything else replaces."""
    merged = dict(base)
    for key, value in override.items():
        if value is RESET:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def test_the_cpu_override_runs_the_same_service_without_a_gpu():
    override = yaml.load((ROOT / "docker-compose.cpu.yml").read_text(), Loader=_ComposeLoader)
    cpu = _merged(COMPOSE, override)["services"]["rul"]
    assert "deploy" not in cpu and cpu["environment"]["RUL_PROVIDERS"] == "cpu"
    gpu = COMPOSE["services"]["rul"]
    assert {k: v for k, v in cpu.items() if k != "environment"} == {
        k: v for k, v in gpu.items() if k not in ("deploy", "environment")
    }
    assert (
        "docker compose -f docker-compose.yml -f docker-compose.cpu.yml up"
        in (ROOT / "README.md").read_text()
    )


def test_compose_runs_the_image_as_the_image_check_proves_it_can_run():
    """deploy/image_check.sh proves the image serves with the models mounted read-only, as its
    non-root user, writing nothing into its root filesystem and stopping on SIGTERM: compose
    must run it that way (read-only root, /tmp the only writable place, no user override)."""
    service = COMPOSE["services"]["rul"]
    assert service["read_only"] is True and service["tmpfs"] == ["/tmp"]
    assert "user" not in service  # the image's USER 10001
    check = (ROOT / "deploy" / "image_check.sh").read_text()
    assert "destination=/app/models,ro=true" in check and '--user "$user"' in check
    assert "kill -TERM" in check and "Healthcheck" in check
    # CI's base is the shipped base's Debian release, made by debootstrap: only the base differs
    base = re.search(r"ARG BASE_IMAGE=debian:(\w+)-slim\nFROM \$\{BASE_IMAGE\}", DOCKERFILE)
    assert base and f"--include=python3,python3-venv {base.group(1)} " in check
    # CUDA and cuDNN come from pinned wheels, so the image CI builds holds the shipped libraries
    assert re.search(r'"onnxruntime-gpu\[cuda,cudnn\]==\d+\.\d+\.\d+"', DOCKERFILE)


def test_healthcheck_command_passes_against_running_server(server):
    argv = _healthcheck_argv()
    assert argv[0] == "python3"
    result = subprocess.run([sys.executable, *argv[1:]], env=server, capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr


def test_healthcheck_command_fails_when_nothing_listens():
    env = {**os.environ, "RUL_PORT": str(_free_port())}
    result = subprocess.run([sys.executable, *_healthcheck_argv()[1:]], env=env, capture_output=True)
    assert result.returncode != 0


def test_readme_curl_example_returns_rul_and_health_state(server):
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"^(curl -s -X POST http://localhost:8000/v1/predict .*)$", readme, re.M).group(1)
    argv = [a.replace("localhost:8000", f"127.0.0.1:{server['RUL_PORT']}") for a in shlex.split(command)]
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=30)
    body = json.loads(result.stdout)
    assert body["model"] == "fd001"
    assert [p["health_state"] for p in body["predictions"]] == ["normal", "critical"]
    assert all(p["rul"] >= 0 for p in body["predictions"])
