#!/bin/bash
#
# devstack plugin for cinder-dpm-ephemeral: Cinder drivers with a golden
# image cache for IBM SVC / Dell PowerFlex, the emulated arrays for
# hardware-less clouds, the nova-api boot-from-volume filter and the DPM
# compute driver.
#
# devstack sources this file at every phase; the functions below are
# therefore defined when lib/cinder's configure_cinder and cleanup_cinder
# look for configure_cinder_backend_<type> / cleanup_cinder_backend_<type>
# (the backend type is dpm_ephemeral, see override-defaults). They live in
# this plugin's own lib/ (sourced from here, nothing copied into devstack).

DPM_EPHEMERAL_PLUGIN_DIR=$(cd $(dirname ${BASH_SOURCE[0]}) && pwd)
source $DPM_EPHEMERAL_PLUGIN_DIR/lib/cinder_backends_dpm_ephemeral
source $DPM_EPHEMERAL_PLUGIN_DIR/lib/nova_dpm_compute

function _dpm_ephemeral_extras {
    local extras=""
    if is_service_enabled c-vol; then
        extras+=cinder,
    fi
    if is_service_enabled n-api n-cpu; then
        extras+=nova,
    fi
    if is_service_enabled dpm-emulator; then
        extras+=emulators,
    fi
    extras=${extras%,}
    [[ -n "$extras" ]] && echo "[$extras]"
}

function install_dpm_ephemeral {
    setup_develop $DPM_EPHEMERAL_DIR $(_dpm_ephemeral_extras)
}

function start_dpm_ephemeral_emulator {
    local port=$DPM_EPHEMERAL_SVC_PORT
    local user=$DPM_EPHEMERAL_SAN_LOGIN
    local ready=$DPM_EPHEMERAL_SSH_KNOWN_HOSTS
    if [[ "$DPM_EPHEMERAL_ARRAY" == "powerflex" ]]; then
        port=$DPM_EPHEMERAL_POWERFLEX_PORT
        user=${DPM_EPHEMERAL_POWERFLEX_LOGIN:-admin}
        ready=$DPM_EPHEMERAL_CA_CERT
    fi
    mkdir -p $DPM_EPHEMERAL_STATE_DIR
    # The password comes from the environment, not the command line.
    run_process dpm-emulator \
        "$DPM_EPHEMERAL_BIN_DIR/dpm-ephemeral-emulator $DPM_EPHEMERAL_ARRAY \
        --listen 127.0.0.1:$port --state-dir $DPM_EPHEMERAL_STATE_DIR \
        --login $user" "" "" \
        "DPM_EMULATOR_PASSWORD=$DPM_EPHEMERAL_SAN_PASSWORD"
    # Cinder verifies the emulator's SSH host key / TLS certificate.
    local i
    for i in $(seq 1 30); do
        if [[ -s $ready ]]; then
            return 0
        fi
        sleep 1
    done
    die $LINENO "dpm-emulator wrote no $ready within 30 s"
}

function configure_dpm_ephemeral_nova_api {
    local paste=$NOVA_CONF_DIR/api-paste.ini
    # The filter sits right after keystonecontext in both compute
    # composites, before osapi_compute_app_v21.
    if ! grep -q dpm_bfv $paste; then
        sed -i -e 's/ osapi_compute_app_v21$/ dpm_bfv osapi_compute_app_v21/' \
            $paste
    fi
    iniset $paste filter:dpm_bfv paste.filter_factory \
        nova_shim.api.bfv_filter:BootFromVolumeFilter.factory
    iniset $NOVA_CONF dpm_boot_from_volume volume_type \
        $DPM_EPHEMERAL_VOLUME_TYPE
    iniset $NOVA_CONF dpm_boot_from_volume translate_all \
        $DPM_EPHEMERAL_NOVA_ALL_FLAVORS
}

function configure_dpm_ephemeral_tempest {
    local protocol=FC vendor=IBM
    if [[ "$DPM_EPHEMERAL_ARRAY" == "powerflex" ]]; then
        protocol=scaleio
        vendor="Dell EMC"
    fi
    iniset $TEMPEST_CONFIG volume storage_protocol $protocol
    iniset $TEMPEST_CONFIG volume vendor_name "$vendor"
    iniset $TEMPEST_CONFIG volume volume_type $DPM_EPHEMERAL_VOLUME_TYPE
    iniset $TEMPEST_CONFIG volume backend_names $DPM_EPHEMERAL_BACKEND
    # Boot-from-volume scenarios (tempest.scenario.test_volume_boot_pattern)
    # create their volumes from an image on this type.
}

if [[ -z "$DPM_EPHEMERAL_BIN_DIR" ]]; then
    DPM_EPHEMERAL_BIN_DIR=$(dirname $(command -v python3))
fi

if [[ "$1" == "stack" && "$2" == "install" ]]; then
    echo_summary "Installing cinder-dpm-ephemeral"
    install_dpm_ephemeral
elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
    echo_summary "Configuring cinder-dpm-ephemeral"
    if is_service_enabled dpm-emulator; then
        start_dpm_ephemeral_emulator
    fi
    if is_service_enabled n-api; then
        configure_dpm_ephemeral_nova_api
    fi
    if is_service_enabled n-cpu; then
        configure_dpm_ephemeral_compute
    fi
elif [[ "$1" == "stack" && "$2" == "test-config" ]]; then
    if is_service_enabled tempest; then
        configure_dpm_ephemeral_tempest
    fi
fi

if [[ "$1" == "unstack" ]]; then
    if is_service_enabled dpm-emulator; then
        stop_process dpm-emulator
    fi
fi

if [[ "$1" == "clean" ]]; then
    if is_service_enabled dpm-emulator; then
        rm -rf $DPM_EPHEMERAL_STATE_DIR
    fi
fi
