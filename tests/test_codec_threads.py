"""Regression: zstd batches decoded (and encoded) by several threads at once.

python-zstandard's (de)compressor objects are not thread-safe; a shared module-level one
made concurrent consumers fail with random CorruptBatchError.
"""

from __future__ import annotations

import os
import threading

from embedlog.codec import batch as codec


def test_concurrent_zstd_encode_and_decode() -> None:
    values = [os.urandom(40) + b"x" * 200 for _ in range(1000)]
    keys = [b"k%d" % i for i in range(1000)]
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(30):
                buf = codec.encode(keys, values, [1] * 1000, compression=codec.COMPRESSION_ZSTD)
                assert codec.decode(bytes(buf)).values == values
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
