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
"""The HMC side of ``init_host``: session, CPC and adapter checks.

Everything goes through zhmcclient's public API. ``make_session`` is the
one place that builds a ``zhmcclient.Session`` (tests replace it with an
emulated HMC).
"""

import dataclasses
import logging
import time
from typing import Any

import requests
import zhmcclient
from oslo_config import cfg

from nova_shim.virt.dpm import conf as dpm_conf
from nova_shim.virt.dpm import exception

LOG = logging.getLogger(__name__)

# CPC states in which partitions can be managed (HMC WS API, CPC object
# "status" for DPM: active, service-required, degraded and exceptions
# still run partitions; not-operating, no-power, ... do not).
USABLE_CPC_STATES = ('active', 'service-required', 'degraded', 'exceptions')

STORAGE_FEATURE = 'dpm-storage-management'

PARTITION_PREFIX = 'OpenStack-'
UUID_LENGTH = 36


@dataclasses.dataclass(frozen=True)
class AdapterPort:
    """One ``physical_storage_adapter_mappings`` entry, resolved."""
    mapping: str
    adapter: zhmcclient.Adapter
    port: zhmcclient.Port

    @property
    def port_uri(self) -> str:
        return self.port.uri


def _required(conf: cfg.ConfigOpts, names: list[str]) -> None:
    group = conf[dpm_conf.DPM_GROUP]
    missing = [n for n in names if group[n] in (None, [], '')]
    if missing:
        raise exception.ConfigError(
            reason='%s not set: set %s in the [dpm] section of '
                   'nova-compute\'s configuration' % (
                       ', '.join(missing), ', '.join(missing)))


def check_config(conf: cfg.ConfigOpts) -> None:
    """Options that must be there before the HMC is contacted."""
    _required(conf, ['hmc', 'hmc_username', 'hmc_password', 'cpc_object_id',
                     'max_processors', 'max_memory',
                     'physical_storage_adapter_mappings'])
    limit = dpm_conf.HMC_NAME_MAX - len(PARTITION_PREFIX) - 1 - UUID_LENGTH
    if len(conf.host) > limit:
        raise exception.HostNameTooLong(
            host=conf.host, length=len(conf.host),
            limit=dpm_conf.HMC_NAME_MAX, max_host=limit)


def verify_cert(conf: cfg.ConfigOpts) -> bool | str:
    """``verify_cert`` for zhmcclient: False, True or the CA bundle path."""
    group = conf[dpm_conf.DPM_GROUP]
    if not group.hmc_verify_cert:
        return False
    return group.hmc_ca_certs or True


def transient(exc: Exception) -> bool:
    """Whether an HMC error may go away when the request is made again.

    A lost connection (not a certificate refused), a server error (5xx)
    or a busy object (409 reasons 1 and 2). Other 4xx errors (no such
    object, not enough memory, bad properties) stay as they are.
    """
    if isinstance(exc, zhmcclient.ConnectionError):
        return not isinstance(exc.details, requests.exceptions.SSLError)
    if isinstance(exc, zhmcclient.HTTPError):
        return exc.http_status >= 500 or (
            exc.http_status == 409 and exc.reason in (1, 2))
    return False


def call_again(call: Any, retries: int, interval: float,
               again: Any, what: str) -> Any:
    """``call()``, made again after an HMC error ``again(exc)`` accepts.

    Up to ``retries`` more times, ``interval`` seconds before the first
    retry, doubled for each further one.
    """
    attempt = 0
    while True:
        try:
            return call()
        except (zhmcclient.HTTPError, zhmcclient.ConnectionError) as exc:
            if attempt >= retries or not again(exc):
                raise
            delay = interval * 2 ** attempt
            attempt += 1
            LOG.warning('%s: %s; retry %d of %d in %.1f s', what,
                        str(exc)[:200], attempt, retries, delay)
            time.sleep(delay)


