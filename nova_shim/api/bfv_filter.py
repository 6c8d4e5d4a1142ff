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
"""nova-api paste filter: boot from image becomes boot from volume.

IBM Z partitions in DPM mode have no local disk. For the flavors an operator
targets (see :mod:`nova_shim.api.targeting`), this filter rewrites a
``POST /servers`` that boots from an image into the equivalent
boot-from-volume request before Nova's API sees it:

* the root disk becomes ``{source_type: image, destination_type: volume,
  boot_index: 0, delete_on_termination: true, volume_size: N}``;
* the flavor's ephemeral disk and swap become blank volumes deleted with the
  server;
* ``imageRef`` becomes ``''``.

Everything else (other methods and paths, untargeted flavors, requests that
already boot from volume, images whose own block device mappings define the
root disk, legacy ``block_device_mapping``, bodies Nova would reject) goes to
Nova unchanged, so Nova gives its own answer. The filter's only own errors
are HTTP 400 (a configured volume type Cinder does not know, a root size it
cannot work out, an encrypted volume type for a DPM server, also in a
request that already boots from volume) and HTTP 503 (Cinder did not
answer a volume type check).

It must sit after ``keystonecontext`` in both compute API pipelines (it needs
``environ['nova.context']``); see etc/nova/api-paste-dpm-bfv.ini.
"""

from collections.abc import Callable, Iterable, Mapping
import copy
import dataclasses
import math
import re
import threading
import time
from typing import Any

import microversion_parse
from nova.api.openstack import api_version_request as avr
from nova.api.openstack import common
from nova.api.openstack import wsgi as nova_wsgi
from nova import block_device
from nova.compute import flavors
from nova import exception as nova_exc
from nova.image import glance
from oslo_config import cfg
from oslo_log import log as logging
from oslo_serialization import jsonutils
import webob
import webob.exc

from nova_shim.api import cinder_types
from nova_shim.api import targeting
from nova_shim import conf as shim_conf

LOG = logging.getLogger(__name__)
CONF = cfg.CONF
shim_conf.register_opts(CONF)

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

GiB = 1024 ** 3
VOLUME_TYPE_MICROVERSION = avr.APIVersionRequest('2.67')
_SERVERS_PATH = re.compile(r'^/(?:[^/]+/)?servers/?$')
_LEGACY_VERSION_HEADER = 'X-OpenStack-Nova-API-Version'


@dataclasses.dataclass(frozen=True)
class FlavorInfo:
    """What the filter needs of a flavor."""

    flavorid: str
    root_gb: int
    ephemeral_gb: int
    swap: int
    extra_specs: Mapping[str, str]


class FlavorCache:
    """Flavors read through Nova's objects, kept ``ttl`` seconds.

    Keyed by project and flavor id, so flavor access (private flavors) is
    decided per project as Nova decides it. Misses are not kept.
    """

    MAX_ENTRIES = 1024

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], tuple[float, FlavorInfo]] = {}

    def get(self, context: Any, flavorid: str) -> FlavorInfo:
        """Raises FlavorNotFound like Nova's own lookup."""
        key = (context.project_id or '', flavorid)
        now = time.monotonic()
        if self.ttl > 0:
            with self._lock:
                hit = self._entries.get(key)
            if hit and now - hit[0] < self.ttl:
                return hit[1]
        flavor = flavors.get_flavor_by_flavor_id(context, flavorid,
                                                 read_deleted='no')
        info = FlavorInfo(flavorid=flavor.flavorid, root_gb=flavor.root_gb,
                          ephemeral_gb=flavor.ephemeral_gb, swap=flavor.swap,
                          extra_specs=dict(flavor.extra_specs or {}))
        if self.ttl > 0:
            with self._lock:
                if len(self._entries) >= self.MAX_ENTRIES:
                    self._entries.clear()
                self._entries[key] = (now, info)
        return info


