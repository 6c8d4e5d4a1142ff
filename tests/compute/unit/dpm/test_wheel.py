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
"""nova-compute's driver loader finds the DPM driver in an installed wheel.

Nova imports ``nova.virt.<compute_driver>``, and ``nova.virt`` is a regular
package: its ``__path__`` is the one directory Nova is installed in, so the
wheel's ``nova/virt/dpm`` works only when pip puts it into that same
``site-packages`` (as it does when both are installed into one
environment). The test builds the project's wheel, makes a throwaway venv
holding a copy of the installed Nova package (its other dependencies come
from this environment through a ``.pth`` line; the repository and its
editable install stay out), installs the wheel there with pip, and runs
``nova.virt.driver.load_compute_driver(None, 'dpm.DPMDriver')`` with that
venv's interpreter.
"""

import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile

import nova
import testtools

REPO = pathlib.Path(__file__).resolve().parents[4]

PROBE = r'''
from nova import monkey_patch; monkey_patch.patch()
from nova import config
config.parse_args([], default_config_files=[])
from nova.virt import driver
drv = driver.load_compute_driver(None, 'dpm.DPMDriver')
import nova.virt.dpm, nova_shim.virt.dpm.driver as real
print('LOADED', type(drv).__module__, type(drv).__name__)
print('SHIM', nova.virt.dpm.__file__)
print('REAL', real.__file__)
'''


def _run(*argv: str, **kwargs: object) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True,
                          timeout=300, **kwargs)  # type: ignore[call-overload]


class InstalledWheelTest(testtools.TestCase):

    def _venv_with_nova(self, tmp: str) -> tuple[str, str]:
        venv = os.path.join(tmp, 'venv')
        _run(sys.executable, '-m', 'venv', '--without-pip', venv,
             check=True)
        python = os.path.join(venv, 'bin', 'python')
        site = _run(python, '-c', 'import sysconfig; '
                    'print(sysconfig.get_paths()["purelib"])',
                    check=True).stdout.strip()
        installed = pathlib.Path(nova.__file__).parent
        shutil.copytree(installed, os.path.join(site, 'nova'),
                        ignore=shutil.ignore_patterns('tests',
                                                      '__pycache__'))
        for dist in installed.parent.glob('nova-*.dist-info'):
            shutil.copytree(dist, os.path.join(site, dist.name))
        with open(os.path.join(site, 'deps.pth'), 'w') as f:
            f.write(sysconfig.get_paths()['purelib'] + '\n')
        return python, site

    def test_load_compute_driver_from_installed_wheel(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            wheels = os.path.join(tmp, 'wheels')
            _run(sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps',
                 '--no-build-isolation', '-w', wheels, str(REPO), check=True)
            [wheel] = [os.path.join(wheels, w) for w in os.listdir(wheels)]
            names = zipfile.ZipFile(wheel).namelist()
            self.assertIn('nova/virt/dpm/__init__.py', names)
            self.assertIn('nova_shim/virt/dpm/driver.py', names)
            self.assertNotIn('nova/__init__.py', names)
            self.assertNotIn('nova/virt/__init__.py', names)

            python, site = self._venv_with_nova(tmp)
            out = _run(sys.executable, '-m', 'pip', '--python', python,
                       'install', '-q', '--no-deps', '--no-index', wheel)
            self.assertEqual(0, out.returncode, out.stderr)
            # Nova's own files are untouched by the install
            self.assertTrue(os.path.exists(
                os.path.join(site, 'nova', 'virt', 'driver.py')))

            env = dict(os.environ, PYTHONWARNINGS='ignore')
            env.pop('PYTHONPATH', None)
            out = _run(python, '-c', PROBE, cwd=tmp, env=env)
            self.assertEqual(0, out.returncode, out.stderr[-3000:])
            self.assertIn(
                'LOADED nova_shim.virt.dpm.driver DPMDriver', out.stdout)
            self.assertIn('SHIM %s' % os.path.join(
                site, 'nova', 'virt', 'dpm', '__init__.py'), out.stdout)
            self.assertIn('REAL %s' % os.path.join(
                site, 'nova_shim', 'virt', 'dpm', 'driver.py'), out.stdout)
