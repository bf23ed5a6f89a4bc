"""Hot reload: atomic, a failed load keeps the old models, concurrent requests never fail."""

import json
import threading

from service.transport.schemas import EXAMPLE_REQUEST
from tests.service.conftest import make_client


def test_reload_swaps_in_new_models(models_copy):
    with make_client(models_copy) as c:
        card = json.loads((models_copy / "fd001.json").read_text())
        (models_copy / "fd001.json").write_text(json.dumps({**card, "version": "2099.1.1"}))
        response = c.post("/v1/models/reload")
        assert response.status_code == 200
        assert response.json() == {
            "status": "reloaded",
            "detail": "reloaded fd001 2099.1.1",
            "added": [],
            "replaced": [],
            "removed": [],
            "unchanged": ["fd001"],
        }  # same file
        assert c.post("/v1/predict", json=EXAMPLE_REQUEST).json()["model_version"] == "2099.1.1"
        assert 'version="2099.1.1"' in c.get("/metrics").text


def test_failed_reload_keeps_serving_the_old_models(models_copy):
    with make_client(models_copy) as c:
        before = c.post("/v1/predict", json=EXAMPLE_REQUEST).json()
        (models_copy / "fd001.onnx").write_bytes(b"corrupt")
        response = c.post("/v1/models/reload")
        assert response.status_code == 409
        assert response.json()["detail"].startswith(
            "reload failed, still serving the previous models (fd001): fd001: fd001.onnx has sha256 "
        )
        assert c.post("/v1/predict", json=EXAMPLE_REQUEST).json() == before
        assert c.get("/health/ready").status_code == 200


def test_concurrent_requests_during_reloads_never_fail(models_copy):
    failures: list[int] = []
    with make_client(models_copy) as c:

        def hammer() -> None:
            for _ in range(15):
                status = c.post("/v1/predict", json=EXAMPLE_REQUEST).status_code
                if status != 200:
                    failures.append(status)

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        for _ in range(3):
            assert c.post("/v1/models/reload").status_code == 200
        for t in threads:
            t.join()
    assert failures == []


def test_reload_needs_a_key_when_keys_are_set():
    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.settings import Settings
    from tests.conftest import MODELS_DIR

    with TestClient(create_app(Settings(models_dir=MODELS_DIR, providers="cpu", api_keys=["k"]))) as c:
        assert c.post("/v1/models/reload").status_code == 401
        assert c.post("/v1/models/reload", headers={"X-API-Key": "k"}).status_code == 200


def test_reload_never_drops_a_served_model_silently(models_copy):
    import shutil

    from tests.conftest import MODELS_DIR

    for suffix in (".onnx", ".json"):
        shutil.copy(MODELS_DIR / f"fd002{suffix}", models_copy / f"fd002{suffix}")
    with make_client(models_copy) as c:
        (models_copy / "fd002.onnx").unlink()
        (models_copy / "fd002.json").unlink()
        for query in ("", "?allow_removal=false"):  # the default, and said explicitly
            refused = c.post(f"/v1/models/reload{query}")
            assert refused.status_code == 409
            assert refused.json()["detail"] == (
                f"reload would stop serving fd002 (no longer in {models_copy}, RUL_MODELS_DIR); nothing "
                "changed, still serving fd001, fd002: put the file back, or reload with ?allow_removal=true "
                "to stop serving it"
            )
            assert c.get("/v1/models/fd002").status_code == 200  # still served
        # a new model beside it, and the removal allowed: the answer lists what changed
        for suffix in (".onnx", ".json"):
            shutil.copy(MODELS_DIR / f"fd003{suffix}", models_copy / f"fd003{suffix}")
        done = c.post("/v1/models/reload?allow_removal=true")
        assert done.status_code == 200
        body = done.json()
        assert (body["added"], body["removed"], body["unchanged"], body["replaced"]) == (
            ["fd003"],
            ["fd002"],
            ["fd001"],
            [],
        )
        assert body["detail"].endswith("; stopped serving fd002")
        assert c.get("/v1/models/fd002").status_code == 404


def test_a_model_file_swapped_for_another_is_reported_replaced(models_copy):
    import shutil

    from tests.conftest import MODELS_DIR

    with make_client(models_copy) as c:
        for suffix in (".onnx", ".json"):  # fd004's files under fd001's name: another file
            shutil.copy(MODELS_DIR / f"fd004{suffix}", models_copy / f"fd001{suffix}")
        body = c.post("/v1/models/reload").json()
        assert (body["replaced"], body["added"], body["removed"]) == (["fd001"], [], [])


def test_the_heap_is_frozen_after_start_and_a_reload_lets_the_replaced_models_go(models_copy):
    """service/core/memory.settle_heap: what is alive after start-up is out of the collector's
    sight (a full collection no longer walks it while holding the interpreter), and the
    models a reload replaced are still collected, even though they were frozen."""
    import gc
    import weakref

    with make_client(models_copy) as c:
        assert gc.get_freeze_count() > 10_000
        served = c.app.state.service.served
        old = [weakref.ref(served.models["fd001"]), weakref.ref(served.batchers["fd001"])]
        del served
        assert c.post("/v1/models/reload").status_code == 200
        assert [ref() for ref in old] == [None, None]
        assert gc.get_freeze_count() > 10_000
        assert c.post("/v1/predict", json=EXAMPLE_REQUEST).status_code == 200
