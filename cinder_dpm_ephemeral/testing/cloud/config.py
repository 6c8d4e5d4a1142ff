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
"""Every configuration file of the cloud, generated from one place.

Each service's options are a plain ``{section: {option: value}}`` mapping
built here and written as an ini file under ``<cloud>/etc/<project>/``.
The Cinder backend sections and the Nova filter options are the devstack
plugin's (devstack/settings, devstack/lib/cinder_backends_dpm_ephemeral,
devstack/plugin.sh): the same option names and values, so that running
this cloud exercises the configuration the plugin writes. Nova's
api-paste.ini is the wheel's own with the project's snippet
(etc/nova/api-paste-dpm-bfv.ini) merged in, as the plugin's sed does.
"""

from __future__ import annotations

import logging
import os
import pathlib
import re
from typing import Any

from cinder_dpm_ephemeral.testing.cloud import layout as lay

LOG = logging.getLogger(__name__)

Conf = dict[str, dict[str, Any]]


class Multi(list):  # type: ignore[type-arg]
    """A MultiOpt's values: one ``key = value`` line each."""


PASTE_SNIPPET = lay.REPO / 'etc' / 'nova' / 'api-paste-dpm-bfv.ini'
PASTE_COMPOSITES = ('openstack_compute_api_v21',
                    'openstack_compute_api_v21_legacy_v2_compatible')


def write_ini(path: pathlib.Path, conf: Conf) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for section, options in conf.items():
        lines.append(f'[{section}]')
        for key, value in options.items():
            if value is None:
                continue
            if isinstance(value, Multi):
                lines.extend(f'{key} = {v}' for v in value)
                continue
            if isinstance(value, bool):
                value = 'True' if value else 'False'
            elif isinstance(value, (list, tuple)):
                value = ','.join(str(v) for v in value)
            lines.append(f'{key} = {value}')
        lines.append('')
    path.write_text('\n'.join(lines))
    path.chmod(0o600)  # passwords inside
    return path


# -- pieces shared by several services ----------------------------------------
def _common(lo: lay.Layout, project: str) -> dict[str, Any]:
    return {
        'debug': False,
        'use_stderr': True,  # the process's stderr is its log file
        'transport_url': lo.transport_url,
        'state_path': str(lo.data / project),
    }


def _auth(lo: lay.Layout, user: str, project: str = 'service'
          ) -> dict[str, Any]:
    """A keystoneauth password plugin section for a user of ``project``."""
    return {
        'auth_type': 'password',
        'auth_url': lo.url('keystone'),
        'username': user,
        'password': lo.passwords[user],
        'user_domain_name': 'Default',
        'project_name': project,
        'project_domain_name': 'Default',
        'region_name': lay.REGION,
    }


def _authtoken(lo: lay.Layout, user: str) -> dict[str, Any]:
    section = _auth(lo, user)
    section.pop('region_name')
    section.update({
        'www_authenticate_uri': lo.url('keystone'),
        'region_name': lay.REGION,
        # Nova's calls to Cinder carry a service token (``service`` role);
        # Cinder refuses attachment deletes without one (it asks Nova unless
        # the request carries a service token with the service role).
        'service_token_roles': 'service',
        'service_token_roles_required': True,
    })
    return section


def _locks(lo: lay.Layout, project: str) -> dict[str, Any]:
    return {'lock_path': str(lo.data / project / 'locks')}


# -- Keystone -----------------------------------------------------------------
def keystone(lo: lay.Layout) -> Conf:
    common = _common(lo, 'keystone')
    del common['transport_url']
    return {
        'DEFAULT': common,
        'database': {'connection': lo.sqlite('keystone')},
        'token': {'provider': 'fernet', 'expiration': 14400},
        'fernet_tokens': {
            'key_repository': str(lo.data / 'keystone' / 'fernet-keys')},
        'credential': {
            'key_repository': str(lo.data / 'keystone' / 'credential-keys')},
        'cache': {'enabled': False},
    }


