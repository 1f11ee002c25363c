import * as fs from 'fs';
import * as path from 'path';
import { Cluster, UserlandImage } from './index';
import { HOST_POSTGRES, requireRoots, rootPath } from '../roots';

/*
 * Self-test of ClusterOptions.userlands with hand-written objects (not the library): a
 * StatefulSet pod whose containers run in the curl root (BusyBox) built by ../images/build.sh.
 * Needs the roots built (never builds them, never skips).
 */

const IMAGE = 'example.com/busybox';
let c: Cluster | undefined;

afterEach(async () => {
  await c?.destroy();
  c = undefined;
});

function table(): Record<string, UserlandImage> {
  requireRoots('curl');
  return { [IMAGE]: { root: rootPath('curl'), user: 100, home: '/home/curl_user' } };
}

function objects(readOnlyRootFilesystem: boolean, image = `${IMAGE}:1`): object[] {
  const securityContext = { readOnlyRootFilesystem, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } };
  return [{
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { name: 'box', namespace: 'e2e' },
    spec: {
      serviceName: 'box',
      replicas: 1,
      selector: { matchLabels: { app: 'box' } },
      template: {
        metadata: { labels: { app: 'box' } },
        spec: {
          securityContext: { runAsUser: 100, runAsGroup: 101, fsGroup: 101 },
          containers: [{
            name: 'main',
            image,
            command: ['sh', '-c', 'echo up > /scratch/up; exec sleep 3600'],
            securityContext,
            volumeMounts: [{ name: 'scratch', mountPath: '/scratch' }],
            readinessProbe: { exec: { command: ['cat', '/scratch/up'] }, periodSeconds: 1 },
          }],
          volumes: [{ name: 'scratch', emptyDir: {} }],
        },
      },
    },
  }];
}

test('a container runs in its image root: BusyBox sh, its user, a writable volume, no capabilities, exec probe and exec inside', async () => {
  c = await Cluster.create(objects(true), { userlands: table() });
  await c.startStatefulSet('box', { timeoutMs: 60_000 });
  const r = await c.exec('box-0', 'main', ['sh', '-c', 'readlink -f /bin/sh; id -u; cat /scratch/up; grep CapEff /proc/self/status; hostname']);
  // Under userlands a user runs as synthesized unless userlandIds maps it (see the README's Users).
  expect(r.stdout).toBe('/bin/busybox\n100\nup\nCapEff:\t0000000000000000\nbox-0\n');
}, 90_000);

test('userlandIds: the listed ids run as the ids they map to, in the process and on its volumes; others as synthesized', async () => {
  c = await Cluster.create(objects(true), { userlands: table(), userlandIds: { uid: { 100: HOST_POSTGRES.uid }, gid: { 101: HOST_POSTGRES.gid } } });
  await c.startStatefulSet('box', { timeoutMs: 60_000 });
  const r = await c.exec('box-0', 'main', ['sh', '-c', 'id -u; id -g; stat -c "%u:%g" /scratch/up']);
  expect(r.stdout).toBe(`${HOST_POSTGRES.uid}\n${HOST_POSTGRES.gid}\n${HOST_POSTGRES.uid}:${HOST_POSTGRES.gid}\n`);
}, 90_000);

test('readOnlyRootFilesystem: touch in the root\'s /tmp (mode 1777) fails with EROFS; without it the write lands in the container\'s layer, never in the root', async () => {
  c = await Cluster.create(objects(true), { userlands: table() });
  await c.startStatefulSet('box', { timeoutMs: 60_000 });
  const ro = await c.exec('box-0', 'main', ['sh', '-c', 'touch /tmp/x 2>&1; echo "exit $?"']);
  expect(ro.stdout).toMatch(/Read-only file system\nexit 1\n$/);
  await c.destroy();

  c = await Cluster.create(objects(false), { userlands: table() });
  await c.startStatefulSet('box', { timeoutMs: 60_000 });
  const rw = await c.exec('box-0', 'main', ['sh', '-c', 'touch /tmp/userland-self-test && echo written']);
  expect(rw.stdout).toBe('written\n');
  expect(fs.existsSync(path.join(rootPath('curl'), 'tmp', 'userland-self-test'))).toBe(false);
}, 120_000);

test('an image missing from the table makes create throw, naming the image', async () => {
  await expect(Cluster.create(objects(true, 'example.com/other:2'), { userlands: table() }))
    .rejects.toThrow('images without a userland: example.com/other:2');
}, 30_000);
