"""The contract shared by hub, stations, trains and clients.

Schemas of every message, signatures, sealed envelopes and content addresses. This
package imports nothing else of Trainyard.
"""

from ._audit import GENESIS_HASH as GENESIS_HASH
from ._audit import AuditEntry as AuditEntry
from ._audit import AuditHead as AuditHead
from ._audit import AuditProblem as AuditProblem
from ._audit import AuditProblemKind as AuditProblemKind
from ._audit import AuditVerification as AuditVerification
from ._audit import audit_entries_from_jsonl as audit_entries_from_jsonl
from ._audit import audit_export_text as audit_export_text
from ._audit import audit_to_prov_turtle as audit_to_prov_turtle
from ._audit import next_audit_entry as next_audit_entry
from ._audit import verify_audit_chain as verify_audit_chain
from ._crypto import open_sealed as open_sealed
from ._crypto import seal as seal
from ._crypto import sign_bytes as sign_bytes
from ._crypto import sign_envelope as sign_envelope
from ._crypto import sign_grant as sign_grant
from ._crypto import sign_manifest as sign_manifest
from ._crypto import sign_publication as sign_publication
from ._crypto import verify_bytes as verify_bytes
from ._crypto import verify_envelope as verify_envelope
from ._crypto import verify_grant as verify_grant
from ._crypto import verify_manifest as verify_manifest
from ._crypto import verify_publication as verify_publication
from ._errors import ContentHashError as ContentHashError
from ._errors import DecryptionError as DecryptionError
from ._errors import PolicyError as PolicyError
from ._errors import ProtocolError as ProtocolError
from ._errors import SignatureError as SignatureError
from ._errors import TrainyardError as TrainyardError
from ._fl import FLConfigKey as FLConfigKey
from ._fl import UpdateKey as UpdateKey
from ._grants import REMOTE_PROCESSING as REMOTE_PROCESSING
from ._grants import Grant as Grant
from ._grants import SignedGrant as SignedGrant
from ._hashing import canonical_json as canonical_json
from ._hashing import content_address as content_address
from ._hashing import content_address_for_file as content_address_for_file
from ._hashing import is_content_address as is_content_address
from ._hashing import verify_content_address as verify_content_address
from ._httpsig import SignedRequest as SignedRequest
from ._httpsig import content_digest as content_digest
from ._httpsig import sign_request as sign_request
from ._httpsig import verify_request as verify_request
from ._keys import KeyPair as KeyPair
from ._keys import b64decode as b64decode
from ._keys import b64encode as b64encode
from ._keys import generate_key_pair as generate_key_pair
from ._keys import key_id_for_public_key as key_id_for_public_key
from ._keys import load_key_pair as load_key_pair
from ._keys import public_key_from_text as public_key_from_text
from ._keys import save_key_pair as save_key_pair
from ._schemas import CollectionMetadata as CollectionMetadata
from ._schemas import CollectionPublication as CollectionPublication
from ._schemas import CollectionSummary as CollectionSummary
from ._schemas import DiseaseCode as DiseaseCode
from ._schemas import FederatedPlan as FederatedPlan
from ._schemas import Job as Job
from ._schemas import JobFailure as JobFailure
from ._schemas import JobStatus as JobStatus
from ._schemas import ModelUpdateRef as ModelUpdateRef
from ._schemas import NumericRange as NumericRange
from ._schemas import OutputSpec as OutputSpec
from ._schemas import Recipient as Recipient
from ._schemas import ResultEnvelope as ResultEnvelope
from ._schemas import ResultPayload as ResultPayload
from ._schemas import Role as Role
from ._schemas import RoundSpec as RoundSpec
from ._schemas import SealedBox as SealedBox
from ._schemas import SignedManifest as SignedManifest
from ._schemas import StationEnrolled as StationEnrolled
from ._schemas import StationEnrolment as StationEnrolment
from ._schemas import TrainKind as TrainKind
from ._schemas import TrainManifest as TrainManifest
from ._schemas import utc_now as utc_now
from ._secagg import SECAGG_PRIME as SECAGG_PRIME
from ._secagg import SecAggAdvert as SecAggAdvert
from ._secagg import SecAggMember as SecAggMember
from ._secagg import SecAggMeta as SecAggMeta
from ._secagg import SecAggPhase as SecAggPhase
from ._secagg import SecAggReveal as SecAggReveal
from ._secagg import SecAggRoster as SecAggRoster
from ._secagg import SecAggShare as SecAggShare
from ._secagg import SecAggShares as SecAggShares
from ._secagg import SecAggSharesFor as SecAggSharesFor
from ._secagg import SecAggSurvivors as SecAggSurvivors
from ._secagg import SecAggUpload as SecAggUpload
from ._secagg import advert_bytes as advert_bytes
from ._secagg import agree_seed as agree_seed
from ._secagg import decrypt_share as decrypt_share
from ._secagg import dequantise as dequantise
from ._secagg import encrypt_share as encrypt_share
from ._secagg import mask_from_seed as mask_from_seed
from ._secagg import mask_update as mask_update
from ._secagg import public_key_text as public_key_text
from ._secagg import quantise as quantise
from ._secagg import raw_private_key as raw_private_key
from ._secagg import reconstruct_secret as reconstruct_secret
from ._secagg import scale_for as scale_for
from ._secagg import split_secret as split_secret
from ._secagg import threshold_for as threshold_for
from ._secagg import unmask_sum as unmask_sum
from ._transfer import DEFAULT_CHUNK_BYTES as DEFAULT_CHUNK_BYTES
from ._transfer import UploadStart as UploadStart
from ._transfer import UploadStatus as UploadStatus

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "GENESIS_HASH",
    "REMOTE_PROCESSING",
    "SECAGG_PRIME",
    "AuditEntry",
    "AuditHead",
    "AuditProblem",
    "AuditProblemKind",
    "AuditVerification",
    "CollectionMetadata",
    "CollectionPublication",
    "CollectionSummary",
    "ContentHashError",
    "DecryptionError",
    "DiseaseCode",
    "FLConfigKey",
    "FederatedPlan",
    "Grant",
    "Job",
    "JobFailure",
    "JobStatus",
    "KeyPair",
    "ModelUpdateRef",
    "NumericRange",
    "OutputSpec",
    "PolicyError",
    "ProtocolError",
    "Recipient",
    "ResultEnvelope",
    "ResultPayload",
    "Role",
    "RoundSpec",
    "SealedBox",
    "SecAggAdvert",
    "SecAggMember",
    "SecAggMeta",
    "SecAggPhase",
    "SecAggReveal",
    "SecAggRoster",
    "SecAggShare",
    "SecAggShares",
    "SecAggSharesFor",
    "SecAggSurvivors",
    "SecAggUpload",
    "SignatureError",
    "SignedGrant",
    "SignedManifest",
    "SignedRequest",
    "StationEnrolled",
    "StationEnrolment",
    "TrainKind",
    "TrainManifest",
    "TrainyardError",
    "UpdateKey",
    "UploadStart",
    "UploadStatus",
    "advert_bytes",
    "agree_seed",
    "audit_entries_from_jsonl",
    "audit_export_text",
    "audit_to_prov_turtle",
    "b64decode",
    "b64encode",
    "canonical_json",
    "content_address",
    "content_address_for_file",
    "content_digest",
    "decrypt_share",
    "dequantise",
    "encrypt_share",
    "generate_key_pair",
    "is_content_address",
    "key_id_for_public_key",
    "load_key_pair",
    "mask_from_seed",
    "mask_update",
    "next_audit_entry",
    "open_sealed",
    "public_key_from_text",
    "public_key_text",
    "quantise",
    "raw_private_key",
    "reconstruct_secret",
    "save_key_pair",
    "scale_for",
    "seal",
    "sign_bytes",
    "sign_envelope",
    "sign_grant",
    "sign_manifest",
    "sign_publication",
    "sign_request",
    "split_secret",
    "threshold_for",
    "unmask_sum",
    "utc_now",
    "verify_audit_chain",
    "verify_bytes",
    "verify_content_address",
    "verify_envelope",
    "verify_grant",
    "verify_manifest",
    "verify_publication",
    "verify_request",
]
