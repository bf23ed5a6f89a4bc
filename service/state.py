"""What the running app holds, in two typed objects.

- `ServedModels`: the models being served, their load errors, the default model and the
  batchers: one frozen value, replaced as a whole on reload (model_set.py), so a request that
  took it sees one consistent set from start to end.
- `ServiceState`: the settings, the metrics, the served models, the reload lock, the
  scoring slots and the requests open; built once by `create_app`, reached through
  `service_state(app)` (and the typed dependencies of dependencies.py), never through loose
  `app.state` attributes.
"""

import asyncio
from dataclasses import dataclass

from starlette.applications import Starlette

from service.core.batcher import Batcher
from service.core.predictor import Predictor
from service.core.threads import OpenRequests
from service.settings import Settings
from service.transport.metrics import Metrics


@dataclass(frozen=True)
class ServedModels:
    models: dict[str, Predictor]  # by name (the .onnx file's stem)
    load_errors: dict[str, str]  # name ("*": the directory) -> why it is not served
    default_model: str | None  # the model of /v1/predict
    batchers: dict[str, Batcher]  # by model name; empty when batching is off

    def find(self, name: str) -> str | None:
        """The loaded model called `name`, ignoring case (the training CLI says FD001, the files
        are fd001.onnx); None when there is none, or when only case tells two apart and none
        matches exactly."""
        if name in self.models:
            return name
        matches = [known for known in self.models if known.casefold() == name.casefold()]
        return matches[0] if len(matches) == 1 else None


LOADING = ServedModels({}, {"*": "models are loading"}, None, {})
STOPPED = ServedModels({}, {"*": "the service is stopping"}, None, {})


@dataclass
class ServiceState:
    settings: Settings
    metrics: Metrics
    served: ServedModels  # replaced whole by model_set.install
    reload_lock: asyncio.Lock  # one reload at a time
    scoring: asyncio.Semaphore  # RUL_MAX_CONCURRENT_SCORES slots
    requests: OpenRequests  # the requests the server holds (bound by the connection protocol)


def service_state(app: Starlette) -> ServiceState:
    """The app's ServiceState (`create_app` puts it at `app.state.service`)."""
    state: ServiceState = app.state.service
    return state
