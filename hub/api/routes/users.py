"""Users: who am I, my keys, and (for admins) creating and listing users."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from hub import crud
from hub.api.deps import AdminUser, CurrentUser, SessionDep
from hub.models import User, UserCreate, UserKeys, UserPublic, UsersPublic
from protocol import Role

router = APIRouter(prefix="/users", tags=["users"])


def _public(user: User) -> UserPublic:
    return UserPublic.model_validate(user, from_attributes=True)


@router.get("/me")
def read_user_me(user: CurrentUser) -> UserPublic:
    """Return the user who is calling."""
    return _public(user)


@router.put("/me/keys")
def update_user_me_keys(keys: UserKeys, session: SessionDep, user: CurrentUser) -> UserPublic:
    """Register the caller's public keys (Ed25519 signing, X25519 encryption)."""
    return _public(crud.update_user_keys(session=session, user=user, keys=keys))


@router.post("", status_code=status.HTTP_201_CREATED)
def create_user(body: UserCreate, session: SessionDep, _admin: AdminUser) -> UserPublic:
    """Create a user (admins only)."""
    if body.role == Role.STEWARD and not body.station:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="a steward needs the slug of their station")
    if body.role != Role.STEWARD and body.station:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="only stewards belong to a station")
    if crud.get_user_by_username(session=session, username=body.username) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"the username {body.username!r} is taken")
    return _public(crud.create_user(session=session, user_create=body))


@router.get("")
def read_users(session: SessionDep, _admin: AdminUser) -> UsersPublic:
    """List every user (admins only)."""
    users = [_public(user) for user in crud.list_users(session=session)]
    return UsersPublic(data=users, count=len(users))
