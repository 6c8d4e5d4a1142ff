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
"""The wheel installs each half alone, with only that half's dependencies.

The project's wheel is built from a copy of the tracked files without
``.git`` (pbr takes the version from ``PBR_VERSION``, as in a tarball
export). Its metadata must declare the Cinder half and the Nova half as
extras, with no exact pin. Then for each extra a fresh venv (no system
site-packages) gets exactly the distributions that extra needs, resolved
from the requirements declared in the wheel's METADATA and linked file by
file from this environment's site-packages, and pip installs the wheel
into it with ``--no-deps --no-index``. Each half then imports in that
venv, and the other half's framework is absent there.
"""

from __future__ import annotations

import email.parser
import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
import testtools

REPO = pathlib.Path(__file__).resolve().parents[3]

CINDER_PROBE = r'''
import importlib.util, sys
from cinder import objects
objects.register_all()  # what cinder-volume does before loading a driver
import cinder_dpm_ephemeral.svc.driver
import cinder_dpm_ephemeral.powerflex.driver
import cinder_dpm_ephemeral.image_cache.cache
for absent in ('nova.compute', 'zhmcclient'):  # nova/virt/dpm is ours
    assert importlib.util.find_spec(absent) is None, absent
print('CINDER-HALF', cinder_dpm_ephemeral.svc.driver.__file__)
'''

NOVA_PROBE = r'''
import importlib.util
import nova_shim.api.bfv_filter
import nova.virt.dpm
import nova_shim.virt.dpm.driver
for absent in ('cinder',):
    assert importlib.util.find_spec(absent) is None, absent
print('NOVA-HALF', nova.virt.dpm.__file__)
'''


def _run(*argv: str, **kwargs: object) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True,
                          timeout=300, **kwargs)  # type: ignore[call-overload]


def _closure(requires: list[str], extras: set[str]) -> set[str]:
    """Distribution names needed by ``requires`` (with ``extras``)."""
    seen: set[str] = set()
    todo = [(r, frozenset(extras)) for r in requires]
    while todo:
        text, wanted = todo.pop()
        req = Requirement(text)
        env_extras = wanted or frozenset([''])
        if req.marker and not any(
                req.marker.evaluate({'extra': e}) for e in env_extras):
            continue
        name = canonicalize_name(req.name)
        key = name + '[' + ','.join(sorted(req.extras)) + ']'
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            continue  # an optional platform dependency nobody installed
        for sub in dist.requires or []:
            todo.append((sub, frozenset(req.extras)))
    return {k.split('[')[0] for k in seen}


def _link_distributions(names: set[str], site: str) -> None:
    """Link every file of the named distributions into ``site``."""
    for name in names:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for f in dist.files or []:
            if str(f).startswith('..') or '__pycache__' in str(f):
                continue
            src = pathlib.Path(str(dist.locate_file(f)))
            dst = pathlib.Path(site, str(f))
            if dst.exists() or not src.exists():
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(src, dst)


