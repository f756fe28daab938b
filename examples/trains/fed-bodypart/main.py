"""fed-bodypart: one federated round at one station.

Load the global model (round 1: the seeded initial model, the same at every station), train on
this station's CT slices for the round's local epochs, validate on a held-out share, and write the
weights as safetensors plus ``update.json`` (example count and metrics). Nothing else leaves.
"""

import hashlib

import numpy as np
import pydicom
import torch
from safetensors.torch import load_file, save
from torch import nn

import trainkit
from trainkit.compression import compress_update, read_safetensors, write_safetensors

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
    config = job.round.config
    torch.manual_seed(int(config.get("seed", 0)))
    model = build_model()  # the seed makes round 1's model the same at every station
    if job.round.global_model is not None:
        model.load_state_dict(load_file(str(job.round.global_model)))
    torch.manual_seed(int(config.get("seed", 0)) + 1000 * job.round.number)
    initial = {key: value.detach().clone() for key, value in model.state_dict().items()}

    train_x, train_y, val_x, val_y = load_slices(job, float(job.parameters.get("validation_share", 0.25)))
    optimiser = torch.optim.SGD(model.parameters(), lr=float(config.get("learning_rate", 0.05)), momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    batch = int(config.get("batch_size", 16))
    losses = []
    model.train()
    for _epoch in range(int(config.get("local_epochs", 1))):
        order = torch.randperm(len(train_x))
        for start in range(0, len(order), batch):
            index = order[start : start + batch]
            optimiser.zero_grad()
            loss = loss_fn(model(train_x[index]), train_y[index])
            loss.backward()
            optimiser.step()
            losses.append(float(loss))

    model.eval()
    metrics = {"train_loss": float(np.mean(losses)) if losses else 0.0}
    if len(val_x):
        with torch.no_grad():
            logits = model(val_x)
        metrics["val_loss"] = float(loss_fn(logits, val_y))
        metrics["val_accuracy"] = float((logits.argmax(1) == val_y).float().mean())

    compression = str(config.get("compression", "fp16"))
    # Send the change, compressed, and keep what was not sent for the next round. Round 1 has no global
    # model at the hub to add a change to: it sends its weights whole (fp16).
    if compression in {"topk", "sign"} and job.round.global_model is not None:
        delta = {
            key: (value - initial[key]).numpy() if value.is_floating_point() else value.numpy()
            for key, value in model.state_dict().items()
        }
        residual = None
        if job.round.station_state is not None:
            residual, _meta = read_safetensors(job.round.station_state.read_bytes())
        data, left = compress_update(
            delta, method=compression, fraction=float(config.get("topk_fraction", 0.01)), residual=residual
        )
        job.out.write_bytes("update.safetensors", data)
        job.out.write_station_state(write_safetensors(left))  # never leaves the station
    else:
        dense = "none" if compression == "none" else "fp16"
        state = {
            key: (value.half() if dense == "fp16" and value.is_floating_point() else value).contiguous()
            for key, value in model.state_dict().items()
        }
        job.out.write_bytes("update.safetensors", save(state, metadata={"compression": dense}))
    job.out.write_json("update.json", {"num_examples": len(train_x), "metrics": metrics})


if __name__ == "__main__":
    main()