# -- Glance -------------------------------------------------------------------
def glance(lo: lay.Layout) -> Conf:
    store = lo.data / 'glance'
    common = _common(lo, 'glance')
    common.update({
        'enabled_backends': 'fs:file',
        'worker_self_reference_url': lo.url('glance'),
        'show_image_direct_url': False,
        'image_size_cap': 64 * 1024 ** 3,
    })
    return {
        'DEFAULT': common,
        'database': {'connection': lo.sqlite('glance')},
        'glance_store': {'default_backend': 'fs'},
        'fs': {'filesystem_store_datadir': str(store / 'images')},
        'os_glance_staging_store': {
            'filesystem_store_datadir': str(store / 'staging')},
        'os_glance_tasks_store': {
            'filesystem_store_datadir': str(store / 'tasks')},
        'keystone_authtoken': _authtoken(lo, 'glance'),
        'paste_deploy': {
            'flavor': 'keystone',
            'config_file': str(lay.venv_etc('glance') /
                               'glance-api-paste.ini')},
        'oslo_concurrency': _locks(lo, 'glance'),
    }


# -- Placement ----------------------------------------------------------------
def placement(lo: lay.Layout) -> Conf:
    common = _common(lo, 'placement')
    del common['transport_url']
    return {
        'DEFAULT': common,
        'placement_database': {'connection': lo.sqlite('placement')},
        'api': {'auth_strategy': 'keystone'},
        'keystone_authtoken': _authtoken(lo, 'placement'),
    }


# -- Neutron ------------------------------------------------------------------
def neutron(lo: lay.Layout) -> Conf:
    common = _common(lo, 'neutron')
    common.update({
        'core_plugin': 'ml2',
        # The L3 plugin: Neutron's port queries join its port forwardings.
        'service_plugins': 'router',
        'auth_strategy': 'keystone',
        'api_paste_config': str(lay.venv_etc('neutron') / 'api-paste.ini'),
        'bind_host': lay.HOST,
        'bind_port': lo.ports['neutron'],
        # No agents and no data plane: nothing to tell Nova about ports.
        'notify_nova_on_port_status_changes': False,
        'notify_nova_on_port_data_changes': False,
        'dhcp_agent_notification': False,
    })
    return {
        'DEFAULT': common,
        'database': {'connection': lo.sqlite('neutron')},
        'keystone_authtoken': _authtoken(lo, 'neutron'),
        'ml2': {'type_drivers': 'flat', 'tenant_network_types': '',
                'mechanism_drivers': '', 'extension_drivers': 'port_security'},
        'ml2_type_flat': {'flat_networks': '*'},
        'securitygroup': {'enable_security_group': True,
                          'firewall_driver': 'noop'},
        'nova': _auth(lo, 'nova'),
        'oslo_concurrency': _locks(lo, 'neutron'),
    }


# -- Cinder -------------------------------------------------------------------
# The golden cache's clean-up runs with the volume stats update, which
# Cinder 29 schedules every 60 s whatever backend_stats_polling_interval
# says (the periodic task's spacing is read when cinder.volume.manager is
# imported); 20 s here lets every stats update clean up, so the golden of
# an image deleted from Glance goes within about a minute.
_CACHE_CLEANUP = {'dpm_ephemeral_image_cache_cleanup_interval': 20}


def cinder_backends(lo: lay.Layout) -> Conf:
    """The two backend sections, as the devstack plugin writes them."""
    svc_state = lo.data / 'emulators' / 'svc'
    pf_state = lo.data / 'emulators' / 'powerflex'
    return {
        lay.SVC_BACKEND: {
            'volume_backend_name': lay.SVC_BACKEND,
            'volume_driver':
                'cinder_dpm_ephemeral.svc.driver.StorwizeEphemeralDriver',
            'san_ip': lay.HOST,
            'san_ssh_port': lo.ports['svc'],
            'san_login': 'superuser',
            'san_password': lo.passwords['svc'],
            'storwize_svc_volpool_name': lay.SVC_POOL,
            'dpm_ephemeral_emulator_state_dir': str(svc_state),
            **_CACHE_CLEANUP,
        },
        lay.POWERFLEX_BACKEND: {
            'volume_backend_name': lay.POWERFLEX_BACKEND,
            'volume_driver': 'cinder_dpm_ephemeral.powerflex.driver.'
                             'PowerFlexEphemeralDriver',
            'san_ip': lay.HOST,
            'powerflex_rest_server_port': lo.ports['powerflex'],
            'san_login': 'admin',
            'san_password': lo.passwords['powerflex'],
            'powerflex_storage_pools': lay.POWERFLEX_POOL,
            'driver_ssl_cert_verify': True,
            'driver_ssl_cert_path': str(pf_state / 'powerflex-gateway.crt'),
            'dpm_ephemeral_emulator_state_dir': str(pf_state),
            **_CACHE_CLEANUP,
        },
    }