class FilterError(Exception):
    """A request the filter answers itself (never a 500)."""

    def __init__(self, message: str, status: type[webob.exc.HTTPError] =
                 webob.exc.HTTPBadRequest) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _boot_index(bdm: Mapping[str, Any]) -> int | None:
    value = bdm.get('boot_index')
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def image_defines_root(image: Mapping[str, Any]) -> bool:
    """True when the image's own mappings give the root disk.

    That is what a snapshot of a volume-backed server is: Nova creates the
    root volume from the Cinder snapshot named in the image properties
    (compute/api.py ``_get_image_defined_bdms``).
    """
    props = image.get('properties') or {}
    mappings = props.get('block_device_mapping') or []
    if not mappings:
        return False
    if props.get('bdm_v2'):
        return any(isinstance(m, dict) and _boot_index(m) == 0
                   for m in mappings)
    root_name = props.get('root_device_name') or 'vda'
    try:
        legacy = block_device.from_legacy_mapping(mappings, None, root_name)
    except (nova_exc.InvalidBDMFormat, TypeError, AttributeError):
        return True  # let Nova judge mappings it defines itself
    return block_device.get_root_bdm(legacy) is not None


def root_volume_gb(root_gb: int, image: Mapping[str, Any],
                   virtual_size: int | None) -> int:
    """Size of the root volume: the flavor's root_gb, else the image's."""
    if root_gb > 0:
        return root_gb
    min_disk = int(image.get('min_disk') or 0)
    from_virtual = math.ceil(virtual_size / GiB) if virtual_size else 0
    size = max(min_disk, from_virtual)
    if size <= 0:
        raise FilterError(
            'The flavor has no root disk (root_gb 0) and image %s has neither '
            'min_disk nor a virtual size, so the size of its boot volume is '
            'unknown. Use a flavor with a root disk, set min_disk on the '
            'image, or boot from a volume.' % image.get('id'))
    return size


def plan_block_devices(server: Mapping[str, Any], image_id: str,
                       root_gb: int, ephemeral_gb: int, swap_mb: int,
                       volume_type: str | None) -> list[dict[str, Any]]:
    """The ``block_device_mapping_v2`` of the translated request.

    Keeps the client's own non-root mappings; client-defined local blank
    disks (ephemeral, swap) become blank volumes; the flavor's ephemeral disk
    and swap are added as blank volumes unless the client defined its own.
    ``volume_type`` (None below microversion 2.67) goes into every volume
    the filter creates or converts.
    """
    root: dict[str, Any] = {
        'uuid': image_id, 'source_type': 'image',
        'destination_type': 'volume', 'boot_index': 0,
        'delete_on_termination': True, 'volume_size': root_gb}
    planned = [root]
    have_ephemeral = have_swap = False
    for bdm in server.get('block_device_mapping_v2') or []:
        if _boot_index(bdm) == 0:
            continue  # the image -> local root the client sent; replaced
        if (bdm.get('source_type') == 'blank' and
                bdm.get('destination_type') == 'local'):
            is_swap = bdm.get('guest_format') == 'swap'
            size = bdm.get('volume_size') or (
                math.ceil(swap_mb / 1024) if is_swap else ephemeral_gb)
            if not size:
                raise FilterError(
                    'A local blank disk without volume_size was requested '
                    'and the flavor gives no size for it; this cloud turns '
                    'local disks into volumes and needs a size.')
            bdm = dict(bdm, destination_type='volume',
                       delete_on_termination=True, volume_size=size)
            if is_swap:
                # Nova soft-deletes every other blank 'swap' mapping of the
                # instance when it stores its own local swap mapping
                # (db/main/api.py block_device_mapping_update_or_create).
                del bdm['guest_format']
            if volume_type and 'volume_type' not in bdm:
                bdm['volume_type'] = volume_type
            have_swap = have_swap or is_swap
            have_ephemeral = have_ephemeral or not is_swap
        planned.append(dict(bdm))
    if ephemeral_gb and not have_ephemeral:
        planned.append({'source_type': 'blank', 'destination_type': 'volume',
                        'delete_on_termination': True,
                        'volume_size': ephemeral_gb})
    if swap_mb and not have_swap:
        # No guest_format 'swap': see above.
        planned.append({'source_type': 'blank', 'destination_type': 'volume',
                        'delete_on_termination': True,
                        'volume_size': math.ceil(swap_mb / 1024)})
    if volume_type:
        root['volume_type'] = volume_type
        for bdm in planned[1:]:
            if (bdm.get('source_type') == 'blank' and
                    'uuid' not in bdm and 'volume_type' not in bdm):
                bdm['volume_type'] = volume_type
    return planned


