"""A ready dataset of drawn faces, stored the way an import stores it."""
import numpy as np
import pytest

from fercore.classes import CLASSES
from ferweb.datasets.models import Dataset, DatasetItem
from tests.training_web.faces import drawn_faces


def make_ready_dataset(owner, *, per_class=60, seed=0, name="drawn faces", splits=(0.7, 0.15, 0.15)) -> Dataset:
    """1. draw faces; 2. pack them into pixels.npy; 3. one DatasetItem per face with a split."""
    pixels, labels = drawn_faces(per_class, seed=seed)
    n = len(labels)
    order = np.random.default_rng(seed).permutation(n)
    n_train, n_val = int(n * splits[0]), int(n * splits[1])
    split_of = np.empty(n, dtype=object)
    split_of[order[:n_train]] = "train"
    split_of[order[n_train:n_train + n_val]] = "val"
    split_of[order[n_train + n_val:]] = "test"
    dataset = Dataset.objects.create(
        owner=owner, name=name, status=Dataset.Status.READY, progress=100, source_format="zip", num_items=n,
        class_counts={c: int((labels == i).sum()) for i, c in enumerate(CLASSES) if (labels == i).any()},
        split_counts={s: int((split_of == s).sum()) for s in ("train", "val", "test")},
    )
    dataset.storage_dir.mkdir(parents=True, exist_ok=True)
    np.save(dataset.pixels_path, pixels)
    DatasetItem.objects.bulk_create(
        DatasetItem(dataset=dataset, index=i, label=int(labels[i]), split=str(split_of[i])) for i in range(n)
    )
    return dataset


def busy_run(owner, name="other faces"):
    """A run as the training worker holds it (a row only: no worker runs it), with 90 s left."""
    from training_jobs.models import TrainingRun
    from training_jobs.services import run_create

    run = run_create(user=owner, dataset=make_ready_dataset(owner, per_class=4, name=name),
                     config={"architecture": "fast_resnet"}, queue=False)
    TrainingRun.objects.filter(pk=run.pk).update(status="running", eta_seconds=90)
    return run


@pytest.fixture
def ready_dataset(alice):
    return make_ready_dataset(alice)
