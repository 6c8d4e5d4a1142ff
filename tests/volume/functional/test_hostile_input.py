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
"""Hostile images and hostile strings, through real Cinder, both arrays.

Images that would make qemu read files of the volume host (a qcow2 backing
file or external data file naming /etc/passwd or /etc/shadow, VMDK
descriptors whose extents are /etc/shadow or /dev/sda), content that is
not what Glance's ``disk_format`` says (the pairs test_real_images does not
cover), images larger than the volume asked for and a crafted 8 EiB
virtual size: each volume ends in ``error``, the user sees a message about
it (``GET /messages``), the log names the problem and the fix, and the
array, the LUN store, the conversion directory and both quotas are as
before. Strings with shell metacharacters reach the SVC CLI as one quoted
argument or not at all; PowerFlex never gets a name over its 31
characters; wrong credentials, an untrusted gateway certificate and a
changed SSH host key stop the driver at start with the fix in the log.
"""

import logging
import os
import re
import shutil
import struct
import subprocess
import tempfile
import time
import traceback
import uuid

from cinder import context as cinder_context
from cinder.db import api as db
from cinder import exception
from cinder.tests.functional.api import client as api_client
import fixtures
import paramiko

from cinder_dpm_ephemeral.emulators.powerflex import errors as pf_errors
from cinder_dpm_ephemeral.emulators.powerflex import gateway
from cinder_dpm_ephemeral.image_cache import checks
from cinder_dpm_ephemeral.image_cache import formats
from cinder_dpm_ephemeral.testing import cinder_harness
from cinder_dpm_ephemeral.testing import disks
from cinder_dpm_ephemeral.testing import images
from tests.volume.functional import array_views
from tests.volume.functional import log_capture

MiB = 1024 * 1024
GiB = 1024 * MiB

INTERNAL_PROJECT = array_views.INTERNAL_PROJECT

_BUILT: dict = {}
_TMP_ROOT = tempfile.gettempdir()


def _qemu_img(*args):
    subprocess.run(['qemu-img', *args], check=True,
                   stdout=subprocess.DEVNULL)


def _vmdk_descriptor(create_type, extent):
    return ('# Disk DescriptorFile\nversion=1\nCID=fffffffe\n'
            f'parentCID=ffffffff\ncreateType="{create_type}"\n\n'
            f'# Extent description\n{extent}\n\n'
            '# The Disk Data Base\n#DDB\nddb.adapterType = "ide"\n')


