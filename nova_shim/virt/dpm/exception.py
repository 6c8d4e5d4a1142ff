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
"""Errors of the DPM compute driver.

Configuration and host errors (raised by ``init_host``) stop nova-compute
at start with a message that names the offending value and the fix; the
others make an instance operation fail (Nova then cleans up and, for a
spawn, reschedules).
"""

from nova import exception as nova_exception


class DPMDriverError(nova_exception.NovaException):
    msg_fmt = 'DPM driver error: %(reason)s'


class ConfigError(DPMDriverError):
    """A ``[dpm]`` option is missing or wrong (names option and fix)."""
    msg_fmt = 'Invalid [dpm] configuration: %(reason)s'


class HmcCertificateError(ConfigError):
    """The HMC's TLS certificate did not verify (names HMC and option)."""
    msg_fmt = ('The TLS certificate of HMC %(hmc)s did not verify '
               '(%(error)s): set [dpm] hmc_ca_certs to the CA bundle that '
               'signed it (now: %(ca)s). [dpm] hmc_verify_cert = false '
               'turns verification off; use that only with a test HMC.')


class HmcUnreachable(DPMDriverError):
    msg_fmt = ('HMC %(hmc)s did not answer (%(error)s): check [dpm] hmc '
               'and hmc_port, and that the HMC Web Services API is '
               'enabled for this user.')


class CpcNotFound(DPMDriverError):
    msg_fmt = ('CPC with object-id %(object_id)s not found on HMC '
               '%(hmc)s: set [dpm] cpc_object_id to the object-id of a CPC '
               'this HMC manages (zhmc cpc list --names-only shows them).')


class CpcNotDpm(DPMDriverError):
    msg_fmt = ('DPM mode on CPC %(cpc_name)s not enabled: the DPM driver '
               'manages only CPCs in DPM mode; set [dpm] cpc_object_id to a '
               'DPM CPC.')


class CpcTooSmall(DPMDriverError):
    msg_fmt = ('[dpm] %(option)s = %(configured)s exceeds what CPC '
               '%(cpc_name)s has (%(property)s = %(available)s): lower '
               '[dpm] %(option)s.')


class AdapterError(DPMDriverError):
    msg_fmt = ('[dpm] physical_storage_adapter_mappings entry '
               '%(mapping)s: %(reason)s')


class HostNameTooLong(DPMDriverError):
    msg_fmt = ('[DEFAULT] host %(host)r is %(length)d characters long: '
               'partition names OpenStack-<host>-<instance uuid> would '
               'exceed the HMC\'s %(limit)d characters. Use a host name of '
               'at most %(max_host)d characters.')


class UnsupportedVolume(DPMDriverError):
    msg_fmt = ('Instance %(instance)s: %(reason)s')


class BootTargetNotFound(DPMDriverError):
    msg_fmt = ('Instance %(instance)s: no usable boot path to volume '
               '%(volume)s: %(reason)s')


class PartitionError(DPMDriverError):
    msg_fmt = ('Partition %(name)s: %(reason)s')


class EncryptedVolumeRefused(nova_exception.VolumeEncryptionNotSupported):
    """An encrypted volume reached the driver (Nova aborts, no reschedule)."""
    # Nova keeps 255 characters of a build fault, its prefix included.
    msg_fmt = ('volume %(volume_id)s is encrypted (%(why)s): a DPM '
               'partition has no host OS to open a LUKS volume; use a '
               'volume type without encryption.')


class VolumeAbandoned(nova_exception.BuildAbortException):
    """Nova gave up on a volume still being created (see volume_wait)."""
    msg_fmt = 'Build of instance %(instance_uuid)s aborted: %(reason)s'
