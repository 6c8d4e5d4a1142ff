#!/bin/bash
#
# devstack plugin for cinder-dpm-ephemeral: Cinder drivers with a golden
# image cache for IBM SVC / Dell PowerFlex, the emulated arrays for
# hardware-less clouds, and the nova-api boot-from-volume filter.

function install_dpm_ephemeral {
    setup_develop $DPM_EPHEMERAL_DIR
    if ! is_package_installed qemu-utils; then
        install_package qemu-utils
    fi
}

function start_dpm_ephemeral_emulator {
    [[ "$DPM_EPHEMERAL_EMULATOR" == "True" ]] || return 0
    local port=$DPM_EPHEMERAL_SVC_PORT
    local user=$DPM_EPHEMERAL_SAN_LOGIN
    if [[ "$DPM_EPHEMERAL_ARRAY" == "powerflex" ]]; then
        port=$DPM_EPHEMERAL_POWERFLEX_PORT
        user=admin
    fi
    mkdir -p $DPM_EPHEMERAL_STATE_DIR
    # The password comes from the environment, not the command line.
    run_process dpm-ephemeral-emulator \
        "$(which dpm-ephemeral-emulator) $DPM_EPHEMERAL_ARRAY \
        --listen 127.0.0.1:$port --state-dir $DPM_EPHEMERAL_STATE_DIR \
        --login $user" "" "" \
        "DPM_EMULATOR_PASSWORD=$DPM_EPHEMERAL_SAN_PASSWORD"
    # Cinder verifies the emulator's SSH host key / TLS certificate.
    local i
    for i in $(seq 1 30); do
        if [[ -s $DPM_EPHEMERAL_STATE_DIR/known_hosts || \
              -s $DPM_EPHEMERAL_STATE_DIR/powerflex-gateway.crt ]]; then
            return 0
        fi
        sleep 1
    done
    die $LINENO "dpm-ephemeral-emulator did not start"
}

function configure_dpm_ephemeral_internal_tenant {
    local project_id user_id
    project_id=$(openstack project show -f value -c id service)
    user_id=$(openstack user show -f value -c id cinder)
    iniset $CINDER_CONF DEFAULT cinder_internal_tenant_project_id $project_id
    iniset $CINDER_CONF DEFAULT cinder_internal_tenant_user_id $user_id
}

function configure_dpm_ephemeral_nova {
    local paste=$NOVA_CONF_DIR/api-paste.ini
    # The filter sits right after keystonecontext (and the legacy v2
    # filter) in both compute composites, before osapi_compute_app_v21.
    if ! grep -q dpm_bfv $paste; then
        sed -i -e 's/ osapi_compute_app_v21$/ dpm_bfv osapi_compute_app_v21/' \
            $paste
        printf '\n[filter:dpm_bfv]\npaste.filter_factory = %s\n' \
            'nova_shim.api.bfv_filter:BootFromVolumeFilter.factory' >> $paste
    fi
    iniset $NOVA_CONF dpm_boot_from_volume volume_type \
        $DPM_EPHEMERAL_VOLUME_TYPE
    iniset $NOVA_CONF dpm_boot_from_volume translate_all \
        $DPM_EPHEMERAL_NOVA_ALL_FLAVORS
}

if is_service_enabled dpm-ephemeral || [[ -n "$DPM_EPHEMERAL_ARRAY" ]]; then
    if [[ "$1" == "stack" && "$2" == "install" ]]; then
        echo_summary "Installing cinder-dpm-ephemeral"
        install_dpm_ephemeral
        cp $DPM_EPHEMERAL_DIR/devstack/lib/cinder_backends_dpm_ephemeral \
            $TOP_DIR/lib/cinder_backends/dpm-ephemeral
    elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
        echo_summary "Configuring cinder-dpm-ephemeral"
        start_dpm_ephemeral_emulator
        configure_dpm_ephemeral_internal_tenant
        if is_service_enabled n-api; then
            configure_dpm_ephemeral_nova
        fi
    elif [[ "$1" == "unstack" ]]; then
        stop_process dpm-ephemeral-emulator
    fi
fi