def _build(d, volume_gb):
    """Every hostile image: case -> (path, Glance disk_format)."""
    out = {}
    raw = os.path.join(d, 'disk.raw')
    images.write_raw_content(raw, 8 * MiB, seed=31)

    def p(name):
        return os.path.join(d, name)

    _qemu_img('create', '-q', '-f', 'qcow2', '-b', '/etc/passwd', '-F',
              'raw', p('backing.qcow2'), '16M')
    out['qcow2-backing-file-etc-passwd'] = (p('backing.qcow2'), 'qcow2')
    # qemu-img writes the data file it is given; the host file is put in
    # its place afterwards, as a crafted upload would name it.
    _qemu_img('create', '-q', '-f', 'qcow2', '-o',
              f'data_file={p("host-file")},data_file_raw=on',
              p('datafile.qcow2'), '16M')
    os.unlink(p('host-file'))
    os.symlink('/etc/shadow', p('host-file'))
    out['qcow2-data-file-etc-shadow'] = (p('datafile.qcow2'), 'qcow2')
    with open(p('flat.vmdk'), 'w') as f:
        f.write(_vmdk_descriptor('monolithicFlat',
                                 'RW 2048 FLAT "/etc/shadow" 0'))
    out['vmdk-monolithicFlat-etc-shadow'] = (p('flat.vmdk'), 'vmdk')
    with open(p('two-gb.vmdk'), 'w') as f:
        f.write(_vmdk_descriptor('twoGbMaxExtentFlat',
                                 'RW 2048 FLAT "/dev/sda" 0'))
    out['vmdk-twoGbMaxExtentFlat-dev-sda'] = (p('two-gb.vmdk'), 'vmdk')
    # A monolithicSparse VMDK whose embedded descriptor names a second,
    # flat extent: a host file.
    _qemu_img('convert', '-q', '-f', 'raw', '-O', 'vmdk', '-o',
              'subformat=monolithicSparse', raw, p('sparse.vmdk'))
    data = bytearray(open(p('sparse.vmdk'), 'rb').read())
    own = re.search(rb'RW \d+ SPARSE "[^"]*"\n', bytes(data)).group(0)
    at = data.find(own)
    end = data.find(b'\0', at)
    text = data[at:end].replace(own, own + b'RW 2048 FLAT "/etc/shadow" 0\n')
    data[at:at + len(text)] = text
    with open(p('sparse-extra.vmdk'), 'wb') as f:
        f.write(data)
    out['vmdk-sparse-extent-etc-shadow'] = (p('sparse-extra.vmdk'), 'vmdk')
    out['vmdk-flat-descriptor-labelled-raw'] = (p('flat.vmdk'), 'raw')

    # Content against label: the pairs test_real_images does not cover.
    for fmt, opts in (('vhdx', ()), ('vpc', ()), ('qcow2', ()),
                      ('vmdk', ('-o', 'subformat=streamOptimized'))):
        _qemu_img('convert', '-q', '-f', 'raw', '-O', fmt, *opts, raw,
                  p(f'disk.{fmt}'))
    disks.make_luks(p('disk.luks'), 16 * MiB, seed=32)
    images.make_iso(p('disk.iso'), seed=33)
    out['vhdx-labelled-qcow2'] = (p('disk.vhdx'), 'qcow2')
    out['vmdk-labelled-qcow2'] = (p('disk.vmdk'), 'qcow2')
    out['luks-labelled-qcow2'] = (p('disk.luks'), 'qcow2')
    out['qcow2-labelled-vhdx'] = (p('disk.qcow2'), 'vhdx')
    out['vhd-labelled-vhdx'] = (p('disk.vpc'), 'vhdx')
    out['iso-labelled-vmdk'] = (p('disk.iso'), 'vmdk')
    out['qcow2-labelled-iso'] = (p('disk.qcow2'), 'iso')

    # Larger than the volume (Glance did not record virtual_size, so only
    # the volume service can tell), and an impossible 8 EiB header.
    big = f'{volume_gb + 1}G'
    _qemu_img('create', '-q', '-f', 'qcow2', p('big.qcow2'), big)
    out['qcow2-larger-than-volume'] = (p('big.qcow2'), 'qcow2')
    _qemu_img('create', '-q', '-f', 'vmdk', '-o',
              'subformat=streamOptimized', p('big.vmdk'), big)
    out['vmdk-larger-than-volume'] = (p('big.vmdk'), 'vmdk')
    _qemu_img('create', '-q', '-f', 'qcow2', p('small.qcow2'), '1M')
    data = bytearray(open(p('small.qcow2'), 'rb').read())
    data[24:32] = struct.pack('>Q', 8 * 1024 ** 6 - 512)   # virtual size
    with open(p('8-eib.qcow2'), 'wb') as f:
        f.write(data)
    out['qcow2-8-EiB-virtual-size'] = (p('8-eib.qcow2'), 'qcow2')
    return out


def _images(volume_gb):
    if volume_gb not in _BUILT:
        d = tempfile.mkdtemp(prefix='hostile-images-', dir=_TMP_ROOT)
        _BUILT[volume_gb] = (d, _build(d, volume_gb))
    return _BUILT[volume_gb][1]


def tearDownModule():
    for d, _cases in _BUILT.values():
        shutil.rmtree(d, ignore_errors=True)
    _BUILT.clear()


_MISMATCH = (r"registered in Glance with disk_format '[a-z0-9]+' but its "
             r'content is [a-z0-9]+: register it with the right disk_format')


