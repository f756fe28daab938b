"""People: users, their login tokens and the shapes the API returns for them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON
from sqlmodel import Field, SQLModel

from hub.models._types import PublicKey, Slug, UTCDateTime, new_id
from protocol import Role, utc_now

__all__ = [
    "ApiTokenCreate",
    "ApiTokenCreated",
    "ApiTokenPublic",
    "ApiTokensPublic",
    "LoginRequest",
    "LoginResponse",
    "OidcIdentity",
    "Token",
    "TokenScope",
    "User",
    "UserCreate",
    "UserKeys",
    "UserPublic",
    "UsersPublic",
]


class User(SQLModel, table=True):
    """A person: researcher, data steward or station operator (of one station), or hub admin.

    Users who log in through OpenID Connect have an unusable ``password_hash`` ("!") and an
    :class:`OidcIdentity` row naming their issuer and subject.
    """

    id: str = Field(default_factory=new_id, primary_key=True)
    username: str = Field(unique=True, index=True, max_length=64)
    role: Role
    station: str | None = Field(default=None, index=True)
    password_hash: str
    signing_public_key: str | None = None
    encryption_public_key: str | None = None
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)


class OidcIdentity(SQLModel, table=True):
    """Which OpenID provider account (issuer and ``sub``) a hub user logs in as; never matched by name."""

    issuer: str = Field(primary_key=True, max_length=500)
    subject: str = Field(primary_key=True, max_length=255)
    user_id: str = Field(foreign_key="user.id", unique=True, index=True, ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    last_login_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)


class TokenScope(StrEnum):
    """What an API token may do; a log-in session token has no scopes and may do all its user may."""

    CATALOG_READ = "catalog:read"
    TRAINS_SUBMIT = "trains:submit"
    RESULTS_READ = "results:read"
    REQUESTS_DECIDE = "requests:decide"


class Token(SQLModel, table=True):
    """A bearer token of a user or a station, stored only as its sha256 hash.

    A named API token carries ``scopes`` (a list of :class:`TokenScope` values); a log-in
    session or a station token has ``scopes`` ``None``.
    """

    token_hash: str = Field(primary_key=True)
    id: str = Field(default_factory=new_id, unique=True, index=True)
    name: str | None = None
    scopes: list[str] | None = Field(default=None, sa_type=JSON)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    user_id: str | None = Field(default=None, foreign_key="user.id", index=True, ondelete="CASCADE")
    station_id: str | None = Field(default=None, foreign_key="station.id", index=True, ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class UserCreate(SQLModel):
    """What an admin sends to create a user (``station`` is required for stewards)."""

    username: str = Field(min_length=1, max_length=64, regex=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")
    password: str = Field(min_length=8, max_length=1024)
    role: Role
    station: Slug | None = None


class UserPublic(SQLModel):
    """A user as the API shows it: never the password hash."""

    id: str
    username: str
    role: Role
    station: str | None
    signing_public_key: str | None
    encryption_public_key: str | None


class UsersPublic(SQLModel):
    """A list of users."""

    data: list[UserPublic]
    count: int


class UserKeys(SQLModel):
    """A user's public keys (Ed25519 for signing trains, X25519 for receiving results)."""

    signing_public_key: PublicKey
    encryption_public_key: PublicKey


class LoginRequest(SQLModel):
    """Username and password."""

    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class LoginResponse(SQLModel):
    """A fresh bearer token and who it belongs to."""

    access_token: str
    token_type: str = "bearer"  # noqa: S105  (the scheme name, not a secret)
    user: UserPublic


class ApiTokenCreate(SQLModel):
    """A name, the scopes and the lifetime of a new API token."""

    name: str = Field(min_length=1, max_length=100)
    scopes: list[TokenScope] = Field(min_length=1, max_length=len(TokenScope))
    ttl_days: int = Field(default=30, ge=1, le=365)


class ApiTokenPublic(SQLModel):
    """An API token as the API lists it: never the secret nor its hash."""

    id: str
    name: str | None
    scopes: list[str] | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class ApiTokenCreated(ApiTokenPublic):
    """A fresh API token: the secret is shown this once."""

    token: str


class ApiTokensPublic(SQLModel):
    """A list of API tokens."""

    data: list[ApiTokenPublic]
    count: int
