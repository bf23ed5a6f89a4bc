"""Property-based fuzzing of the OpenAPI spec with schemathesis: no generated request, valid
or not, gets a 5xx (the 503 of a missing default model aside, which cannot happen here)."""

import asyncio

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from service.app import create_app
from service.model_set import load_and_install
from service.settings import Settings
from tests.conftest import MODELS_DIR

# Models loaded up front (no lifespan under schemathesis' ASGI client); batching off, since
# its queue workers would belong to this setup's event loop rather than the client's.
app = create_app(Settings(models_dir=MODELS_DIR, providers="cpu", batching=False))
asyncio.run(load_and_install(app))
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_generated_request_gets_a_server_error(case):
    case.call_and_validate(checks=[not_a_server_error])