def _why(case):
    """What the log must say about ``case`` (the refusal's reason)."""
    base, _, variant = case.partition('/')
    if base == 'qcow2-8-EiB-virtual-size':
        return (r'qemu-img cannot read it as qcow2: .*Image is too big'
                if variant else r'virtual size is 9223372036854775296 '
                r'bytes .*larger than the requested volume size')
    if base.endswith('larger-than-volume'):
        return (r'larger than the requested volume size of \d+ GiB; '
                r'request at least \d+ GiB')
    if base.startswith('qcow2-backing-file'):
        return r'has a backing file.*upload a standalone image'
    if base.startswith('qcow2-data-file'):
        return r'external data file.*holds its own data'
    if base.endswith('labelled-qcow2') and not variant:
        return r'labelled qcow2 but does not start with a qcow2 header'
    if base == 'vmdk-flat-descriptor-labelled-raw':
        return (r"registered in Glance with disk_format 'raw' but its "
                r'content is vmdk: register it with the right disk_format')
    if base.startswith('vmdk-'):
        return r'VMDK descriptor is not a single extent.*streamOptimized'
    return _MISMATCH


class _Views(array_views.InternalTenant):
    """Cinder's books and the array's state, for before/after checks."""

    def _books(self):
        """Quota usage of the tenant and of the internal tenant."""
        mine = self.api.api_get(
            f'/os-quota-sets/{self.api.project_id}?usage=True')['quota_set']
        usage = db.quota_usage_get_all_by_project(
            cinder_context.get_admin_context(), INTERNAL_PROJECT)
        return ({k: mine[k]['in_use'] for k in ('volumes', 'gigabytes')},
                {k: usage.get(k, {}).get('in_use', 0)
                 for k in ('volumes', 'gigabytes')})

    def _state(self):
        conv = checks.conversion_dir()
        leftovers = sorted(n for n in os.listdir(conv)
                           if n.startswith(('dpm-golden-', 'nbd-')))
        return (self.array_objects(), sorted(self.backend.luns.list()),
                leftovers, self._books())

    def _messages(self, volume_id):
        return [m for m in self.api.api_get('/messages')['messages']
                if m['resource_uuid'] == volume_id]


class _HostileImages(_Views):
    """Hostile images on one array; subclasses say which."""

    #: every case (False: only :attr:`CASES`; the checks are the array's
    #: business only as far as leaks go)
    ALL_CASES = True
    CASES: tuple = ()
    #: qcow2 cases also run with dpm_ephemeral_overlap_qcow2_conversion
    #: False (the whole file downloaded first, then Cinder's checks)
    DOWNLOAD_FIRST: tuple = ()

    def test_hostile_images_refused_leaving_nothing(self):
        built = _images(self.VOLUME_GB)
        cases = [c for c in built if self.ALL_CASES or c in self.CASES]
        cases += [f'{c}/download-first' for c in self.DOWNLOAD_FIRST]
        logs = self.useFixture(fixtures.FakeLogger(level=logging.INFO))
        failed = {}
        for case in cases:
            try:
                self._check(case, built[case.split('/')[0]], logs)
            except Exception as exc:
                failed[case] = exc
                self.addDetail(f'case {case}', _text(
                    ''.join(traceback.format_exception(exc))))
        if failed:
            self.fail(f'{len(failed)} of {len(cases)} cases failed '
                      f'({self.BACKEND}): ' +
                      '; '.join(f'{c}: {str(e)[:300]}'
                                for c, e in failed.items()))

    def _check(self, case, image, logs):
        path, disk_format = image
        self.flags(dpm_ephemeral_overlap_qcow2_conversion=(
            not case.endswith('/download-first')), group=self.BACKEND)
        before = self._state()
        meta = self.images.add(path, disk_format, name=case)
        start = len(logs.output)
        vol = self.create_volume(self.VOLUME_GB, image_id=meta['id'])
        vol = self.wait_for_volume(vol['id'], timeout=120)
        self.assertEqual('error', vol['status'], case)
        self.assertEqual([], self.goldens(meta['id']), case)
        # What the user sees: a message on the volume (GET /messages).
        msgs = self._messages(vol['id'])
        self.assertNotEqual([], msgs, f'{case}: no user message')
        # What the operator sees: the reason and the fix, in one line.
        log = logs.output[start:]
        self.assertRegex(log, _why(case), f'{case}: reason not logged')
        # Refused before any LUN, download file or quota was taken.
        self.delete_volume(vol['id'])
        self.assertEqual(before, self._state(), case)
        self.images.remove(meta['id'])

    def test_virtual_size_known_to_glance_refused_by_the_api(self):
        # Glance recorded the virtual size: Cinder's API refuses at once
        # (its own check), nothing reaches the volume service.
        built = _images(self.VOLUME_GB)
        before = self._state()
        meta = self.images.add(built['qcow2-larger-than-volume'][0],
                               'qcow2', virtual_size='compute')
        exc = self.assertRaises(api_client.OpenStackApiException400,
                                self.create_volume, self.VOLUME_GB,
                                image_id=meta['id'])
        self.assertIn('virtual size', str(exc.response.text).lower())
        self.assertEqual(before, self._state())


