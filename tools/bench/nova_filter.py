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
"""Time the boot-from-volume filter adds to POST /servers.

Runs Nova 34's functional harness (real API, conductor, scheduler,
placement, fake-driver compute; Nova's Cinder and Glance fixtures) with two
compute API applications side by side in one process:

* ``stock``: Nova's own api-paste.ini;
* ``filter``: the same with etc/nova/api-paste-dpm-bfv.ini merged in.

and times, interleaved (ABBA order, so drift and warm-up hit both alike):

* targeted: ``filter`` given the image boot vs ``stock`` given the
  boot-from-volume request the filter produces; Nova does the same work
  behind both, so the difference is the filter's own cost (parsing, flavor
  read, image lookup, volume type check, re-serialising; flavor and volume
  type answers cached for ``flavor_cache_seconds`` and
  ``cinder_cache_seconds``, defaults as in production);
* passthrough: an untargeted flavor, ``filter`` vs ``stock``, same body.

A POST returns when nova-api answers 202, so the figure is relative to the
API's own time per create, which is the smallest, hence least flattering,
denominator. The conductor's
``schedule_and_build_instances`` is replaced by a recorder, so no build runs
beside the timed requests (the bench checks that every targeted create
reached it volume-backed; builds are the functional tests' business).
Medians in milliseconds.

Run: ``.venv/bin/python -m tools.bench.nova_filter [--quick]`` (JSON out).
"""

import contextlib
import json
import statistics
import sys
import time
from typing import Any

QUICK_ROUNDS = 40
FULL_ROUNDS = 100
WARMUP = 3
IMAGE = '155d900f-4e14-4e4c-a73d-069cbf4541e6'  # GlanceFixture image1


def _make_case(rounds: int) -> Any:
    # Nova is imported here, not at module import: tools.bench may import
    # this module from a process that also loads Cinder.
    import fixtures
    from nova.api import wsgi as nova_wsgi
    from nova.tests.functional.api import client as api_client
    from nova.tests.functional import integrated_helpers
    from oslo_config import cfg
    from wsgi_intercept import interceptor

    from nova_shim import conf as shim_conf
    from tests.compute.functional import harness

    shim_conf.register_opts(cfg.CONF)

    class Bench(integrated_helpers._IntegratedTestBase):
        microversion = 'latest'
        CAST_AS_CALL = False
        results: dict[str, Any] = {}

        def setUp(self) -> None:
            self.tmp = harness.temp_dir(self)
            self.filter_paste = harness.build_paste_config(self.tmp)
            super().setUp()

        def _setup_services(self) -> None:
            self.flags(api_paste_config=self.filter_paste, group='wsgi')
            self.flags(instances=-1, cores=-1, ram=-1, group='quota')
            self.flags(volume_type='dpm-svc', group='dpm_boot_from_volume')
            self.rcinder = self.useFixture(
                harness.RecordingCinder(self.cinder))
            super()._setup_services()
            stock_app = nova_wsgi.Loader(
                str(harness.nova_paste_ini())).load_app('osapi_compute')
            url = 'http://stock-nova-api:80/'
            intercept = interceptor.RequestsInterceptor(
                lambda: stock_app, url=url)
            intercept.install_intercept()
            self.addCleanup(intercept.uninstall_intercept)
            self.stock_api = api_client.TestOpenStackClient(
                'fake', url + 'v2.1', project_id=self.api.project_id,
                roles=['reader', 'member'])
            self.stock_api.microversion = 'latest'

        def _post(self, api: Any, body: dict[str, Any]) -> float:
            start = time.perf_counter()
            resp = api.api_post('/servers', body)
            elapsed = time.perf_counter() - start
            if resp.status != 202:
                raise RuntimeError('POST /servers answered %s' % resp.status)
            return elapsed * 1000.0

        def test_measure(self) -> None:
            # nova-api's work ends with the cast to the conductor; keep the
            # builds out of the process so that they do not compete with
            # the timed requests (they are covered by the functional tests)
            # and record what the API handed over.
            handed_over: list[Any] = []
            self.useFixture(fixtures.MockPatch(
                'nova.conductor.api.ComputeTaskAPI.'
                'schedule_and_build_instances',
                side_effect=lambda *a, **kw: handed_over.append(
                    kw['block_device_mapping'])))
            targeted = self._create_flavor(
                name='dpm', memory_mb=64, vcpu=1, disk=1, ephemeral=0,
                extra_spec={'dpm:boot_from_volume': 'true'})
            plain = self._create_flavor(name='plain', memory_mb=64, vcpu=1,
                                        disk=1, ephemeral=0)

            def image_boot(flavor: str) -> dict[str, Any]:
                return {'server': {'name': 'b', 'imageRef': IMAGE,
                                   'flavorRef': flavor, 'networks': 'none'}}

            bfv = {'server': {
                'name': 'b', 'imageRef': '', 'flavorRef': targeted,
                'networks': 'none', 'block_device_mapping_v2': [{
                    'uuid': IMAGE, 'source_type': 'image',
                    'destination_type': 'volume', 'boot_index': 0,
                    'delete_on_termination': True, 'volume_size': 1,
                    'volume_type': 'dpm-svc'}]}}
            pairs = {
                'targeted': ((self.api, image_boot(targeted)),
                             (self.stock_api, bfv)),
                'passthrough': ((self.api, image_boot(plain)),
                                (self.stock_api, image_boot(plain))),
            }
            times: dict[str, dict[str, list[float]]] = {
                k: {'filter': [], 'stock': []} for k in pairs}
            for i in range(WARMUP + rounds):
                for kind, (with_filter, stock) in pairs.items():
                    order = [('filter', with_filter), ('stock', stock)]
                    if i % 2:
                        order.reverse()
                    for label, (api, body) in order:
                        ms = self._post(api, body)
                        if i >= WARMUP:
                            times[kind][label].append(ms)
            # the filter really translated the targeted creates: every
            # targeted POST (both sides) reached the conductor as an
            # image -> volume root
            volume_roots = sum(
                1 for bdms in handed_over for bdm in bdms
                if bdm.boot_index == 0 and bdm.destination_type == 'volume')
            if volume_roots != 2 * (WARMUP + rounds):
                raise RuntimeError('expected %d volume-backed creates, got '
                                   '%d' % (2 * (WARMUP + rounds),
                                           volume_roots))
            type(self).results = {'times': times}

    return Bench('test_measure')


