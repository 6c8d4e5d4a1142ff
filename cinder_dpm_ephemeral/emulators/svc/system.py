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
"""System-level verbs: system, nodes, ports, I/O groups, pools, licences."""

from __future__ import annotations

from cinder_dpm_ephemeral.emulators.svc.common import (
    E_NOT_FOUND_NAME, Args, CLIError, Ctx, Detail, Result, Table,
    find_iogrp, fmt_size, iogrps)
from cinder_dpm_ephemeral.emulators.svc.state import EXTENT_SIZE, Obj

FC_PORTSET = 'portset64'
FC_PORTSET_ID = '64'


def lssystem(ctx: Ctx, args: Args) -> Result:
    s = ctx.data['system']
    total = sum(int(p['capacity']) for p in ctx.data['pools'].values())
    used = sum(ctx.state.pool_usage(p)['used']
               for p in ctx.data['pools'].values())
    b = args.bytes
    rows = [
        ('id', s['id']), ('name', s['name']), ('location', 'local'),
        ('partnership', ''), ('total_mdisk_capacity', fmt_size(total, b)),
        ('space_in_mdisk_grps', fmt_size(total, b)),
        ('space_allocated_to_vdisks', fmt_size(used, b)),
        ('total_free_space', fmt_size(total - used, b)),
        ('total_vdiskcopy_capacity', fmt_size(used, b)),
        ('statistics_status', 'on'), ('statistics_frequency', '5'),
        ('cluster_locale', 'en_US'), ('time_zone', '522 UTC'),
        ('code_level', s['code_level']), ('console_IP', '127.0.0.1:443'),
        ('id_alias', s['id']), ('gm_link_tolerance', '300'),
        ('email_reply', ''), ('inventory_mail_interval', '0'),
        ('cluster_ntp_IP_address', ''), ('cluster_isns_IP_address', ''),
        ('iscsi_auth_method', 'none'), ('iscsi_chap_secret', ''),
        ('auth_service_configured', 'no'), ('auth_service_enabled', 'no'),
        ('relationship_bandwidth_limit', '25'), ('tier', 'tier0_flash'),
        ('has_nas_key', 'no'), ('layer', 'replication'),
        ('rc_buffer_size', '256'), ('compression_active', 'no'),
        ('cache_prefetch', 'on'), ('local_fc_port_mask', '1' * 64),
        ('partner_fc_port_mask', '1' * 64), ('high_temp_mode', 'off'),
        ('topology', 'standard'), ('topology_status', ''),
        ('rc_auth_method', 'none'), ('vdisk_protection_time', '15'),
        ('vdisk_protection_enabled', 'no'),
        ('product_name', 'IBM SAN Volume Controller'),
        ('odx', 'off'), ('max_replication_delay', '0'),
        ('partnership_exclusion_threshold', '315'),
        ('gen1_compatibility_mode_enabled', 'no'),
        ('ibm_customer', ''), ('ibm_component', ''), ('ibm_country', ''),
        ('tier0_flash_compressed_data_used', '0.00MB'),
        ('easy_tier_acceleration', 'off'),
        ('enhanced_callhome', 'off'), ('censor_callhome', 'off'),
        ('host_unmap', 'off'), ('backend_unmap', 'on'),
        ('quorum_mode', 'standard'), ('quorum_site_id', ''),
        ('quorum_site_name', ''), ('quorum_lease', 'short'),
        ('automatic_vdisk_analysis_enabled', 'on'),
        ('callhome_accepted_usage', 'no'),
        ('safeguarded_copy_suspended', 'no'),
        ('flashcopy_default_grainsize', '256'),
    ]
    return Detail([rows])


def _node_row(ctx: Ctx, n: Obj) -> list[str]:
    s = ctx.data['system']
    iqn = 'iqn.1986-03.com.ibm:2145.%s.%s' % (
        s['name'].lower().replace(' ', ''), n['name'])
    return [str(n['id']), n['name'], '', n['WWNN'], 'online',
            str(n['iogrp']), 'io_grp%d' % n['iogrp'],
            'yes' if n['id'] == 1 else 'no', '', 'SV2', iqn, '',
            n['panel_name'], '', '', '', '', '']


_NODE_HEADER = ['id', 'name', 'UPS_serial_number', 'WWNN', 'status',
                'IO_group_id', 'IO_group_name', 'config_node',
                'UPS_unique_id', 'hardware', 'iscsi_name', 'iscsi_alias',
                'panel_name', 'enclosure_id', 'canister_id',
                'enclosure_serial_number', 'site_id', 'site_name']


def lsnode(ctx: Ctx, args: Args) -> Result:
    if args.obj:
        node = next((n for n in ctx.data['nodes']
                     if args.obj in (str(n['id']), n['name'])), None)
        if node is None:
            raise CLIError(E_NOT_FOUND_NAME)
        rows = list(zip(_NODE_HEADER, _node_row(ctx, node),
                        strict=True))
        for p in node['ports']:
            rows += [('port_id', p['WWPN']), ('port_status', 'active'),
                     ('port_speed', '16Gb')]
        return Detail([rows])
    return Table(list(_NODE_HEADER),
                 [_node_row(ctx, n) for n in ctx.data['nodes']])


