"""Dataset versions: every change to a dataset's labels makes a new, immutable version with a parent.

The faces of a dataset (pixels.npy) only ever grow: a version is the rest, one small file per version
(versions/<n>.npz: the item rows it holds, their ids, labels, splits and exclusions). The DatasetItem
rows are the newest version's state, where edits land; `version_record` then compares them with the
newest version and makes a child of it, or, while one person's sitting of edits from one place goes
on, folds them into the newest version as long as nothing has used it (`sealed`: a run trained on
it, it was exported, or another kind of edit came after). So a review of 300 faces is one version,
and a version a run trained on never changes.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
from django.db import transaction
from django.utils import timezone

from fercore.classes import CLASSES

from .models import Dataset, DatasetItem, DatasetVersion

SITTING = timedelta(minutes=15)  # edits further apart than this start a new version
SOURCES = ("import", "edit", "review", "confusion", "admin", "labeling")


@dataclass
class State:
    """One version's faces, in item-row order: rows in the packed array, item ids, labels, splits, exclusions."""

    index: np.ndarray  # int64
    ids: np.ndarray  # int64
    labels: np.ndarray  # int64
    splits: np.ndarray  # str
    excluded: np.ndarray  # bool

    def kept(self) -> np.ndarray:
        return ~self.excluded

    def same_as(self, other: State) -> bool:
        return (np.array_equal(self.index, other.index) and np.array_equal(self.labels, other.labels)
                and np.array_equal(self.splits, other.splits) and np.array_equal(self.excluded, other.excluded))


# ---------------------------------------------------------------- states


def items_state(dataset: Dataset) -> State:
    """The state the dataset's items hold now (the newest version's, edits included)."""
    rows = DatasetItem.objects.filter(dataset_id=dataset.pk).order_by("index")
    index, ids, labels, splits, excluded = [], [], [], [], []
    for i, pk, label, split, out in rows.values_list("index", "id", "label", "split", "excluded").iterator(
            chunk_size=10_000):
        index.append(i)
        ids.append(pk)
        labels.append(label)
        splits.append(split)
        excluded.append(out)
    return State(np.asarray(index, np.int64), np.asarray(ids, np.int64), np.asarray(labels, np.int64),
                 np.asarray(splits, dtype=str), np.asarray(excluded, dtype=bool))


def load_state(version: DatasetVersion) -> State:
    with np.load(version.state_path) as data:
        return State(data["index"].astype(np.int64), data["ids"].astype(np.int64), data["labels"].astype(np.int64),
                     data["splits"].astype(str), data["excluded"].astype(bool))


def _write_state(path: Path, state: State) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(".tmp.npz")
    np.savez(staging, index=state.index, ids=state.ids, labels=state.labels.astype(np.uint8),
             splits=state.splits, excluded=state.excluded)
    os.replace(staging, path)