class RetryingSession(zhmcclient.Session):
    """zhmcclient's ``Session``, sending again what the HMC did not do.

    HMC WS API book, "HTTP status codes": 503 means the HMC could not
    process the request (reason 1: it is not communicating with the SE the
    request needs), 409 reasons 1 and 2 that the object is busy; neither
    changed anything, so any request is sent again. A query (GET) changes
    nothing: it is sent again after any server error (5xx) or a lost
    connection; a POST or DELETE whose answer was lost, or that failed
    with another 5xx, may have taken effect and is not. zhmcclient itself
    retries only connection failures of GETs. A POST of Submit Requests
    (``/api/services/aggregation/submit``, the aggregation service that
    zhmcclient's ``list(full_properties=True)`` uses to read many objects
    at once) whose requests are all GETs is a query too.
    """

    BULK = '/api/services/aggregation/submit'

    def __init__(self, *args: Any, retries: int = 3, interval: float = 1.0,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retries = retries
        self.interval = interval

    @staticmethod
    def _not_done(query: bool, exc: Exception) -> bool:
        """Whether the HMC surely did not act on the failed request.

        Any transient failure of a query (it changes nothing); for a POST
        or DELETE only a 503 or a busy 409, which the HMC answers without
        acting (a lost answer or another 5xx may follow the change).
        """
        if not transient(exc):
            return False
        return query or (isinstance(exc, zhmcclient.HTTPError)
                         and exc.http_status in (503, 409))

    def _again(self, method: str, uri: str, call: Any,
               query: bool = False) -> Any:
        return call_again(call, self.retries, self.interval,
                          lambda exc: self._not_done(query, exc),
                          'HMC %s %s' % (method, uri))

    def get(self, uri: str, *args: Any, **kwargs: Any) -> Any:
        return self._again('GET', uri,
                           lambda: super(RetryingSession, self).get(
                               uri, *args, **kwargs), query=True)

    def post(self, uri: str, resource: Any = None, body: Any = None,
             *args: Any, **kwargs: Any) -> Any:
        reads = (uri == self.BULK and isinstance(body, dict) and all(
            r.get('method') == 'GET' for r in body.get('requests') or [{}]))
        return self._again('POST', uri,
                           lambda: super(RetryingSession, self).post(
                               uri, resource, body, *args, **kwargs),
                           query=reads)

    def delete(self, uri: str, *args: Any, **kwargs: Any) -> Any:
        return self._again('DELETE', uri,
                           lambda: super(RetryingSession, self).delete(
                               uri, *args, **kwargs))


def make_session(conf: cfg.ConfigOpts) -> zhmcclient.Session:
    group = conf[dpm_conf.DPM_GROUP]
    hosts = list(group.hmc)
    if not group.hmc_verify_cert:
        LOG.warning('TLS verification of the HMC is off ([dpm] '
                    'hmc_verify_cert = false): use it only with a test HMC')
    return RetryingSession(
        hosts if len(hosts) > 1 else hosts[0], group.hmc_username,
        group.hmc_password, port=group.hmc_port,
        verify_cert=verify_cert(conf), retries=group.hmc_retries,
        interval=group.hmc_retry_interval)


def connection_error(conf: cfg.ConfigOpts, exc: zhmcclient.ConnectionError
                     ) -> exception.DPMDriverError:
    """A clear error for a failed first contact with the HMC."""
    group = conf[dpm_conf.DPM_GROUP]
    where = '%s port %d' % (','.join(group.hmc), group.hmc_port)
    text = '%s %s' % (exc, getattr(exc, 'details', '') or '')
    if 'CERTIFICATE_VERIFY_FAILED' in text or \
            'certificate verify failed' in text.lower():
        detail = 'certificate verify failed'
        for hint in ('self-signed certificate', 'unable to get local issuer',
                     'Hostname mismatch', 'certificate has expired',
                     "IP address mismatch"):
            if hint.lower() in text.lower():
                detail += ': ' + hint
                break
        return exception.HmcCertificateError(
            hmc=where, error=detail,
            ca=group.hmc_ca_certs or 'unset, the system trust store')
    return exception.HmcUnreachable(hmc=where, error=str(exc)[:200])


def find_cpc(client: zhmcclient.Client, conf: cfg.ConfigOpts
             ) -> zhmcclient.Cpc:
    """The configured CPC, checked against the configured subset."""
    group = conf[dpm_conf.DPM_GROUP]
    try:
        cpc = client.cpcs.find(**{'object-id': group.cpc_object_id})
    except zhmcclient.ConnectionError as exc:
        raise connection_error(conf, exc) from exc
    except zhmcclient.NotFound:
        raise exception.CpcNotFound(object_id=group.cpc_object_id,
                                    hmc=','.join(group.hmc))
    cpc.pull_full_properties()
    if not cpc.dpm_enabled:
        raise exception.CpcNotDpm(cpc_name=cpc.name)
    status = cpc.get_property('status')
    if status not in USABLE_CPC_STATES:
        raise exception.DPMDriverError(
            reason='CPC %s has status %s; partitions can be managed only '
                   'in %s. Bring the CPC to operating state first.'
                   % (cpc.name, status, ', '.join(USABLE_CPC_STATES)))
    for option, prop in (('max_processors', 'processor-count-ifl'),
                         ('max_memory', 'storage-customer')):
        available = cpc.get_property(prop)
        if group[option] > available:
            raise exception.CpcTooSmall(
                option=option, configured=group[option], cpc_name=cpc.name,
                property=prop, available=available)
    return cpc


def resolve_adapter_ports(cpc: zhmcclient.Cpc, conf: cfg.ConfigOpts
                          ) -> list[AdapterPort]:
    """The configured FCP adapter ports; each must exist and be ``fcp``."""
    group = conf[dpm_conf.DPM_GROUP]
    out: list[AdapterPort] = []
    seen: set[tuple[str, str]] = set()
    for mapping in group.physical_storage_adapter_mappings:
        adapter_id, port_index = mapping.rsplit(':', 1)
        adapter_id = adapter_id.lower()
        if (adapter_id, port_index) in seen:
            raise exception.AdapterError(
                mapping=mapping, reason='listed twice; remove one of them.')
        seen.add((adapter_id, port_index))
        try:
            adapter = cpc.adapters.find(**{'object-id': adapter_id})
        except zhmcclient.NotFound:
            raise exception.AdapterError(
                mapping=mapping,
                reason='CPC %s has no adapter with object-id %s; use the '
                       'object-id of one of its FCP adapters.'
                       % (cpc.name, adapter_id))
        kind = adapter.get_property('type')
        if kind != 'fcp':
            raise exception.AdapterError(
                mapping=mapping,
                reason='adapter %s is of type %s, not fcp; use an FCP '
                       'adapter (FICON Express configured as FCP).'
                       % (adapter.name, kind))
        port = None
        for candidate in adapter.ports.list():
            if candidate.uri.rsplit('/', 1)[-1] == port_index:
                port = candidate
                break
        if port is None:
            raise exception.AdapterError(
                mapping=mapping,
                reason='adapter %s has no port %s; use one of its ports '
                       '(%s).' % (adapter.name, port_index, ', '.join(
                           p.uri.rsplit('/', 1)[-1]
                           for p in adapter.ports.list())))
        out.append(AdapterPort(mapping=mapping, adapter=adapter, port=port))
    return out


def uses_storage_groups(cpc: zhmcclient.Cpc) -> bool:
    """Whether the CPC has the dpm-storage-management feature (z14+)."""
    # False where the HMC reports no firmware features at all (z13).
    return bool(cpc.firmware_feature_enabled(STORAGE_FEATURE))
