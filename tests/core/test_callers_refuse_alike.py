"""The three readers of uploaded zips (dataset import, batch jobs, labeling) refuse a bad zip the same way:
the same code and the same sentence, from the same limits (the settings)."""
import zipfile

import pytest
from django.core.files.base import ContentFile

from fercore.archive import Limits
from fercore.readers import DatasetError, check_dataset, read_dataset
from inference.synthetic import draw_face, encode
from inference.tracking import SourceError, zip_images


def zip_of(path, files: dict):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


FACE = encode(draw_face(48), ".png")
BAD_ZIPS = {
    "bomb": ({"happy/a.png": FACE, "happy/b.png": bytes(8 * 1024**2)}, "compression_ratio",
             "Refused: the zip member 'happy/b.png' expands 1,028 times; the limit is 200 (this looks like a zip bomb)."),
    "nested": ({"happy/a.png": FACE, "happy/more.zip": b"PK\x05\x06" + bytes(18)}, "nested_archive",
               "Refused: the zip member 'happy/more.zip' is itself a zip; unzip it and upload its contents instead."),
    "traversal": ({"happy/a.png": FACE, "../../a.png": FACE}, "unsafe_path",
                  "Refused: the zip member '../../a.png' has a path that leaves the archive (../)."),
    "too_many": ({f"happy/{i}.png": FACE for i in range(4)}, "too_many_members",
                 "Refused: the zip holds 4 files; the limit is 3."),
}


def labeling_refusal(owner, path) -> tuple[str, str]:
    from ferweb.labeling.models import LabelingPhoto, LabelingSet
    from ferweb.labeling.services import _expand_zip

    photo = LabelingPhoto(labeling_set=LabelingSet.objects.create(owner=owner, name="party"), name="party.zip")
    photo.file.save("party.zip", ContentFile(path.read_bytes()), save=False)
    photo.save()
    _expand_zip(photo)
    photo.refresh_from_db()
    assert not LabelingPhoto.objects.exclude(pk=photo.pk).exists()  # nothing was expanded
    return photo.status, photo.reason


@pytest.mark.parametrize("kind", BAD_ZIPS)
def test_the_import_batch_jobs_and_labeling_refuse_the_same_zip_alike(kind, alice, settings, tmp_path):
    settings.FERWEB_MAX_ARCHIVE_MEMBERS = 3
    files, code, message = BAD_ZIPS[kind]
    path = zip_of(tmp_path / f"{kind}.zip", files)
    limits = Limits.from_settings(settings)

    for read in (check_dataset, read_dataset):
        with pytest.raises(DatasetError) as imported:
            read(path, limits=limits)
        assert (imported.value.code, imported.value.message) == (code, message)
    with pytest.raises(SourceError) as job:
        zip_images(path, limits=limits)
    assert (job.value.code, job.value.message) == (code, message)
    assert labeling_refusal(alice, path) == ("unreadable", message)
