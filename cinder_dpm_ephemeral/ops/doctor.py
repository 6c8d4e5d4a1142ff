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
"""``cinder-dpm-ephemeral doctor``: each check OK or FAIL with its fix."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
from typing import Any

from cinder import coordination  # noqa: F401  ([coordination] options)
from cinder import ssh_utils  # noqa: F401  (ssh_hosts_key_file and policy)
from oslo_concurrency import processutils
from oslo_config import cfg
from oslo_log import log as logging

from cinder_dpm_ephemeral.ops import backend as be

LOG = logging.getLogger(__name__)
CONF = cfg.CONF

OK = 'OK'
FAIL = 'FAIL'
WARN = 'WARN'


@dataclasses.dataclass
class Check:
    name: str
    status: str
    detail: str
    fix: str = ''
    backend: str = ''


def _config_checks() -> list[Check]:
    out = []
    names = be.backends()
    if not names:
        out.append(Check('config', FAIL, 'no enabled_backends in [DEFAULT]',
                         'set enabled_backends = <section name> and give '
                         'the section a volume_driver of this project'))
    ours = [n for n in names if be.array_kind(be.backend_conf(n))]
    if names and not ours:
        out.append(Check('config', FAIL, 'no backend uses a driver of this '
                         'project (%s)' % ', '.join(names),
                         'volume_driver = cinder_dpm_ephemeral.svc.driver.'
                         'StorwizeEphemeralDriver (or the PowerFlex one)'))
    elif ours:
        out.append(Check('config', OK, 'backends %s' % ', '.join(ours)))
    project = CONF.cinder_internal_tenant_project_id
    user = CONF.cinder_internal_tenant_user_id
    if project and user:
        out.append(Check('internal tenant', OK,
                         'project %s, user %s' % (project, user)))
    else:
        out.append(Check('internal tenant', FAIL,
                         'cinder_internal_tenant_project_id/_user_id not '
                         'set: the golden cache is disabled',
                         'set both in [DEFAULT] (e.g. the service project '
                         'and the cinder user: openstack project show '
                         'service; openstack user show cinder)'))
    qemu = shutil.which('qemu-img')
    if qemu:
        # as Cinder runs it (green-thread safe in the volume service)
        version = processutils.execute(qemu, '--version')[0].split('\n')[0]
        out.append(Check('qemu-img', OK, version))
    else:
        out.append(Check('qemu-img', FAIL, 'qemu-img is not on PATH',
                         'install qemu-utils (Debian/Ubuntu) or qemu-img '
                         '(RHEL)'))
    url = CONF.coordination.backend_url
    if url.startswith('file://'):
        out.append(Check('coordination', OK,
                         '%s (locks on this host only: one volume service '
                         'per backend)' % url))
    else:
        out.append(Check('coordination', OK, url))
    return out


def _trust_check(name: str, conf: Any) -> Check:
    kind = be.array_kind(conf)
    if kind == be.SVC:
        path = CONF.ssh_hosts_key_file
        if not CONF.strict_ssh_host_key_policy:
            return Check('ssh host key', FAIL,
                         'strict_ssh_host_key_policy is False: any host '
                         'key is accepted', 'set strict_ssh_host_key_policy'
                         ' = True and put the SVC key in %s' % path, name)
        port = conf.safe_get('san_ssh_port') or 22
        ip = conf.safe_get('san_ip')
        wanted = ip if int(port) == 22 else '[%s]:%s' % (ip, port)
        try:
            with open(path) as f:
                known = any(line.split(' ', 1)[0].split(',').count(wanted)
                            for line in f)
        except OSError as exc:
            return Check('ssh host key', FAIL, '%s: %s' % (path, exc.strerror),
                         'ssh-keyscan -p %s %s >> %s, after comparing the '
                         'fingerprint with the SVC\'s' % (port, ip, path),
                         name)
        if not known:
            return Check('ssh host key', FAIL, 'no key for %s in %s'
                         % (wanted, path),
                         'ssh-keyscan -p %s %s >> %s, after comparing the '
                         'fingerprint with the SVC\'s' % (port, ip, path),
                         name)
        return Check('ssh host key', OK, '%s in %s' % (wanted, path), '',
                     name)
    verify = conf.safe_get('driver_ssl_cert_verify')
    path = conf.safe_get('driver_ssl_cert_path')
    if not verify:
        return Check('tls', FAIL, 'driver_ssl_cert_verify is False',
                     'set driver_ssl_cert_verify = True and '
                     'driver_ssl_cert_path = <CA bundle of the gateway>',
                     name)
    if path and not os.path.isfile(path):
        return Check('tls', FAIL, 'driver_ssl_cert_path %s does not exist'
                     % path, 'copy the CA bundle that signed the '
                     'gateway certificate there', name)
    return Check('tls', OK, 'verified against %s' % (path or 'system CAs'),
                 '', name)


def array_fix(text: str, name: str, where: str) -> str:
    """What to do about an array that refused the driver's setup.

    Read from the error's text: an HTTP 401 or a refused login, an SSH
    host key, a certificate, else an array that does not answer. Whole
    words only: a port such as 40123 in "Unable to connect to port 40123"
    is not an HTTP 401.
    """
    low = text.lower()
    if _AUTH.search(low):
        return 'check san_login / san_password of [%s]' % name
    if 'host key' in low or 'known_hosts' in low:
        return 'add the array\'s host key to ssh_hosts_key_file'
    if 'certificate' in low or 'ssl' in low:
        return 'check driver_ssl_cert_path: the CA of the gateway'
    return ('start the array (or its emulator) or fix san_ip / port of '
            '[%s]: %s is not answering' % (name, where))


_AUTH = re.compile(r'auth|password|\b401\b')


def _array_check(name: str, conf: Any) -> tuple[Check, Any]:
    kind = be.array_kind(conf)
    port = (conf.safe_get('san_ssh_port') if kind == be.SVC else
            conf.safe_get('powerflex_rest_server_port'))
    where = '%s:%s' % (conf.safe_get('san_ip'), port)
    try:
        driver = be.build_driver(name)
    except Exception as exc:
        text = str(exc)
        fix = array_fix(text, name, where)
        return Check('array', FAIL, '%s at %s: %s' % (kind, where,
                                                      text[:300]),
                     fix, name), None
    return Check('array', OK, '%s at %s answers, credentials accepted'
                 % (kind, where), '', name), driver


def run() -> list[Check]:
    checks = _config_checks()
    for name in be.backends():
        conf = be.backend_conf(name)
        if not be.array_kind(conf):
            continue
        checks.append(_trust_check(name, conf))
        check, driver = _array_check(name, conf)
        checks.append(check)
        if driver is not None:
            be.close_driver(driver)
    return checks
