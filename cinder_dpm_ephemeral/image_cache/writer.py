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
"""Writing an image onto a golden LUN, the way Cinder's volume service does.

On a real volume host the attached LUN is a block device owned by root and
cinder-volume runs as an unprivileged user. Cinder reaches such devices
through its root helper (``sudo cinder-rootwrap``): ``qemu-img convert``
runs with ``run_as_root=True``, and a device the service must open itself is
handed to it for the duration with :func:`cinder.utils.temporary_chown`.
The writers here do exactly that, so they work for root and non-root
services alike.

Zero blocks are skipped only on a LUN that is known to read zeros where it
was never written (a new thin SVC vdisk, a PowerFlex pool with zero
padding): on any other LUN a skipped block would show whatever the array
had there before, e.g. another tenant's deleted data.

What a build needs before its first byte but can learn beside other steps
is started early as a :class:`Soon`: os-brick's connector properties from
the build's start (unless this process has a recent answer), the array's
answer whether the LUN reads zeros while the LUN is attached
(doc/benchmarks.md, "Where the time goes").

os-brick gathers the connector properties of every protocol through
several privileged commands (the iSCSI initiator name, the NVMe host NQN
and ids, ...), 0.2-0.3 s here: longer than a build on a spare LUN takes
to reach its attach, and CPU that a copy running beside them lacks. So
:func:`attached` uses the last answer of this process (at most
:data:`CONNECTOR_MAX_AGE` seconds old) when there is one, or when the
build's own is not there yet; os-brick is asked again only when there is
none (:func:`connector_soon`) or when the attach fails with it: should
the fresh answer then differ (an HBA replaced meanwhile), the attach is
made again with the fresh one. The detach always uses what the attach
used.

A volume may be attached ahead of its write (:func:`hold`: a spare LUN,
attached once made, :mod:`.spares`): the write's :func:`attached` then
takes that attachment instead of asking the array to map the LUN, and
detaches it as its own. :func:`release` detaches one no write took.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

from cinder import exception
from cinder.image import image_utils
from cinder import utils
from cinder.volume import volume_utils
from oslo_log import log as logging

from cinder_dpm_ephemeral.image_cache import formats
from cinder_dpm_ephemeral.image_cache import lunwriter
from cinder_dpm_ephemeral.image_cache import stream

LOG = logging.getLogger(__name__)

WRITE_UNIT = 4 * 1024 * 1024


class Soon:
    """``fn(*args)`` computed beside the caller's next steps.

    A thread of its own (a green thread in the eventlet-patched volume
    service); :meth:`result` waits for it and returns its value or raises
    its error, as if called there. Only for calls with no effect to undo:
    one whose result no one asks for is simply dropped. ``lazy``: not
    started; computed in the caller by the first :meth:`result`, if any
    (never :meth:`done` before that).
    """

    def __init__(self, fn: Callable[..., Any], *args: Any,
                 lazy: bool = False) -> None:
        self._value: Any = None
        self._error: BaseException | None = None
        self._call: tuple | None = (fn, args)
        self._thread: threading.Thread | None = None
        if not lazy:
            self._thread = threading.Thread(
                target=self._run, args=(fn, args), daemon=True)
            self._thread.start()

    def _run(self, fn: Callable[..., Any], args: tuple) -> None:
        try:
            self._value = fn(*args)
        except BaseException as exc:        # handed to result()'s caller
            self._error = exc
        self._call = None

    def done(self) -> bool:
        if self._thread is None:
            return self._call is None
        return not self._thread.is_alive()

    def result(self) -> Any:
        if self._thread is not None:
            self._thread.join()
        elif self._call is not None:
            self._run(*self._call)
        if self._error is not None:
            raise self._error
        return self._value


def value(v: Any) -> Any:
    """``v``, or what it computes if it is a :class:`Soon`."""
    return v.result() if isinstance(v, Soon) else v


#: Seconds the last connector properties may stand in for a fresh answer.
CONNECTOR_MAX_AGE = 600.0
#: A build with a recent answer does not ask os-brick (False: every build
#: asks, and uses the recent answer only while its own has not come; for
#: the benchmark's side-by-side runs)
REUSE_CONNECTOR = True
# (multipath, enforce_multipath) -> (when, properties): the last answers
_last_connector: dict[tuple, tuple[float, dict]] = {}


def _connector_key(driver: Any) -> tuple:
    return (bool(driver.configuration.use_multipath_for_image_xfer),
            bool(driver.configuration.enforce_multipath_for_image_xfer))


def connector_properties(driver: Any) -> dict:
    """os-brick's connector properties for the driver's image transfers."""
    mp, enforce = _connector_key(driver)
    props = volume_utils.brick_get_connector_properties(mp, enforce)
    _last_connector[(mp, enforce)] = (time.monotonic(), props)
    return props


def recent_connector(driver: Any) -> dict | None:
    """The last connector properties of this process, if recent."""
    last = _last_connector.get(_connector_key(driver))
    if last is None or time.monotonic() - last[0] > CONNECTOR_MAX_AGE:
        return None
    return last[1]


def connector_soon(driver: Any) -> Soon:
    """os-brick's connector properties for a build's attach, as a Soon.

    With a recent answer in this process the attach uses it, and os-brick
    is asked only if that attach fails (a lazy Soon); otherwise it is asked
    now, beside the build's next steps. os-brick's privileged commands
    cost CPU the build's copy needs, when they run beside it on a host
    with few cores (doc/benchmarks.md).
    """
    return Soon(connector_properties, driver,
                lazy=REUSE_CONNECTOR and recent_connector(driver) is not None)


#: volume id -> (attach_info, properties): attachments made ahead of
#: their write (:func:`hold`), in this process only
_held: dict[str, tuple[dict, dict]] = {}


def hold(driver: Any, context: Any, volume: Any) -> None:
    """Attach ``volume`` now for a write to come (:func:`attached`).

    The next :func:`attached` of the volume in this process takes this
    attachment (no array call) and detaches it as its own; or
    :func:`release` detaches it. The caller records first that the
    volume is mapped to this host (a restart loses the attachment, not
    the array's mapping).
    """
    if volume.id in _held:
        return
    attach_info, _volume, properties = _attach(driver, context, volume,
                                               connector_soon(driver))
    _held[volume.id] = (attach_info, properties)


def is_held(volume_id: str) -> bool:
    """Whether this process holds an attachment of the volume."""
    return volume_id in _held


def release(driver: Any, context: Any, volume: Any) -> bool:
    """Detach what :func:`hold` attached, if no write took it; whether so."""
    held = _held.pop(volume.id, None)
    if held is None:
        return False
    attach_info, properties = held
    driver._detach_volume(context, attach_info, volume, properties,
                          force=True)
    return True


def _attach(driver: Any, context: Any, volume: Any,
            connector: dict | Soon | None) -> tuple[dict, Any, dict]:
    """The driver's ``_attach_volume``; (attach_info, volume, properties).

    Or the attachment :func:`hold` made ahead, taken (once).
    """
    held = _held.pop(volume.id, None)
    if held is not None:
        LOG.debug('Volume %s: writing through its attachment made ahead.',
                  volume.id)
        return held[0], volume, held[1]
    if connector is None:
        connector = connector_properties(driver)
    # the last answer while the build's own has not come
    recent = (recent_connector(driver) if isinstance(connector, Soon) and
              not connector.done() else None)
    properties = recent if recent is not None else value(connector)
    try:
        return (*driver._attach_volume(context, volume, properties),
                properties)
    except Exception:
        if recent is None:
            raise
        fresh = value(connector)
        if fresh == recent:
            raise
        LOG.warning('Volume %s: attach with this host\'s connector '
                    'properties of a while ago failed, and they have changed '
                    'since; attaching with the new ones.', volume.id,
                    exc_info=True)
    return (*driver._attach_volume(context, volume, fresh), fresh)


@contextlib.contextmanager
def attached(driver: Any, context: Any, volume: Any,
             connector: dict | Soon | None = None,
             detach_later: list[Callable[[], None]] | None = None
             ) -> Iterator[str]:
    """Attach ``volume`` the driver's own way; yield its device path.

    The driver's ``_attach_volume`` decides how (os-brick over the array's
    protocol, or the emulator's LUN file); it is detached on the way out.
    ``connector``: os-brick's connector properties if already asked for
    (:func:`connector_properties`, perhaps as a :class:`Soon`; while that
    has not answered, the last answer stands in: see the module's doc).
    ``detach_later``: when the block ends without an error, the detach is
    appended to it instead of run (the caller runs it, or has it run,
    once it has recorded that it owes it); after an error it runs here.
    """
    attach_info, volume, properties = _attach(driver, context, volume,
                                              connector)

    def detach() -> None:
        driver._detach_volume(context, attach_info, volume, properties,
                              force=True)
    done = False
    try:
        yield attach_info['device']['path']
        done = True
    finally:
        if done and detach_later is not None:
            detach_later.append(detach)
        else:
            detach()


def convert_file_to_device(image_file: str, path: str, image_format: str,
                           image_id: str | None, reads_zeros: bool,
                           info: Any = None) -> None:
    """``qemu-img convert`` a downloaded, checked image onto a device.

    Cinder's own ``convert_image``, as root through the root helper, into
    the existing LUN (``skip_create``: a device is never recreated).
    ``qemu-img`` writes zero clusters only with ``disable_sparse`` (its
    ``-S 0``): that is what a LUN that does not read zeros needs.
    """
    image_utils.convert_image(
        image_file, path, 'raw', src_format=image_format,
        run_as_root=True, image_id=image_id, data=info,
        disable_sparse=not reads_zeros, skip_create=True)


def write_image(driver: Any, context: Any, golden: Any, image_file: str,
                image_format: str, image_id: str | None,
                reads_zeros: bool | Soon, virtual_size: int,
                info: Any = None,
                connector: dict | Soon | None = None,
                detach_later: list[Callable[[], None]] | None = None
                ) -> None:
    """Convert an image onto a volume (``qemu-img convert`` streams).

    ``image_file`` is a downloaded file, checked by Cinder's own
    ``convert_image``, or the NBD URI of a qcow2 still downloading (see
    :mod:`.stream`, which has checked its header already).
    ``reads_zeros`` (perhaps still being asked, a :class:`Soon`) is needed
    once the LUN is attached. ``detach_later`` as for :func:`attached`.
    """
    with attached(driver, context, golden, connector,
                  detach_later) as path:
        reads_zeros = value(reads_zeros)
        if image_file.startswith('nbd+unix://'):
            stream.convert_qcow2_to_device(image_file, path,
                                           reads_zeros=reads_zeros)
        else:
            convert_file_to_device(image_file, path, image_format,
                                   image_id, reads_zeros, info)
        if not reads_zeros:
            # qemu-img wrote the image's virtual size; the LUN goes on.
            with utils.temporary_chown(path), open(path, 'r+b') as dev:
                zero_rest(dev, virtual_size)


def write_raw_stream(driver: Any, context: Any, golden: Any,
                     inspector: formats.StreamInspector,
                     expected_size: int, reads_zeros: bool | Soon,
                     connector: dict | Soon | None = None,
                     write_behind: int = lunwriter.DEPTH,
                     detach_later: list[Callable[[], None]] | None = None,
                     direct: bool = False) -> int:
    """Stream a raw (or iso) image from Glance onto a volume, in one pass.

    ``inspector`` is the download, inspected as it passes (oslo.utils'
    format inspector, the rules of :mod:`.formats`; its head may have been
    checked already, before the LUN was made): a qcow2, VMDK, VHD or LUKS
    header behind a ``raw`` label is refused, a partition table (MBR or
    GPT) is what a bootable raw disk has and is accepted. The stream must
    be exactly ``expected_size`` bytes (Glance's ``size``): a longer one is
    refused before a byte past that size is written, a shorter one at its
    end. Returns the bytes streamed (the image's size: on a LUN that reads
    zeros, its all-zero units are among them, skipped rather than
    written). ``reads_zeros`` and ``connector`` as
    for :func:`write_image`. ``write_behind``: how many writes may be under
    way at once beside the download, each with its writeback started
    (:mod:`.lunwriter`); 0: one step after the other. ``detach_later`` as
    for :func:`attached`. ``direct``: the LUN written past the page cache
    where it allows it (:mod:`.lunwriter`).
    """
    image_id = inspector.image_id
    total = 0
    with attached(driver, context, golden, connector,
                  detach_later) as path, utils.temporary_chown(path):
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        lun = lunwriter.LunWriter(fd, beside=write_behind > 0,
                                  depth=write_behind, direct=direct)
        try:
            reads_zeros = value(reads_zeros)
            # WRITE_UNIT bytes at a time, as views of the download's
            # chunks (not copied); ``offset``: where the unit starts
            unit: list[memoryview] = []
            size = offset = 0
            for chunk in inspector:
                total += len(chunk)
                if total > expected_size:
                    raise exception.ImageUnacceptable(
                        image_id=image_id,
                        reason=(f'Glance announced {expected_size} bytes '
                                f'but sent more; the image data or its '
                                f'size property is wrong: re-upload the '
                                f'image'))
                # bytes: unchanged while a write of them is under way
                data = memoryview(bytes(chunk))
                while data:
                    part = data[:WRITE_UNIT - size]
                    unit.append(part)
                    size += len(part)
                    data = data[len(part):]
                    if size == WRITE_UNIT:
                        _write_unit(lun, offset, unit, reads_zeros)
                        offset += size
                        unit, size = [], 0
            if unit:
                _write_unit(lun, offset, unit, reads_zeros)
            lun.wait()
            if not reads_zeros:
                zero_rest_fd(fd, total)
            if total != expected_size:
                raise exception.ImageUnacceptable(
                    image_id=image_id,
                    reason=(f'Glance announced {expected_size} bytes but '
                            f'sent {total}; the image data or its size '
                            f'property is wrong: re-upload the image'))
            lun.finish()
            inspector.finish()
        finally:
            lun.close()
            os.close(fd)
    return total


def _write_unit(lun: lunwriter.LunWriter, offset: int,
                chunks: list[memoryview], reads_zeros: bool) -> None:
    """Write the chunks at ``offset``, keeping the LUN thin.

    An all-zero unit is skipped on a LUN that reads zeros; on any other
    LUN it is zeroed where it does not read zeros already.
    """
    if not all(lunwriter.is_zero(c) for c in chunks):
        lun.write(offset, chunks)
    elif not reads_zeros:
        lun.wait()
        lunwriter.zero_where_needed(lun.fd, offset,
                                    sum(len(c) for c in chunks))


def zero_rest_fd(fd: int, start: int) -> int:
    """Make ``[start, end of LUN)`` read zeros; returns the bytes written.

    For a LUN that does not read zeros where it was never written: past
    the image's end it would show what the array had there before.
    """
    end = os.lseek(fd, 0, os.SEEK_END)
    written = lunwriter.zero_where_needed(fd, start, max(0, end - start))
    os.fsync(fd)
    return written


def zero_rest(dev: Any, start: int) -> int:
    """:func:`zero_rest_fd` on an open file object."""
    dev.flush()
    return zero_rest_fd(dev.fileno(), start)


def zero_range(driver: Any, context: Any, volume: Any, start: int) -> int:
    """Attach ``volume`` and make it read zeros from ``start`` on."""
    with attached(driver, context, volume) as path, \
            utils.temporary_chown(path), open(path, 'r+b') as dev:
        return zero_rest(dev, start)
