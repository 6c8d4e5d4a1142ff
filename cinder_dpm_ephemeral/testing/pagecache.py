# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.
"""How much of a file the host's page cache holds (Linux ``mincore(2)``).

For the tests and benchmarks of the golden LUN's writes past the page
cache (``image_cache/lunwriter.py``): mapping a file reads none of it, and
``mincore`` tells which of the mapped pages are in memory.
"""

from __future__ import annotations

import ctypes
import mmap
import os

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p)
_libc.mincore.restype = ctypes.c_int


def resident_pages(path: str) -> int:
    """How many of the file's pages are in the page cache now."""
    fd = os.open(path, os.O_RDWR)
    try:
        size = os.fstat(fd).st_size
        if not size:
            return 0
        pages = -(-size // mmap.PAGESIZE)
        vec = ctypes.create_string_buffer(pages)
        with mmap.mmap(fd, size) as mm:
            anchor = ctypes.c_char.from_buffer(mm)
            try:
                if _libc.mincore(ctypes.addressof(anchor), size, vec) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, os.strerror(err))
            finally:
                del anchor      # the map can close only without it
        return sum(b & 1 for b in vec.raw)
    finally:
        os.close(fd)


def drop(path: str) -> None:
    """Ask the kernel to drop the file's clean pages from the cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
