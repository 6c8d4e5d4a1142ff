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
"""The in-tree Storwize helpers, less one question to the array.

The in-tree ``create_volume`` picks a new vdisk's I/O group with
``select_io_group``, which always runs ``lsiogrp`` to put the vdisk in the
group with the fewest vdisks. With one eligible group (the volume type's
``iogrp`` naming one, ``storwize_svc_vol_iogrp``'s default ``0`` among
them) the answer is known before asking; the command only costs a round
trip over SSH, before every LUN is made (golden LUNs and blank volumes,
e.g. a DPM server's ephemeral disk). Here it is asked only when there is
a choice to make; then the in-tree code decides, unchanged.
"""

from __future__ import annotations

from typing import Any

from cinder.volume.drivers.ibm.storwize_svc import storwize_svc_common


class StorwizeEphemeralHelpers(storwize_svc_common.StorwizeHelpers):

    def select_io_group(self, state: dict[str, Any], opts: dict[str, Any],
                        pool: str) -> int:
        groups = self._get_valid_requested_io_groups(state, opts)
        if len(groups) == 1:
            # what the in-tree choice returns for a single group (the
            # HyperSwap site filter falls back to the requested groups)
            return int(groups[0])
        return super().select_io_group(state, opts, pool)
