"""The proxy's configuration: one pydantic-settings object.

Sources, highest priority first: constructor arguments (CLI flags), environment variables
(`DEEPGUARD_<GROUP>_<FIELD>`, e.g. `DEEPGUARD_WATCH_HOLD_BACK_TOKENS=16`), a YAML or TOML file
(`--config FILE` or `DEEPGUARD_CONFIG`), then the defaults below. Every setting lives in a group so
that the environment variable name maps to exactly one field.
"""

from __future__ import annotations

import hmac
import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)

from proxy.policy.settings import PolicySettings
from proxy.watch.settings import WatchSettings


class ServerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key is an error, not a default

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    # Request bodies above this size are answered with 413 before they are parsed.
    max_body_bytes: int = Field(4 * 1024 * 1024, gt=0)
    # A client that stops reading a streamed answer is dropped after this long with nothing
    # written (its upstream slot is freed).
    write_timeout_s: float = Field(30.0, gt=0)
    log_level: str = "info"
    # uvicorn worker processes sharing the port (`deepguard serve --workers`). None = one per
    # core this process may run on. With more than one, /metrics merges every worker's series
    # (prometheus-client multiprocess mode) and per-key limits need auth.redis_url to be exact
    # (see docs/serving.md, "Several workers").
    workers: int | None = Field(None, gt=0)
    # FastAPI's built-in OpenTelemetry (a span, metrics and logs per request, exported where an
    # OpenTelemetry SDK is set up). Off by default: deepguard's metrics are Prometheus, and the
    # per-request check of the global OpenTelemetry providers alone costs ~1% proxy CPU.
    opentelemetry: bool = False


class UpstreamSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key is an error, not a default

    # An OpenAI/vLLM-protocol base URL without /v1 (e.g. http://127.0.0.1:8001). None = start vLLM
    # as a child process (see VllmSettings).
    url: str | None = None
    # Sent to the upstream as Bearer. With a child vLLM, None mints a fresh key for each start.
    api_key: str | None = None
    connect_timeout_s: float = Field(5.0, gt=0)
    # Longest silence allowed between two bytes of an upstream answer (a hung upstream -> 504).
    read_timeout_s: float = Field(120.0, gt=0)
    max_connections: int = Field(512, gt=0)
    # How often the background probe refreshes deepguard_upstream_ready (0 = only on /readyz).
    probe_interval_s: float = Field(10.0, ge=0)
    # Where the served model's tokenizer files are, to read its control tokens. Defaults to the
    # child vLLM's model directory when the proxy starts one.
    tokenizer_path: str | None = None


class VllmSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key is an error, not a default

    """vLLM started by `deepguard serve` as a child process when no upstream URL is given."""

    # An HF model directory; None = the prepared deep default (`deepguard model prepare`).
    model: str | None = None
    # The interpreter of the environment that has vLLM; None = `.vllm-venv` beside this one
    # (what `make install` builds), else this interpreter.
    python: str | None = None
    port: int = Field(0, ge=0, le=65535)  # 0 = a free loopback port
    max_model_len: int = Field(2048, gt=0)
    kv_cache_gib: float = Field(2.0, gt=0)  # VLLM_CPU_KVCACHE_SPACE for the CPU build
    extra_args: list[str] = Field(default_factory=list)
    log_file: str | None = None  # None = <cache>/logs/vllm-<port>.log
    startup_timeout_s: float = Field(900.0, gt=0)
    restart_backoff_s: float = Field(1.0, gt=0)
    max_restart_backoff_s: float = Field(60.0, gt=0)


class HistorySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key is an error, not a default

    """Where verified-history records live (`policy.history: verified` turns the check on)."""

    # redis://host:port/db; None = in this process (one replica, or sticky sessions).
    redis_url: str | None = None
    # How long an answer can be sent back as history after it finished.
    ttl_s: float = Field(24 * 3600, gt=0)
    # In-process store bound (oldest records are forgotten first).
    max_entries: int = Field(1_000_000, gt=0)
    # HMAC key of the records. Replicas sharing Redis must share it; None = a random key per
    # process (records then die with the process, which is right for the in-process store).
    secret: str | None = Field(None, min_length=16)


class ApiKey(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key is an error, not a default

    key: str = Field(min_length=8)
    name: str = "default"
    # Red-team keys used by evaluations may prefill the answer; nobody else may.
    allow_prefill: bool = False
    # Requests of this key in flight at once; more get 429 with Retry-After (None = the
    # auth.max_concurrent_per_key default).
    max_concurrent: int | None = Field(None, gt=0)


class AuthSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key is an error, not a default

    api_keys: list[ApiKey] = Field(default_factory=list)
    # Per key (open access counts as one key): requests in flight at once before 429. Without a
    # limit, a few hundred slow clients of one key take every upstream connection. None = half
    # of upstream.max_connections (256 by default), so one key never holds them all.
    max_concurrent_per_key: int | None = Field(None, gt=0)
    # redis://host:port/db where the in-flight counts of every key are kept, so the limits hold
    # across workers and replicas. None = each process counts its own requests.
    redis_url: str | None = None

    @field_validator("api_keys")
    @classmethod
    def _unique(cls, keys: list[ApiKey]) -> list[ApiKey]:
        if len({k.key for k in keys}) != len(keys):
            raise ValueError("api_keys: the same key is listed twice")
        return keys


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DEEPGUARD_", env_nested_delimiter="_", env_nested_max_split=1, extra="forbid"
    )

    # The served model name clients send in `model` (vLLM's --served-model-name). None = ask the
    # upstream's /v1/models at start-up.
    model: str | None = None
    server: ServerSettings = Field(default_factory=ServerSettings)
    upstream: UpstreamSettings = Field(default_factory=UpstreamSettings)
    vllm: VllmSettings = Field(default_factory=VllmSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    watch: WatchSettings = Field(default_factory=WatchSettings)
    history: HistorySettings = Field(default_factory=HistorySettings)

    @model_validator(mode="after")
    def _shared_history_needs_a_shared_secret(self) -> Settings:
        if self.history.redis_url and not self.history.secret:
            raise ValueError("history.redis_url needs history.secret (the same on every replica)")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file.get() or os.environ.get("DEEPGUARD_CONFIG")
        if config_file:
            path = Path(config_file)
            if not path.is_file():
                raise FileNotFoundError(f"config file not found: {path}")
            if path.suffix in (".yaml", ".yml"):
                sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
            elif path.suffix == ".toml":
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
            else:
                raise ValueError(f"config file must be .yaml, .yml or .toml, not {path.name}")
        return tuple(sources)

    def key_for(self, token: str) -> ApiKey | None:
        # Constant time: every key is compared in full (hmac.compare_digest), so the answer
        # time says nothing about how much of a key a guess got right.
        found = None
        given = token.encode("utf-8", "surrogatepass")
        for api_key in self.auth.api_keys:
            if hmac.compare_digest(api_key.key.encode("utf-8", "surrogatepass"), given):
                found = api_key
        return found


# The file `load_settings` was given, for `settings_customise_sources` (a classmethod, so it
# cannot see the call's arguments); a context variable leaves the process environment untouched.
_config_file: ContextVar[str | None] = ContextVar("deepguard_config_file", default=None)


def load_settings(config_file: str | None = None, **overrides: Any) -> Settings:
    """Build the settings; `config_file` wins over DEEPGUARD_CONFIG, CLI overrides win over all."""
    token = _config_file.set(str(config_file) if config_file else None)
    try:
        return Settings(**overrides)
    finally:
        _config_file.reset(token)