def _text(s):
    from testtools import content
    return content.text_content(s)


class SVCHostileImagesTest(array_views.SVCArray, _HostileImages,
                           cinder_harness.CinderHarness):
    DOWNLOAD_FIRST = ('qcow2-backing-file-etc-passwd',
                      'qcow2-data-file-etc-shadow', 'vhdx-labelled-qcow2',
                      'qcow2-8-EiB-virtual-size')


class PowerFlexHostileImagesTest(array_views.PowerFlexArray,
                                 _HostileImages,
                                 cinder_harness.CinderHarness):
    ALL_CASES = False
    CASES = ('qcow2-backing-file-etc-passwd', 'qcow2-data-file-etc-shadow',
             'vmdk-sparse-extent-etc-shadow', 'qcow2-larger-than-volume',
             'vmdk-larger-than-volume', 'qcow2-8-EiB-virtual-size',
             'vmdk-flat-descriptor-labelled-raw')
    DOWNLOAD_FIRST = ('qcow2-data-file-etc-shadow',)


# -- hostile strings ----------------------------------------------------------
def _hostile_strings(canary):
    return [f'; touch {canary} #', f'$(touch {canary})',
            f'`touch {canary}`', f'it\'s "quoted" && touch {canary}',
            f'new\nline; touch {canary}', 'x' * 255]


