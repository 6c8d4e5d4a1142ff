"""./run bench [--quick]: benchmarks, never part of the test suite.

Writes results/bench-<time>.json and a PNG chart, and prints as the last
line one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings


def _storage(quick: bool, configs: list[str] | None) -> dict:
    # Cinder runs under eventlet: patch before anything imports ssl.
    from cinder import monkey_patch
    monkey_patch.patch()
    from tools.bench import storage
    return storage.run(quick, configs)


def headline(storage: dict) -> dict:
    def get(cfg: str, *path: str) -> float | None:
        cur: object = storage.get(cfg)
        for p in path:
            if not isinstance(cur, dict) or p not in cur:
                return None
            cur = cur[p]
        return cur  # type: ignore[return-value]

    def ratio(a: float | None, b: float | None) -> float | None:
        if a is None or b is None or b == 0:
            return None
        return a / b

    out: dict[str, object] = {}
    storm_ratios = [ratio(get(f'ours-{a}', 'storm', 'glance_bytes'),
                          get(f'ours-{a}', 'storm', 'image_file_bytes'))
                    for a in ('svc', 'powerflex')]
    out['storm_glance_bytes_ratio'] = max(
        (r for r in storm_ratios if r is not None), default=None)
    warm_bytes = [get(f'ours-{a}', 'warm', 'array_bytes_copied')
                  for a in ('svc', 'powerflex')]
    out['warm_clone_array_bytes'] = max(
        (b for b in warm_bytes if b is not None), default=None)
    for a in ('svc', 'powerflex'):
        out[f'warm_lifecycle_speedup_vs_stock_{a}'] = ratio(
            get(f'stock-{a}', 'warm', 'lifecycle_seconds'),
            get(f'ours-{a}', 'warm', 'lifecycle_seconds'))
    for a in ('svc', 'powerflex'):
        out[f'cold_lifecycle_speedup_vs_stock_{a}'] = ratio(
            get(f'stock-{a}', 'cold_lifecycle', 'lifecycle_seconds'),
            get(f'ours-{a}', 'cold_lifecycle', 'lifecycle_seconds'))
    storm_t = [ratio(get(f'ours-{a}', 'storm', 'seconds_all_available'),
                     get(f'stock-{a}', 'storm', 'seconds_all_available'))
               for a in ('svc', 'powerflex')]
    out['storm_time_ratio_vs_stock'] = max(
        (r for r in storm_t if r is not None), default=None)
    # Our copy (download + conversion onto the LUN, as the golden volume
    # recorded it) against the machine's copy of the same image file; and
    # the same reference against the whole create, API call to available.
    # Medians over the trials, then the worst array and format.
    for key, field in (('cold_fraction_of_raw_bandwidth', 'fraction_copy'),
                       ('cold_fraction_end_to_end', 'fraction_end_to_end')):
        fracs = [get(f'ours-{a}', f'cold_{fmt}', field)
                 for a in ('svc', 'powerflex') for fmt in ('raw', 'qcow2')]
        out[key] = min((f for f in fracs if f is not None), default=None)
    for fmt in ('raw', 'qcow2'):
        fr = [get(f'ours-{a}', f'cold_{fmt}', 'fraction_copy')
              for a in ('svc', 'powerflex')]
        out[f'cold_fraction_{fmt}'] = min((f for f in fr if f is not None),
                                          default=None)
    for a in ('svc', 'powerflex'):
        for who in ('ours', 'stock'):
            out[f'warm_array_calls_{who}_{a}'] = get(
                f'{who}-{a}', 'warm', 'array_calls_per_lifecycle')
    fails = [get(f'ours-{a}', 'many', 'failures')
             for a in ('svc', 'powerflex')]
    out['limit_failures'] = (sum(int(f) for f in fails if f is not None)
                             if any(f is not None for f in fails) else None)
    rss = [get(f'ours-{a}', 'cold_raw', 'peak_rss_delta_mb')
           for a in ('svc', 'powerflex')] + [
        get(f'ours-{a}', 'cold_qcow2', 'peak_rss_delta_mb')
        for a in ('svc', 'powerflex')]
    out['cold_peak_rss_delta_mb'] = max(
        (r for r in rss if r is not None), default=None)
    return out


def chart(results: dict, path: str) -> bool:
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    st = results.get('storage', {})
    labels, ours, stock = [], [], []
    for a in ('svc', 'powerflex'):
        for key, sub in (('cold qcow2', ('cold_qcow2', 'seconds')),
                         ('warm lifecycle', ('warm', 'lifecycle_seconds')),
                         ('storm', ('storm', 'seconds_all_available'))):
            o = st.get(f'ours-{a}', {}).get(sub[0], {}).get(sub[1])
            s = st.get(f'stock-{a}', {}).get(sub[0], {}).get(sub[1])
            labels.append(f'{a}\n{key}')
            ours.append(o or 0)
            stock.append(s or 0)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    x = range(len(labels))
    ax.bar([i - 0.2 for i in x], stock, 0.4, label='stock Cinder')
    ax.bar([i + 0.2 for i in x], ours, 0.4, label='cinder-dpm-ephemeral')
    ax.set_xticks(list(x), labels, fontsize=8)
    ax.set_ylabel('seconds (lower is better)')
    ax.set_title('Images to volumes on emulated SVC and PowerFlex')
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return True


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog='./run bench')
    parser.add_argument('--quick', action='store_true',
                        help='smaller images (same clock, same counts)')
    parser.add_argument('--only', choices=('storage', 'nova'),
                        help='run one of the benchmarks')
    parser.add_argument('--config', action='append',
                        help='storage configurations (ours-svc, stock-svc, '
                             'ours-powerflex, stock-powerflex)')
    args = parser.parse_args(argv)
    warnings.simplefilter('ignore')
    os.makedirs('results', exist_ok=True)
    stamp = time.strftime('%Y%m%d-%H%M%S')
    results: dict = {'quick': args.quick}
    if args.only in (None, 'nova'):
        import subprocess
        # Nova cannot share a process with Cinder: run it on its own.
        proc = subprocess.run(
            [sys.executable, '-m', 'tools.bench.nova_filter'] +
            (['--quick'] if args.quick else []),
            capture_output=True, text=True, check=False)
        try:
            out = proc.stdout
            start = out.find('{') if out.startswith('{') else out.find('\n{')
            results['nova'] = json.loads(out[start:])
        except (ValueError, IndexError):
            results['nova'] = {'error': proc.stderr[-2000:]}
    if args.only in (None, 'storage'):
        results['storage'] = _storage(args.quick, args.config)
    head = headline(results.get('storage', {}))
    if 'nova' in results and isinstance(results['nova'], dict):
        head['nova_filter_overhead_pct'] = results['nova'].get(
            'nova_filter_overhead_pct')
    results['headline'] = head
    path = os.path.join('results', f'bench-{stamp}.json')
    with open(path, 'w') as f:
        json.dump(results, f, indent=2, default=str)
    png = os.path.join('results', f'bench-{stamp}.png')
    made = chart(results, png)
    print(f'results: {path}' + (f', chart: {png}' if made else ''))
    print(json.dumps(head))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
