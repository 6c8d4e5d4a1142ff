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
"""The cloud's generated configuration against the devstack plugin's.

No cloud is started: these read what ``cloud/config.py`` would write.
"""

from __future__ import annotations

import configparser
import pathlib
import re

import fixtures
import testtools

from cinder_dpm_ephemeral.testing.cloud import config
from cinder_dpm_ephemeral.testing.cloud import layout as lay

DEVSTACK = lay.REPO / 'devstack'


def _iniset_options(path: pathlib.Path, section_var: str) -> set[str]:
    """Options a devstack script sets with ``iniset $CONF <section> OPT``."""
    text = path.read_text()
    return set(re.findall(r'iniset \$\w+ %s (\w+)' % re.escape(section_var),
                          text))


class GeneratedConfigTest(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        root = pathlib.Path(self.useFixture(fixtures.TempDir()).path)
        self.lo = lay.Layout.load(root)

    def test_cinder_backends_set_what_the_plugin_sets(self) -> None:
        plugin = _iniset_options(
            DEVSTACK / 'lib' / 'cinder_backends_dpm_ephemeral', r'\$be_name')
        sections = config.cinder_backends(self.lo)
        both = set(sections[lay.SVC_BACKEND]) | set(
            sections[lay.POWERFLEX_BACKEND])
        self.assertEqual(set(), plugin - both)
        defaults = _iniset_options(
            DEVSTACK / 'lib' / 'cinder_backends_dpm_ephemeral', 'DEFAULT')
        conf = config.cinder(self.lo, 'project-id', 'user-id')
        self.assertEqual(set(), defaults - set(conf['DEFAULT']))
        internal = _iniset_options(DEVSTACK / 'plugin.sh', 'DEFAULT')
        self.assertEqual(set(), internal - set(conf['DEFAULT']))

    def test_nova_filter_options_and_paste_pipeline(self) -> None:
        plugin = _iniset_options(DEVSTACK / 'plugin.sh',
                                 'dpm_boot_from_volume')
        nova = config.nova(self.lo, config.dpm_compute(self.lo))
        self.assertEqual(plugin, set(nova['dpm_boot_from_volume']))
        paste = configparser.ConfigParser(interpolation=None)
        paste.read_string(config.nova_paste_text())
        for name in config.PASTE_COMPOSITES:
            pipeline = paste['composite:' + name]['keystone'].split()
            self.assertEqual(pipeline.index('keystonecontext') + 1 +
                             ('legacy_v2_compatible' in pipeline),
                             pipeline.index('dpm_bfv'))
            self.assertEqual('osapi_compute_app_v21', pipeline[-1])
        self.assertIn('BootFromVolumeFilter',
                      paste['filter:dpm_bfv']['paste.filter_factory'])

    def test_multi_option_written_one_line_each(self) -> None:
        path = config.write_ini(self.lo.conf('nova'), config.nova(
            self.lo, config.dpm_compute(self.lo)))
        lines = [line for line in path.read_text().splitlines()
                 if line.startswith('physical_storage_adapter_mappings')]
        self.assertEqual(4, len(lines))
        self.assertEqual(0o600, path.stat().st_mode & 0o777)
