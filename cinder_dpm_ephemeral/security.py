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
"""Why a driver could not reach its array, said so an operator can act.

Cinder's own messages for the secure defaults' refusals name neither the
file nor the fix ("Error connecting via ssh: Host key for server ... does
not match", a bare ``SSLError``, a 401). :func:`setup_failure_hint` turns
the causes that are a security decision (an SSH host key that changed or is
unknown, a TLS certificate that does not verify, credentials the array
refuses) into one sentence naming the option, the file and the fix. It
never includes a password.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from cinder import exception
from oslo_config import cfg


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def _text(exc: BaseException) -> str:
    return ' '.join(f'{type(e).__name__}: {e}' for e in _chain(exc))


def setup_failure_hint(exc: BaseException, configuration: Any) -> str | None:
    """What went wrong and how to fix it, or None if not a security cause."""
    text = _text(exc)
    group = getattr(configuration, 'config_group', None) or 'backend'
    host = configuration.safe_get('san_ip')
    login = configuration.safe_get('san_login')
    conf = cfg.CONF
    if 'does not match' in text and 'Host key' in text:
        known = conf.ssh_hosts_key_file
        port = configuration.safe_get('san_ssh_port')
        return (f'[{group}] the SSH host key of {host} (port {port}) is not '
                f'the one recorded in {known} (ssh_hosts_key_file): the '
                f'connection was refused. If the array\'s key changed on '
                f'purpose (a node or its certificate replaced), check the '
                f'new key\'s fingerprint on the array, then replace the '
                f'line for that host in {known} (ssh-keyscan -p {port} '
                f'{host}); otherwise something may be intercepting the '
                f'connection')
    if 'not found in known_hosts' in text:
        known = conf.ssh_hosts_key_file
        return (f'[{group}] the SSH host key of {host} is not in {known} '
                f'(ssh_hosts_key_file) and strict_ssh_host_key_policy is '
                f'True: add the array\'s key to that file after checking '
                f'its fingerprint on the array')
    if ('CERTIFICATE_VERIFY_FAILED' in text or
            'certificate verify failed' in text):
        cert = configuration.safe_get('driver_ssl_cert_path')
        where = cert or 'the system CA bundle'
        return (f'[{group}] the TLS certificate of {host} does not verify '
                f'against {where} (driver_ssl_cert_path): the connection '
                f'was refused. Give the CA certificate that signed the '
                f'gateway\'s certificate in driver_ssl_cert_path; '
                f'driver_ssl_cert_verify = False turns verification off '
                f'and lets anyone on the path impersonate the array')
    if ('Authentication failed' in text or 'AuthenticationException' in text
            or 'tatus code: 401' in text or 'Unauthorized' in text or
            'Error getting token' in text):
        return (f'[{group}] the array at {host} refused the login of user '
                f'{login!r}: check san_login and san_password in '
                f'[{group}] of cinder.conf (the password is never logged)')
    return None


@contextlib.contextmanager
def explained(configuration: Any) -> Iterator[None]:
    """Re-raise a start-up failure with :func:`setup_failure_hint`'s words.

    The volume manager logs what ``do_setup`` or ``check_for_setup_error``
    raise ("Failed to initialize driver.") and leaves the backend
    uninitialized; the hint is that exception's message.
    """
    try:
        yield
    except Exception as exc:
        hint = setup_failure_hint(exc, configuration)
        if hint is None:
            raise
        raise exception.VolumeDriverException(message=hint) from exc


def insecure_settings(configuration: Any) -> list[str]:
    """The secure defaults this backend runs without, each with the fix.

    Cinder's own defaults verify neither the SVC's SSH host key
    (``strict_ssh_host_key_policy = False`` accepts the key of a host never
    seen) nor the PowerFlex gateway's certificate (``driver_ssl_cert_verify
    = False``); this project's configuration helpers, devstack plugin and
    documentation turn both on. Turning them off stays possible, as an
    explicit choice that is named at every start.
    """
    group = getattr(configuration, 'config_group', None) or 'backend'
    out = []
    if (configuration.safe_get('storwize_svc_volpool_name') and
            not cfg.CONF.strict_ssh_host_key_policy):
        out.append(f'[{group}] strict_ssh_host_key_policy is False in '
                   f'[DEFAULT]: an SSH host key never seen before is '
                   f'accepted, so anyone answering at '
                   f'{configuration.safe_get("san_ip")} gets the array '
                   f'password. Add the array\'s key to '
                   f'{cfg.CONF.ssh_hosts_key_file} and set '
                   f'strict_ssh_host_key_policy = True')
    if (configuration.safe_get('powerflex_storage_pools') and
            not configuration.safe_get('driver_ssl_cert_verify')):
        out.append(f'[{group}] driver_ssl_cert_verify is False: the '
                   f'PowerFlex gateway\'s TLS certificate is not verified, '
                   f'so anyone on the path gets the array password. Set '
                   f'driver_ssl_cert_verify = True and driver_ssl_cert_path '
                   f'to the CA that signed the gateway\'s certificate')
    return out