def requested_volume_types(server: Any) -> list[str]:
    """The ``volume_type`` values of the request's volume mappings."""
    if not isinstance(server, dict):
        return []
    bdms = server.get('block_device_mapping_v2') or []
    if not isinstance(bdms, list):
        return []
    return [b['volume_type'] for b in bdms
            if isinstance(b, dict) and isinstance(b.get('volume_type'), str)
            and b.get('volume_type')]


def request_version(environ: Mapping[str, Any],
                    headers: Mapping[str, str]) -> avr.APIVersionRequest:
    """The microversion Nova will use for this request (as Nova parses it).

    Raises ValueError for a version Nova will refuse itself.
    """
    if environ.get(nova_wsgi.ENV_LEGACY_V2):
        return avr.APIVersionRequest('2.0')
    text = microversion_parse.get_version(
        headers, service_type='compute',
        legacy_headers=[_LEGACY_VERSION_HEADER])
    if text is None:
        return avr.APIVersionRequest(avr.DEFAULT_API_VERSION)
    if text == 'latest':
        return avr.max_api_version()
    try:
        version = avr.APIVersionRequest(text)
    except nova_exc.InvalidAPIVersionString as exc:
        raise ValueError(text) from exc
    if not version.matches(avr.min_api_version(), avr.max_api_version()):
        raise ValueError(text)
    return version