def _summary(times: dict[str, dict[str, list[float]]],
             rounds: int) -> dict[str, Any]:
    out: dict[str, Any] = {'nova_filter_rounds': rounds}
    for kind, series in times.items():
        med_f = statistics.median(series['filter'])
        med_s = statistics.median(series['stock'])
        paired = statistics.median(
            f - s for f, s in zip(series['filter'], series['stock'],
                                  strict=True))
        prefix = 'nova_filter' if kind == 'targeted' else 'nova_filter_' + kind
        out[prefix + '_overhead_pct'] = round(100.0 * (med_f - med_s) /
                                              med_s, 2)
        out[prefix + '_with_ms'] = round(med_f, 2)
        out[prefix + '_without_ms'] = round(med_s, 2)
        out[prefix + '_paired_delta_ms'] = round(paired, 2)
    return out


def run(quick: bool) -> dict[str, Any]:
    """Measure; returns at least ``nova_filter_overhead_pct``."""
    import testtools

    rounds = QUICK_ROUNDS if quick else FULL_ROUNDS
    result = testtools.TestResult()
    started = time.perf_counter()
    # Nova's services log to stdout; keep stdout for the JSON.
    with contextlib.redirect_stdout(sys.stderr):
        case = _make_case(rounds)
        case.run(result)
    problems = result.errors + result.failures
    if problems:
        raise RuntimeError('nova filter bench failed:\n%s' % '\n'.join(
            str(detail) for _case, detail in problems))
    out = _summary(case.results['times'], rounds)
    out['nova_filter_target_pct'] = 5.0
    out['nova_filter_bench_seconds'] = round(time.perf_counter() - started,
                                             1)
    return out


def main(argv: list[str]) -> int:
    print(json.dumps(run('--quick' in argv), indent=2, sort_keys=True))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