class SVCHostileStringsTest(array_views.SVCArray, _Views,
                            cinder_harness.CinderHarness):
    """Shell metacharacters in every string a user chooses."""

    WWPNS = ['c05076ffe5000020', 'c05076ffe5000021']

    def _commands(self):
        return self.backend.emulator.call('array.recent_commands', 10000)

    def test_shell_metacharacters_never_reach_the_cli_unquoted(self):
        canary = os.path.join(self.work_dir, 'CANARY')
        hostile = _hostile_strings(canary)
        image = images.make_image(self.work_dir, 4 * MiB, 'raw', seed=34,
                                  name='strings')
        seen = len(self._commands())
        for text in hostile:
            # image name, volume name, description and metadata
            meta = self.images.add(image.path, 'raw', name=text,
                                   properties={'os_distro': text})
            vol = self.create_volume(self.VOLUME_GB, image_id=meta['id'],
                                     name=text, description=text,
                                     metadata={'k': text[:255]})
            vol = self.wait_for_volume(vol['id'])
            self.assertEqual('available', vol['status'], text)
            # a host name chosen by whoever runs nova-compute
            connector = {'host': text, 'wwpns': self.WWPNS,
                         'wwnns': self.WWPNS, 'initiator': None,
                         'platform': 's390x', 'os_type': 'linux'}
            before = len(self._commands())
            if len(text) > 200:
                # The in-tree driver takes a file lock named after the
                # host (storwize-host-<system>-<host>): a 255-character
                # host name is too long a file name, and the attach fails
                # before anything reaches the array.
                hosts = self.array_objects()['hosts']
                self.assertRaises(api_client.OpenStackApiException,
                                  self.initialize_connection, vol['id'],
                                  connector)
                self.assertEqual(hosts, self.array_objects()['hosts'])
                self.assertEqual([], [a for a in self._commands()[before:]
                                      if a[1].startswith('mk')])
                self.delete_volume(vol['id'])
                self.images.remove(meta['id'])
                continue
            self.initialize_connection(vol['id'], connector)
            ran = self._commands()[before:]
            mkhost = [argv for argv in ran if 'mkhost' in argv]
            self.assertEqual(1, len(mkhost), (text, ran))
            # One argument (the emulator splits the command line as a
            # shell would: spaces inside it prove it was quoted), every
            # metacharacter gone (the in-tree driver cleans host names).
            name = mkhost[0][mkhost[0].index('-name') + 1]
            self.assertRegex(name, r'^[A-Za-z0-9_. -]{1,63}$')
            self.terminate_connection(vol['id'], connector)
            self.delete_volume(vol['id'])
            self.images.remove(meta['id'])
        ran = self._commands()[seen:]
        # Nothing of the strings reached the CLI but the cleaned host
        # names: no metacharacter in any argument.
        for argv in ran:
            for arg in argv:
                if arg.startswith('"') and arg.endswith('"'):
                    arg = arg[1:-1]
                self.assertNotRegex(arg, r'[;$`\'"\n&|<>()]', argv)
        self.assertFalse(os.path.exists(canary))
        # only the golden volumes are left, one per image
        self.assertEqual(sorted(f'volume-{g.id}' for g in self.goldens()),
                         self.array_objects()['vdisks'])
        self.assertEqual(len(hostile), len(self.goldens()))

    def test_image_id_with_shell_metacharacters_refused(self):
        image = images.make_image(self.work_dir, 4 * MiB, 'raw', seed=35,
                                  name='bad-id')
        canary = os.path.join(self.work_dir, 'CANARY')
        for text in _hostile_strings(canary)[:5]:
            text = text.replace('/', '_')   # Cinder splits refs on '/'
            before = self._state()
            seen = len(self._commands())
            # The only image: Cinder's API, given a ref that is no UUID,
            # looks it up by name and takes that image's id. Cinder itself
            # then fails on the id (its request spec wants a UUID: HTTP
            # 500), before any volume exists.
            meta = self.images.add(image.path, 'raw', image_id=text,
                                   name=text)
            self.assertRaises(api_client.OpenStackApiException,
                              self.create_volume, self.VOLUME_GB,
                              image_id=text)
            self.assertEqual([], self._commands()[seen:])
            self.assertEqual(before, self._state(), text)
            # Should it reach the golden path, it stops there, before the
            # id names a lock, a download file or a golden volume.
            exc = self.assertRaises(exception.ImageUnacceptable,
                                    formats.check_request, meta)
            self.assertIn('its id is not a UUID', str(exc))
            self.images.remove(text)
        self.assertFalse(os.path.exists(canary))


class PowerFlexNamesTest(array_views.PowerFlexArray, _Views,
                         cinder_harness.CinderHarness):
    """PowerFlex names are at most 31 characters: never send a longer one."""

    def test_long_names_never_reach_the_gateway(self):
        image = images.make_image(self.work_dir, 4 * MiB, 'raw', seed=36,
                                  name='long')
        long_name = 'n' * 255
        meta = self.images.add(image.path, 'raw', name=long_name)
        vol = self.wait_for_volume(self.create_volume(
            self.VOLUME_GB, image_id=meta['id'], name=long_name)['id'])
        self.assertEqual('available', vol['status'])
        snap = self.api.post_snapshot({'snapshot': {
            'volume_id': vol['id'], 'name': long_name}})
        clone = self.wait_for_volume(self.create_volume(
            self.VOLUME_GB, source_volid=vol['id'], name=long_name)['id'])
        self.assertEqual('available', clone['status'])
        deadline = time.monotonic() + 60
        while self.api.get_snapshot(snap['id'])['status'] == 'creating':
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.1)
        self.assertEqual('available',
                         self.api.get_snapshot(snap['id'])['status'])
        names = [v['name'] for v in self._inv()['volumes']]
        self.assertEqual(4, len(names))   # golden, clone, snapshot, copy
        for n in names:
            self.assertLessEqual(len(n), 31, n)
        # and the gateway itself refuses a longer one
        self.assertEqual(31, pf_errors.MAX_NAME_LEN)


