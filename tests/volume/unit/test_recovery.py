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
"""When a golden volume left ``creating`` is a dead build (recovery.py).

Against Cinder's own test database: real Service and Volume rows, the
heartbeat rule of ``Service.is_up`` and ``service_down_time`` as Cinder
applies them. Each rule is tested on both sides of its line, so a rule
switched off fails its test.
"""

import datetime
import types

from cinder import context
from cinder import objects
from cinder.tests.unit import test
from cinder.tests.unit import utils as test_utils
from oslo_utils import timeutils

from cinder_dpm_ephemeral.image_cache import recovery

ME = 'volhost@svc'
OTHER = 'otherhost@svc'


class DeadBuildTest(test.TestCase):

    def setUp(self):
        super().setUp()
        self.ctx = context.get_admin_context()
        self.cache = types.SimpleNamespace(
            building=set(),
            backend=types.SimpleNamespace(
                driver=types.SimpleNamespace(host=ME)))
        # Real time: each test's margins (10 s, 60 s) dwarf its run time.
        self.now = timeutils.utcnow()

    def _service(self, host, heartbeat_ago):
        beat = self.now - datetime.timedelta(seconds=heartbeat_ago)
        svc = objects.Service(self.ctx, host=host, binary='cinder-volume',
                              topic='cinder-volume')
        svc.create()
        svc.created_at = beat
        svc.updated_at = beat
        svc.save()
        return svc

    def _golden(self, builder=None, started_ago=60):
        started = self.now - datetime.timedelta(seconds=started_ago)
        md = {'image_id': 'img-1'}
        if builder:
            md[recovery.MD_BUILDER] = builder
            md[recovery.MD_BUILD_STARTED] = started.strftime(
                recovery._TIME_FORMAT)
        vol = test_utils.create_volume(self.ctx, status='creating',
                                       metadata=md)
        vol.created_at = started
        vol.save()
        return objects.Volume.get_by_id(self.ctx, vol.id)

    def test_building_in_this_process_is_alive(self):
        golden = self._golden(builder=ME)
        self.cache.building.add(golden.id)
        self.assertIsNone(recovery.dead_build(self.cache, golden))

    def test_own_build_not_in_this_process_was_cut_by_a_restart(self):
        why = recovery.dead_build(self.cache, self._golden(builder=ME))
        self.assertIn('restarted during the build', why)

    def test_builder_no_longer_a_service(self):
        why = recovery.dead_build(self.cache, self._golden(builder=OTHER))
        self.assertIn(f'{OTHER} is no longer a Cinder volume service', why)

    def test_builder_down_past_service_down_time_only(self):
        down = 60
        self.flags(service_down_time=down)
        svc = self._service(OTHER, heartbeat_ago=down - 10)
        golden = self._golden(builder=OTHER)
        self.assertIsNone(recovery.dead_build(self.cache, golden))
        svc.updated_at = self.now - datetime.timedelta(seconds=down + 10)
        svc.save()
        why = recovery.dead_build(self.cache, golden)
        self.assertIn(f'{OTHER} is down', why)
        self.assertIn('service_down_time = 60 s', why)

    def test_live_builder_past_six_hours_only(self):
        self._service(OTHER, heartbeat_ago=1)
        limit = recovery.BUILD_MAX_SECONDS
        self.assertEqual(6 * 3600, limit)
        young = self._golden(builder=OTHER, started_ago=limit - 60)
        self.assertIsNone(recovery.dead_build(self.cache, young))
        old = self._golden(builder=OTHER, started_ago=limit + 60)
        why = recovery.dead_build(self.cache, old)
        self.assertIn(f'more than {limit} s', why)

    def test_no_builder_recorded_falls_back_to_created_at(self):
        young = self._golden(started_ago=60)
        self.assertIsNone(recovery.dead_build(self.cache, young))
        old = self._golden(started_ago=recovery.BUILD_MAX_SECONDS + 60)
        self.assertIn('more than', recovery.dead_build(self.cache, old))