class WheelHalvesTest(testtools.TestCase):

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix='dpm-wheel-')
        export = os.path.join(cls.tmp, 'export')
        tracked = _run('git', '-C', str(REPO), 'ls-files', '-z',
                       check=True).stdout.split('\0')
        for rel in filter(None, tracked):
            src = REPO / rel
            if src.is_file():
                dst = pathlib.Path(export, rel)
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
        cls.export = export
        cls.tracked = sorted(filter(None, tracked))
        env = dict(os.environ, PBR_VERSION='1.0.0')
        wheels = os.path.join(cls.tmp, 'wheels')
        _run(sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps',
             '--no-build-isolation', '-w', wheels, export, check=True,
             env=env)
        [cls.wheel] = [os.path.join(wheels, w) for w in os.listdir(wheels)]
        with zipfile.ZipFile(cls.wheel) as z:
            [meta] = [n for n in z.namelist()
                      if n.endswith('.dist-info/METADATA')]
            cls.meta = email.parser.Parser().parsestr(z.read(meta).decode())

    @classmethod
    def tearDownClass(cls) -> None:
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    def _requires(self, extra: str | None) -> list[str]:
        out = []
        for text in self.meta.get_all('Requires-Dist') or []:
            req = Requirement(text)
            if extra is None and req.marker is None:
                out.append(text)
            elif extra and req.marker and req.marker.evaluate(
                    {'extra': extra}):
                out.append(text)
        return out

    def test_metadata(self) -> None:
        self.assertEqual('1.0.0', self.meta['Version'])
        self.assertEqual('<3.12,>=3.11', self.meta['Requires-Python'])
        extras = set(self.meta.get_all('Provides-Extra') or [])
        self.assertTrue({'cinder', 'nova', 'emulators'} <= extras, extras)
        everything = self.meta.get_all('Requires-Dist') or []
        pinned = [r for r in everything
                  if any(s.operator in ('==', '===')
                         for s in Requirement(r).specifier)]
        self.assertEqual([], pinned)
        names = {e: {canonicalize_name(Requirement(r).name)
                     for r in self._requires(e)}
                 for e in (None, 'cinder', 'nova')}
        self.assertIn('cinder', names['cinder'])
        self.assertNotIn('nova', names['cinder'])
        self.assertNotIn('zhmcclient', names['cinder'])
        self.assertIn('nova', names['nova'])
        self.assertIn('zhmcclient', names['nova'])
        self.assertNotIn('cinder', names['nova'])
        self.assertFalse({'cinder', 'nova', 'zhmcclient', 'paramiko'}
                         & names[None])
        with zipfile.ZipFile(self.wheel) as z:
            files = z.namelist()
        self.assertIn('nova/virt/dpm/__init__.py', files)
        self.assertNotIn('nova/__init__.py', files)
        ep = [n for n in files if n.endswith('entry_points.txt')]
        with zipfile.ZipFile(self.wheel) as z:
            scripts = z.read(ep[0]).decode()
        self.assertIn('cinder-dpm-ephemeral = '
                      'cinder_dpm_ephemeral.ops.cli:main', scripts)
        self.assertIn('nova-dpm-doctor = nova_shim.virt.dpm.doctor:main',
                      scripts)

    def test_sdist_without_git(self) -> None:
        # reno is installed here (release notes): without .git it must not
        # break the sdist, and MANIFEST.in must carry what git would list
        env = dict(os.environ, PBR_VERSION='1.0.0', PYTHONWARNINGS='ignore')
        env.pop('SKIP_GENERATE_RENO', None)
        sdists = os.path.join(self.tmp, 'sdist')
        out = _run(sys.executable, 'setup.py', '-q', 'sdist', '-d', sdists,
                   cwd=self.export, env=env)
        self.assertEqual(0, out.returncode, out.stderr[-3000:])
        [tarball] = os.listdir(sdists)
        unpacked = os.path.join(self.tmp, 'from-sdist')
        shutil.unpack_archive(os.path.join(sdists, tarball), unpacked)
        [top] = os.listdir(unpacked)
        root = pathlib.Path(unpacked, top)
        have = {str(p.relative_to(root)) for p in root.rglob('*')
                if p.is_file()}
        missing = set(self.tracked) - have - {'.gitignore'}
        self.assertEqual(set(), missing)
        # and a wheel built from the sdist is the wheel built from the tree
        wheels = os.path.join(self.tmp, 'wheels-from-sdist')
        _run(sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps',
             '--no-build-isolation', '-w', wheels, str(root), check=True,
             env=env)
        [wheel] = os.listdir(wheels)
        with zipfile.ZipFile(os.path.join(wheels, wheel)) as z, \
                zipfile.ZipFile(self.wheel) as ref:
            self.assertEqual(sorted(ref.namelist()), sorted(z.namelist()))

    def _half(self, extra: str, probe: str) -> str:
        venv = os.path.join(self.tmp, 'venv-' + extra)
        _run(sys.executable, '-m', 'venv', '--without-pip', venv, check=True)
        python = os.path.join(venv, 'bin', 'python')
        site = _run(python, '-c', 'import sysconfig; '
                    'print(sysconfig.get_paths()["purelib"])',
                    check=True).stdout.strip()
        self.assertNotEqual(sysconfig.get_paths()['purelib'], site)
        needed = _closure(self._requires(None) + self._requires(extra),
                          {extra})
        _link_distributions(needed, site)
        out = _run(sys.executable, '-m', 'pip', '--python', python,
                   'install', '-q', '--no-deps', '--no-index', self.wheel)
        self.assertEqual(0, out.returncode, out.stderr)
        env = dict(os.environ, PYTHONWARNINGS='ignore')
        env.pop('PYTHONPATH', None)
        out = _run(python, '-c', probe, cwd=self.tmp, env=env)
        self.assertEqual(0, out.returncode, out.stderr[-3000:])
        return out.stdout

    def test_cinder_half_alone(self) -> None:
        out = self._half('cinder', CINDER_PROBE)
        self.assertIn('CINDER-HALF', out)
        self.assertNotIn(str(REPO), out)

    def test_nova_half_alone(self) -> None:
        out = self._half('nova', NOVA_PROBE)
        self.assertIn('NOVA-HALF', out)
        self.assertNotIn(str(REPO), out)