#: ``DPM_CLOUD_STOCK_BACKEND=1`` (the cloud benchmark sets it; default off,
#: so tests and the demo see two backends) adds a third backend section:
#: Cinder's in-tree Storwize FC driver on the same emulated SVC and pool,
#: with Cinder's generic image-volume cache, for the stock side of
#: ``./run bench cloud``. Any other non-empty value names the driver class.
STOCK_BACKEND_ENV = 'DPM_CLOUD_STOCK_BACKEND'
STOCK_SVC_BACKEND = 'stock-svc'
#: The in-tree StorwizeSVCFCDriver with only the emulation data path mixed
#: in (image copies reach the emulated LUN files); needs the repository on
#: PYTHONPATH (the benchmark sets it).
STOCK_SVC_DRIVER = 'tools.bench.stock_drivers.StockStorwizeFCDriver'


def stock_backend_driver() -> str | None:
    value = os.environ.get(STOCK_BACKEND_ENV, '')
    if value in ('', '0'):
        return None
    return STOCK_SVC_DRIVER if value == '1' else value


def stock_svc_backend(lo: lay.Layout, driver: str) -> Conf:
    """Stock Cinder on the SVC, tuned as an operator would tune it.

    The storage benchmark's STOCK_TUNED (tools/bench/storage.py).
    """
    return {STOCK_SVC_BACKEND: {
        'volume_backend_name': STOCK_SVC_BACKEND,
        'volume_driver': driver,
        'san_ip': lay.HOST,
        'san_ssh_port': lo.ports['svc'],
        'san_login': 'superuser',
        'san_password': lo.passwords['svc'],
        'storwize_svc_volpool_name': lay.SVC_POOL,
        'dpm_ephemeral_emulator_state_dir':
            str(lo.data / 'emulators' / 'svc'),
        # Cinder's generic image-volume cache (entries owned by the
        # internal tenant set in [DEFAULT]), unlimited in size and count.
        'image_volume_cache_enabled': True,
        'image_volume_cache_max_size_gb': 0,
        'image_volume_cache_max_count': 0,
        # FlashCopy at the SVC's highest copy and clean rates (2 GiB/s).
        'storwize_svc_flashcopy_rate': 150,
        'storwize_svc_clean_rate': 150,
    }}


def cinder(lo: lay.Layout, internal_project_id: str,
           internal_user_id: str) -> Conf:
    common = _common(lo, 'cinder')
    common.update({
        'host': lay.STORAGE_HOST,
        'auth_strategy': 'keystone',
        'api_paste_config': str(lay.venv_etc('cinder') / 'api-paste.ini'),
        'enabled_backends': [lay.SVC_BACKEND, lay.POWERFLEX_BACKEND],
        'default_volume_type': lay.DPM_VOLUME_TYPE,
        'glance_catalog_info': 'image:glance:publicURL',
        'image_conversion_dir': str(lo.data / 'cinder' / 'conversion'),
        # Golden volumes belong to Cinder's internal tenant.
        'cinder_internal_tenant_project_id': internal_project_id,
        'cinder_internal_tenant_user_id': internal_user_id,
        # The emulated SVC's host key is the only one known (devstack).
        'strict_ssh_host_key_policy': True,
        'ssh_hosts_key_file': str(lo.data / 'emulators' / 'svc' /
                                  'known_hosts'),
        'scheduler_driver_init_wait_time': 5,
        'periodic_interval': 10,
        'quota_volumes': -1, 'quota_snapshots': -1, 'quota_gigabytes': -1,
        'osapi_volume_workers': 1,
        'rootwrap_config': str(lo.conf('cinder', 'rootwrap.conf')),
    })
    conf: Conf = {
        'DEFAULT': common,
        'database': {'connection': lo.sqlite('cinder')},
        'keystone_authtoken': _authtoken(lo, 'cinder'),
        'nova': {**_auth(lo, 'cinder'), 'interface': 'public'},
        # The golden cache's clean-up asks Glance with these (no user
        # token behind a periodic task; image_cache/glance_access.py).
        'glance': _auth(lo, 'cinder'),
        'service_user': {**_auth(lo, 'cinder'),
                         'send_service_user_token': True},
        # Real (file) locks: the golden cache's single flight (tooz).
        'coordination': {
            'backend_url': 'file://' + str(lo.data / 'cinder' / 'coord')},
        'oslo_concurrency': _locks(lo, 'cinder'),
    }
    conf.update(cinder_backends(lo))
    stock = stock_backend_driver()
    if stock:
        conf.update(stock_svc_backend(lo, stock))
        common['enabled_backends'] = [*common['enabled_backends'],
                                      STOCK_SVC_BACKEND]
    return conf


