"""fed-bodypart: one federated round at one station.

The author's part: the model, this station's CT slices and a validation step. ``trainkit.fl``
does the round: the global model in (round 1: the seeded initial model, the same at every
station), the local epochs, the update out as safetensors (compressed from round 2 when the plan
asks) plus ``update.json`` (example count and metrics). Nothing else leaves.
"""

import hashlib

import numpy as np
import pydicom
import torch
from torch import nn

import trainkit
from trainkit.fl import run_round

LABELS = {"CHEST": 0, "ABDOMEN": 1}


def build_model() -> nn.Module:
    """A small CNN for 64 x 64 slices."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(4),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(256, 2),
    )


def is_validation(uid: str, share: float) -> bool:
    """A stable split: the same slice is always on the same side."""
    return int(hashlib.sha256(uid.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < share


def load_slices(job: trainkit.Job, share: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """CT slices of the collection, windowed to [0, 1], split into training and validation."""
    train_x, train_y, val_x, val_y = [], [], [], []
    for path in trainkit.iter_dicom_files(job.data_dir):
        ds = pydicom.dcmread(path)
        part = str(ds.get("BodyPartExamined", "")).upper()
        if ds.get("Modality") != "CT" or part not in LABELS or "PixelData" not in ds:
            continue
        hu = ds.pixel_array.astype(np.float32) * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
        image = np.clip((hu + 1000.0) / 2000.0, 0.0, 1.0)[None]
        if is_validation(str(ds.SOPInstanceUID), share):
            val_x.append(image)
            val_y.append(LABELS[part])
        else:
            train_x.append(image)
            train_y.append(LABELS[part])
    as_x = lambda items: torch.tensor(np.stack(items)) if items else torch.zeros((0, 1, 64, 64))  # noqa: E731
    return as_x(train_x), torch.tensor(train_y), as_x(val_x), torch.tensor(val_y)


def main() -> None:
    job = trainkit.job()
    if job.round is None:
        raise SystemExit("fed-bodypart is a federated train: it runs in a hub-run round")
    torch.manual_seed(int(job.round.config.get("seed", 0)))
    model = build_model()  # the seed makes round 1's model the same at every station
    train_x, train_y, val_x, val_y = load_slices(job, float(job.parameters.get("validation_share", 0.25)))
    loss_fn = nn.CrossEntropyLoss()

    def validate(trained: nn.Module) -> dict[str, float]:
        if not len(val_x):
            return {}
        logits = trained(val_x)
        return {
            "val_loss": float(loss_fn(logits, val_y)),
            "val_accuracy": float((logits.argmax(1) == val_y).float().mean()),
        }

    # the global model in, local epochs, validation, the update (compressed from round 2 when asked) out
    run_round(job, model, (train_x, train_y), loss_fn=loss_fn, validate=validate)


if __name__ == "__main__":
    main()
