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
"""``[dpm]`` options of the DPM compute driver.

Importable without Nova and without zhmcclient: oslo-config-generator loads
it through ``nova_shim.conf.list_opts`` (entry point ``nova_shim``).

The group and the option names follow nova-dpm and os-dpm, so a nova-dpm
configuration keeps working; what is new is the TLS verification of the
HMC (on by default), the HMC port, the partition start/stop timeouts and
the wait for a volume Nova gave up on (``volume_settle_timeout``).
"""

from oslo_config import cfg
from oslo_config import types

DPM_GROUP = 'dpm'

# "<adapter object-id>:<port index>", as nova-dpm accepted it; the port
# index of an FCP adapter is 0 or 1 (cards with up to 4 are accepted).
ADAPTER_MAPPING_RE = r'^[0-9a-fA-F-]+:[0-3]$'

# The HMC limits partition and storage-group names to 64 characters
# (HMC WS API "Create Partition": name String (1-64)).
HMC_NAME_MAX = 64

dpm_group = cfg.OptGroup(
    DPM_GROUP,
    title='DPM compute driver',
    help='Options of the compute driver ``dpm.DPMDriver`` '
         '(``nova_shim.virt.dpm``), which runs instances as partitions of '
         'an IBM Z or LinuxONE CPC in DPM mode through the HMC Web '
         'Services API. One nova-compute service manages a subset of one '
         'CPC (its ``[DEFAULT] host`` names the subset); its partitions '
         'are named ``OpenStack-<host>-<instance uuid>``.')

dpm_opts = [
    cfg.ListOpt(
        'hmc',
        help='Host name or IP address of the HMC (a list: several HMCs '
             'that manage the CPC, tried in turn). Required.'),
    cfg.PortOpt(
        'hmc_port',
        default=6794,
        help='TCP port of the HMC Web Services API.'),
    cfg.StrOpt(
        'hmc_username',
        help='HMC user with object access to the CPC, its FCP adapters '
             'and (storage-group route) the storage groups it creates, '
             'and the task permissions to create, start, stop and delete '
             'partitions. Required.'),
    cfg.StrOpt(
        'hmc_password',
        secret=True,
        help='Password of ``hmc_username``. Required.'),
    cfg.BoolOpt(
        'hmc_verify_cert',
        default=True,
        help='Verify the HMC\'s TLS certificate (and its host name). Turn '
             'it off only for a test HMC; prefer ``hmc_ca_certs``.'),
    cfg.StrOpt(
        'hmc_ca_certs',
        help='CA bundle (PEM file or directory prepared with c_rehash) '
             'that signs the HMC\'s certificate, when it is not signed by '
             'a CA of the system trust store. Used when '
             '``hmc_verify_cert`` is true.'),
    cfg.StrOpt(
        'cpc_object_id',
        help='Object id of the CPC (``object-id``, as in '
             '``/api/cpcs/<object-id>``) whose subset this service '
             'manages. The CPC must be in DPM mode. Required.'),
    cfg.IntOpt(
        'max_processors',
        min=1,
        help='Number of IFL processors this subset offers to instances '
             '(placement inventory VCPU). At most the CPC\'s '
             '``processor-count-ifl``. Required.'),
    cfg.IntOpt(
        'max_memory',
        min=512,
        help='Memory in MiB this subset offers to instances (placement '
             'inventory MEMORY_MB). At most the CPC\'s '
             '``storage-customer``. Required.'),
    cfg.MultiOpt(
        'physical_storage_adapter_mappings',
        item_type=types.String(regex=ADAPTER_MAPPING_RE),
        help='FCP adapter ports the partitions use, one '
             '``<adapter object-id>:<port index>`` per occurrence of the '
             'option (repeat the line for each port). Virtual-HBA route '
             '(z13): one virtual HBA per entry, the first entry\'s HBA '
             'boots. Storage-group route (z14 and later): the candidate '
             'adapter ports of each instance\'s storage group. Each '
             'adapter must exist on the CPC and be of type ``fcp``. At '
             'least one entry is required.'),
    cfg.ListOpt(
        'target_wwpn_ignore_list',
        default=[],
        help='Storage target WWPNs (16 hexadecimal digits, any case) never '
             'used as the boot target, e.g. array ports not zoned to the '
             'CPC. Cinder returns every target port of the array before '
             'the partition logs in.'),
    cfg.IntOpt(
        'partition_start_timeout',
        default=300,
        min=1,
        help='Seconds to wait for a partition to reach ``active`` after '
             'Start Partition (the HMC loads the operating system from the '
             'boot volume in that time).'),
    cfg.IntOpt(
        'partition_stop_timeout',
        default=120,
        min=1,
        help='Seconds to wait for a partition to reach ``stopped`` after '
             'Stop Partition.'),
    cfg.IntOpt(
        'volume_settle_timeout',
        default=600,
        min=0,
        help='When Nova stops waiting for a volume it created for an '
             'instance (``[DEFAULT] block_device_allocate_retries`` '
             'exhausted) while Cinder still has it ``creating`` or '
             '``downloading`` (a golden volume being built for a large '
             'image), Cinder refuses to delete it and it would stay in the '
             'project, counted in its quota. The driver then waits up to '
             'this many seconds for the volume to settle, deletes it, and '
             'ends the build with a fault naming the volume and the fix. '
             '0: do not wait (the fault says which volume to delete). The '
             'build, and a delete of the server, wait meanwhile.'),
    cfg.IntOpt(
        'hmc_retries',
        default=3,
        min=0,
        help='Times a request is sent again when the HMC did not carry it '
             'out: answers 503 (the HMC cannot reach the CPC\'s Support '
             'Element, or is busy starting up) and 409 reasons 1 and 2 '
             '(the object is busy with another operation), for every '
             'request; any other server error (5xx) or a lost connection, '
             'for queries (GET) only, since the HMC may have acted on such '
             'a POST or DELETE. 0: never.'),
    cfg.FloatOpt(
        'hmc_retry_interval',
        default=1.0,
        min=0,
        help='Seconds before the first retry of an HMC request; doubled '
             'for each further retry.'),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(dpm_group)
    conf.register_opts(dpm_opts, group=dpm_group)


def list_opts() -> list[tuple[cfg.OptGroup, list[cfg.Opt]]]:
    return [(dpm_group, dpm_opts)]
