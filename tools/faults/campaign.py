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
"""The fault campaign: volume lifecycles through real Cinder, faults on.

Per array (SVC, PowerFlex), a fresh real Cinder (API, scheduler, volume
manager: :class:`CinderHarness`) with our driver and the array emulator
in its own process. Faults are switched on in the emulator (every
management call: :data:`svc.cli.SVC_FAULT_MODES`,
:data:`powerflex.api.POWERFLEX_FAULT_MODES`; LUN write errors), and in
the Glance stand-in (download faults); then lifecycles run, a few at a
time, as Nova and users would drive them:

* ``new``: a volume from an image never seen (a golden volume is built);
* ``cached``: a volume from an image seen before (a thin clone);
* ``storm``: ``storm_size`` concurrent volumes from one new image;
* ``attach``: a volume from a cached image, attached the way Nova does
  (attachment reserve, update with the connector, complete), detached;
* every ``evict_every`` lifecycles the driver's periodic clean-up runs
  (as the stats timer runs it) while volumes are built, with a golden
  count limit of ``max_count``: eviction races the creates.

Every volume made is deleted at the end of its lifecycle; a delete that
fails is retried as an operator would (``delete_attempts``). A volume's
content is compared with its image once it is available.

Then the settle phase: faults off, transitional states given
``settle_seconds`` to end, the driver's periodic clean-up run, and the
database compared with the array (:mod:`cinder_dpm_ephemeral.testing.
audit`); then every volume left (those that failed) is deleted, the
clean-up runs again, and the comparison is repeated.
"""

from __future__ import annotations

import time
import unittest
import uuid
import warnings
from typing import Any

from cinder_dpm_ephemeral.testing import backends
from cinder_dpm_ephemeral.testing import cinder_harness
from tools.faults import lifecycles

MiB = 1024 * 1024
GiB = 1024 * MiB
WWPNS = ['c05076ffe5002000', 'c05076ffe5002001']
SDC_GUID = '6b1f2c3d-4e5f-4a6b-9c7d-8e9f0a1b2c3d'


def params_for(quick: bool, rate: float, seed: int,
               lifecycles: int | None = None) -> dict[str, Any]:
    per_array = lifecycles or (30 if quick else 100)
    return {
        'rate': rate, 'seed': seed,
        'lifecycles_per_array': per_array,
        'concurrency': 3,
        'storm_size': 3,
        'max_count': 2,
        'evict_every': 8,
        'image_bytes': 2 * MiB,
        'delete_attempts': 3,
        'settle_seconds': 60,
        'timeout': 180,
        'svc_slow_seconds': 0.5,
        'powerflex_slow_seconds': 0.5,
        # the driver's read timeout (rest_api_read_timeout), well above
        # slow answers even on a loaded machine: an answer that comes
        # after the client gave up is a withheld one, not a slow one
        'powerflex_read_timeout': 3,
        # withheld answers: past the read timeout
        'powerflex_timeout_seconds': 4.0,
    }


class CampaignHarness(lifecycles.LifecycleMixin):
    """Mix into :class:`CinderHarness`: our driver on one emulated array.

    ``BACKEND`` is ``svc`` or ``powerflex``; ``params`` (from
    :func:`params_for`) must be set on the class.
    """

    BACKEND: str
    params: dict[str, Any]
    internal_project = uuid.uuid4().hex

    def start_backends(self) -> None:
        if self.BACKEND == 'svc':
            self.backend = backends.SVCBackend(self.work_dir).start()
        else:
            self.backend = backends.PowerFlexBackend(
                self.work_dir, sdcs=(SDC_GUID,)).start()
        self.addCleanup(self.backend.stop)

    def backend_options(self) -> dict[str, Any]:
        opts = self.backend.backend_options(self.BACKEND)
        opts['dpm_ephemeral_image_cache_max_count'] = self.params['max_count']
        # the clean-up runs at every stats update (the campaign runs the
        # update itself, as the manager's timer would)
        opts['dpm_ephemeral_image_cache_cleanup_interval'] = 0
        if self.params.get('spare_luns') is not None:
            # (None: the option's default)
            opts['dpm_ephemeral_spare_golden_luns'] = self.params[
                'spare_luns']
        if self.BACKEND == 'powerflex':
            opts['rest_api_read_timeout'] = self.params[
                'powerflex_read_timeout']
            opts['rest_api_connect_timeout'] = self.params[
                'powerflex_read_timeout']
        return opts

    def default_options(self) -> dict[str, Any]:
        opts = dict(self.backend.default_options())
        opts['cinder_internal_tenant_project_id'] = self.internal_project
        opts['cinder_internal_tenant_user_id'] = uuid.uuid4().hex
        return opts

    def setUp(self) -> None:
        super().setUp()
        # Cinder's test base turns deprecation warnings back on
        warnings.simplefilter('ignore')
        self.api.api_put(
            f'/os-quota-sets/{self.internal_project}',
            {'quota_set': {'volumes': -1, 'gigabytes': -1, 'snapshots': -1,
                           'per_volume_gigabytes': -1}})
        # no random faults yet, but the mode parameters set (how long a
        # withheld answer is withheld, for targeted faults too)
        self.arm(0.0)

    def connector(self) -> dict[str, Any]:
        if self.BACKEND == 'svc':
            return {'host': 'dpm-faults', 'wwpns': WWPNS, 'wwnns': WWPNS,
                    'platform': 's390x', 'os_type': 'linux',
                    'multipath': False, 'initiator': None}
        return {'host': 'dpm-faults', 'sdc_guid': SDC_GUID,
                'platform': 'x86_64', 'os_type': 'linux',
                'multipath': False}

    def arm(self, rate: float) -> None:
        seed = self.params['seed']
        if self.BACKEND == 'svc':
            extra = {'slow_seconds': self.params['svc_slow_seconds']}
        else:
            extra = {'slow_seconds': self.params['powerflex_slow_seconds'],
                     'timeout_seconds':
                         self.params['powerflex_timeout_seconds']}
        self.backend.emulator.set_faults(rate, seed, **extra)
        self.images.set_faults(rate, seed)


def make_case(array: str, params: dict[str, Any],
              results: dict[str, Any]) -> unittest.TestCase:
    """A harness test case whose ``run_campaign`` fills ``results``."""

    class Campaign(CampaignHarness, cinder_harness.CinderHarness):
        BACKEND = array

        def run_campaign(self) -> None:
            results[array] = self.campaign(array, self.params)

    Campaign.params = params
    return Campaign('run_campaign')


def run_array(array: str, params: dict[str, Any]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    case = make_case(array, params, results)
    res = unittest.TestResult()
    t = time.monotonic()
    case.run(res)
    out = results.get(array) or {}
    errors = [text for _c, text in res.errors + res.failures]
    if errors:
        out['errors'] = [e[-3000:] for e in errors]
    out['seconds'] = round(time.monotonic() - t, 1)
    return out
