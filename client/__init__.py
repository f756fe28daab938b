"""What a person runs on their own machine: the Python client and the ``trainyard`` CLI.

Private keys stay here: the client signs manifests and decrypts results locally.
"""

from ._bundle import TrainConfig as TrainConfig
from ._bundle import build_bundle as build_bundle
from ._bundle import read_train_config as read_train_config
from ._client import ClientError as ClientError
from ._client import JobResult as JobResult
from ._client import TrainyardClient as TrainyardClient

__all__ = ["ClientError", "JobResult", "TrainConfig", "TrainyardClient", "build_bundle", "read_train_config"]
