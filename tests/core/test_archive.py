"""The one guarded zip reader (fercore.archive): each rule refuses with its own reason, from the directory alone."""
import os
import stat
import zipfile
from types import SimpleNamespace

import pytest

from fercore.archive import ArchiveError, GuardedZip, Limits, UnreadableMember, check_members, is_system_file


def make_zip(path, files: dict, *, symlinks: dict | None = None, compression=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return path


def refusal(path, limits: Limits = Limits()) -> tuple[str, str]:
    with pytest.raises(ArchiveError) as refused:
        GuardedZip(path, limits)
    return refused.value.code, refused.value.message


def test_a_safe_zip_opens_with_its_files_and_reads_them(tmp_path):
    path = make_zip(tmp_path / "ok.zip", {"happy/a.png": b"a" * 10, "happy/": b"", ".DS_Store": b"x"})
    with GuardedZip(path, Limits()) as archive:
        assert [info.filename for info in archive.files] == ["happy/a.png", ".DS_Store"]
        assert archive.read(archive.files[0]) == b"a" * 10


@pytest.mark.parametrize("name, why", [
    ("../evil.png", "a path that leaves the archive (../)"),
    ("happy/../../etc/cron.d/evil", "a path that leaves the archive (../)"),
    ("happy\\..\\..\\evil.png", "a path that leaves the archive (../)"),
    ("/etc/passwd", "an absolute path"),
    ("C:\\Windows\\evil.png", "an absolute path"),
])
def test_a_name_that_leaves_the_folder_is_refused(tmp_path, name, why):
    path = make_zip(tmp_path / "x.zip", {"happy/a.png": b"a", name: b"x"})
    assert refusal(path) == ("unsafe_path", f"Refused: the zip member {name!r} has {why}.")


def test_a_nul_byte_in_a_name_is_refused():
    # zipfile cuts names at NUL when it reads them; other unzip tools may not, so the rule stays.
    info = zipfile.ZipInfo("happy/a.png")
    info.filename = "happy/a.png\x00.exe"
    with pytest.raises(ArchiveError) as refused:
        check_members([info], Limits())
    assert refused.value.code == "unsafe_path" and "a NUL byte in the name" in refused.value.message


def test_a_symbolic_link_is_refused(tmp_path):
    path = make_zip(tmp_path / "x.zip", {"happy/a.png": b"a"}, symlinks={"happy/link.png": "/etc/passwd"})
    assert refusal(path) == ("symlink", "Refused: the zip member 'happy/link.png' is a symbolic link.")


@pytest.mark.parametrize("name", ["happy/more.zip", "MORE.ZIP"])
def test_a_zip_inside_the_zip_is_refused(tmp_path, name):
    inner = make_zip(tmp_path / "inner.zip", {"happy/a.png": b"a"}).read_bytes()
    path = make_zip(tmp_path / "x.zip", {"happy/a.png": b"a", name: inner})
    assert refusal(path) == (
        "nested_archive", f"Refused: the zip member {name!r} is itself a zip; unzip it and upload its contents instead.",
    )


def test_too_many_files_are_refused_and_hidden_files_count(tmp_path):
    files = {"happy/a.png": b"a", "happy/b.png": b"b", "happy/c.png": b"c", "__MACOSX/._a.png": b"x", "happy/": b""}
    path = make_zip(tmp_path / "x.zip", files)
    assert refusal(path, Limits(max_members=3)) == ("too_many_members", "Refused: the zip holds 4 files; the limit is 3.")
    assert len(GuardedZip(path, Limits(max_members=4)).files) == 4


def test_too_many_bytes_once_unpacked_are_refused(tmp_path):
    files = {"happy/a.png": os.urandom(1536 * 1024), "sad/b.png": os.urandom(1536 * 1024)}
    path = make_zip(tmp_path / "x.zip", files, compression=zipfile.ZIP_STORED)
    assert refusal(path, Limits(max_uncompressed_bytes=2 * 1024**2)) == (
        "too_large_uncompressed", "Refused: the zip unpacks to 3 MB; the limit is 2 MB.",
    )


def test_a_member_that_expands_like_a_bomb_is_refused_and_small_ones_are_not(tmp_path):
    bomb = make_zip(tmp_path / "bomb.zip", {"happy/a.png": b"a", "happy/zeros.png": bytes(8 * 1024**2)})
    code, message = refusal(bomb)
    assert code == "compression_ratio"
    assert message.startswith("Refused: the zip member 'happy/zeros.png' expands ")
    assert message.endswith(" times; the limit is 200 (this looks like a zip bomb).")
    # Under 1 MiB a member cannot hurt, however well it compresses (blank faces do).
    small = make_zip(tmp_path / "small.zip", {"happy/zeros.png": bytes(1024**2 - 1)})
    assert len(GuardedZip(small, Limits()).files) == 1


def test_a_damaged_zip_is_refused_and_a_damaged_member_is_unreadable_alone(tmp_path):
    whole = make_zip(tmp_path / "x.zip", {"happy/a.png": b"a" * 100, "happy/b.png": b"b" * 100},
                     compression=zipfile.ZIP_STORED).read_bytes()
    (tmp_path / "cut.zip").write_bytes(whole[: len(whole) // 2])
    code, message = refusal(tmp_path / "cut.zip")
    assert code == "corrupt_zip" and message.startswith("The zip file is damaged and cannot be opened (")
    flipped = whole.replace(b"a" * 100, b"a" * 99 + b"!")  # the CRC no longer matches
    (tmp_path / "flipped.zip").write_bytes(flipped)
    with GuardedZip(tmp_path / "flipped.zip", Limits()) as archive:
        with pytest.raises(UnreadableMember, match="CRC"):
            archive.read("happy/a.png")
        assert archive.read("happy/b.png") == b"b" * 100


def test_limits_come_from_the_settings_in_one_place():
    settings = SimpleNamespace(FERWEB_MAX_ARCHIVE_MEMBERS=5, FERWEB_MAX_ARCHIVE_UNCOMPRESSED_BYTES=6,
                               FERWEB_MAX_COMPRESSION_RATIO=7, FERWEB_MAX_IMAGE_PIXELS=8)
    assert Limits.from_settings(settings) == Limits(max_members=5, max_uncompressed_bytes=6, max_compression_ratio=7,
                                                    max_image_pixels=8)


@pytest.mark.parametrize("name, system", [
    ("happy/a.png", False), (".DS_Store", True), ("happy/Thumbs.db", True), ("__MACOSX/happy/._a.png", True),
    ("happy/.hidden/a.png", True), ("photos/desktop.ini", True),
])
def test_hidden_and_system_files_are_told_apart(name, system):
    assert is_system_file(name) is system