# -- Nova ---------------------------------------------------------------------
def nova_paste_text() -> str:
    """Nova's api-paste.ini with the project's filter snippet merged in."""
    nova_ini = lay.venv_etc('nova') / 'api-paste.ini'
    ours = _paste_sections(PASTE_SNIPPET.read_text())
    text = nova_ini.read_text()
    for name in PASTE_COMPOSITES:
        found = re.search(r'^keystone = .*$', ours['composite:' + name],
                          flags=re.M)
        assert found is not None
        pattern = re.compile(r'(^\[composite:%s\]\s*$.*?)^keystone = [^\n]*$'
                             % re.escape(name), flags=re.M | re.S)
        wanted = found.group(0)
        text, count = pattern.subn(
            lambda m, w=wanted: m.group(1) + w, text, count=1)
        if count != 1:
            raise RuntimeError(f'composite {name} not found in {nova_ini}')
    return text + '\n[filter:dpm_bfv]' + ours['filter:dpm_bfv']


def _paste_sections(text: str) -> dict[str, str]:
    parts = re.split(r'^\[([^\]]+)\]\s*$', text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def nova_cell1_url(lo: lay.Layout) -> str:
    return lo.sqlite('nova_cell1')


def nova_cell0_url(lo: lay.Layout) -> str:
    return lo.sqlite('nova_cell0')


def nova(lo: lay.Layout, compute: Conf) -> Conf:
    """nova.conf; ``compute`` adds the virt driver's options."""
    common = _common(lo, 'nova')
    common.update({
        'host': lay.COMPUTE_HOST,
        'my_ip': lay.HOST,
        'instances_path': str(lo.data / 'nova' / 'instances'),
        'osapi_compute_workers': 1,
        # Nova polls Cinder while the volume is made from the image; a
        # storm of new servers waits for one download.
        'block_device_allocate_retries': 300,
        'block_device_allocate_retries_interval': 1,
        'heal_instance_info_cache_interval': -1,
        'resume_guests_state_on_host_boot': False,
        'rootwrap_config': str(lo.conf('nova', 'rootwrap.conf')),
    })
    conf: Conf = {
        'DEFAULT': common,
        'api': {'auth_strategy': 'keystone'},
        'wsgi': {'api_paste_config': str(lo.conf('nova', 'api-paste.ini'))},
        'api_database': {'connection': lo.sqlite('nova_api')},
        'database': {'connection': nova_cell1_url(lo)},
        'keystone_authtoken': _authtoken(lo, 'nova'),
        'placement': _auth(lo, 'placement'),
        'neutron': {**_auth(lo, 'neutron'),
                    'service_metadata_proxy': False},
        'cinder': {**_auth(lo, 'nova'), 'os_region_name': lay.REGION},
        'glance': {'region_name': lay.REGION},
        'service_user': {**_auth(lo, 'nova'),
                         'send_service_user_token': True},
        'scheduler': {'workers': 1, 'discover_hosts_in_cells_interval': -1},
        'conductor': {'workers': 1},
        'vnc': {'enabled': False},
        'oslo_concurrency': _locks(lo, 'nova'),
        # The devstack plugin's filter settings (configure_dpm_ephemeral_nova).
        'dpm_boot_from_volume': {'volume_type': lay.DPM_VOLUME_TYPE,
                                 'translate_all': False},
    }
    for section, options in compute.items():
        conf.setdefault(section, {}).update(options)
    return conf


def nova_cpu(lo: lay.Layout, compute: Conf) -> Conf:
    """nova-cpu.conf, nova-compute's only file: nova.conf, no database.

    A compute service reaches the database through nova-conductor only
    (Nova's cells v2 layout; devstack writes nova-cpu.conf the same way).
    The options must be absent, not empty: with ``[api_database]
    connection`` set at all, nova-compute's start asks every cell for the
    minimum service version itself, is refused ("No DB access allowed in
    nova-compute", logged as an ERROR at each start) and falls back.
    """
    conf = nova(lo, compute)
    for section in ('database', 'api_database'):
        conf.pop(section)
    return conf


def fake_compute() -> Conf:
    return {'DEFAULT': {'compute_driver': 'fake.FakeDriver'}}


HMC_CPC = 'CPC1'
HMC_ADAPTERS = ('fcp1', 'fcp2')
HMC_USER = 'hmcuser'


def dpm_compute(lo: lay.Layout) -> Conf:
    """The DPM driver on the emulated HMC's CPC (nova_shim/virt/dpm)."""
    from cinder_dpm_ephemeral.emulators.hmc import definition

    state = lo.data / 'emulators' / 'hmc'
    return {
        'DEFAULT': {'compute_driver': 'dpm.DPMDriver',
                    'reserved_host_memory_mb': 0},
        'dpm': {
            'hmc': lay.HOST,
            'hmc_port': lo.ports['hmc'],
            'hmc_username': HMC_USER,
            'hmc_password': lo.passwords['hmc'],
            'hmc_verify_cert': True,
            'hmc_ca_certs': str(state / 'hmc-emulator.crt'),
            'cpc_object_id': definition.cpc_object_id(HMC_CPC),
            'max_processors': 16,
            'max_memory': 256 * 1024,
            'physical_storage_adapter_mappings': Multi(
                f'{definition.adapter_object_id(HMC_CPC, a)}:{port}'
                for a in HMC_ADAPTERS for port in (0, 1)),
        },
    }


def rootwrap(project: str) -> Conf:
    """rootwrap.conf reading the filters the wheels install."""
    filters = [str(lay.venv_etc(project) / 'rootwrap.d'),
               str(lay.venv_etc('os-brick') / 'rootwrap.d')]
    return {'DEFAULT': {
        'filters_path': filters,
        'exec_dirs': [lay.venv_bin('').rstrip('/'), '/sbin', '/usr/sbin',
                      '/bin', '/usr/bin', '/usr/local/bin'],
        'use_syslog': False}}


# -- the whole set ------------------------------------------------------------
def write_keystone(lo: lay.Layout) -> pathlib.Path:
    return write_ini(lo.conf('keystone'), keystone(lo))


def write_services(lo: lay.Layout, ids: dict[str, str],
                   compute: Conf) -> None:
    """Every file but Keystone's; ``ids`` from the Keystone bootstrap."""
    write_ini(lo.conf('glance', 'glance-api.conf'), glance(lo))
    write_ini(lo.conf('placement'), placement(lo))
    write_ini(lo.conf('neutron'), neutron(lo))
    write_ini(lo.conf('cinder'),
              cinder(lo, ids['service_project_id'], ids['cinder_user_id']))
    write_ini(lo.conf('nova'), nova(lo, compute))
    write_ini(lo.conf('nova', 'nova-cpu.conf'), nova_cpu(lo, compute))
    for project in ('cinder', 'nova'):
        write_ini(lo.conf(project, 'rootwrap.conf'), rootwrap(project))
    paste = lo.conf('nova', 'api-paste.ini')
    paste.write_text(nova_paste_text())
