"""The hub's settings: one pydantic-settings class read from ``TRAINYARD_HUB_*`` variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings"]

DEFAULT_TOKEN_TTL_S = 12 * 3600
DEFAULT_ENROLMENT_TOKEN_TTL_S = 24 * 3600
DEFAULT_MAX_UPLOAD_BYTES = 512 * 1024 * 1024


class Settings(BaseSettings):
    """Where the hub keeps its state and how it behaves.

    Every field can be set from the environment as ``TRAINYARD_HUB_<FIELD>``.

    Examples
    --------
    >>> Settings(state_dir=Path("/tmp/hub")).effective_database_url
    'sqlite:////tmp/hub/hub.sqlite3'
    """

    model_config = SettingsConfigDict(env_prefix="TRAINYARD_HUB_", extra="ignore")

    state_dir: Path = Path("./hub-state")
    database_url: str | None = None
    base_iri: str = "http://127.0.0.1:8000"
    token_ttl_s: int = Field(default=DEFAULT_TOKEN_TTL_S, gt=0)
    enrolment_token_ttl_s: int = Field(default=DEFAULT_ENROLMENT_TOKEN_TTL_S, gt=0)
    station_token_ttl_s: int | None = Field(default=None, gt=0)
    long_poll_max_s: float = Field(default=60.0, ge=0)
    long_poll_recheck_s: float = Field(default=1.0, gt=0)
    max_upload_bytes: int = Field(default=DEFAULT_MAX_UPLOAD_BYTES, gt=0)
    fdp_title: str = "Trainyard imaging catalog"
    fdp_description: str = "Imaging collections held by hospital stations; analysed by trains that run at each station."
    fdp_publisher: str = "Trainyard hub"
    fdp_index_urls: list[str] = Field(
        default_factory=list, description="FAIR Data Point indexes to ping with this hub's base IRI"
    )
    fdp_ping_interval_s: float = Field(default=24 * 3600.0, gt=0, description="how often to ping the indexes")
    job_lease_s: float = Field(
        default=120.0, gt=0, description="a delivered job is re-offered when its station sends no heartbeat this long"
    )
    job_max_attempts: int = Field(default=3, ge=1, description="deliveries of one job before it fails")
    decision_ttl_days: float = Field(
        default=30.0, gt=0, le=3650, description="a decision nobody moves this long expires (days)"
    )
    grant_default_days: int = Field(
        default=365, ge=1, le=3650, description="how long a grant approved without a signed period lasts (days)"
    )
    fl_tick_s: float = Field(
        default=5.0, gt=0, le=3600, description="how often federated rounds are checked for passed deadlines"
    )
    max_update_bytes: int = Field(
        default=4 << 30, gt=0, description="largest model update a station may upload (bytes, streamed to disk)"
    )
    upload_chunk_bytes: int = Field(
        default=8 << 20,
        gt=0,
        le=64 << 20,
        description="largest chunk of a resumable upload, and largest update sent in one request (bytes)",
    )
    upload_ttl_s: float = Field(
        default=24 * 3600.0, gt=0, description="an unfinished resumable upload untouched this long is dropped"
    )
    sparql_timeout_s: float = Field(default=10.0, gt=0, le=300, description="time limit of one SPARQL query")
    catalog_sparql_query_url: str | None = Field(
        default=None,
        description="an external SPARQL 1.1 store's query endpoint (e.g. Virtuoso's /sparql); "
        "the embedded Oxigraph store is used unless this is set",
    )
    catalog_sparql_update_url: str | None = Field(
        default=None, description="its update endpoint (Virtuoso: /sparql-auth); the query endpoint when unset"
    )
    catalog_sparql_username: str | None = Field(default=None, description="the external store's user for updates")
    catalog_sparql_password: SecretStr | None = Field(default=None, description="its password (never logged)")
    catalog_sparql_auth: Literal["digest", "basic"] = Field(
        default="digest", description="how the credentials are sent (Virtuoso's /sparql-auth wants digest)"
    )
    sparql_result_limit: int = Field(default=10_000, ge=1, description="most rows or triples one query returns")
    login_max_failures: int = Field(default=5, ge=1, description="failed log-ins per username or address")
    login_window_s: float = Field(default=900.0, gt=0, description="window of login_max_failures (seconds)")
    station_request_max_age_s: float = Field(
        default=300.0, gt=0, le=3600, description="replay window of signed station requests (seconds)"
    )
    oidc_issuer: str | None = Field(
        default=None, description="OpenID Connect issuer URL; OIDC login is off unless this and the client id are set"
    )
    oidc_client_id: str | None = Field(default=None, description="this hub's client id at the OpenID provider")
    oidc_client_secret: SecretStr | None = Field(default=None, description="this hub's client secret (never logged)")
    oidc_redirect_uri: str | None = Field(
        default=None,
        description="the callback registered at the provider; default base_iri + /auth/oidc/callback",
    )
    oidc_scopes: str = Field(default="openid profile email", description="scopes asked for at the provider")
    oidc_role_claim: str = Field(default="roles", description="the id_token claim (a string or list) mapped to roles")
    oidc_role_map: dict[str, str] = Field(
        default_factory=dict,
        description="claim value -> role: researcher, admin, steward:<station> or operator:<station>",
    )
    oidc_login_ttl_s: float = Field(default=600.0, gt=0, le=3600, description="how long a started OIDC login lasts")
    oidc_jwks_cache_s: float = Field(default=3600.0, gt=0, description="how long the provider's JWKS is cached")
    oidc_clock_skew_s: float = Field(default=60.0, ge=0, le=600, description="leeway on id_token exp/iat/nbf")

    @field_validator("base_iri")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("base_iri must be an http(s) IRI, e.g. http://127.0.0.1:8000")
        return value.rstrip("/")

    @field_validator("oidc_issuer", "oidc_redirect_uri")
    @classmethod
    def _check_oidc_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        loopback = value.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]"))
        if not (value.startswith("https://") or loopback):
            raise ValueError("OpenID Connect URLs must be https:// (plain http only on loopback, for tests)")
        return value  # the issuer is compared with the id_token's iss exactly: never rewritten

    @field_validator("oidc_role_map")
    @classmethod
    def _check_oidc_role_map(cls, value: dict[str, str]) -> dict[str, str]:
        for claim, target in value.items():
            role, _, station = target.partition(":")
            if role not in {"researcher", "admin", "steward", "operator"}:
                raise ValueError(f"oidc_role_map[{claim!r}]: unknown role {role!r}")
            if (role in {"steward", "operator"}) != bool(station):
                raise ValueError(f"oidc_role_map[{claim!r}]: write steward:<station> or operator:<station>")
        return value

    @property
    def oidc_enabled(self) -> bool:
        """Whether OpenID Connect login is configured (local accounts always work)."""
        return bool(self.oidc_issuer and self.oidc_client_id)

    @property
    def oidc_callback_uri(self) -> str:
        """The redirect URI the provider sends the browser back to."""
        return self.oidc_redirect_uri or f"{self.base_iri}/auth/oidc/callback"

    @property
    def effective_database_url(self) -> str:
        """The database URL, defaulting to an SQLite file in the state folder."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.state_dir / 'hub.sqlite3').resolve()}"

    @property
    def catalog_dir(self) -> Path:
        """Folder of the embedded Oxigraph store."""
        return self.state_dir / "catalog"

    @property
    def artifacts_dir(self) -> Path:
        """Folder of content-addressed artifacts (train bundles)."""
        return self.state_dir / "artifacts"

    @property
    def vault_dir(self) -> Path:
        """Folder of content-addressed result envelopes (ciphertext only)."""
        return self.state_dir / "vault"


@lru_cache
def get_settings() -> Settings:
    """Return the settings read from the environment (built once, on first use)."""
    return Settings()
