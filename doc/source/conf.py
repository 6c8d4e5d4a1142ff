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
"""Sphinx configuration (tox -e docs)."""

import importlib.util

project = 'cinder-dpm-ephemeral'
copyright = 'cinder-dpm-ephemeral developers'
extensions = []
# The design pages are Markdown (doc/*.md), included through MyST.
if importlib.util.find_spec('myst_parser'):
    extensions.append('myst_parser')
    source_suffix = {'.rst': 'restructuredtext', '.md': 'markdown'}
if importlib.util.find_spec('openstackdocstheme'):
    extensions.append('openstackdocstheme')
    html_theme = 'openstackdocs'
    openstackdocs_repo_name = 'openstack/cinder-dpm-ephemeral'
    openstackdocs_auto_name = False
    openstackdocs_use_storyboard = False
else:
    html_theme = 'alabaster'
exclude_patterns = ['_build']
master_doc = 'index'
