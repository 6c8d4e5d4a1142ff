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
"""A key manager in memory, standing in for Barbican in tests and demos.

Cinder (through cursive) fetches the certificate of a signed Glance image
from the key manager configured in ``[key_manager] backend``; this one
keeps stored objects in a process-wide dict, so what a test stores is what
the volume service finds. Never for production: nothing is persisted or
protected.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any, ClassVar

from castellan.common import exception as castellan_exception
from castellan.common.objects import x_509
from castellan.key_manager import key_manager
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric import utils as asym_utils
from cryptography.x509.oid import NameOID

BACKEND = 'cinder_dpm_ephemeral.testing.keymgr.MemoryKeyManager'


class MemoryKeyManager(key_manager.KeyManager):
    """castellan's interface over a dict shared by every instance."""

    _objects: ClassVar[dict[str, Any]] = {}

    def __init__(self, configuration: Any = None) -> None:
        super().__init__(configuration)

    def create_key(self, context: Any, algorithm: str, length: int,
                   expiration: Any = None, name: str | None = None,
                   **kwargs: Any) -> str:
        raise NotImplementedError('test key manager stores objects only')

    def create_key_pair(self, context: Any, algorithm: str, length: int,
                        expiration: Any = None, name: str | None = None
                        ) -> tuple[str, str]:
        raise NotImplementedError('test key manager stores objects only')

    def store(self, context: Any, managed_object: Any,
              expiration: Any = None) -> str:
        object_id = str(uuid.uuid4())
        self._objects[object_id] = managed_object
        return object_id

    def get(self, context: Any, managed_object_id: str,
            metadata_only: bool = False) -> Any:
        try:
            return self._objects[managed_object_id]
        except KeyError:
            raise castellan_exception.ManagedObjectNotFoundError(
                uuid=managed_object_id)

    def delete(self, context: Any, managed_object_id: str) -> None:
        self._objects.pop(managed_object_id, None)

    def add_consumer(self, context: Any, managed_object_id: str,
                     consumer_data: dict) -> None:
        return None

    def remove_consumer(self, context: Any, managed_object_id: str,
                        consumer_data: dict) -> None:
        return None

    def list(self, context: Any, object_type: Any = None,
             metadata_only: bool = False) -> list:
        return list(self._objects.values())


class ImageSigner:
    """A signing key and its certificate, stored in the memory manager."""

    def __init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537,
                                             key_size=2048)
        now = datetime.datetime.now(datetime.UTC)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                             'dpm-ephemeral test signer')])
        cert = (x509.CertificateBuilder()
                .subject_name(name).issuer_name(name)
                .public_key(self._key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1))
                .sign(self._key, hashes.SHA256()))
        der = cert.public_bytes(serialization.Encoding.DER)
        self.certificate_uuid = MemoryKeyManager().store(
            None, x_509.X509(der))

    def properties(self, path: str) -> dict[str, str]:
        """Glance properties of a signed image whose bytes are ``path``."""
        import base64
        digest = hashes.Hash(hashes.SHA256())
        with open(path, 'rb') as f:
            for chunk in iter(lambda: f.read(4 << 20), b''):
                digest.update(chunk)
        signature = self._key.sign(
            digest.finalize(),
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                        salt_length=padding.PSS.MAX_LENGTH),
            asym_utils.Prehashed(hashes.SHA256()))
        return {
            'img_signature': base64.b64encode(signature).decode(),
            'img_signature_hash_method': 'SHA-256',
            'img_signature_key_type': 'RSA-PSS',
            'img_signature_certificate_uuid': self.certificate_uuid,
        }
