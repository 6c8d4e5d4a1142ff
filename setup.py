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
import os

import setuptools

if not os.path.exists(os.path.join(os.path.dirname(os.path.abspath(
        __file__)), '.git')):
    # A tarball export (PBR_VERSION set): reno builds release notes from
    # git history, so it is skipped, as pbr skips ChangeLog and AUTHORS.
    os.environ.setdefault('SKIP_GENERATE_RENO', '1')

setuptools.setup(pbr=True)
