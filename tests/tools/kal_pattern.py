"""A deterministic byte stream shared by the stand-in servers and the tests.

The stream is one pseudo-random block of a prime length repeated forever, so that any misplaced,
dropped or duplicated chunk changes the checksum and no power-of-two buffer size lines up with it.
"""
import hashlib

BLOCK_LEN = 1048573  # prime, just under 1 MiB
_BLOCK = hashlib.shake_256(b"kube-api-lb test pattern").digest(BLOCK_LEN)
# Twice the block, so any window of up to BLOCK_LEN bytes starting anywhere is one slice.
_DOUBLE = _BLOCK + _BLOCK


def chunk(offset, size):
    """Bytes [offset, offset+size) of the stream; size <= BLOCK_LEN."""
    start = offset % BLOCK_LEN
    return _DOUBLE[start:start + size]


def iter_chunks(total, chunk_size=256 * 1024):
    """Yields the first `total` bytes of the stream as memoryview-friendly bytes chunks."""
    chunk_size = min(chunk_size, BLOCK_LEN)
    off = 0
    while off < total:
        n = min(chunk_size, total - off)
        yield chunk(off, n)
        off += n


def sha256_of(total):
    """Hex sha256 of the first `total` bytes of the stream."""
    h = hashlib.sha256()
    full, rest = divmod(total, BLOCK_LEN)
    for _ in range(full):
        h.update(_BLOCK)
    h.update(_BLOCK[:rest])
    return h.hexdigest()
