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
"""devstack's side of a plugin run, for tests: stand-ins and phase order.

What stack.sh, unstack.sh and clean.sh do with a Cinder backend plugin,
as one bash script (:data:`PHASES`): ``override-defaults`` before
lib/cinder's defaults, then ``settings``, then ``plugin.sh`` at each phase,
with lib/cinder's own backend loop (``configure_cinder_backend_<type>``,
``cleanup_cinder_backend_<type>``) and devstack's rule for volume types
written out. The devstack functions the plugin calls are small stand-ins
(:data:`STUBS`): ``iniset`` writes real ini files, ``run_process`` really
starts the command, ``stop_process`` ends it. :class:`Stack` runs them in a
work directory with the paths devstack would give (``CINDER_CONF``,
``NOVA_CONF``, ``NOVA_CPU_CONF``, a copy of Nova's api-paste.ini,
``TEMPEST_CONFIG``).
"""

from __future__ import annotations

import configparser
import os
import pathlib
import shutil
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
VENV_BIN = pathlib.Path(sys.executable).parent
NOVA_PASTE = VENV_BIN.parent / 'etc' / 'nova' / 'api-paste.ini'

# devstack's iniset and iniset_multiline (inc/ini-config) edit lines in
# place, never rewrite the file: a new option goes right below its section
# header, a known one is replaced where it stands, a new section goes at
# the end; iniset_multiline first drops the option's lines in the section,
# then writes one "option = value" line per value, in the given order.
INI_HELPER = r'''
import re, sys
action, path, section, option, *values = sys.argv[1:]
try:
    with open(path) as f:
        lines = f.read().splitlines()
except FileNotFoundError:
    lines = []
header = '[%s]' % section
if header not in (l.strip() for l in lines):
    lines += ['', header]
start = [l.strip() for l in lines].index(header)
end = next((i for i in range(start + 1, len(lines))
            if lines[i].startswith('[')), len(lines))
is_opt = re.compile(r'^%s[ \t]*=' % re.escape(option)).match
if action == 'set':
    value = ' '.join(values)
    for i in range(start + 1, end):
        if is_opt(lines[i]):
            lines[i] = '%s = %s' % (option, value)
            break
    else:
        lines.insert(start + 1, '%s = %s' % (option, value))
else:
    lines[start + 1:end] = [l for l in lines[start + 1:end]
                            if not is_opt(l)]
    lines[start + 1:start + 1] = ['%s = %s' % (option, v) for v in values]
with open(path, 'w') as f:
    f.write('\n'.join(lines) + '\n')
'''

STUBS = r'''
set -o errexit  # as stack.sh (no nounset there either)
CALLS=$WORK/calls
touch $CALLS
function iniset {
    python3 $WORK/ini.py set "$@"
}
function iniset_multiline {
    python3 $WORK/ini.py multi "$@"
}
function trueorfalse {
    local default=$1 v=${!2:-}
    case "${v,,}" in
        1|yes|true|on) echo True ;;
        0|no|false|off) echo False ;;
        *) echo $default ;;
    esac
}
function enable_service {
    ENABLED_SERVICES+=,$1
}
function is_service_enabled {
    local s
    for s in "$@"; do
        [[ ",$ENABLED_SERVICES," == *",$s,"* ]] && return 0
    done
    return 1
}
function define_plugin {
    echo "define_plugin $1" >>$CALLS
}
function setup_develop {
    echo "setup_develop $*" >>$CALLS
}
function echo_summary {
    :
}
function die {
    shift
    echo "die: $*" >&2
    exit 3
}
function run_process {
    echo "run_process $1" >>$CALLS
    env "$5" bash -c "exec $2" >$WORK/$1.log 2>&1 &
    echo $! >$WORK/$1.pid
}
function stop_process {
    echo "stop_process $1" >>$CALLS
    kill $(cat $WORK/$1.pid)
    wait $(cat $WORK/$1.pid) || true
}
'''

