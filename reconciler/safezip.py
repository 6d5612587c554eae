"""A ZIP archive from someone else, read without trusting what its headers say.

Archives come from other people: anything that could escape an output folder or exhaust the machine is
refused, in one line naming the archive entry, before a single file is written. :func:`check_archive`
refuses by the central directory (too many entries, names outside the folder, links, two entries for
one file, zip bombs); :func:`open_archive` refuses a central directory too large to parse; an
:class:`EntryReader` decompresses each entry in chunks, counting what comes out against the smaller of
its declared size and its caller's limit, and checks the local header, the stream's end and the CRC.
What the archive holds (a console export) is :mod:`reconciler.archive`.
"""

from __future__ import annotations

import os
import re
import stat
import struct
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from reconciler.errors import ReconcilerError

MAX_ENTRIES = 10_000
MAX_UNCOMPRESSED = 1024**3
MAX_RATIO = 100
#: The central directory is read whole before any entry is looked at; 10,000 entries with names of
#: 400 characters fit, and a directory of hundreds of thousands of tiny entries (300 MB of memory for
#: 300,000) is refused before it is parsed.
MAX_DIRECTORY_BYTES = 4 * 2**20

#: All parts read from one archive together: many task sequences, each within its limit, still end.
MAX_READ_TOTAL = 256 * 2**20
_CHUNK = 64 * 1024


class UnsafeArchive(ReconcilerError):
    """The archive is refused (unsafe, damaged, or not what its headers say); nothing was written."""


def check_archive(archive: zipfile.ZipFile, where: str) -> None:
    infos = archive.infolist()
    if len(infos) > MAX_ENTRIES:
        raise UnsafeArchive(f"{where}: {len(infos)} entries, more than {MAX_ENTRIES:,}; refused")
    total = 0
    compressed = 0
    seen: dict[str, str] = {}
    for info in infos:
        name = info.filename
        pure = PurePosixPath(name.replace("\\", "/"))
        if pure.is_absolute() or re.match(r"^[A-Za-z]:", name) or ".." in pure.parts:
            raise UnsafeArchive(f"{where}: entry {name!r} would be written outside the output folder; refused")
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise UnsafeArchive(f"{where}: entry {name!r} is a symbolic link; refused")
        # OPC part names compare without case (ECMA-376 part 2), Windows paths without case and with
        # either separator: two entries that differ only so are one file, and which one a reader
        # takes is up to the reader.
        key = "/".join(pure.parts).casefold()
        if key in seen:
            if seen[key] == name:
                raise UnsafeArchive(f"{where}: entry {name!r} is in the archive twice; refused")
            raise UnsafeArchive(f"{where}: entries {seen[key]!r} and {name!r} name the same file (they differ "
                                "only in case or separators); refused")
        seen[key] = name
        total += info.file_size
        compressed += info.compress_size
        if info.file_size and not info.compress_size:
            raise UnsafeArchive(f"{where}: entry {name!r} declares {info.file_size:,} bytes from no compressed "
                                "data; refused")
        if info.compress_size and info.file_size / info.compress_size > MAX_RATIO:
            raise UnsafeArchive(f"{where}: entry {name!r} expands {info.file_size / info.compress_size:.0f} times "
                                f"(more than {MAX_RATIO}: a zip bomb?); refused")
    if total > MAX_UNCOMPRESSED:
        raise UnsafeArchive(f"{where}: {total / 2**20:.0f} MiB uncompressed, more than 1 GiB; refused")
    if compressed and total / compressed > MAX_RATIO:
        raise UnsafeArchive(f"{where}: compression ratio {total / compressed:.0f}, more than {MAX_RATIO}; refused")


def entry_where(path: Path, name: str) -> str:
    """How messages name an entry of an archive (``repr``: an entry name may hold a line break)."""
    return f"{path}: entry {name!r}"


class _DirectoryBound:
    """The archive file as :class:`zipfile.ZipFile` reads it, refusing a central directory too large.

    ``ZipFile`` reads the whole central directory in one read and makes an object per entry before
    anyone can count them; any single read larger than :data:`MAX_DIRECTORY_BYTES` is refused here.
    """

    def __init__(self, handle: BinaryIO, where: str) -> None:
        self._handle = handle
        self._where = where
        self.name = where

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            here = self._handle.tell()
            size = self._handle.seek(0, os.SEEK_END) - here
            self._handle.seek(here)
        if size > MAX_DIRECTORY_BYTES:
            raise UnsafeArchive(f"{self._where}: its central directory is {size:,} bytes, more than "
                                f"{MAX_DIRECTORY_BYTES:,} (about {MAX_ENTRIES:,} entries); refused")
        return self._handle.read(size)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._handle.seek(offset, whence)

    def tell(self) -> int:
        return self._handle.tell()

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        """The handle belongs to whoever opened the file and called :func:`open_archive`."""


