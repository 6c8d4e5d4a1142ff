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
"""Which flavors the boot-from-volume filter translates.

Pure functions of a flavor's extra specs and the options: no Nova import, so
they are cheap to test and to call for every POST /servers.
"""

from collections.abc import Iterable, Mapping
import dataclasses

from oslo_utils import strutils

HYPERVISOR_TYPE_SPEC = 'capabilities:hypervisor_type'

# ComputeCapabilitiesFilter operators (nova/scheduler/filters/
# extra_specs_ops.py) under which a single listed value is a match.
_POSITIVE_OPS = ('s==', '==', '=', '<in>')


@dataclasses.dataclass(frozen=True)
class Decision:
    targeted: bool
    reason: str


def _hypervisor_types_asked(value: str) -> list[str]:
    """The hypervisor types a ``capabilities:hypervisor_type`` value accepts.

    Returns an empty list for operators that do not name an accepted value
    (``s!=``, ``<all-in>``, comparisons...).
    """
    words = value.split()
    if not words:
        return []
    if words[0] == '<or>':
        return [w for w in words[1:] if w != '<or>']
    if words[0] in _POSITIVE_OPS:
        return [' '.join(words[1:])] if len(words) > 1 else []
    if words[0].startswith('<') or words[0] in (
            's!=', 's>=', 's<=', 's>', 's<', '!=', '>=', '<='):
        return []
    return [value.strip()]


def decide(extra_specs: Mapping[str, str], *, translate_all: bool,
           flavor_extra_spec: str,
           hypervisor_types: Iterable[str]) -> Decision:
    """Whether an image boot with a flavor of these extra specs is translated.

    Order: the flavor's own switch (``flavor_extra_spec``, true or false)
    wins; then ``capabilities:hypervisor_type`` against ``hypervisor_types``;
    then the global ``translate_all``.
    """
    own = extra_specs.get(flavor_extra_spec) if flavor_extra_spec else None
    if own is not None:
        verdict = strutils.bool_from_string(own, strict=False, default=None)
        if verdict is True:
            return Decision(True, 'flavor extra spec %s' % flavor_extra_spec)
        if verdict is False:
            return Decision(
                False, 'flavor extra spec %s is false' % flavor_extra_spec)

    wanted = {t.strip().casefold() for t in hypervisor_types if t.strip()}
    asked = extra_specs.get(HYPERVISOR_TYPE_SPEC)
    if wanted and asked:
        for hv_type in _hypervisor_types_asked(asked):
            if hv_type.casefold() in wanted:
                return Decision(True, '%s %s' % (HYPERVISOR_TYPE_SPEC,
                                                 hv_type))

    if translate_all:
        return Decision(True, 'translate_all')
    return Decision(False, 'flavor not targeted')
