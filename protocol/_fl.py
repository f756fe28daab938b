"""Wire keys of federated-learning round config and update metadata; never string literals elsewhere."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["FLConfigKey", "UpdateKey"]


class FLConfigKey(StrEnum):
    """Keys of the config a station's train receives for one round."""

    SERVER_ROUND = "server_round"
    LOCAL_EPOCHS = "local_epochs"
    LEARNING_RATE = "learning_rate"
    BATCH_SIZE = "batch_size"
    PROXIMAL_MU = "proximal_mu"
    LOCAL_PARAMETERS = "local_parameters"
    COMPRESSION = "compression"
    TOPK_FRACTION = "topk_fraction"
    DP_CLIP_NORM = "dp_clip_norm"
    DP_NOISE_MULTIPLIER = "dp_noise_multiplier"
    DP_SGD_NOISE_MULTIPLIER = "dp_sgd_noise_multiplier"
    DP_SGD_CLIP = "dp_sgd_clip"
    DP_DELTA = "dp_delta"
    SECAGG = "secagg"
    SEED = "seed"


class UpdateKey(StrEnum):
    """Keys of the JSON written next to an update's safetensors."""

    NUM_EXAMPLES = "num_examples"
    METRICS = "metrics"
    COMPRESSION = "compression"
    SHAPES = "shapes"
    DTYPES = "dtypes"
    # metrics (under METRICS) a station training with DP-SGD reports: its (ε at the round's δ) so far
    DP_SGD_EPSILON = "dp_sgd_epsilon"
    DP_SGD_SAMPLING_RATE = "dp_sgd_sampling_rate"
    DP_SGD_STEPS = "dp_sgd_steps"
