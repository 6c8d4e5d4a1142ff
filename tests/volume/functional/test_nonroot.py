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
"""The golden cache's data path as an unprivileged cinder-volume.

On a real host the attached LUN is a block device only root may open, and
cinder-volume runs as a system user whose root helper is ``sudo
cinder-rootwrap``. Here: the SVC emulator runs as root and keeps its LUN
files root-owned with mode 0600; the whole Cinder service (API, scheduler,
volume manager with this project's driver) runs in another process as a
system user, with a sudoers rule and a rootwrap configuration like a
distribution's cinder package installs (Cinder's own ``volume.filters``,
nothing added). Raw and qcow2 GPT boot disks must land on the LUNs
byte for byte; the LUN files must stay root's, mode 0600.
"""

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile

import testtools

from cinder_dpm_ephemeral.testing import backends

USER = 'dpm-cinder-test'
REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))))
VENV_BIN = os.path.dirname(sys.executable)


class NonRootDataPathTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest('needs root to create a user and a sudoers rule')
        for tool in ('sudo', 'useradd', 'runuser', 'visudo'):
            self.assertIsNotNone(shutil.which(tool),
                                 f'{tool} is required (./run installs sudo)')
        self.work = tempfile.mkdtemp(prefix='dpm-nonroot-')
        self.addCleanup(shutil.rmtree, self.work, ignore_errors=True)
        os.chmod(self.work, 0o755)  # noqa: S103 (the service user reads)
        self.uid = self._system_user()
        self._let_user_reach(os.path.realpath(sys.executable))
        self._let_user_reach(os.path.join(REPO, 'tests'))   # and the venv
        # Python lists the checkout to import from it: it must be readable
        # too (a checkout made by mktemp -d is 0700).
        self._let_user_read(REPO)
        self.rootwrap_conf = self._rootwrap()
        self._sudoers()
        # The array, as root; its LUN files are root's, mode 0600.
        self.backend = backends.SVCBackend(self.work).start()
        self.addCleanup(self.backend.stop)
        for path in (self.work, self.backend.state_dir):
            os.chmod(path, 0o755)  # noqa: S103

    def _system_user(self):
        try:
            return pwd.getpwnam(USER).pw_uid
        except KeyError:
            subprocess.run(['useradd', '--system', '--no-create-home',
                            '--shell', '/usr/sbin/nologin', USER],
                           check=True)
            return pwd.getpwnam(USER).pw_uid

    def _let_user_read(self, path):
        """Give others read and search permission on ``path`` (restored)."""
        mode = stat.S_IMODE(os.stat(path).st_mode)
        wanted = mode | stat.S_IROTH | stat.S_IXOTH
        if wanted != mode:
            os.chmod(path, wanted)
            self.addCleanup(os.chmod, path, mode)

    def _let_user_reach(self, path):
        """Give others search (x) permission on each parent that lacks it.

        The interpreter (pyenv) or the checkout may live under a private
        home such as /root; a packaged service's code is in /usr. Restored
        afterwards.
        """
        d = os.path.dirname(path)
        while d != '/':
            mode = stat.S_IMODE(os.stat(d).st_mode)
            if not mode & stat.S_IXOTH:
                os.chmod(d, mode | stat.S_IXOTH)
                self.addCleanup(os.chmod, d, mode)
            d = os.path.dirname(d)

    def _rootwrap(self):
        # Cinder's own filters, as its wheel ships them.
        filters = os.path.join(sys.prefix, 'etc', 'cinder', 'rootwrap.d')
        self.assertTrue(os.path.exists(os.path.join(filters,
                                                    'volume.filters')))
        conf = os.path.join(self.work, 'rootwrap.conf')
        with open(conf, 'w') as f:
            f.write('[DEFAULT]\n'
                    f'filters_path={filters}\n'
                    'exec_dirs=/sbin,/usr/sbin,/bin,/usr/bin,'
                    '/usr/local/bin,/usr/local/sbin\n'
                    'use_syslog=False\n')
        os.chmod(conf, 0o644)
        return conf

    def _sudoers(self):
        # What a cinder package installs, for a cinder-rootwrap in the venv.
        rule = (f'Defaults:{USER} secure_path="{VENV_BIN}:/usr/sbin:'
                f'/usr/bin:/sbin:/bin"\n'
                f'{USER} ALL = (root) NOPASSWD: {VENV_BIN}/cinder-rootwrap '
                f'{self.rootwrap_conf} *\n'
                f'{USER} ALL = (root) NOPASSWD: {VENV_BIN}/privsep-helper '
                f'*\n')
        path = f'/etc/sudoers.d/{USER}'
        with open(path, 'w') as f:
            f.write(rule)
        os.chmod(path, 0o440)
        self.addCleanup(os.unlink, path)
        subprocess.run(['visudo', '-c', '-f', path], check=True,
                       capture_output=True)

    def test_volume_service_as_a_system_user(self):
        home = os.path.join(self.work, 'home')
        os.makedirs(home)
        os.chown(home, self.uid, -1)
        result = os.path.join(home, 'result.json')
        spec = {'port': self.backend.emulator.port,
                'login': list(self.backend.login),
                'state_dir': self.backend.state_dir,
                'known_hosts': self.backend.emulator.known_hosts_path,
                'rootwrap_config': self.rootwrap_conf,
                'venv_bin': VENV_BIN,
                'result': result}
        env = {'PATH': f'{VENV_BIN}:/usr/sbin:/usr/bin:/sbin:/bin',
               'HOME': home, 'TMPDIR': home, 'PYTHONPATH': REPO,
               'PYTHONWARNINGS': 'ignore::DeprecationWarning',
               'DPM_NONROOT': json.dumps(spec)}
        run = subprocess.run(
            ['runuser', '-u', USER, '--', sys.executable, '-m',
             'testtools.run',
             'tests.volume.functional.nonroot_child.NonRootVolumeService'],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        if run.returncode:
            # Its log lines that say why, not the pages of INFO around them
            lines = (run.stdout + run.stderr).splitlines()
            why = [line for i, line in enumerate(lines)
                   if ' ERROR ' in line or 'Error' in line or
                   'Exception' in line or
                   (i and lines[i - 1].startswith('    ') and
                    not line.startswith(' '))]
            self.fail('the non-root volume service failed:\n' +
                      '\n'.join(why[-60:]))
        with open(result) as f:
            done = json.load(f)
        self.assertEqual({'raw', 'qcow2'}, set(done))
        luns = self.backend.luns
        for fmt, lun in done.items():
            self.assertEqual(lun['sha256'],
                             luns.sha256(lun['lun'], lun['size']), fmt)
        # Every LUN file (the golden volumes written by the non-root
        # service included) is still root's, mode 0600.
        files = [n for n in os.listdir(luns.root) if n.endswith('.lun')]
        self.assertGreaterEqual(len(files), 3)
        for name in files:
            st = os.stat(os.path.join(luns.root, name))
            self.assertEqual((0, 0, 0o600),
                             (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)),
                             f'LUN file {name}')