#: What a damaged or crafted ZIP makes :class:`zipfile.ZipFile` raise while reading its directory.
_ZIP_DIRECTORY_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, struct.error,
                         NotImplementedError, OverflowError)


def open_archive(handle: BinaryIO, where: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(_DirectoryBound(handle, where))  # type: ignore[arg-type]
    except _ZIP_DIRECTORY_ERRORS as exc:
        raise UnsafeArchive(f"{where}: not a readable ZIP file ({str(exc)[:200]})") from None


class EntryReader:
    """Reads entries from the archive file itself, never trusting what a header declares.

    ``zipfile`` stops at the uncompressed size a header declares and checks the CRC only then, so a
    header that lies either cuts the data short or lets it run to whatever the header says (1 GB at
    30:1 fits the ratio and size limits). Here each entry is decompressed in chunks, the bytes that
    actually come out are counted against the smaller of its declared size and the limit for what the
    part can be, and the local header, the compressed size, the end of the deflate stream and the CRC
    must all agree with the central directory.
    """

    def __init__(self, handle: BinaryIO, path: Path) -> None:
        self._handle = handle
        self._path = path
        self.total = 0

    def read(self, info: zipfile.ZipInfo, limit: int) -> bytes:
        where = entry_where(self._path, info.filename)
        try:
            data = self._read(info, limit, where)
        except zlib.error as exc:
            raise UnsafeArchive(f"{where}: its compressed data is damaged ({exc}); refused") from None
        except OSError as exc:
            raise UnsafeArchive(f"{where}: cannot be read ({exc}); refused") from None
        self.total += len(data)
        if self.total > MAX_READ_TOTAL:
            raise UnsafeArchive(f"{where}: the parts read so far come to {self.total / 2**20:.0f} MiB, more than "
                                f"{MAX_READ_TOTAL // 2**20} MiB for one archive; refused")
        return data

    def _read(self, info: zipfile.ZipInfo, limit: int, where: str) -> bytes:
        if info.flag_bits & 0x1:
            raise UnsafeArchive(f"{where}: is encrypted; a console export never is; refused")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise UnsafeArchive(f"{where}: uses compression method {info.compress_type}; console exports are "
                                "stored or deflated; refused")
        if info.file_size > limit:
            raise UnsafeArchive(f"{where}: declares {info.file_size:,} bytes; this part is at most "
                                f"{limit // 2**20} MiB; refused")
        if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
            raise UnsafeArchive(f"{where}: is stored uncompressed in {info.compress_size:,} bytes but its header "
                                f"declares {info.file_size:,}; refused")
        handle = self._handle
        header = b""
        if info.header_offset >= 0:  # zipfile moves offsets by what it finds missing before the directory
            handle.seek(info.header_offset)
            header = handle.read(30)
        if len(header) != 30 or header[:4] != b"PK\x03\x04":
            raise UnsafeArchive(f"{where}: its local header is missing (the archive is damaged); refused")
        name_length, extra_length = struct.unpack("<HH", header[26:30])
        raw_name = handle.read(name_length)
        local_name = raw_name.decode("utf-8" if info.flag_bits & 0x800 else "cp437", errors="replace")
        if local_name != info.orig_filename:
            raise UnsafeArchive(f"{where}: its local header names {local_name!r}; the archive is inconsistent; "
                                "refused")
        handle.seek(extra_length, os.SEEK_CUR)
        room = info.file_size  # the limit, too: checked above
        out = bytearray()
        crc = 0
        left = info.compress_size
        inflate = zlib.decompressobj(-zlib.MAX_WBITS) if info.compress_type == zipfile.ZIP_DEFLATED else None
        while left and not (inflate is not None and inflate.eof):
            chunk = handle.read(min(_CHUNK, left))
            if not chunk:
                raise UnsafeArchive(f"{where}: the archive ends inside this entry (truncated); refused")
            left -= len(chunk)
            while chunk:
                # max_length: never more than one byte past what the header allows comes out at once.
                piece = chunk if inflate is None else inflate.decompress(chunk, room - len(out) + 1)
                out += piece
                crc = zlib.crc32(piece, crc)
                if len(out) > room:
                    raise UnsafeArchive(f"{where}: holds more than the {info.file_size:,} bytes its header "
                                        "declares (a crafted header?); refused")
                chunk = b"" if inflate is None or inflate.eof else inflate.unconsumed_tail
        if inflate is not None and not inflate.eof:
            raise UnsafeArchive(f"{where}: its compressed data ends early (the archive is damaged); refused")
        if left or (inflate is not None and inflate.unused_data):
            raise UnsafeArchive(f"{where}: its compressed data ends before the {info.compress_size:,} bytes its "
                                "header declares; refused")
        if len(out) != info.file_size:
            raise UnsafeArchive(f"{where}: holds {len(out):,} bytes, not the {info.file_size:,} its header declares; "
                                "refused")
        if crc != info.CRC:
            raise UnsafeArchive(f"{where}: fails its CRC-32 check (the archive is damaged); refused")
        return bytes(out)
