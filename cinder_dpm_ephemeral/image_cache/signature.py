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
"""Glance image signatures, checked while a golden volume's image streams.

Stock Cinder verifies a signed image (``img_signature*`` properties, the
certificate in the key manager) after downloading it, unless
``[DEFAULT] verify_glance_signatures = disabled``. A golden volume is built
from a stream, so the verifier is fed the same bytes as they pass, and the
signature is checked when the stream ends, before the golden volume is
declared ready: an image whose signature does not match never serves a
clone. The rules are Cinder's own: no signature properties means nothing to
verify; some but not all of them is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import cryptography.exceptions
from cinder import exception
from cursive import exception as cursive_exception
from cursive import signature_utils
from oslo_config import cfg
from oslo_log import log as logging

LOG = logging.getLogger(__name__)
CONF = cfg.CONF

_PROPS = ('img_signature', 'img_signature_hash_method',
          'img_signature_certificate_uuid', 'img_signature_key_type')


def enabled() -> bool:
    """Whether Cinder is configured to verify signed images."""
    return CONF.verify_glance_signatures != 'disabled'


def verifier_for(context: Any, image_meta: dict[str, Any]) -> Any:
    """A verifier for a signed image, or None (unsigned, or disabled)."""
    if not enabled():
        return None
    image_id = image_meta['id']
    props = image_meta.get('properties') or {}
    values = [props.get(k) for k in _PROPS]
    if all(v is None for v in values):
        return None
    if any(v is None for v in values):
        missing = ', '.join(k for k, v in zip(_PROPS, values, strict=True)
                            if v is None)
        LOG.error('Image %(img)s has incomplete signature properties '
                  '(missing %(missing)s).',
                  {'img': image_id, 'missing': missing})
        raise exception.InvalidSignatureImage(image_id=image_id)
    try:
        return signature_utils.get_verifier(
            context=context,
            img_signature_certificate_uuid=props[
                'img_signature_certificate_uuid'],
            img_signature_hash_method=props['img_signature_hash_method'],
            img_signature=props['img_signature'],
            img_signature_key_type=props['img_signature_key_type'])
    except cursive_exception.SignatureVerificationError as exc:
        raise exception.ImageSignatureVerificationException(
            reason=f'cannot verify the signature of image {image_id}: '
                   f'{exc}')


def verified(chunks: Iterable[bytes], verifier: Any,
             image_id: str) -> Iterator[bytes]:
    """Pass ``chunks`` through; check the signature once they end.

    Raises ImageSignatureVerificationException at the end of the stream if
    the signature does not match, so the consumer fails before using the
    data as a finished image.
    """
    source = iter(chunks)
    try:
        for chunk in source:
            verifier.update(chunk)
            yield chunk
    except GeneratorExit:
        # the consumer stopped early: stop the download too
        close = getattr(source, 'close', None)
        if close is not None:
            close()
        raise
    try:
        verifier.verify()
    except cryptography.exceptions.InvalidSignature:
        LOG.error('Image %s: signature verification failed.', image_id)
        raise exception.ImageSignatureVerificationException(
            reason=f'Image signature verification failed for image: '
                   f'{image_id}')
    LOG.info('Image signature verification succeeded for image: %s',
             image_id)
