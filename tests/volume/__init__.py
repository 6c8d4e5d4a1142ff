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
# The Cinder side of the suite. Cinder runs under eventlet: patch before
# anything imports ssl, urllib3 or oslo.context (as Cinder's own test
# packages do), or TLS clients recurse forever.
from cinder import monkey_patch; monkey_patch.patch()  # noqa: E702,I001
