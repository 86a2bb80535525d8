"""The one guarded zip reader: every uploaded archive is opened here and checked before a byte is unpacked.

Dataset imports, labeling uploads and batch inference jobs all take zips from strangers. The checks
read the central directory only, so a refusal costs microseconds whatever the archive claims:
1. no member name that could leave a folder once extracted (absolute, `..`, a drive letter, NUL);
2. no symbolic links;
3. no zip inside the zip: nothing here unpacks archives within archives, and a labeling upload
   would otherwise expand them one level after another;
4. at most `max_members` files, counting hidden and system files too;
5. at most `max_uncompressed_bytes` once unpacked, all files together;
6. no member of 1 MiB or more that expands more than `max_compression_ratio` times (a zip bomb).
Reading a member can never yield more than the size the directory declares for it (zipfile stops
there and the CRC check fails), so these numbers bound the memory and disk a zip can take.

The limits are arguments (`Limits`); Django code builds them from settings with `Limits.from_settings`.
"""
from __future__ import annotations

import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO

from .images import DEFAULT_MAX_PIXELS

# Members smaller than this are never counted as bombs: JPEGs of blank faces compress very well,
# and a member this small cannot hurt whatever its ratio (the total is capped as well).
RATIO_CHECK_MIN_BYTES = 1024 * 1024
NESTED_ARCHIVE_SUFFIXES = (".zip",)
# Litter that archivers and file managers add; readers leave it out (it still counts against the limits).
SYSTEM_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}


@dataclass(frozen=True)
class Limits:
    """Caps on one upload, checked before anything is unpacked or decoded (defaults: the settings' defaults)."""

    max_members: int = 200_000  # files in one archive
    max_uncompressed_bytes: int = 4 * 1024**3  # bytes, all files of one archive unpacked
    max_compression_ratio: int = 200  # uncompressed / compressed, per member
    max_image_pixels: int = DEFAULT_MAX_PIXELS  # width x height of one image (a PNG of zeros can hide gigabytes)

    @classmethod
    def from_settings(cls, settings) -> Limits:
        """The limits a deployment configured: the one place the FERWEB_MAX_* settings become Limits."""
        return cls(
            max_members=settings.FERWEB_MAX_ARCHIVE_MEMBERS,
            max_uncompressed_bytes=settings.FERWEB_MAX_ARCHIVE_UNCOMPRESSED_BYTES,
            max_compression_ratio=settings.FERWEB_MAX_COMPRESSION_RATIO,
            max_image_pixels=settings.FERWEB_MAX_IMAGE_PIXELS,
        )


class ArchiveError(Exception):
    """The whole archive is refused. Codes: corrupt_zip, unsafe_path, symlink, nested_archive,
    too_many_members, too_large_uncompressed, compression_ratio."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class UnreadableMember(Exception):
    """One member could not be unpacked (damaged data, a bad CRC, encryption, an unknown method)."""


def is_system_file(name: str) -> bool:
    """Hidden files, macOS resource forks (__MACOSX/) and Windows or Finder litter."""
    parts = PurePosixPath(name).parts
    return not parts or any(p.startswith(".") or p == "__MACOSX" for p in parts) or parts[-1].lower() in SYSTEM_NAMES


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16)


def _unsafe_name(name: str) -> str | None:
    """Why a member name is unsafe to extract, or None."""
    if "\x00" in name:
        return "a NUL byte in the name"
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or (len(normalized) > 1 and normalized[1] == ":"):
        return "an absolute path"
    if ".." in normalized.split("/"):
        return "a path that leaves the archive (../)"
    return None


def check_members(infos: list[zipfile.ZipInfo], limits: Limits) -> list[zipfile.ZipInfo]:
    """The checks of the module docstring, in that order, on a central directory; returns the file members.

    Raises ArchiveError with the first rule broken.
    """
    files = [info for info in infos if not info.is_dir()]
    for info in infos:
        why = _unsafe_name(info.filename)
        if why:
            raise ArchiveError("unsafe_path", f"Refused: the zip member {info.filename!r} has {why}.")
        if _is_symlink(info):
            raise ArchiveError("symlink", f"Refused: the zip member {info.filename!r} is a symbolic link.")
        if not info.is_dir() and info.filename.lower().endswith(NESTED_ARCHIVE_SUFFIXES):
            raise ArchiveError(
                "nested_archive",
                f"Refused: the zip member {info.filename!r} is itself a zip; unzip it and upload its contents instead.",
            )
    if len(files) > limits.max_members:
        raise ArchiveError(
            "too_many_members", f"Refused: the zip holds {len(files):,} files; the limit is {limits.max_members:,}."
        )
    total = sum(info.file_size for info in files)
    if total > limits.max_uncompressed_bytes:
        raise ArchiveError(
            "too_large_uncompressed",
            f"Refused: the zip unpacks to {total / 1024**2:,.0f} MB; the limit is "
            f"{limits.max_uncompressed_bytes / 1024**2:,.0f} MB.",
        )
    for info in files:
        ratio = info.file_size / max(1, info.compress_size)
        if info.file_size >= RATIO_CHECK_MIN_BYTES and ratio > limits.max_compression_ratio:
            raise ArchiveError(
                "compression_ratio",
                f"Refused: the zip member {info.filename!r} expands {ratio:,.0f} times; the limit is "
                f"{limits.max_compression_ratio} (this looks like a zip bomb).",
            )
    return files


class GuardedZip:
    """A zip whose central directory passed `check_members`; `files` are its file members, in archive order.

        with GuardedZip(path, limits) as archive:
            for info in archive.files:
                data = archive.read(info)  # UnreadableMember for one damaged member
    """

    def __init__(self, path, limits: Limits):
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as error:
            raise ArchiveError("corrupt_zip", f"The zip file is damaged and cannot be opened ({error}).") from error
        try:
            self.files = check_members(self._zip.infolist(), limits)
        except ArchiveError:
            self._zip.close()
            raise
        self.limits = limits

    def read(self, member: zipfile.ZipInfo | str) -> bytes:
        try:
            return self._zip.read(member)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, RuntimeError, NotImplementedError, ValueError) as error:
            # RuntimeError: encrypted; NotImplementedError: a compression method zipfile lacks.
            raise UnreadableMember(str(error)) from error

    def open(self, member: zipfile.ZipInfo | str) -> IO[bytes]:
        """A stream over one member (for large text members such as a CSV)."""
        return self._zip.open(member)

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> GuardedZip:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
