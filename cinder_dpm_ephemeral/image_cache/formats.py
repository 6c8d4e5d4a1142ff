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
"""Which images the golden cache takes, by the rules Cinder and Nova apply.

* Glance's ``disk_format`` must agree with the content (oslo.utils' format
  inspector, the guard Cinder and Nova use), with the two exceptions Nova
  documents: a disk with a partition table (a DOS MBR or a GPT, which the
  inspector names ``gpt``) registered as ``raw`` is a legacy whole-disk
  image and is accepted, and a bootable ISO (``iso`` and ``gpt`` at once)
  is an ISO. Anything else behind a wrong label (a qcow2, VMDK, VHD or LUKS
  header behind ``raw``) is refused.
* ``image_conversion_disable``: as Cinder's ``fetch_to_volume_format``, an
  image whose ``disk_format`` is not ``raw`` is refused (an ``iso`` too:
  Cinder compares the Glance label).
* ``container_format: compressed``: refused unless
  ``allow_compression_on_image_upload`` is set, as in Cinder; gzip is then
  decompressed after the download, before the format checks.
* ``iso`` is written as raw bytes, as Cinder writes it
  (``fixup_disk_format``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from cinder import exception
from cinder.image import image_utils
from oslo_config import cfg
from oslo_utils.imageutils import format_inspector
from oslo_utils import uuidutils

CONF = cfg.CONF

#: what the content may be detected as, per Glance label, for labels that
#: are written byte for byte
RAW_LIKE = {
    'raw': {'raw', 'gpt'},
    'iso': {'iso', 'raw', 'gpt'},
}
#: bytes read from the stream before any LUN is created, enough for every
#: header the inspector knows (qcow2, VMDK descriptor, VHDX, LUKS, MBR)
HEAD_BYTES = 1024 * 1024


def check_request(image_meta: dict[str, Any]) -> None:
    """Refuse, before anything is downloaded, what Cinder would refuse."""
    image_id = image_meta.get('id')
    if not uuidutils.is_uuid_like(image_id):
        # Glance gives every image a UUID. The id names the golden volume,
        # its lock (tooz: ASCII, a file name with file locks) and its
        # download file: anything else (a path, shell metacharacters, a
        # newline) is refused before it reaches any of them. Stricter than
        # Cinder's own path, which only passes the id back to Glance.
        raise exception.ImageUnacceptable(
            image_id=repr(image_id),
            reason=('its id is not a UUID, as every Glance image id is: '
                    'check the Glance service that served it'))
    disk_format = image_meta.get('disk_format')
    image_utils.check_image_conversion_disable(
        disk_format, 'raw', image_id, upload=False)
    if (image_meta.get('container_format') == 'compressed' and
            not CONF.allow_compression_on_image_upload):
        raise exception.ImageUnacceptable(
            image_id=image_id,
            reason=('its container_format is compressed, and image '
                    'compression is disallowed: set '
                    'allow_compression_on_image_upload = True in '
                    'cinder.conf to accept gzip-compressed images'))
    if disk_format and disk_format not in RAW_LIKE and not (
            format_inspector.get_inspector(disk_format) or
            disk_format in ('ami', 'aki', 'ari')):
        raise exception.ImageUnacceptable(
            image_id=image_id,
            reason=f'its disk_format {disk_format!r} is not supported')


def streams_as_raw(image_meta: dict[str, Any]) -> bool:
    """Whether the image goes onto the LUN byte for byte, as it streams."""
    return bool(image_meta.get('disk_format') in RAW_LIKE and
                image_meta.get('size') and
                image_meta.get('container_format') != 'compressed')


def _names(inspectors: list[Any] | None) -> set[str]:
    return {str(i) for i in inspectors or []}


#: what each safety check of oslo.utils' inspector refuses, and the fix
_SAFETY_FIXES = {
    'backing_file': ('it has a backing file (qemu would read another '
                     'file, e.g. one of the host\'s)', 'upload a '
                     'standalone image (qemu-img convert -O qcow2 without '
                     '-B, or qemu-img rebase -b "")'),
    'data_file': ('it has an external data file (qcow2 data_file: its '
                  'data would be read from a file of the host)',
                  'upload an image that holds its own data (qemu-img '
                  'convert -O qcow2)'),
    'descriptor': ('its VMDK descriptor is not a single extent in the '
                   'image itself (monolithicFlat, twoGbMaxExtent* or '
                   'extents naming other files are refused: they would '
                   'be read from the host)', 'upload a monolithicSparse or '
                   'streamOptimized VMDK (qemu-img convert -O vmdk -o '
                   'subformat=streamOptimized)'),
    'unknown_features': ('it uses qcow2 features this service does not '
                         'know', 'convert it with qemu-img convert -O '
                         'qcow2'),
}


def safety_reason(exc: format_inspector.SafetyCheckFailed) -> str:
    """A refusal naming each failed safety check and its fix.

    As strict as Cinder: ``check_image_format`` and ``qemu_img_info`` in
    cinder/image/image_utils.py apply the same oslo.utils checks
    (``format_inspector.detect_file_format`` then ``safety_check``) and
    refuse the same images, but their message names the checks only
    ("Safety checks failed: backing_file"). Earlier on the streamed qcow2
    path (the header, before ``qemu-img`` opens anything; Cinder checks
    the whole downloaded file).
    """
    failures = getattr(exc, 'failures', None) or {}
    parts = []
    for name in sorted(failures) or ['unknown']:
        what, fix = _SAFETY_FIXES.get(
            name, (f'it fails the image safety check {name} '
                   f'({failures.get(name)})', 'upload a plain image'))
        parts.append(f'{what}: {fix}')
    return 'refused by the image safety checks: ' + '; '.join(parts)


def refuse_mismatch(image_id: str, disk_format: str,
                    detected: set[str]) -> None:
    """Raise unless ``detected`` formats are acceptable for the label."""
    allowed = RAW_LIKE.get(disk_format, {disk_format})
    if detected == {'iso', 'gpt'} and 'iso' in allowed:
        return                       # a bootable ISO (Nova's rule)
    if len(detected) > 1:
        raise exception.ImageUnacceptable(
            image_id=image_id,
            reason=(f'its content matches several formats at once '
                    f'({", ".join(sorted(detected))}): one header hidden '
                    f'in another is refused'))
    if not detected <= allowed:
        raise exception.ImageUnacceptable(
            image_id=image_id,
            reason=(f'it is registered in Glance with disk_format '
                    f'{disk_format!r} but its content is '
                    f'{", ".join(sorted(detected))}: register it with the '
                    f'right disk_format'))


class StreamInspector:
    """A Glance download, inspected as it passes (one pass, no copy).

    :meth:`head` reads the first :data:`HEAD_BYTES` and refuses a wrong
    label at once, before the caller creates a LUN; iterating yields every
    chunk; :meth:`finish` (after the last chunk) runs the whole-stream
    decision and the inspector's safety checks.
    """

    def __init__(self, chunks: Iterable[bytes], image_id: str,
                 disk_format: str) -> None:
        self.image_id = image_id
        self.disk_format = disk_format
        self._wrapper = format_inspector.InspectWrapper(iter(chunks))
        self._head: list[bytes] = []
        self._headed = False

    def head(self) -> None:
        """Read the first bytes and check the headers they carry."""
        if self._headed:
            return
        self._headed = True
        got = 0
        for chunk in self._wrapper:
            self._head.append(chunk)
            got += len(chunk)
            if got >= HEAD_BYTES:
                break
        probe = format_inspector.InspectWrapper(iter(self._head))
        for _chunk in probe:
            pass
        probe.close()
        try:
            detected = _names(probe.formats)
        except format_inspector.ImageFormatError:
            detected = set()
        # Only what is certain from the head: a foreign header. Whether
        # the whole stream passes is decided in finish().
        refuse_mismatch(self.image_id, self.disk_format,
                        detected - {'raw'} or {'raw'})

    def __iter__(self) -> Iterator[bytes]:
        self.head()
        yield from self._head
        self._head = []
        yield from self._wrapper

    def finish(self) -> None:
        self._wrapper.close()
        try:
            detected = _names(self._wrapper.formats)
            for fmt in self._wrapper.formats or []:
                fmt.safety_check()
        except format_inspector.SafetyCheckFailed as exc:
            raise exception.ImageUnacceptable(
                image_id=self.image_id, reason=safety_reason(exc))
        except format_inspector.ImageFormatError as exc:
            raise exception.ImageUnacceptable(
                image_id=self.image_id,
                reason=f'its format cannot be determined: {exc}')
        refuse_mismatch(self.image_id, self.disk_format, detected)


#: oslo.utils' inspector names that qemu-img calls otherwise
_QEMU_NAMES = {'vhd': 'vpc'}
_INSPECTOR_NAMES = {v: k for k, v in _QEMU_NAMES.items()}


def qemu_img_info(path: str, image_id: str) -> Any:
    """``qemu-img info`` of a downloaded image, format named, limited.

    As Cinder's ``qemu_img_info`` (the format inspector decides the format
    and its safety first; ``qemu-img`` never probes; CPU and memory
    limited), except that the inspector's name is translated to
    ``qemu-img``'s: Cinder 29 passes ``-f vhd``, which ``qemu-img`` does
    not know ("Unknown driver 'vhd'"), so it fails every VHD image.
    """
    from cinder import utils
    from oslo_concurrency import processutils
    from oslo_utils import imageutils
    from oslo_utils import units
    try:
        inspector = format_inspector.detect_file_format(path)
        inspector.safety_check()
    except format_inspector.SafetyCheckFailed as exc:
        raise exception.ImageUnacceptable(
            image_id=image_id, reason=safety_reason(exc))
    except format_inspector.ImageFormatError as exc:
        raise exception.ImageUnacceptable(
            image_id=image_id, reason=f'its format is ambiguous: {exc}')
    name = str(inspector)
    fmt = _QEMU_NAMES.get(name, 'raw' if name in ('gpt', 'iso') else name)
    limits = processutils.ProcessLimits(
        cpu_time=CONF.image_introspection_cpu_limit,
        address_space=CONF.image_introspection_address_space_limit *
        units.Gi)
    try:
        out, _err = utils.execute('env', 'LC_ALL=C', 'qemu-img', 'info',
                                  '-f', fmt, '--output=json', path,
                                  prlimit=limits)
    except processutils.ProcessExecutionError as exc:
        # e.g. a crafted header with an impossible virtual size ("Image is
        # too big"), or qemu-img over its CPU or memory limit. Cinder's own
        # qemu_img_info lets the bare ProcessExecutionError through; the
        # golden path names the image and the cause.
        raise exception.ImageUnacceptable(
            image_id=image_id,
            reason=(f'qemu-img cannot read it as {fmt}: '
                    f'{(exc.stderr or exc.description or "").strip()}'))
    return imageutils.QemuImgInfo(out, format='json')


def check_downloaded(path: str, image_meta: dict[str, Any]) -> Any:
    """Cinder's checks of a downloaded image file; returns its qemu info.

    ``fetch_to_volume_format``'s order: gzip container decompressed in
    place, ``qemu-img info``, no backing file, the label checked against
    the content (``check_image_format``, which also refuses VMDK
    descriptors that point at other files and qcow2 data files), then
    oslo.utils' inspector with the partition-table rule above.
    """
    image_id = image_meta['id']
    if image_meta.get('container_format') == 'compressed':
        from cinder.image import accelerator
        if not accelerator.is_gzip_compressed(path):
            raise exception.ImageUnacceptable(
                image_id=image_id,
                reason=('its container_format is compressed but it is not '
                        'gzip, the only compression Cinder supports'))
        accelerator.ImageAccel(path, path).decompress_img(run_as_root=False)
    info = qemu_img_info(path, image_id)
    if info.file_format is None:
        raise exception.ImageUnacceptable(
            image_id=image_id, reason="'qemu-img info' parsing failed.")
    if info.backing_file is not None:
        raise exception.ImageUnacceptable(
            image_id=image_id,
            reason=(f'it is a {info.file_format} image with a backing '
                    f'file ({info.backing_file}); upload a standalone '
                    f'image'))
    disk_format = image_meta.get('disk_format')
    if disk_format and disk_format not in RAW_LIKE and disk_format not in (
            'ami', 'aki', 'ari'):
        # Cinder's check_image_format below refuses the same images, in
        # words that name neither the content nor the fix ("The image
        # format was claimed to be 'vhdx' but the image data appears to
        # be in a different format").
        refuse_mismatch(image_id, disk_format,
                        {_INSPECTOR_NAMES.get(info.file_format,
                                              info.file_format)})
    src_format = (image_utils.fixup_disk_format(disk_format)
                  if disk_format else None)
    image_utils.check_image_format(path, src_format=src_format,
                                   image_id=image_id, data=info,
                                   run_as_root=False)
    if disk_format in RAW_LIKE:
        with open(path, 'rb') as f:
            inspector = StreamInspector(iter(lambda: f.read(1 << 20), b''),
                                        image_id, disk_format)
            for _chunk in inspector:
                pass
            inspector.finish()
    return info
