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
"""oslo.config options of nova_shim.

This module must stay importable without Nova (oslo-config-generator loads
it through the ``oslo.config.opts`` entry point ``nova_shim``).
"""

from oslo_config import cfg

from nova_shim.virt.dpm import conf as dpm_conf

BFV_GROUP = 'dpm_boot_from_volume'

bfv_group = cfg.OptGroup(
    BFV_GROUP,
    title='DPM boot-from-image as boot-from-volume',
    help='Options of the nova-api paste filter '
         '``nova_shim.api.bfv_filter`` that rewrites POST /servers requests '
         'booting from an image into boot-from-volume requests, for compute '
         'nodes (IBM Z partitions in DPM mode) that have no local disk.')

bfv_opts = [
    cfg.BoolOpt(
        'translate_all',
        default=False,
        help='Translate every image boot, whatever the flavor. For clouds '
             'in which every compute node is a DPM partition host. A flavor '
             'whose ``flavor_extra_spec`` is false is still left alone.'),
    cfg.StrOpt(
        'flavor_extra_spec',
        default='dpm:boot_from_volume',
        help='Flavor extra spec that selects (``true``) or excludes '
             '(``false``) a flavor. The value is parsed as a boolean '
             '(true/false, yes/no, 1/0, on/off); any other value is treated '
             'as unset.'),
    cfg.ListOpt(
        'hypervisor_types',
        default=['PRSM'],
        help='A flavor whose ``capabilities:hypervisor_type`` extra spec '
             'asks for one of these hypervisor types is translated. The '
             'extra spec may use the ComputeCapabilitiesFilter operators '
             '``s==``, ``=``, ``==``, ``<in>`` and ``<or>``; comparison is '
             'case-insensitive. An empty list disables this rule.'),
    cfg.StrOpt(
        'volume_type',
        help='Cinder volume type (name or id) of the root, ephemeral and '
             'swap volumes. Unset: Cinder chooses (image property '
             '``cinder_img_volume_type``, the project default type, then '
             'Cinder\'s ``[DEFAULT] default_volume_type``). The type is '
             'checked in Cinder for translated requests (answers kept '
             '``cinder_cache_seconds``); a type that does not exist gives '
             'HTTP 400 naming it. At microversion 2.67 and later '
             'it is put in each block device mapping (``volume_type``); '
             'below 2.67 Nova refuses that field, see '
             '``old_microversion_volume_type``.'),
    cfg.StrOpt(
        'old_microversion_volume_type',
        default='verify',
        choices=[
            ('verify',
             'Translate only if Cinder will pick ``volume_type`` without '
             'being told: the image property ``cinder_img_volume_type`` '
             'names it, or it is the effective default volume type of the '
             'request\'s project (``GET /v3/{project_id}/types/default``, '
             'set per project with ``cinder --os-volume-api-version 3.62 '
             'default-type-set``). Otherwise '
             'answer HTTP 400 saying how to fix it.'),
            ('cinder-default',
             'Translate anyway and let Cinder choose the type (logged as a '
             'warning when it is not ``volume_type``).'),
        ],
        help='What to do for requests below microversion 2.67, which cannot '
             'carry a volume type in their block device mappings, when '
             '``volume_type`` is set.'),
    cfg.IntOpt(
        'flavor_cache_seconds',
        default=30,
        min=0,
        help='How long the filter reuses what it read of a flavor (sizes '
             'and extra specs, per project and flavor id) instead of '
             'reading it from the API database again. Changes to a '
             'flavor\'s extra specs reach the filter after at most this '
             'long. 0 reads the flavor for every POST /servers.'),
    cfg.IntOpt(
        'cinder_cache_seconds',
        default=60,
        min=0,
        help='How long a successful volume type lookup in Cinder (the type '
             'exists, a project\'s default type) is reused. 0 asks Cinder '
             'for every translated request.'),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(bfv_group)
    conf.register_opts(bfv_opts, group=bfv_group)


def list_opts() -> list[tuple[cfg.OptGroup, list[cfg.Opt]]]:
    return [(bfv_group, bfv_opts)] + dpm_conf.list_opts()
