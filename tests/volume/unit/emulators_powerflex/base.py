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
"""Cinder's own PowerFlex driver against the emulated gateway, over TLS.

Each test starts a :class:`PowerFlexGateway` in a temp dir on a free port
and builds the in-tree ``PowerFlexDriver`` (unmodified) from a real
``Configuration`` of a backend section, the way the volume manager does:
``san_ip``, ``powerflex_rest_server_port``, ``san_login``/``san_password``,
``powerflex_storage_pools`` and TLS verification against the gateway's
generated certificate. Volumes and snapshots are real Cinder objects in
Cinder's test database.
"""

from __future__ import annotations

from typing import Any

import fixtures
import tenacity

from cinder import context
from cinder.tests.unit import test
from cinder.volume import configuration as conf
from cinder.volume import driver as volume_driver
from cinder.volume.drivers.dell_emc.powerflex import driver as pf_driver
from cinder.volume.drivers.san import san
from cinder.volume import volume_types

from cinder_dpm_ephemeral.emulators.powerflex import gateway
from cinder_dpm_ephemeral.emulators.powerflex import state
from tests.volume.unit import driver_objects

GiB = 1024 ** 3
KiB_PER_GiB = 1024 * 1024
BACKEND = 'powerflex_emu'
DOMAIN = 'pd1'
POOL = 'sp1'
SDC_GUIDS = ('8F3A5B1C-0D2E-4F60-9A7B-1C2D3E4F5A01',
             '8F3A5B1C-0D2E-4F60-9A7B-1C2D3E4F5A02')


class PowerFlexEmulatorTestCase(driver_objects.DriverObjects,
                                test.TestCase):
    """Gateway + in-tree driver, with helpers working on real objects."""

    POOL_CAPACITY_GB = 1024
    VOLUME_SIZE = 8  # one allocation unit
    POOL_LAYOUT = 'MediumGranularity'
    POOL_ZERO_PADDING = True

    def setUp(self) -> None:
        super().setUp()
        self.state_dir = self.useFixture(fixtures.TempDir()).path
        # The driver retries some calls (cinder.utils.retry -> tenacity);
        # those waits are not what is under test.
        self.mock_object(tenacity.nap, 'sleep')
        self.gw = self.start_gateway()
        self.ctxt = context.get_admin_context()
        self.thin_type = volume_types.create(self.ctxt, 'pf-thin', {})
        self.thick_type = volume_types.create(
            self.ctxt, 'pf-thick', {'provisioning:type': 'thick'})
        self.driver = self.make_driver()

    def start_gateway(self, **kwargs: Any) -> gateway.PowerFlexGateway:
        kwargs.setdefault('announce', False)
        kwargs.setdefault('pools', [state.PoolSpec(
            DOMAIN, POOL, capacity_gb=self.POOL_CAPACITY_GB,
            data_layout=self.POOL_LAYOUT,
            zero_padding=self.POOL_ZERO_PADDING)])
        kwargs.setdefault('sdcs', [
            state.SdcSpec(guid, ip=f'10.0.0.{i + 1}', name=f'compute-{i}')
            for i, guid in enumerate(SDC_GUIDS)])
        gw = gateway.PowerFlexGateway(self.state_dir, **kwargs).start()
        self.addCleanup(gw.stop)
        return gw

    def configure(self, gw: gateway.PowerFlexGateway | None = None,
                  cert_path: str | None = None,
                  **extra: Any) -> conf.Configuration:
        gw = gw or self.gw
        cfg = conf.Configuration(
            volume_driver.volume_opts + san.san_opts
            + pf_driver.powerflex_opts, config_group=BACKEND)
        options = {
            'volume_backend_name': BACKEND,
            'san_ip': '127.0.0.1',
            'powerflex_rest_server_port': gw.port,
            'san_login': 'admin',
            'san_password': 'password',
            'powerflex_storage_pools': f'{DOMAIN}:{POOL}',
            'driver_ssl_cert_verify': True,
            'driver_ssl_cert_path': cert_path or gw.cert_path,
        }
        options.update(extra)
        for name, value in options.items():
            self.override_config(name, value, group=BACKEND)
        return cfg

    def make_driver(self, gw: gateway.PowerFlexGateway | None = None,
                    **extra: Any) -> pf_driver.PowerFlexDriver:
        drv = pf_driver.PowerFlexDriver(configuration=self.configure(
            gw, **extra), host=f'cinder-volume@{BACKEND}')
        drv.do_setup(self.ctxt)
        drv.check_for_setup_error()
        return drv

    # -- Cinder objects ---
    @property
    def volume_host(self) -> str:
        return f'cinder-volume@{BACKEND}#{DOMAIN}:{POOL}'

    # -- the array's view ---
    def inventory(self) -> dict[str, Any]:
        return self.gw.inventory()

    def array_volume(self, provider_id: str) -> dict[str, Any] | None:
        for v in self.inventory()['volumes']:
            if v['id'] == provider_id:
                return v
        return None

    def pool_usage(self) -> dict[str, Any]:
        (pool,) = self.inventory()['pools']
        return pool

    def sdc_id(self, guid: str) -> str:
        for sdc in self.inventory()['sdcs']:
            if sdc['sdcGuid'] == guid:
                return sdc['id']
        raise AssertionError(f'no SDC {guid}')

    def assertArrayEmpty(self) -> None:  # noqa: N802 (unittest style)
        inv = self.inventory()
        self.assertEqual([], inv['volumes'])
        self.assertEqual({}, inv['vtrees'])
        self.assertEqual([], inv['luns'])