def _fc_ports(ctx: Ctx) -> list[tuple[Obj, Obj]]:
    return [(n, p) for n in ctx.data['nodes'] for p in n['ports']]


def lsportfc(ctx: Ctx, args: Args) -> Result:
    header = ['id', 'fc_io_port_id', 'port_id', 'type', 'port_speed',
              'node_id', 'node_name', 'WWPN', 'nportid', 'status',
              'attachment', 'cluster_use', 'adapter_location',
              'adapter_port_id']
    rows = []
    for i, (n, p) in enumerate(_fc_ports(ctx)):
        rows.append([str(i), str(p['port_id']), str(p['port_id']), 'fc',
                     '16Gb', str(n['id']), n['name'], p['WWPN'],
                     '01%02X%02X' % (n['id'], p['port_id']), 'active',
                     'switch', 'local_partner', '1', str(p['port_id'])])
    return Table(header, rows)


def lstargetportfc(ctx: Ctx, args: Args) -> Result:
    """Physical ports (no host I/O) and their NPIV ports (host I/O)."""
    header = ['id', 'WWPN', 'WWNN', 'port_id', 'owning_node_id',
              'current_node_id', 'nportid', 'host_io_permitted',
              'virtualized', 'protocol', 'fc_io_port_id', 'portset_id',
              'portset_name']
    rows = []
    i = 1
    for n, p in _fc_ports(ctx):
        for npiv in (False, True):
            rows.append([
                str(i), p['npiv_WWPN'] if npiv else p['WWPN'], n['WWNN'],
                str(p['port_id']), str(n['id']), str(n['id']),
                '01%02X%02X' % (n['id'], p['port_id'] + (8 if npiv else 0)),
                'yes' if npiv else 'no', 'yes' if npiv else 'no',
                'scsi', str(p['port_id']),
                FC_PORTSET_ID if npiv else '', FC_PORTSET if npiv else ''])
            i += 1
    return Table(header, rows)


def lsfcportsetmember(ctx: Ctx, args: Args) -> Result:
    header = ['id', 'fc_io_port_id', 'portset_id', 'portset_name',
              'owner_id', 'owner_name']
    ports = sorted({p['port_id'] for _, p in _fc_ports(ctx)})
    rows = [[str(i), str(pid), FC_PORTSET_ID, FC_PORTSET, '', '']
            for i, pid in enumerate(ports)]
    return Table(header, rows)


def lsportip(ctx: Ctx, args: Args) -> Result:
    header = ['id', 'node_id', 'node_name', 'IP_address', 'mask', 'gateway',
              'IP_address_6', 'prefix_6', 'gateway_6', 'MAC', 'duplex',
              'state', 'speed', 'failover', 'link_state', 'host',
              'remote_copy', 'host_6', 'remote_copy_6', 'remote_copy_status',
              'remote_copy_status_6', 'vlan', 'vlan_6', 'adapter_location',
              'adapter_port_id', 'lossless_iscsi', 'lossless_iscsi6',
              'storage', 'storage_6']
    rows = []
    for n in ctx.data['nodes']:
        for failover in ('no', 'yes'):
            row = [''] * len(header)
            row[0], row[1], row[2] = '1', str(n['id']), n['name']
            row[11], row[13], row[15] = 'unconfigured', failover, 'no'
            rows.append(row)
    return Table(header, rows)


def lsip(ctx: Ctx, args: Args) -> Result:
    header = ['id', 'node_id', 'node_name', 'port_id', 'portset_id',
              'portset_name', 'IP_address', 'prefix', 'vlan', 'gateway',
              'owner_id', 'owner_name']
    return Table(header, [])


def lsiogrp(ctx: Ctx, args: Args) -> Result:
    vd_count: dict[int, int] = {}
    for v in ctx.data['vdisks'].values():
        vd_count[v['iogrp']] = vd_count.get(v['iogrp'], 0) + 1
    host_count = len(ctx.data['hosts'])
    header = ['id', 'name', 'node_count', 'vdisk_count', 'host_count',
              'site_id', 'site_name']

    def row(g: dict[str, object]) -> list[str]:
        gid = int(str(g['id']))
        return [str(gid), str(g['name']), str(g['node_count']),
                str(vd_count.get(gid, 0)),
                str(host_count if gid < 4 else 0), '', '']

    if args.obj:
        g = find_iogrp(ctx, args.obj)
        if g is None:
            raise CLIError(E_NOT_FOUND_NAME)
        return Detail([list(zip(header, row(g), strict=True))])
    return Table(header, [row(g) for g in iogrps(ctx)])


