"""Table models and the Create/Public shapes of every hub resource."""

from hub.models._audit import AuditHeadRow as AuditHeadRow
from hub.models._audit import AuditRecord as AuditRecord
from hub.models._catalog import Collection as Collection
from hub.models._catalog import CollectionPublic as CollectionPublic
from hub.models._catalog import CollectionsPublic as CollectionsPublic
from hub.models._governance import AccessEvent as AccessEvent
from hub.models._governance import AccessEventPublic as AccessEventPublic
from hub.models._governance import AccessEventsPublic as AccessEventsPublic
from hub.models._governance import AccessGrant as AccessGrant
from hub.models._governance import AccessGrantPublic as AccessGrantPublic
from hub.models._governance import AccessGrantsPublic as AccessGrantsPublic
from hub.models._governance import AccessRequest as AccessRequest
from hub.models._governance import AccessRequestCheck as AccessRequestCheck
from hub.models._governance import AccessRequestCreate as AccessRequestCreate
from hub.models._governance import AccessRequestPublic as AccessRequestPublic
from hub.models._governance import AccessRequestsPublic as AccessRequestsPublic
from hub.models._governance import AccessRequestUpdate as AccessRequestUpdate
from hub.models._governance import Decision as Decision
from hub.models._governance import DecisionComment as DecisionComment
from hub.models._governance import DecisionPublic as DecisionPublic
from hub.models._governance import DigestItem as DigestItem
from hub.models._governance import Project as Project
from hub.models._governance import ProjectCreate as ProjectCreate
from hub.models._governance import ProjectPublic as ProjectPublic
from hub.models._governance import ProjectsPublic as ProjectsPublic
from hub.models._governance import ProjectUpdate as ProjectUpdate
from hub.models._governance import ScreeningFinding as ScreeningFinding
from hub.models._governance import ScreeningReport as ScreeningReport
from hub.models._governance import StewardDigest as StewardDigest
from hub.models._governance import TransitionComment as TransitionComment
from hub.models._rounds import FLRound as FLRound
from hub.models._rounds import FLRoundPublic as FLRoundPublic
from hub.models._rounds import FLRun as FLRun
from hub.models._rounds import FLRunPublic as FLRunPublic
from hub.models._rounds import FLUpdate as FLUpdate
from hub.models._rounds import ModelVersion as ModelVersion
from hub.models._rounds import ModelVersionPublic as ModelVersionPublic
from hub.models._rounds import ModelVersionsPublic as ModelVersionsPublic
from hub.models._rounds import RoundStatus as RoundStatus
from hub.models._rounds import RunStatus as RunStatus
from hub.models._secagg import SecAggMessage as SecAggMessage
from hub.models._secagg import SecAggRound as SecAggRound
from hub.models._secagg import SecAggStep as SecAggStep
from hub.models._stations import EnrolmentToken as EnrolmentToken
from hub.models._stations import EnrolmentTokenCreate as EnrolmentTokenCreate
from hub.models._stations import EnrolmentTokenPublic as EnrolmentTokenPublic
from hub.models._stations import Station as Station
from hub.models._stations import StationPublic as StationPublic
from hub.models._stations import StationsPublic as StationsPublic
from hub.models._trains import ArtifactPublic as ArtifactPublic
from hub.models._trains import Job as Job
from hub.models._trains import JobPublic as JobPublic
from hub.models._trains import Result as Result
from hub.models._trains import Train as Train
from hub.models._trains import TrainPublic as TrainPublic
from hub.models._trains import TrainsPublic as TrainsPublic
from hub.models._types import PublicKey as PublicKey
from hub.models._types import Slug as Slug
from hub.models._users import ApiTokenCreate as ApiTokenCreate
from hub.models._users import ApiTokenCreated as ApiTokenCreated
from hub.models._users import ApiTokenPublic as ApiTokenPublic
from hub.models._users import ApiTokensPublic as ApiTokensPublic
from hub.models._users import LoginRequest as LoginRequest
from hub.models._users import LoginResponse as LoginResponse
from hub.models._users import OidcIdentity as OidcIdentity
from hub.models._users import Token as Token
from hub.models._users import TokenScope as TokenScope
from hub.models._users import User as User
from hub.models._users import UserCreate as UserCreate
from hub.models._users import UserKeys as UserKeys
from hub.models._users import UserPublic as UserPublic
from hub.models._users import UsersPublic as UsersPublic

__all__ = [
    "AccessEvent",
    "AccessEventPublic",
    "AccessEventsPublic",
    "AccessGrant",
    "AccessGrantPublic",
    "AccessGrantsPublic",
    "AccessRequest",
    "AccessRequestCheck",
    "AccessRequestCreate",
    "AccessRequestPublic",
    "AccessRequestUpdate",
    "AccessRequestsPublic",
    "ApiTokenCreate",
    "ApiTokenCreated",
    "ApiTokenPublic",
    "ApiTokensPublic",
    "ArtifactPublic",
    "AuditHeadRow",
    "AuditRecord",
    "Collection",
    "CollectionPublic",
    "CollectionsPublic",
    "Decision",
    "DecisionComment",
    "DecisionPublic",
    "DigestItem",
    "EnrolmentToken",
    "EnrolmentTokenCreate",
    "EnrolmentTokenPublic",
    "FLRound",
    "FLRoundPublic",
    "FLRun",
    "FLRunPublic",
    "FLUpdate",
    "Job",
    "JobPublic",
    "LoginRequest",
    "LoginResponse",
    "ModelVersion",
    "ModelVersionPublic",
    "ModelVersionsPublic",
    "OidcIdentity",
    "Project",
    "ProjectCreate",
    "ProjectPublic",
    "ProjectUpdate",
    "ProjectsPublic",
    "PublicKey",
    "Result",
    "RoundStatus",
    "RunStatus",
    "ScreeningFinding",
    "ScreeningReport",
    "SecAggMessage",
    "SecAggRound",
    "SecAggStep",
    "Slug",
    "Station",
    "StationPublic",
    "StationsPublic",
    "StewardDigest",
    "Token",
    "TokenScope",
    "Train",
    "TrainPublic",
    "TrainsPublic",
    "TransitionComment",
    "User",
    "UserCreate",
    "UserKeys",
    "UserPublic",
    "UsersPublic",
]
