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
"""PowerFlex gateway errors, in the gateway's own JSON shape.

The REST gateway answers a failed call with an HTTP status and a body
``{"message": ..., "httpStatusCode": ..., "errorCode": ...}``; errors of
multi-object actions (``snapshotVolumes``) add ``details``, a list of
``{"rc": ..., "message": ...}``, one per failed object.

Where each code comes from:

* ``79`` volume not found: ``VOLUME_NOT_FOUND_ERROR`` in Cinder's
  rest_client (a delete that gets it succeeds); the message is the one the
  Dell CSI driver matches (``"Could not find the volume"``).
* ``6`` name in use: the code and message the Dell CSI driver's gateway
  double returns for a duplicate volume name.
* ``182`` too many snapshots in the vTree: ``TOO_MANY_SNAPS_ERROR`` in
  Cinder's rest_client, read from ``details[0]["rc"]``.
* ``0`` unauthorized / bad request: what gateways answer with no MDM code.
* The others (capacity, mapping, shrink, pool or SDC not found) carry real
  MDM status messages where known, but their numeric codes are the
  emulator's own: no public source gives them. No in-tree driver branches
  on them.
"""

from __future__ import annotations

from typing import Any

ILLEGAL_SYNTAX = 0
NAME_IN_USE = 6
VOLUME_NOT_FOUND = 79
TOO_MANY_SNAPS = 182
# Emulator-assigned codes (no public source gives the real ones).
INSUFFICIENT_CAPACITY = 317
DOMAIN_NOT_FOUND = 142
POOL_NOT_FOUND = 143
SDC_NOT_FOUND = 144
ALREADY_MAPPED = 116
NOT_MAPPED = 117
MULTI_MAP_NOT_ALLOWED = 118
VOLUME_IS_MAPPED = 119
SIZE_DECREASE = 120
NOT_SAME_VTREE = 121
NOT_SUPPORTED = 122
INJECTED = 999
MAX_NAME_LEN = 31


class PowerFlexError(Exception):
    """A call failed; rendered as the gateway's JSON error."""

    def __init__(self, message: str, error_code: int = ILLEGAL_SYNTAX,
                 http_status: int = 500,
                 details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.error_code = error_code
        self.http_status = http_status
        self.details = details

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            'message': self.message,
            'httpStatusCode': self.http_status,
            'errorCode': self.error_code,
        }
        if self.details is not None:
            out['details'] = self.details
        return out


def unauthorized() -> PowerFlexError:
    return PowerFlexError('Unauthorized', ILLEGAL_SYNTAX, 401)


def not_found_route() -> PowerFlexError:
    return PowerFlexError('Not found', ILLEGAL_SYNTAX, 404)


def bad_request(message: str) -> PowerFlexError:
    return PowerFlexError(message, ILLEGAL_SYNTAX, 400)


def volume_not_found() -> PowerFlexError:
    return PowerFlexError('Could not find the volume', VOLUME_NOT_FOUND)


def name_in_use() -> PowerFlexError:
    return PowerFlexError(
        'Volume name already in use. Please use a different name.',
        NAME_IN_USE)


def name_too_long() -> PowerFlexError:
    return PowerFlexError(
        f'The name is too long; at most {MAX_NAME_LEN} characters are '
        'allowed', ILLEGAL_SYNTAX, 400)


def insufficient_capacity() -> PowerFlexError:
    return PowerFlexError(
        'Insufficient capacity in the Storage Pool for the requested '
        'operation', INSUFFICIENT_CAPACITY)


def too_many_snapshots(volume_id: str) -> PowerFlexError:
    msg = ('The Volume Tree has reached its maximum number of snapshots')
    return PowerFlexError(
        msg, ILLEGAL_SYNTAX, 500,
        details=[{'rc': TOO_MANY_SNAPS, 'volumeId': volume_id,
                  'message': msg}])


def domain_not_found() -> PowerFlexError:
    return PowerFlexError('Could not find the Protection Domain',
                          DOMAIN_NOT_FOUND)


def pool_not_found() -> PowerFlexError:
    return PowerFlexError('Could not find the Storage Pool', POOL_NOT_FOUND)


def sdc_not_found() -> PowerFlexError:
    return PowerFlexError('Could not find the SDC', SDC_NOT_FOUND)


def already_mapped() -> PowerFlexError:
    return PowerFlexError('The volume is already mapped to this SDC',
                          ALREADY_MAPPED)


def not_mapped() -> PowerFlexError:
    return PowerFlexError('The volume is not mapped to SDC', NOT_MAPPED)


def multi_map_not_allowed() -> PowerFlexError:
    return PowerFlexError(
        'The volume is already mapped to another SDC; mapping to multiple '
        'SDCs requires allowMultipleMappings', MULTI_MAP_NOT_ALLOWED)


def volume_is_mapped() -> PowerFlexError:
    return PowerFlexError(
        'Only unmapped volumes can be removed. Unmap the volume from all '
        'SDCs first', VOLUME_IS_MAPPED)


def size_decrease() -> PowerFlexError:
    return PowerFlexError('Volume size cannot be decreased', SIZE_DECREASE)


def thick_in_fine_granularity() -> PowerFlexError:
    return PowerFlexError(
        'Thick volumes are not supported in Fine Granularity Storage Pools',
        NOT_SUPPORTED)


def not_same_vtree() -> PowerFlexError:
    return PowerFlexError(
        'The source and the destination volumes must be in the same '
        'Volume Tree', NOT_SAME_VTREE)


def not_supported(what: str) -> PowerFlexError:
    return PowerFlexError(f'{what} is not supported by this gateway',
                          NOT_SUPPORTED, 400)
