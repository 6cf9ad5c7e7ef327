"""Process memory helpers: resident-set readings, releasing and pre-faulting mapped pages.

``tracemalloc`` does not see numba's allocations, so build phases are measured from the kernel's
own counters (``/proc/self/status``).
"""

from __future__ import annotations

import mmap

import numpy as np


def vm_status() -> dict[str, float]:
    """``{"rss_gb": ..., "hwm_gb": ...}``: current and peak resident set (GiB); empty off Linux."""
    out: dict[str, float] = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key = "rss_gb" if line.startswith("VmRSS") else "hwm_gb"
                    out[key] = round(int(line.split()[1]) / 2**20, 3)
    except OSError:  # pragma: no cover - not Linux
        pass
    return out


def release_pages(*arrays: np.ndarray) -> None:
    """Drop this process's resident pages of arrays memory-mapped read-only from a file.

    A build reads the caller's vectors once (into its own forward index); the pages of a
    read-only mapping (``np.load(..., mmap_mode="r")``) stay resident in this process after that.
    ``MADV_DONTNEED`` unmaps them (the data stays in the file and pages back in on the next read),
    so they do not add to the build's peak memory. Copy-on-write, writable-private and anonymous
    arrays are left alone.
    """
    for a in arrays:
        mode, x = None, a
        while isinstance(x, np.ndarray):
            if isinstance(x, np.memmap):
                mode = x.mode
            x = x.base
        if isinstance(x, mmap.mmap) and mode == "r" and hasattr(mmap, "MADV_DONTNEED"):
            try:
                x.madvise(mmap.MADV_DONTNEED)
            except (OSError, ValueError):  # pragma: no cover - platform without it
                pass


#: ``madvise`` advice that fills the page tables of a mapping, reading what is not cached (Linux
#: 5.14+; Python's ``mmap`` module does not name it)
MADV_POPULATE_READ = 22


def _file_mapping(a: np.ndarray) -> mmap.mmap | None:
    x = a
    while isinstance(x, np.ndarray):
        x = x.base
    return x if isinstance(x, mmap.mmap) else None


def populate_pages(*arrays: np.ndarray) -> bool:
    """Map every page of arrays memory-mapped from a file now, not one fault at a time later.

    A rescoring copy is read a few random rows per query; each first touch of a page is a page
    fault (measured ~25 µs per single query at 1M x 384, 20 rows re-scored). Pre-faulting costs
    one pass when the index is opened; the pages stay file-backed (the kernel may still drop
    them). Returns whether the kernel took the advice (``False`` off Linux or before 5.14).
    """
    done = True
    for a in arrays:
        m = _file_mapping(a)
        if m is None:
            continue
        try:
            m.madvise(MADV_POPULATE_READ)
        except (OSError, ValueError, AttributeError):
            done = False
    return done


def load_resident(path) -> np.ndarray:
    """Read a ``.npy`` file into anonymous memory backed by huge pages where the kernel allows.

    For arrays read at random (a sparse forward index: one document per scored posting): a
    memory-mapped file is paged in 4 KiB pages, and at ~1 GB every random read misses the TLB.
    Process memory advised ``MADV_HUGEPAGE`` (Linux with transparent huge pages in ``madvise``
    or ``always`` mode) maps it in 2 MiB pages. Elsewhere it is plain process memory. The array
    is writeable (numba kernels compiled for built indexes are reused) and owns its mapping.
    """
    if not hasattr(mmap, "MAP_ANONYMOUS"):  # pragma: no cover - not POSIX
        return np.load(path)
    with open(path, "rb") as f:
        fmt = np.lib.format
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = fmt.read_array_header_2_0(f)
        if dtype.hasobject:
            raise ValueError(
                f"{str(path)!r} holds Python objects; heron never reads pickled arrays"
            )
        n = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        raw = hugepage_empty(n)
        got = f.readinto(raw) if n else 0
        if got != n:
            raise ValueError(
                f"{str(path)!r} is truncated: {got} of {n} bytes; the folder is damaged"
            )
    arr = raw.view(dtype)
    return arr.reshape(shape, order="F" if fortran else "C")


