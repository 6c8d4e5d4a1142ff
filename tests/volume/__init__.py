# The Cinder side of the suite. Cinder runs under eventlet: patch before
# anything imports ssl, urllib3 or oslo.context (as Cinder's own test
# packages do), or TLS clients recurse forever.
from cinder import monkey_patch; monkey_patch.patch()  # noqa: E702,I001