# -- refused at start ----------------------------------------------------
class _RefusedAtStart(log_capture.CapturedLogs, _Views):
    """The driver does not start; the log says why and how to fix it."""

    #: what the explanation must say (regular expression)
    WHY = ''

    def test_driver_not_started_and_the_log_says_why(self):
        self.assertFalse(self.driver.initialized)
        log = self.all_logs()
        self.assertRegex(log, self.WHY)
        failures = log.count('Failed to initialize driver')
        self.assertGreater(failures, 0)
        # no password in any line, the wrong one tried included
        for secret in self.secrets():
            self.assertNotIn(secret, log)
        # A volume cannot be made, and nothing reaches the array.
        before = self.array_objects()
        vol = self.wait_for_volume(self.create_volume(self.VOLUME_GB)['id'])
        self.assertEqual('error', vol['status'])
        self.assertEqual(before, self.array_objects())
        # No retry loop: the driver stays down, the log does not grow
        # with attempts.
        time.sleep(1)
        self.assertEqual(failures, self.all_logs().count(
            'Failed to initialize driver'))

    def secrets(self):
        return [self.backend.login[1]]


class _WrongPassword(_RefusedAtStart):
    """The array refuses the configured password; neither is logged."""

    WRONG = 'wrong-' + uuid.uuid4().hex

    def backend_options(self):
        opts = super().backend_options()
        opts['san_password'] = self.WRONG
        return opts

    def secrets(self):
        return [self.backend.login[1], self.WRONG]


class SVCWrongPasswordTest(_WrongPassword, array_views.SVCArray,
                           cinder_harness.CinderHarness):
    WHY = (r'\[svc\] the array at 127.0.0.1 refused the login of user '
           r"'superuser': check san_login and san_password")


class PowerFlexWrongPasswordTest(_WrongPassword, array_views.PowerFlexArray,
                                 cinder_harness.CinderHarness):
    WHY = (r'\[powerflex\] the array at 127.0.0.1 refused the login of '
           r"user 'admin': check san_login and san_password")


class PowerFlexUntrustedCertificateTest(_RefusedAtStart,
                                        array_views.PowerFlexArray,
                                        cinder_harness.CinderHarness):
    WHY = (r'\[powerflex\] the TLS certificate of 127.0.0.1 does not '
           r'verify against .*other-ca.*driver_ssl_cert_path')

    def backend_options(self):
        opts = super().backend_options()
        self.assertTrue(opts['driver_ssl_cert_verify'])   # the default
        os.makedirs(os.path.join(self.work_dir, 'other-ca'))
        other, _key = gateway.ensure_certificate(
            os.path.join(self.work_dir, 'other-ca'))
        opts['driver_ssl_cert_path'] = other
        return opts


class SVCChangedHostKeyTest(_RefusedAtStart, array_views.SVCArray,
                            cinder_harness.CinderHarness):
    WHY = (r'\[svc\] the SSH host key of 127.0.0.1 \(port \d+\) is not '
           r'the one recorded in .*changed_known_hosts .*ssh-keyscan')

    def default_options(self):
        opts = super().default_options()
        self.assertTrue(opts['strict_ssh_host_key_policy'])   # the default
        # The array's key as it was recorded, then the array got another.
        path = os.path.join(self.work_dir, 'changed_known_hosts')
        other = paramiko.RSAKey.generate(2048)
        with open(path, 'w') as f:
            f.write(f'[127.0.0.1]:{self.backend.emulator.port} '
                    f'{other.get_name()} {other.get_base64()}\n')
        opts['ssh_hosts_key_file'] = path
        return opts