def hugepage_empty(nbytes: int) -> np.ndarray:
    """An uninitialised ``(nbytes,)`` uint8 array in anonymous memory advised ``MADV_HUGEPAGE``.

    The array owns its mapping (freed with the last view of it). Where the OS has no anonymous
    mappings it is an ordinary ``np.empty``.
    """
    if not hasattr(mmap, "MAP_ANONYMOUS"):  # pragma: no cover - not POSIX
        return np.empty(nbytes, dtype=np.uint8)
    buf = mmap.mmap(-1, max(nbytes, 1), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if hasattr(mmap, "MADV_HUGEPAGE"):
        try:
            buf.madvise(mmap.MADV_HUGEPAGE)
        except OSError:  # pragma: no cover - kernel without transparent huge pages
            pass
    return np.frombuffer(buf, dtype=np.uint8, count=nbytes)


#: rows per block of :func:`save_blocks` (64k rows of 384 float32: 100 MB of temporaries)
SAVE_BLOCK_ROWS = 65_536


def write_npy_blocks(f, shape: tuple[int, ...], dtype: np.dtype, blocks) -> None:
    """Write an ``.npy`` file of ``shape``/``dtype`` to the open binary file ``f`` from ``blocks``
    (C-contiguous arrays of rows, in order): the bytes ``np.save`` writes, without the whole
    array in memory. The caller guarantees the blocks fill ``shape``."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
              "shape": tuple(shape)}
    np.lib.format.write_array_header_1_0(f, header)
    for block in blocks:
        f.write(memoryview(np.ascontiguousarray(block)).cast("B"))


class NpyAppender:
    """An ``.npy`` file written block of rows by block of rows, its row count set at the end.

    The header is written first for 0 rows and rewritten in place by :meth:`finish`: numpy pads
    every header so that the first axis can grow to 21 digits without moving the data, so the
    file holds the bytes ``np.save`` writes for the whole array. ``f`` is an open binary file
    positioned where the array starts.
    """

    def __init__(self, f, dtype: np.dtype, row_shape: tuple[int, ...]) -> None:
        self.f, self.dtype, self.row_shape = f, np.dtype(dtype), tuple(row_shape)
        self.rows = 0
        self.start = f.tell()
        self._header(0)
        self.header_bytes = f.tell() - self.start

    def _header(self, n: int) -> None:
        np.lib.format.write_array_header_1_0(self.f, {
            "descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
            "shape": (n, *self.row_shape)})

    def append(self, block: np.ndarray) -> None:
        """Write ``block`` ``(m, *row_shape)`` of this file's dtype after the rows so far."""
        block = np.asarray(block)
        if block.dtype != self.dtype or block.shape[1:] != self.row_shape:
            raise ValueError(
                f"rows of {block.dtype} {block.shape[1:]} appended to an array of "
                f"{self.dtype} {self.row_shape}"
            )
        if block.size:
            self.f.write(memoryview(np.ascontiguousarray(block)).cast("B"))
        self.rows += len(block)

    def finish(self) -> None:
        """Write the final row count into the header (the file stays open, at its end)."""
        end = self.f.tell()
        self.f.seek(self.start)
        self._header(self.rows)
        if self.f.tell() - self.start != self.header_bytes:  # pragma: no cover - numpy < 1.23
            raise RuntimeError("this numpy writes headers that cannot grow in place")
        self.f.seek(end)


def save_blocks(path, n: int, make, block: int = SAVE_BLOCK_ROWS) -> None:
    """``np.save(path, concatenate([make(s, e) for each block of rows]))``, one block at a time.

    ``make(s, e)`` returns the ``(e - s, ...)`` array of rows ``s:e`` (codes, a cast): a whole
    encode of 1M × 384 vectors would hold its float temporaries (1.5 GB each) at once. ``n`` must
    be at least 1.
    """
    first = np.ascontiguousarray(make(0, min(n, block)))

    def rest():
        yield first
        for s in range(len(first), n, block):
            part = make(s, min(n, s + block))
            if part.dtype != first.dtype or part.shape[1:] != first.shape[1:]:
                raise ValueError(f"block {s}: {part.dtype} {part.shape} after {first.dtype} {first.shape}")
            yield part

    with open(path, "wb") as f:
        write_npy_blocks(f, (n, *first.shape[1:]), first.dtype, rest())
