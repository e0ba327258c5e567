"""A check of an LMDB file's size against its own header, before lmdb maps it: a truncated LMDB file
is memory-mapped past its end, and the first read there kills the process with SIGBUS (no Python
exception to catch). LMDB keeps two meta pages at the start; the newer one (larger transaction id)
names the last page in use, so the file must hold (last page + 1) x page size bytes."""

from __future__ import annotations

import os
import struct

from mlip.data.errors import DataError

MAGIC = 0xBEEFC0DE
PAGE_HEADER = 16  # bytes before the meta record on a 64-bit build
# MDB_meta: magic u32, version u32, address u64, mapsize u64, two MDB_db of 48 bytes, last_pg u64, txnid u64
META = struct.Struct("<IIQQ48s48sQQ")


def data_file(path: str) -> str:
    """The data file of an LMDB environment: ``path`` itself, or ``path/data.mdb`` for a directory."""
    return os.path.join(path, "data.mdb") if os.path.isdir(path) else path


def check_lmdb_file(path) -> None:
    """Raise DataError naming ``path`` unless it is an LMDB file as long as its header says."""
    path = str(path)
    file = data_file(path)
    size = os.path.getsize(file)
    with open(file, "rb") as f:
        head = f.read(PAGE_HEADER + META.size)
        if len(head) < PAGE_HEADER + META.size:
            raise DataError(f"not an LMDB file: {size} bytes, too short for its header", path)
        magic, _, _, _, free_db, _, _, _ = META.unpack_from(head, PAGE_HEADER)
        if magic != MAGIC:
            raise DataError("not an LMDB file (no LMDB magic number at the start): corrupt or another format", path)
        page_size = struct.unpack_from("<I", free_db, 0)[0]  # mm_psize lives in the free-list db's pad
        if page_size < 512 or page_size & (page_size - 1):
            raise DataError(f"corrupt LMDB header (page size {page_size})", path)
        newest = (-1, 0)
        for page in (0, 1):
            f.seek(page * page_size)
            raw = f.read(PAGE_HEADER + META.size)
            if len(raw) < PAGE_HEADER + META.size:
                raise DataError(f"truncated LMDB file: {size} bytes, shorter than its two meta pages", path)
            magic, _, _, _, _, _, last_page, txnid = META.unpack_from(raw, PAGE_HEADER)
            if magic == MAGIC and txnid >= newest[0]:
                newest = (txnid, last_page)
    needed = (newest[1] + 1) * page_size
    if size < needed:
        raise DataError(f"truncated LMDB file: {size} bytes, its header needs {needed}", path)