def version_rows(version: DatasetVersion) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(rows in the packed array, labels, splits, item ids) of the faces the version holds, excluded ones
    left out: what a run trained on it reads (selectors.dataset_rows for the newest state)."""
    state = load_state(version)
    kept = state.kept()
    return state.index[kept], state.labels[kept], state.splits[kept], state.ids[kept]


# ---------------------------------------------------------------- hash, counts, summary


def _pixels_digest(dataset: Dataset, rows: int) -> str:
    """SHA-256 of the first `rows` packed faces; cached per size, since the array only grows."""
    cache = dataset.storage_dir / "pixels-digests.json"
    known = json.loads(cache.read_text()) if cache.exists() else {}
    if str(rows) not in known:
        digest = hashlib.sha256()
        if rows and dataset.pixels_path.exists():
            pixels = np.load(dataset.pixels_path, mmap_mode="r")
            digest.update(np.ascontiguousarray(pixels[:rows]).tobytes())
        known[str(rows)] = digest.hexdigest()
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(known))
    return known[str(rows)]


def content_hash(dataset: Dataset, state: State) -> str:
    rows = int(state.index.max()) + 1 if len(state.index) else 0
    digest = hashlib.sha256(_pixels_digest(dataset, rows).encode())
    for part in (state.index, state.labels, state.excluded):
        digest.update(np.ascontiguousarray(part).tobytes())
    digest.update("\n".join(state.splits.tolist()).encode())
    return digest.hexdigest()


def _counts(state: State) -> dict:
    kept = state.kept()
    labels, splits = state.labels[kept], state.splits[kept]
    class_counts = {name: int((labels == i).sum()) for i, name in enumerate(CLASSES)}
    names, n = np.unique(splits, return_counts=True)
    return {"num_items": int(kept.sum()), "class_counts": class_counts,
            "split_counts": {str(name): int(k) for name, k in zip(names, n)}}


def changes_between(old: State, new: State) -> dict:
    """What changed from `old` to `new`, by item row: {relabeled: {"fear -> sad": n}, excluded, included,
    added, removed, moved: {"train -> test": n}}."""
    common, in_old, in_new = np.intersect1d(old.index, new.index, return_indices=True)
    relabeled: dict[str, int] = {}
    changed = np.flatnonzero(old.labels[in_old] != new.labels[in_new])
    for a, b in zip(old.labels[in_old][changed], new.labels[in_new][changed]):
        key = f"{CLASSES[a]} -> {CLASSES[b]}"
        relabeled[key] = relabeled.get(key, 0) + 1
    moved: dict[str, int] = {}
    shifted = np.flatnonzero(old.splits[in_old] != new.splits[in_new])
    for a, b in zip(old.splits[in_old][shifted], new.splits[in_new][shifted]):
        key = f"{a} -> {b}"
        moved[key] = moved.get(key, 0) + 1
    was_out, is_out = old.excluded[in_old], new.excluded[in_new]
    return {
        "relabeled": dict(sorted(relabeled.items(), key=lambda kv: (-kv[1], kv[0]))),
        "excluded": int((is_out & ~was_out).sum()),
        "included": int((was_out & ~is_out).sum()),
        "added": int(len(new.index) - len(common)),
        "removed": int(len(old.index) - len(common)),
        "moved": dict(sorted(moved.items(), key=lambda kv: (-kv[1], kv[0]))),
    }


def summary_of(changes: dict) -> str:
    """The change in one line: "12 relabeled fear -> sad, 3 excluded"."""
    parts = []
    relabeled = changes.get("relabeled", {})
    if relabeled:
        total = sum(relabeled.values())
        if len(relabeled) == 1:
            parts.append(f"{total:,} relabeled {next(iter(relabeled))}")
        else:
            shown = ", ".join(f"{pair} {n:,}" for pair, n in list(relabeled.items())[:3])
            more = ", ..." if len(relabeled) > 3 else ""
            parts.append(f"{total:,} relabeled ({shown}{more})")
    for key in ("excluded", "included", "added", "removed"):
        if changes.get(key):
            parts.append(f"{changes[key]:,} {key}")
    moved = changes.get("moved", {})
    if moved:
        parts.append(f"{sum(moved.values()):,} moved ({', '.join(f'{pair} {n:,}' for pair, n in list(moved.items())[:2])})")
    return ", ".join(parts) or "no change"


# ---------------------------------------------------------------- the chain


def version_head(dataset: Dataset) -> DatasetVersion | None:
    return DatasetVersion.objects.filter(dataset_id=dataset.pk).order_by("-number").first()


def _create(dataset: Dataset, state: State, *, number: int, parent: DatasetVersion | None, source: str, user,
            changes: dict, summary: str, sealed: bool) -> DatasetVersion:
    version = DatasetVersion(dataset=dataset, number=number, parent=parent, source=source, created_by=user,
                             content_hash=content_hash(dataset, state), changes=changes, summary=summary,
                             sealed=sealed, **_counts(state))
    _write_state(version.state_path, state)
    version.save()
    return version


@transaction.atomic
def version_initial(dataset: Dataset, *, user=None) -> DatasetVersion:
    """The dataset's first version (its import), made from its items if it has none yet; sealed."""
    Dataset.objects.select_for_update().filter(pk=dataset.pk).first()
    head = version_head(dataset)
    if head is not None:
        return head
    state = items_state(dataset)
    summary = f"imported {int(state.kept().sum()):,} faces" + (f" from {dataset.source_name}" if dataset.source_name else "")
    return _create(dataset, state, number=1, parent=None, source="import", user=user or dataset.owner,
                   changes={"added": int(len(state.index))}, summary=summary[:300], sealed=True)