_POOL_HEADER = ['id', 'name', 'status', 'mdisk_count', 'vdisk_count',
                'capacity', 'extent_size', 'free_capacity',
                'virtual_capacity', 'used_capacity', 'real_capacity',
                'overallocation', 'warning', 'easy_tier', 'easy_tier_status',
                'compression_active', 'compression_virtual_capacity',
                'compression_compressed_capacity',
                'compression_uncompressed_capacity', 'parent_mdisk_grp_id',
                'parent_mdisk_grp_name', 'child_mdisk_grp_count',
                'child_mdisk_grp_capacity', 'type', 'encrypt', 'owner_type',
                'owner_id', 'owner_name', 'site_id', 'site_name',
                'data_reduction', 'used_capacity_before_reduction',
                'used_capacity_after_reduction', 'overhead_capacity',
                'deduplication_capacity_saving', 'reclaimable_capacity',
                'easy_tier_fcm_over_allocation_max', 'provisioning_policy_id',
                'provisioning_policy_name']


def _pool_row(ctx: Ctx, p: Obj, b: bool) -> list[str]:
    u = ctx.state.pool_usage(p)
    cap = int(p['capacity'])
    over = (u['virtual'] * 100 // cap) if cap else 0
    return [str(p['id']), p['name'], 'online', '1', str(u['vdisk_count']),
            fmt_size(cap, b), str(EXTENT_SIZE >> 20), fmt_size(u['free'], b),
            fmt_size(u['virtual'], b), fmt_size(u['used'], b),
            fmt_size(u['used'], b), str(over), '80', 'auto', 'balanced',
            'no', fmt_size(0, b), fmt_size(0, b), fmt_size(0, b),
            str(p['id']), p['name'], '0', fmt_size(0, b), 'parent', 'no',
            'none', '', '', '', '', 'no', fmt_size(0, b), fmt_size(0, b),
            fmt_size(0, b), fmt_size(0, b), fmt_size(0, b), '', '', '']


def lsmdiskgrp(ctx: Ctx, args: Args) -> Result:
    pools = sorted(ctx.data['pools'].values(), key=lambda p: p['id'])
    if args.obj:
        p = ctx.state.find('pools', args.obj)
        if p is None:
            raise CLIError(E_NOT_FOUND_NAME)
        return Detail([list(zip(_POOL_HEADER,
                                _pool_row(ctx, p, args.bytes), strict=True))])
    return Table(list(_POOL_HEADER),
                 [_pool_row(ctx, p, args.bytes) for p in pools])


def lslicense(ctx: Ctx, args: Args) -> Result:
    used = sum(ctx.state.pool_usage(p)['used']
               for p in ctx.data['pools'].values())
    rows = [('used_flash', '0.00'), ('used_remote', '0.00'),
            ('used_virtualization', '%.2f' % (used / (1 << 40))),
            ('license_flash', '0'), ('license_remote', '0'),
            ('license_virtualization', '0'),
            ('license_physical_disks', '0'), ('license_physical_flash', 'off'),
            ('license_physical_remote', 'off'),
            ('used_compression_capacity', '0.00'),
            ('license_compression_capacity', '0'),
            ('license_compression_enclosures', '0')]
    return Detail([rows])


def lsguicapabilities(ctx: Ctx, args: Args) -> Result:
    rows = [('license_scheme', '2145'), ('product_key', '2145'),
            ('flash_copy_maximum_size', '256.00TB'),
            ('has_storage_pools', 'yes'), ('hyperswap', 'yes'),
            ('easy_tier', 'yes'), ('compression', 'no')]
    return Detail([rows])


def lscloudcallhome(ctx: Ctx, args: Args) -> Result:
    return Detail([[('status', 'disabled'), ('connection', ''),
                    ('error_sequence_number', ''), ('last_success', ''),
                    ('last_failure', '')]])


def lsiscsiauth(ctx: Ctx, args: Args) -> Result:
    header = ['type', 'id', 'name', 'iscsi_auth_method', 'iscsi_chap_secret']
    rows = [['host', str(h['id']), h['name'], 'none', '']
            for h in ctx.data['hosts'].values()]
    return Table(header, rows)


def lsthrottle(ctx: Ctx, args: Args) -> Result:
    """Per-vdisk throttles set with ``chvdisk -rate`` (QoS)."""
    rows = []
    for v in sorted(ctx.data['vdisks'].values(), key=lambda v: v['id']):
        limits = v.get('throttle') or {}
        if limits:
            rows.append([str(v['id']), 'throttle%d' % v['id'], str(v['id']),
                         v['name'], 'vdisk',
                         str(limits.get('IOPs_limit', '')),
                         str(limits.get('bandwidth_limit_MB', ''))])
    return Table(['throttle_id', 'throttle_name', 'object_id', 'object_name',
                  'throttle_type', 'IOPs_limit', 'bandwidth_limit_MB'], rows)


def no_output(ctx: Ctx, args: Args) -> Result:
    """Accepted and ignored (e.g. registerplugin)."""
    return ''