# stack.sh, unstack.sh and clean.sh as far as a Cinder backend plugin sees
# them (devstack's lib/cinder: the backend loops, enabled_backends,
# default_volume_type = the first backend).
PHASES = r'''
source $PLUGIN/override-defaults
CINDER_ENABLED_BACKENDS=${CINDER_ENABLED_BACKENDS:-lvm:lvmdriver-1}
source $PLUGIN/settings
source $PLUGIN/plugin.sh stack pre-install
source $PLUGIN/plugin.sh stack install
if is_service_enabled c-vol; then
    enabled=""
    for be in ${CINDER_ENABLED_BACKENDS//,/ }; do
        be_type=${be%%:*}
        be_name=${be##*:}
        if type configure_cinder_backend_${be_type} >/dev/null 2>&1; then
            configure_cinder_backend_${be_type} ${be_name}
        fi
        enabled+=$be_name,
    done
    iniset $CINDER_CONF DEFAULT enabled_backends ${enabled%,}
    iniset $CINDER_CONF DEFAULT default_volume_type ${enabled%%,*}
    echo "volume types: ${enabled%,}" >>$CALLS
fi
source $PLUGIN/plugin.sh stack post-config
source $PLUGIN/plugin.sh stack extra
source $PLUGIN/plugin.sh stack test-config
echo "STACKED" >>$CALLS
source $PLUGIN/plugin.sh unstack
if is_service_enabled c-vol; then
    for be in ${CINDER_ENABLED_BACKENDS//,/ }; do
        be_type=${be%%:*}
        if type cleanup_cinder_backend_${be_type} >/dev/null 2>&1; then
            cleanup_cinder_backend_${be_type} ${be##*:}
        fi
    done
fi
source $PLUGIN/plugin.sh clean
'''


#: the stack phases only: stops once stacked (no unstack, no clean)
STACK_ONLY = PHASES[:PHASES.index('source $PLUGIN/plugin.sh unstack')]


def ini(path: pathlib.Path) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(interpolation=None, strict=False)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read(path)
    return cp


class Stack:
    """A devstack-like work directory in which the plugin is sourced."""

    def __init__(self, work: pathlib.Path) -> None:
        self.work = work
        (work / 'ini.py').write_text(INI_HELPER)
        (work / 'nova').mkdir(exist_ok=True)
        shutil.copy(NOVA_PASTE, work / 'nova' / 'api-paste.ini')
        self.env = {
            'PATH': os.environ['PATH'], 'HOME': str(work),
            'WORK': str(work), 'PLUGIN': str(REPO / 'devstack'),
            'DEST': str(work / 'opt'),
            'DATA_DIR': str(work / 'data'),
            'SERVICE_PASSWORD': 'devstack-secret', 'LINENO': '0',
            'CINDER_CONF': str(work / 'cinder.conf'),
            'NOVA_CONF': str(work / 'nova' / 'nova.conf'),
            'NOVA_CPU_CONF': str(work / 'nova' / 'nova-cpu.conf'),
            'NOVA_CONF_DIR': str(work / 'nova'),
            'TEMPEST_CONFIG': str(work / 'tempest.conf'),
            'DPM_EPHEMERAL_BIN_DIR': str(VENV_BIN),
        }

    def run(self, services: str, script: str = PHASES,
            **local_conf: str) -> subprocess.CompletedProcess:
        """Run ``script`` for ``services`` with local.conf variables."""
        env = dict(self.env, ENABLED_SERVICES=services, **local_conf)
        return subprocess.run(['bash', '-c', STUBS + script], env=env,
                              capture_output=True, text=True, timeout=120)

    def calls(self) -> list[str]:
        return (self.work / 'calls').read_text().splitlines()

    def conf(self, name: str) -> configparser.ConfigParser:
        """A file the plugin wrote: cinder.conf, nova/nova.conf, ..."""
        return ini(self.work / name)
