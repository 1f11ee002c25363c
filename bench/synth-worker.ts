/**
 * One synth measurement in a fresh process (so peak RSS is this run's own):
 *   synth-worker ours N   -> N FerretDBClusters in one app, synthesized to YAML
 *   synth-worker floor N  -> the same objects as plain cdk8s ApiObjects, synthesized the same way
 * Prints one JSON line: { ms, peakRssMB, objects, bytes }.
 *
 * The floor's objects are one cluster's synth with a unique name token, copied N times with the
 * token replaced by `db<i>`: byte-identical to what `ours N` produces (run.ts checks the byte
 * and object counts). They are prepared before the clock starts: only cdk8s' own work is timed.
 */
import { ApiObject, App, Chart, Testing } from 'cdk8s';
import { FerretDBCluster } from '../src';

const TOKEN = 'xbenchfloortokenx';

function clusterObjects(): any[] {
  // Not Testing.chart(): it leaves an empty temp directory behind on every call.
  const chart = new Chart(new App(), 'template');
  new FerretDBCluster(chart, 'db', { name: TOKEN });
  return Testing.synth(chart);
}

function main(): void {
  const [mode, countText] = process.argv.slice(2);
  const count = Number(countText);
  if (!['ours', 'floor'].includes(mode) || !Number.isInteger(count) || count < 1) {
    throw new Error('usage: synth-worker ours|floor N');
  }
  const copies: any[][] = [];
  if (mode === 'floor') {
    const template = JSON.stringify(clusterObjects());
    for (let i = 0; i < count; i++) copies.push(JSON.parse(template.split(TOKEN).join(`db${i}`)));
  }
  const start = process.hrtime.bigint();
  const app = new App();
  const chart = new Chart(app, 'bench');
  for (let i = 0; i < count; i++) {
    if (mode === 'ours') {
      new FerretDBCluster(chart, `db${i}`, { name: `db${i}` });
    } else {
      copies[i].forEach((obj, j) => new ApiObject(chart, `db${i}-${j}`, obj));
    }
  }
  const yaml = app.synthYaml();
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  const objects = (yaml.match(/^kind: /gm) ?? []).length;
  process.stdout.write(JSON.stringify({
    ms,
    peakRssMB: process.resourceUsage().maxRSS / 1024,
    objects,
    bytes: Buffer.byteLength(yaml),
  }) + '\n');
}

main();
