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
"""What the emulated arrays hold, for tests that compare it with Cinder."""

import uuid

from cinder import context as cinder_context
from cinder.db import api as db
from cinder import objects

from cinder_dpm_ephemeral.testing import audit
from cinder_dpm_ephemeral.testing import backends

# The internal tenant that owns golden volumes in the tests that set one.
INTERNAL_PROJECT = uuid.uuid4().hex
INTERNAL_USER = uuid.uuid4().hex


class InternalTenant:
    """The backend's options plus an internal tenant, and its goldens."""

    def default_options(self):
        opts = dict(self.backend.default_options())
        opts.update({'cinder_internal_tenant_project_id': INTERNAL_PROJECT,
                     'cinder_internal_tenant_user_id': INTERNAL_USER})
        return opts

    #: ``dpm_ephemeral_spare_golden_luns`` for the test's backend, None
    #: for the option's default (1). These tests pin what a build on a LUN
    #: made for it asks of the array and leaves behind, as the first
    #: build of each image size in a pool does; builds on spare LUNs are
    #: tested at the default by test_spare_luns.py and the end-to-end
    #: cloud (tests/e2e).
    SPARE_GOLDEN_LUNS = 0

    def backend_options(self):
        opts = dict(self.backend.backend_options(self.BACKEND))
        if self.SPARE_GOLDEN_LUNS is not None:
            opts['dpm_ephemeral_spare_golden_luns'] = self.SPARE_GOLDEN_LUNS
        return opts

    def goldens(self, image_id=None):
        ictx = cinder_context.get_internal_tenant_context()
        return self.driver.image_cache.goldens(ictx, None, image_id)

    def internal_usage(self):
        """The internal tenant's quota usage: (volumes, gigabytes)."""
        usage = db.quota_usage_get_all_by_project(
            cinder_context.get_admin_context(), INTERNAL_PROJECT)
        return (usage.get('volumes', {}).get('in_use', 0),
                usage.get('gigabytes', {}).get('in_use', 0))


class SVCArray:
    """An SVC emulator behind the test's Cinder, and views of its state."""

    BACKEND = 'svc'
    VOLUME_GB = 1

    def start_backends(self):
        self.backend = backends.SVCBackend(self.work_dir).start()
        self.addCleanup(self.backend.stop)

    def _inv(self):
        return self.backend.emulator.inventory()

    def array_volume_count(self):
        return len(self._inv()['vdisks'])

    def clone_links(self):
        """FlashCopy maps; every one must be no-copy (copy rate 0)."""
        maps = self._inv()['fcmaps']
        for m in maps:
            self.assertEqual('0', str(m['copy_rate']), m)
        return len(maps)

    def array_bytes_copied(self):
        self.clone_links()
        return self.backend.luns.counters().get('svc_background_copy_bytes',
                                                0)

    def array_objects(self):
        """Every object the array holds, by name, for leak comparisons.

        Except the volume host's own host object while nothing is mapped
        to it: the driver keeps it between golden builds
        (svc/host_maps.py).
        """
        inv = self._inv()
        return {'vdisks': sorted(v['name'] for v in inv['vdisks']),
                'fcmaps': sorted(m['name'] for m in inv['fcmaps']),
                'hosts': sorted(audit.svc_hosts(inv)),
                'host_mappings': sorted(
                    (m['host_name'], m['vdisk_name'])
                    for m in inv['host_mappings'])}

    def lun_of(self, volume_id):
        for v in self._inv()['vdisks']:
            if v['name'] == f'volume-{volume_id}':
                return v['vdisk_UID']
        self.fail(f'no vdisk for volume {volume_id}')


class PowerFlexArray:
    """A PowerFlex gateway emulator behind the test's Cinder."""

    BACKEND = 'powerflex'
    VOLUME_GB = 8

    def start_backends(self):
        self.backend = backends.PowerFlexBackend(self.work_dir).start()
        self.addCleanup(self.backend.stop)

    def _inv(self):
        return self.backend.emulator.inventory()

    def array_volume_count(self):
        return len(self._inv()['volumes'])

    def clone_links(self):
        """Snapshots in a vTree (they share the golden's data)."""
        return len([v for v in self._inv()['volumes'] if v['ancestor_id']])

    def array_bytes_copied(self):
        return self._inv()['lun_counters'].get('array_copied_bytes', 0)

    def array_objects(self):
        """Every volume and snapshot, with its SDC mappings."""
        return {'volumes': sorted(
            (v['id'], v['name'], tuple(v['mapped_sdcs']))
            for v in self._inv()['volumes'])}

    def lun_of(self, volume_id):
        return objects.Volume.get_by_id(cinder_context.get_admin_context(),
                                        volume_id).provider_id
