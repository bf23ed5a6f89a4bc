"""Service configuration: one pydantic-settings class, every field overridable by an
environment variable with the prefix RUL_ (e.g. RUL_MODELS_DIR, RUL_PROVIDERS)."""

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from service.providers import ProviderChoice, SessionConfig


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RUL_")

    host: str = "127.0.0.1"  # bind address; 0.0.0.0 in the container
    port: int = 8000
    models_dir: Path = Path("models")  # every <name>.onnx with a <name>.json card is served
    default_model: str = ""  # served by POST /v1/predict; empty: 'fd001' if present, else the first name
    providers: ProviderChoice = "auto"  # auto: CUDA when it really loads, else CPU with a warning
    intra_op_threads: int = 0  # ONNX Runtime intra-op threads per session; 0: its default
    tensorrt_cache_dir: Path = Path("/tmp/rul-tensorrt-cache")  # engine cache for RUL_PROVIDERS=tensorrt
    log_level: str = "info"

    def session_config(self) -> SessionConfig:
        return SessionConfig(self.providers, self.intra_op_threads, self.tensorrt_cache_dir)