@transaction.atomic
def version_record(dataset: Dataset, *, user=None, source: str = "edit") -> DatasetVersion:
    """After the dataset's items changed: the version that now holds them.

    1. nothing changed against the newest version: it stays the newest;
    2. the newest version is this person's open sitting from the same place (not sealed, same
       source, last change within SITTING): it takes the edits, and goes away if they undid it all;
    3. else a child of the newest version, with the change summarised against it.
    """
    assert source in SOURCES, source
    Dataset.objects.select_for_update().filter(pk=dataset.pk).first()
    head = version_head(dataset)
    if head is None:  # a dataset from before versions: its first version is what it holds now
        return version_initial(dataset, user=user)
    state = items_state(dataset)
    if state.same_as(load_state(head)):
        return head
    user_id = getattr(user, "pk", None)
    open_sitting = (not head.sealed and head.parent_id is not None and head.source == source
                    and head.created_by_id == user_id and timezone.now() - head.updated_at < SITTING)
    if open_sitting:
        parent_state = load_state(head.parent)
        if state.same_as(parent_state):
            parent = head.parent
            path = head.state_path
            head.delete()
            transaction.on_commit(lambda: path.unlink(missing_ok=True))
            return parent
        changes = changes_between(parent_state, state)
        head.content_hash, head.changes, head.summary = content_hash(dataset, state), changes, summary_of(changes)[:300]
        for key, value in _counts(state).items():
            setattr(head, key, value)
        _write_state(head.state_path, state)
        head.save()
        return head
    if not head.sealed:  # another kind of edit, someone else, or later: the old sitting is over
        DatasetVersion.objects.filter(pk=head.pk).update(sealed=True)
    changes = changes_between(load_state(head), state)
    return _create(dataset, state, number=head.number + 1, parent=head, source=source, user=user,
                   changes=changes, summary=summary_of(changes)[:300], sealed=False)


@transaction.atomic
def version_seal(dataset: Dataset, *, user=None) -> DatasetVersion:
    """The newest version, sealed so that it never changes again (a run trains on it, or it is exported)."""
    head = version_head(dataset) or version_initial(dataset, user=user)
    if not head.sealed:
        DatasetVersion.objects.filter(pk=head.pk).update(sealed=True)
        head.sealed = True
    return head


def version_get(dataset: Dataset, number: int) -> DatasetVersion:
    """The dataset's version `number`; DatasetVersion.DoesNotExist when it has none such."""
    if number == 1 and not DatasetVersion.objects.filter(dataset_id=dataset.pk).exists():
        return version_initial(dataset)
    return DatasetVersion.objects.get(dataset_id=dataset.pk, number=number)


# ---------------------------------------------------------------- reads


def version_chain(dataset: Dataset) -> list[DatasetVersion]:
    """The dataset's versions, newest first (version 1 made now for a dataset from before versions)."""
    if dataset.status == Dataset.Status.READY and not DatasetVersion.objects.filter(dataset_id=dataset.pk).exists():
        version_initial(dataset)
    return list(DatasetVersion.objects.filter(dataset_id=dataset.pk).select_related("created_by").order_by("-number"))


def version_diff(old: DatasetVersion, new: DatasetVersion, *, limit: int = 200) -> dict:
    """What differs from `old` to `new` (any two versions of one dataset): the counts and summary, and up to
    `limit` of the faces that changed, each {item, index, source_name, change, before, after}; `change` is
    relabeled, excluded, included, added, removed or moved (a face both relabeled and excluded is listed once
    per change)."""
    a, b = load_state(old), load_state(new)
    changes = changes_between(a, b)
    _, in_a, in_b = np.intersect1d(a.index, b.index, return_indices=True)
    rows: list[tuple[str, int, str, str]] = []  # (change, item id, before, after)
    for k in np.flatnonzero(a.labels[in_a] != b.labels[in_b]):
        rows.append(("relabeled", int(b.ids[in_b[k]]), CLASSES[a.labels[in_a[k]]], CLASSES[b.labels[in_b[k]]]))
    for k in np.flatnonzero(a.excluded[in_a] != b.excluded[in_b]):
        change = "excluded" if b.excluded[in_b[k]] else "included"
        rows.append((change, int(b.ids[in_b[k]]), CLASSES[a.labels[in_a[k]]], CLASSES[b.labels[in_b[k]]]))
    for k in np.flatnonzero(a.splits[in_a] != b.splits[in_b]):
        rows.append(("moved", int(b.ids[in_b[k]]), str(a.splits[in_a[k]]), str(b.splits[in_b[k]])))
    for k in np.setdiff1d(np.arange(len(b.index)), in_b):
        rows.append(("added", int(b.ids[k]), "", CLASSES[b.labels[k]]))
    for k in np.setdiff1d(np.arange(len(a.index)), in_a):
        rows.append(("removed", int(a.ids[k]), CLASSES[a.labels[k]], ""))
    listed = rows[:max(0, limit)]
    names = dict(DatasetItem.objects.filter(pk__in=[row[1] for row in listed]).values_list("pk", "source_name"))
    index_of = dict(zip(np.concatenate([a.ids, b.ids]).tolist(), np.concatenate([a.index, b.index]).tolist()))
    faces = [{"item": item, "index": int(index_of[item]), "source_name": names.get(item, ""), "change": change,
              "before": before, "after": after} for change, item, before, after in listed]
    return {"from": old.number, "to": new.number, "changes": changes, "summary": summary_of(changes),
            "count": len(rows), "faces": faces}