class BootFromVolumeFilter:
    """WSGI middleware; see the module documentation."""

    def __init__(self, application: WSGIApp,
                 conf: cfg.ConfigOpts = CONF) -> None:
        self.application = application
        self.conf = conf
        self.types = cinder_types.VolumeTypeLookup(
            conf[shim_conf.BFV_GROUP].cinder_cache_seconds)
        self.flavors = FlavorCache(
            conf[shim_conf.BFV_GROUP].flavor_cache_seconds)

    @classmethod
    def factory(cls, global_config: Mapping[str, Any],
                **local_config: Any) -> Callable[[WSGIApp],
                                                 'BootFromVolumeFilter']:
        def _filter(app: WSGIApp) -> 'BootFromVolumeFilter':
            return cls(app)
        return _filter

    def __call__(self, environ: dict[str, Any],
                 start_response: StartResponse) -> Iterable[bytes]:
        if (environ.get('REQUEST_METHOD') != 'POST' or
                not _SERVERS_PATH.match(environ.get('PATH_INFO', ''))):
            return self.application(environ, start_response)
        try:
            self._translate(environ)
        except FilterError as err:
            LOG.info('Refusing POST /servers: %s', err.message)
            return self._fault(environ, err)(environ, start_response)
        except Exception:
            # Never turn a request into a 500: hand it to Nova as it came.
            LOG.exception('Boot-from-volume translation failed; passing '
                          'the request to Nova unchanged')
        return self.application(environ, start_response)

    @staticmethod
    def _fault(environ: dict[str, Any], err: FilterError) -> Any:
        """Nova's own error response (body and version headers)."""
        req = nova_wsgi.Request(environ)
        if not environ.get(nova_wsgi.ENV_LEGACY_V2):
            try:
                req.set_api_version_request()
            except Exception:  # noqa: S110 - answered without the header
                pass
        return nova_wsgi.Fault(err.status(explanation=err.message))(req)

    # The translation --------------------------------------------------------

    def _translate(self, environ: dict[str, Any]) -> None:
        """Rewrite the request body in ``environ`` if it is to be translated.

        Returns without touching the body for anything left alone.
        """
        context = environ.get('nova.context')
        if context is None:
            LOG.warning('No nova.context in the request: the filter must sit '
                        'after keystonecontext in api-paste.ini')
            return
        req = webob.Request(environ)
        body_bytes = req.body  # read once; webob keeps it re-readable
        try:
            body = jsonutils.loads(body_bytes)
        except ValueError:
            return
        server = body.get('server') if isinstance(body, dict) else None
        image_boot = self._is_image_boot(server)
        asked_types = requested_volume_types(server)
        if not image_boot and not asked_types:
            return
        if not isinstance(server.get('flavorRef'), (str, int)):
            return
        try:
            version = request_version(environ, req.headers)
        except ValueError:
            return  # Nova answers with its own error
        try:
            flavor = self.flavors.get(
                context, common.get_id_from_href(server['flavorRef']))
        except nova_exc.FlavorNotFound:
            return
        opts = self.conf[shim_conf.BFV_GROUP]
        decision = targeting.decide(
            flavor.extra_specs, translate_all=opts.translate_all,
            flavor_extra_spec=opts.flavor_extra_spec,
            hypervisor_types=opts.hypervisor_types)
        if not decision.targeted:
            return
        if not image_boot:
            # A DPM boot from volume: its volume types are checked too.
            self._refuse_encrypted(context, asked_types)
            return
        image_api = glance.API()
        try:
            image = image_api.get(context, server['imageRef'])
        except nova_exc.NovaException:
            return  # ImageNotFound etc.: Nova gives its own error
        if image_defines_root(image):
            LOG.info('Image %s defines its own root disk mapping (snapshot '
                     'of a volume-backed server): request left alone',
                     image.get('id'))
            return

        root_gb = root_volume_gb(
            flavor.root_gb, image,
            None if flavor.root_gb else self._virtual_size(
                context, server['imageRef'], image))
        volume_type = self._volume_type_for(
            context, version, image,
            blank_volumes=bool(flavor.ephemeral_gb or flavor.swap or any(
                b.get('source_type') == 'blank' and
                b.get('destination_type') == 'local'
                for b in server.get('block_device_mapping_v2') or [])))
        self._refuse_encrypted(context, asked_types, opts.volume_type or
                               self._default_type_name(context))
        new_server = copy.copy(server)
        new_server['block_device_mapping_v2'] = plan_block_devices(
            server, image['id'], root_gb, flavor.ephemeral_gb, flavor.swap,
            volume_type)
        new_server['imageRef'] = ''
        body['server'] = new_server
        req.body = jsonutils.dump_as_bytes(body)
        LOG.info('Image boot of image %(image)s with flavor %(flavor)s '
                 'translated to boot from volume (%(why)s; root %(gb)d GiB, '
                 '%(n)d volume mappings, microversion %(ver)s)',
                 {'image': image['id'], 'flavor': flavor.flavorid,
                  'why': decision.reason, 'gb': root_gb,
                  'n': len(new_server['block_device_mapping_v2']),
                  'ver': version.get_string()})

    def _default_type_name(self, context: Any) -> str | None:
        """The project's default volume type (no type configured)."""
        try:
            return self.types.project_default(context)['name']
        except Exception:
            LOG.warning('Could not read the default volume type of project '
                        '%s to check its encryption', context.project_id,
                        exc_info=True)
            return None

    def _refuse_encrypted(self, context: Any, asked: list[str],
                          configured: str | None = None) -> None:
        """HTTP 400 when a volume of this DPM server would be encrypted.

        A DPM partition reads its volumes over FCP with no host operating
        system in between that could open a LUKS volume. A type whose
        encryption cannot be read is let through with a warning: the DPM
        compute driver refuses an encrypted volume too.
        """
        names = list(dict.fromkeys(
            ([configured] if configured else []) + asked))
        for name in names:
            try:
                vtype = self.types.find(context, name)
                if vtype is None:
                    continue  # unknown: Nova (2.67+) gives its own 400
                encryption = self.types.encryption(context, vtype)
            except Exception as exc:
                LOG.warning('Could not check whether volume type %s is '
                            'encrypted (%s); the DPM compute driver will '
                            'refuse it if it is', name, exc)
                continue
            if encryption:
                raise FilterError(
                    'Volume type %s is encrypted (provider %s): a DPM '
                    'partition boots from and reads its volumes over FCP '
                    'with no host operating system that could open an '
                    'encrypted (LUKS) volume. Use a volume type without '
                    'encryption for this server.'
                    % (vtype['name'],
                       encryption.get('provider') or 'set'))

    @staticmethod
    def _is_image_boot(server: Any) -> bool:
        """A create that boots from an image, in a shape the filter handles."""
        if not isinstance(server, dict):
            return False
        image_ref = server.get('imageRef')
        if not image_ref or not isinstance(image_ref, str):
            return False  # no image: boot from volume or invalid
        if not isinstance(server.get('flavorRef'), (str, int)):
            return False
        if server.get('block_device_mapping'):
            return False  # legacy mappings cannot be mixed with v2 ones
        bdms = server.get('block_device_mapping_v2') or []
        if not isinstance(bdms, list) or not all(
                isinstance(b, dict) for b in bdms):
            return False
        for bdm in bdms:
            if _boot_index(bdm) == 0 and not (
                    bdm.get('source_type') == 'image' and
                    bdm.get('destination_type') == 'local'):
                return False  # already boots from volume
        return True

    @staticmethod
    def _virtual_size(context: Any, image_ref: str,
                      image: Mapping[str, Any]) -> int | None:
        """The image's virtual size in bytes, if Glance knows it.

        Nova's image layer drops ``virtual_size`` from the image record, so
        ask Glance through Nova's client for the raw record.
        """
        if image.get('virtual_size'):
            return int(image['virtual_size'])
        session, image_id = glance.get_remote_image_service(context,
                                                            image_ref)
        client = getattr(session, '_client', None)
        if client is None:
            return None
        try:
            raw = client.call(context, 2, 'get', args=(image_id,))
        except Exception:
            LOG.warning('Could not read the virtual size of image %s from '
                        'Glance', image_id, exc_info=True)
            return None
        size = getattr(raw, 'virtual_size', None)
        if size is None and isinstance(raw, Mapping):
            size = raw.get('virtual_size')
        return int(size) if size else None

    def _volume_type_for(self, context: Any, version: avr.APIVersionRequest,
                         image: Mapping[str, Any],
                         blank_volumes: bool) -> str | None:
        """The ``volume_type`` to put in the mappings (None: not allowed).

        Checks that the configured type exists (400 naming it otherwise). At
        2.67 and later the type goes into the mappings. Below, Nova refuses
        the field, so Cinder picks the type itself: the image property
        ``cinder_img_volume_type`` (for the image volume only), else the
        project's default type. ``verify`` requires that to be the
        configured type.
        """
        opts = self.conf[shim_conf.BFV_GROUP]
        wanted = opts.volume_type
        if not wanted:
            return None
        try:
            found = self.types.find(context, wanted)
        except Exception as exc:
            LOG.warning('Cinder did not answer the volume type check for %s',
                        wanted, exc_info=True)
            raise FilterError(
                'Could not check volume type %s in the block storage '
                'service: %s' % (wanted, type(exc).__name__),
                webob.exc.HTTPServiceUnavailable) from exc
        if found is None:
            raise FilterError(
                'Volume type %s, configured for the boot volumes of this '
                'flavor, does not exist in the block storage service.'
                % wanted)
        if version >= VOLUME_TYPE_MICROVERSION:
            return wanted
        names = {found['id'], found['name']}
        # Cinder (volume/flows/api/create_volume.py, _get_volume_type): no
        # type given -> the image's cinder_img_volume_type for a volume
        # created from that image, else the project's default type.
        image_type = (image.get('properties') or {}).get(
            'cinder_img_volume_type')
        if image_type and image_type not in names:
            default_name = image_type
            lands_right = False
        elif image_type and not blank_volumes:
            return None
        else:
            try:
                default = self.types.project_default(context)
            except Exception as exc:
                if opts.old_microversion_volume_type == 'cinder-default':
                    LOG.warning('Could not read the default volume type of '
                                'project %s', context.project_id,
                                exc_info=True)
                    return None
                raise FilterError(
                    'Could not read the default volume type of project %s '
                    'from the block storage service: %s'
                    % (context.project_id, type(exc).__name__),
                    webob.exc.HTTPServiceUnavailable) from exc
            default_name = default['name']
            lands_right = bool({default['id'], default['name']} & names)
        if lands_right:
            return None
        if opts.old_microversion_volume_type == 'cinder-default':
            LOG.warning('Microversion %s cannot carry volume type %s: the '
                        'volumes of this server get the type Cinder chooses, '
                        '%s, in project %s', version.get_string(), wanted,
                        default_name, context.project_id)
            return None
        raise FilterError(
            'Volume type %(type)s can only be requested for boot volumes at '
            'compute API microversion 2.67 or later (this request uses '
            '%(ver)s), and the block storage service would use volume type '
            '%(other)s. Use microversion 2.67 or later, or ask the operator '
            'to make %(type)s the default volume type of project '
            '%(project)s in the block storage service.'
            % {'type': wanted, 'ver': version.get_string(),
               'other': default_name, 'project': context.project_id})
