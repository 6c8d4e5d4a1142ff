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
"""Configuration options of the cinder-dpm-ephemeral volume drivers.

This module imports no vendor library, so ``oslo-config-generator`` and the
documentation can list the options anywhere.
"""

from __future__ import annotations

from oslo_config import cfg

emulation_opts = [
    cfg.StrOpt(
        'dpm_ephemeral_emulator_state_dir',
        default=None,
        help='The emulation switch. Leave unset in production: image data '
             'then reach the LUN over the array\'s own protocol (Fibre '
             'Channel for SVC), exactly as Cinder\'s in-tree driver does. '
             'Set it to the state directory of a dpm-ephemeral-emulator '
             '(the array emulator shipped with this project, for CI, '
             'devstack and demos without hardware): the control path still '
             'speaks the array\'s real protocol to the emulator, but image '
             'copies open the emulated LUN\'s file through os-brick\'s LOCAL '
             'connector instead of attaching it over FC. Connection info '
             'given to Nova is unchanged.'),
]

image_cache_opts = [
    cfg.BoolOpt(
        'dpm_ephemeral_image_cache_enabled',
        default=True,
        help='Create volumes from images as array-side thin clones of a '
             'golden volume per image and pool (downloaded and converted '
             'once). Golden volumes belong to Cinder\'s internal tenant, so '
             'cinder_internal_tenant_project_id and '
             'cinder_internal_tenant_user_id must be set; without them the '
             'cache is skipped with a warning and Cinder copies every image.'),
    cfg.BoolOpt(
        'dpm_ephemeral_overlap_qcow2_conversion',
        default=True,
        help='Convert a qcow2 image onto its golden volume while it is '
             'still downloading: qemu-img reads the partly downloaded file '
             'through a local read-only NBD export (a unix socket in '
             'image_conversion_dir, or the temporary directory when that '
             'path is too long) whose reads wait for the download. The '
             'header is checked (no backing or data file) before qemu-img '
             'opens anything, the whole stream after the download. False: '
             'download the whole file, then convert it, as stock Cinder '
             'does.'),
    cfg.BoolOpt(
        'dpm_ephemeral_read_ahead',
        default=True,
        help='While a golden volume\'s LUN is created and attached, go on '
             'downloading its image into an unnamed spool file in '
             'image_conversion_dir (at most the image\'s size, never '
             'leaving less than 1 GiB free there); the copy onto the LUN '
             'then starts from the spool. False: the download waits for '
             'the LUN.'),
    cfg.BoolOpt(
        'dpm_ephemeral_detach_beside_clone',
        default=True,
        help='Detach a golden volume\'s LUN from the volume host (os-brick '
             'disconnects the device, the array removes the host mapping) '
             'once the golden is marked ready, beside the first clone\'s '
             'array calls, instead of before: the image is durable on the '
             'LUN by then (fsync). The volume that asked for the build '
             'becomes available only after both. A detach that fails or '
             'is cut short by a restart is recorded in the golden\'s '
             'metadata (detach_pending) and done again by the periodic '
             'clean-up. False: the detach is part of the build.'),
    cfg.BoolOpt(
        'dpm_ephemeral_write_behind',
        default=True,
        help='Write a golden volume\'s LUN beside its download: each '
             'write runs in a native thread while the next bytes are '
             'downloaded and inspected, and the LUN\'s writeback is '
             'started as each write ends (sync_file_range): the image '
             'reaches the array while it downloads instead of waiting in '
             'the host\'s page cache for the final fsync. False: '
             'download, write and fsync one after the other in the '
             'service\'s green thread.'),
    cfg.IntOpt(
        'dpm_ephemeral_write_behind_depth',
        default=4, min=1, max=64,
        help='With dpm_ephemeral_write_behind, how many writes to a golden '
             'volume\'s LUN may be under way at once, each in a native '
             'thread of its own (at most 4 MiB each): the copies into the '
             'page cache run on as many cores, and the next write need '
             'not wait for the one before it. 1: one at a time.'),
    cfg.BoolOpt(
        'dpm_ephemeral_direct_io',
        default=False,
        help='Write a golden volume\'s LUN past the volume host\'s page '
             'cache (O_DIRECT), as Cinder\'s own image conversion writes '
             'a volume (qemu-img convert -t none): writes that follow '
             'each other are gathered into page-aligned buffers of 4 MiB '
             '(dpm_ephemeral_write_behind_depth + 1 of them), written by '
             'native threads while the next gather. The image never '
             'occupies the host\'s memory and a build pays for no new '
             'page-cache pages, so its time no longer depends on what the '
             'host freed just before; but where the page cache is warm a '
             'build through it is faster (doc/benchmarks.md, "Past the '
             'page cache"). A LUN that refuses O_DIRECT is written through '
             'the page cache.'),
    cfg.IntOpt(
        'dpm_ephemeral_spare_golden_luns',
        default=1, min=0, max=16,
        help='Golden LUNs made ahead per pool, with no image yet: after a '
             'golden volume is built, one of the same size and volume '
             'type is made in the background, and the next build of an '
             'image of that size in the pool writes onto it at once '
             'instead of waiting for the array to make a LUN and map it '
             'to this host: a spare is attached to the volume host once '
             'made (a restart leaves its mapping to the periodic '
             'clean-up). Each is a '
             'volume of the internal tenant (name dpm-golden-spare), '
             'counted in its quota and in the pool\'s allocated capacity '
             '(a thin LUN with nothing written on a thin volume type), '
             'and holds one device on the volume host; '
             'the least recently wanted are removed beyond this number. '
             '0: none (surplus ones are removed by the periodic '
             'clean-up), and every build waits for its LUN.'),
    cfg.IntOpt(
        'dpm_ephemeral_image_cache_max_count',
        default=0, min=0,
        help='Most golden volumes kept per backend (0: no limit). Beyond '
             'it the least recently used ones are removed once no clone '
             'depends on them.'),
    cfg.IntOpt(
        'dpm_ephemeral_image_cache_max_size_gb',
        default=0, min=0,
        help='Most GiB of golden volumes kept per backend (0: no limit), '
             'evicted least recently used first, never while clones depend '
             'on them.'),
    cfg.IntOpt(
        'dpm_ephemeral_image_cache_cleanup_interval',
        default=300, min=0,
        help='Seconds between clean-ups of the golden image cache (run with '
             'the volume stats update): golden volumes of images deleted or '
             'changed in Glance, unfinished ones, and those over the limits '
             'are removed once no clone depends on them. 0: at every stats '
             'update.'),
]


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """The options of this project, for oslo-config-generator."""
    return [('backend_defaults',
             list(emulation_opts) + list(image_cache_opts))]
