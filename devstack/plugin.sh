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
# (the backend type is dpm_ephemeral, see override-defaults).

# configure_cinder_backend_dpm_ephemeral BACKEND: the backend section
function configure_cinder_backend_dpm_ephemeral {
    local be_name=$1
    iniset $CINDER_CONF $be_name volume_backend_name $be_name
    iniset $CINDER_CONF $be_name san_ip $DPM_EPHEMERAL_SAN_IP
    iniset $CINDER_CONF $be_name san_password $DPM_EPHEMERAL_SAN_PASSWORD
    if [[ "$DPM_EPHEMERAL_ARRAY" == "svc" ]]; then
        iniset $CINDER_CONF $be_name volume_driver \
            cinder_dpm_ephemeral.svc.driver.StorwizeEphemeralDriver
        iniset $CINDER_CONF $be_name san_ssh_port $DPM_EPHEMERAL_SVC_PORT
        iniset $CINDER_CONF $be_name san_login $DPM_EPHEMERAL_SAN_LOGIN
        iniset $CINDER_CONF $be_name storwize_svc_volpool_name \
            $DPM_EPHEMERAL_SVC_POOL
        iniset $CINDER_CONF DEFAULT strict_ssh_host_key_policy True
        iniset $CINDER_CONF DEFAULT ssh_hosts_key_file \
            $DPM_EPHEMERAL_SSH_KNOWN_HOSTS
    elif [[ "$DPM_EPHEMERAL_ARRAY" == "powerflex" ]]; then
        if [[ -z "$DPM_EPHEMERAL_CA_CERT" ]]; then
            die $LINENO "DPM_EPHEMERAL_CA_CERT is not set: give the CA" \
                "bundle of the PowerFlex gateway's certificate"
        fi
        iniset $CINDER_CONF $be_name volume_driver \
            cinder_dpm_ephemeral.powerflex.driver.PowerFlexEphemeralDriver
        iniset $CINDER_CONF $be_name powerflex_rest_server_port \
            $DPM_EPHEMERAL_POWERFLEX_PORT
        iniset $CINDER_CONF $be_name san_login \
            ${DPM_EPHEMERAL_POWERFLEX_LOGIN:-admin}
        iniset $CINDER_CONF $be_name powerflex_storage_pools \
            $DPM_EPHEMERAL_POWERFLEX_POOLS
        iniset $CINDER_CONF $be_name driver_ssl_cert_verify True
        iniset $CINDER_CONF $be_name driver_ssl_cert_path \
            $DPM_EPHEMERAL_CA_CERT
    else
        die $LINENO "DPM_EPHEMERAL_ARRAY=$DPM_EPHEMERAL_ARRAY: use svc" \
            "or powerflex"
    fi
    if is_service_enabled dpm-emulator; then
        iniset $CINDER_CONF $be_name dpm_ephemeral_emulator_state_dir \
            $DPM_EPHEMERAL_STATE_DIR
    fi
}

# cleanup_cinder_backend_dpm_ephemeral BACKEND: called by cleanup_cinder
function cleanup_cinder_backend_dpm_ephemeral {
    if is_service_enabled dpm-emulator; then
        rm -rf $DPM_EPHEMERAL_STATE_DIR
    fi
}

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

function configure_dpm_ephemeral_compute {
    # A large image's first boot: Nova polls the volume this many times.
    iniset $NOVA_CPU_CONF DEFAULT block_device_allocate_retries \
        $DPM_EPHEMERAL_BDM_RETRIES
    [[ "$DPM_COMPUTE" == "True" ]] || return 0
    local var
    for var in DPM_HMC DPM_HMC_USERNAME DPM_HMC_PASSWORD DPM_HMC_CA_CERTS \
            DPM_CPC_OBJECT_ID DPM_PHYSICAL_STORAGE_ADAPTER_MAPPINGS; do
        if [[ -z "${!var}" ]]; then
            die $LINENO "DPM_COMPUTE=True needs $var in local.conf"
        fi
    done
    iniset $NOVA_CPU_CONF DEFAULT compute_driver dpm.DPMDriver
    iniset $NOVA_CPU_CONF dpm hmc $DPM_HMC
    iniset $NOVA_CPU_CONF dpm hmc_port $DPM_HMC_PORT
    iniset $NOVA_CPU_CONF dpm hmc_username $DPM_HMC_USERNAME
    iniset $NOVA_CPU_CONF dpm hmc_password $DPM_HMC_PASSWORD
    iniset $NOVA_CPU_CONF dpm hmc_verify_cert True
    iniset $NOVA_CPU_CONF dpm hmc_ca_certs $DPM_HMC_CA_CERTS
    iniset $NOVA_CPU_CONF dpm cpc_object_id $DPM_CPC_OBJECT_ID
    iniset $NOVA_CPU_CONF dpm max_processors $DPM_MAX_PROCESSORS
    iniset $NOVA_CPU_CONF dpm max_memory $DPM_MAX_MEMORY
    iniset_multiline $NOVA_CPU_CONF dpm physical_storage_adapter_mappings \
        $DPM_PHYSICAL_STORAGE_ADAPTER_MAPPINGS
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
