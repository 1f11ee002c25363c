import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { resolveInRoot } from './harness/rootfs';
import { execInRootfs, runInRootfs, spawnInRootfs } from './harness/rootfs-run';
import { requireRoots, rootPath, Sandbox, show } from './roots';

/**
 * The curl root (curlimages/curl's userland: BusyBox + curl) and the container filesystem that
 * `harness/rootfs.ts` builds around a root: read-only root, volumes, users, /dev, pid 1.
 */
let sb: Sandbox;

beforeAll(() => {
  requireRoots('curl', 'postgres-17');
  sb = Sandbox.create('fdb-img');
});

afterAll(() => sb?.destroy());

describe('the curl root', () => {
  test('/bin/sh and ls are BusyBox 1.37 applets and there is no bash', async () => {
    const r = await sb.run('curl', ['/bin/sh', '-c',
      'readlink -f /bin/sh; readlink -f /bin/ls; busybox | head -n 1; command -v bash || echo no-bash']);
    expect(r.code).toBe(0);
    const [sh, ls, banner, bash] = r.stdout.trim().split('\n');
    expect(sh).toBe('/bin/busybox');
    expect(ls).toBe('/bin/busybox');
    expect(banner).toMatch(/^BusyBox v1\.37\./);
    expect(bash).toBe('no-bash');
  });

  test('curl --version runs and speaks https', async () => {
    const r = await sb.run('curl', ['curl', '--version']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^curl 8\.\d+\.\d+/);
    expect(r.stdout).toMatch(/^Protocols: .*\bhttps\b/m);
  });

  test('the CA bundle is where curl and Alpine look for it', async () => {
    const r = await sb.run('curl', ['/bin/sh', '-c', 'grep -c "BEGIN CERTIFICATE" /etc/ssl/certs/ca-certificates.crt /etc/ssl/cert.pem']);
    expect(r.code).toBe(0);
    for (const line of r.stdout.trim().split('\n')) expect(Number(line.split(':')[1])).toBeGreaterThan(100);
  });
});

describe('a container filesystem from a root', () => {
  test('a read-only root filesystem refuses a write to / while a volume is writable', async () => {
    const vol = sb.volume('rw');
    const r = await sb.run('curl', ['/bin/sh', '-c', 'touch /probe; echo "touch=$?"; echo written > /vol/file'],
      { readOnlyRootFilesystem: true, volumes: [{ hostPath: vol, containerPath: '/vol' }] });
    expect(r.stdout).toContain('touch=1');
    expect(r.stderr).toContain('Read-only file system');
    expect(r.code).toBe(0);
    expect(fs.readFileSync(path.join(vol, 'file'), 'utf8')).toBe('written\n');
  });

  test('a read-only volume refuses writes', async () => {
    const vol = sb.volume('ro');
    const r = await sb.run('curl', ['/bin/sh', '-c', 'echo x > /vol/file'],
      { volumes: [{ hostPath: vol, containerPath: '/vol', readOnly: true }] });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('Read-only file system');
    expect(fs.existsSync(path.join(vol, 'file'))).toBe(false);
  });

  test('a writable root keeps writes in the container\'s layer, never in the root', async () => {
    const spec = sb.spec('curl');
    const r = await runInRootfs(spec, ['/bin/sh', '-c', 'echo layer > /etc/probe && cat /etc/probe']);
    expect(r.stdout).toBe('layer\n');
    expect(fs.readFileSync(path.join(spec.stateDir, 'upper', 'etc', 'probe'), 'utf8')).toBe('layer\n');
    expect(fs.existsSync(path.join(rootPath('curl'), 'etc', 'probe'))).toBe(false);
  });

  test('the process runs as the requested uid, gid and supplementary groups', async () => {
    const r = await sb.run('curl', ['/bin/sh', '-c', 'id -u; id -g; id -G'], { uid: 1000, gid: 1001, groups: [1001, 2000] });
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual(['1000', '1001', '1001 2000']);
  });

  test('no_new_privs and dropped capabilities leave a non-root process no capability', async () => {
    const r = await sb.run('curl', ['grep', '-E', '^(CapPrm|CapEff|CapAmb|NoNewPrivs):', '/proc/self/status'],
      { uid: 1000, gid: 1000, noNewPrivileges: true, dropAllCapabilities: true });
    expect(r.code).toBe(0);
    expect(r.stdout.replace(/\s+/g, ' ').trim())
      .toBe('CapPrm: 0000000000000000 CapEff: 0000000000000000 CapAmb: 0000000000000000 NoNewPrivs: 1');
  });

  test('dropped capabilities leave a root process only CAP_SYS_CHROOT (the chroot comes after the drop)', async () => {
    const r = await sb.run('curl', ['grep', '-E', '^(CapEff|CapBnd):', '/proc/self/status'], { dropAllCapabilities: true });
    expect(r.code).toBe(0);
    expect(r.stdout.replace(/\s+/g, ' ').trim()).toBe('CapEff: 0000000000040000 CapBnd: 0000000000040000');
    const full = await sb.run('curl', ['grep', '^CapEff:', '/proc/self/status']);
    expect(full.stdout).not.toContain('0000000000040000');
  });

  test('the command is pid 1 with a minimal /dev, a tmpfs /dev/shm and the working directory set', async () => {
    const vol = sb.volume('wd');
    const r = await sb.run('curl', ['/bin/sh', '-c', 'echo "pid=$$"; pwd; ls /dev | tr "\\n" " "; echo; grep " /dev/shm " /proc/mounts'],
      { workingDir: '/work', volumes: [{ hostPath: vol, containerPath: '/work' }] });
    expect(r.code).toBe(0);
    const [pid, wd, dev, shm] = r.stdout.trim().split('\n');
    expect(pid).toBe('pid=1');
    expect(wd).toBe('/work');
    expect(dev.trim().split(' ').sort()).toEqual(['fd', 'full', 'null', 'random', 'shm', 'stderr', 'stdin', 'stdout', 'tty', 'urandom', 'zero']);
    expect(shm).toMatch(/^shm \/dev\/shm tmpfs /);
  });

  test('a long-running container reports its start, takes an exec in its namespaces and stops on SIGTERM', async () => {
    const started = path.join(sb.dir, 'started');
    const spec = sb.spec('curl', { uid: 100, gid: 101, startedFile: started });
    const log = fs.openSync(path.join(sb.dir, 'sleeper.log'), 'a');
    const c = spawnInRootfs(spec, ['/bin/sh', '-c', 'trap "exit 0" TERM; echo up > /tmp/up; while :; do sleep 1; done'], log);
    fs.closeSync(log);
    try {
      for (let i = 0; i < 100 && !fs.existsSync(started); i++) await new Promise((r) => setTimeout(r, 100));
      expect(fs.existsSync(started)).toBe(true);
      let r = await execInRootfs(spec, c, ['cat', '/tmp/up']);
      for (let i = 0; i < 50 && r.stdout !== 'up\n'; i++) r = await execInRootfs(spec, c, ['cat', '/tmp/up']);
      expect(r.stdout).toBe('up\n'); // the container's own layer: the exec is in its mount namespace
      expect((await execInRootfs(spec, c, ['id', '-u'])).stdout).toBe('100\n');
    } finally {
      await c.stop(5000);
    }
    expect(await c.exited).toBe(0);
  });

  test('a volume path through a symlink of the root stays inside the root', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'fdb-img-links-'));
    try {
      fs.mkdirSync(path.join(root, 'run'));
      fs.mkdirSync(path.join(root, 'var'));
      fs.symlinkSync('/run', path.join(root, 'var', 'run')); // Debian's /var/run
      fs.symlinkSync('../../..', path.join(root, 'var', 'up')); // climbs above the root
      fs.symlinkSync('run', path.join(root, 'rel'));
      expect(resolveInRoot(root, '/var/run/postgresql')).toBe('/run/postgresql');
      expect(resolveInRoot(root, '/var/up/etc')).toBe('/etc');
      expect(resolveInRoot(root, '/rel/x/')).toBe('/run/x');
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  test('an argv whose binary is not in the root fails with the reason', async () => {
    const r = await sb.run('curl', ['bash', '-c', 'true']);
    expect(r.code).not.toBe(0);
    expect(show(r)).toMatch(/bash.*No such file or directory/);
  });
});

describe('the shipped scripts', () => {
  const assets = path.join(__dirname, '..', '..', 'assets');
  /** The scripts under assets/ whose first line names `interpreter`, as paths under /assets. */
  const scripts = (interpreter: RegExp): string[] => (fs.readdirSync(assets, { recursive: true }) as string[])
    .filter((f) => f.endsWith('.sh') && interpreter.test(fs.readFileSync(path.join(assets, f), 'utf8').split('\n')[0]))
    .map((f) => `/assets/${f}`);
  const parseAll = 'for f; do sh -n "$f" || echo "does not parse: $f"; done';

  test('every #!/bin/sh script parses under the curl root\'s BusyBox sh', async () => {
    const files = scripts(/^#!\/bin\/sh\b/);
    expect(files.length).toBeGreaterThan(0);
    const r = await sb.run('curl', ['/bin/sh', '-c', parseAll, 'sh', ...files],
      { readOnlyRootFilesystem: true, volumes: [{ hostPath: assets, containerPath: '/assets', readOnly: true }] });
    expect(show(r)).toBe(show({ ...r, code: 0, stdout: '', stderr: '' }));
  });

  test('every bash script parses under the postgres-17 root\'s bash', async () => {
    const files = scripts(/^(#!\/usr\/bin\/env bash|#!\/bin\/bash|# shellcheck shell=bash)/);
    expect(files.length).toBeGreaterThan(0);
    const r = await sb.run('postgres-17', ['/bin/bash', '-c', parseAll.replace('sh -n', 'bash -n'), 'bash', ...files],
      { readOnlyRootFilesystem: true, volumes: [{ hostPath: assets, containerPath: '/assets', readOnly: true }] });
    expect(show(r)).toBe(show({ ...r, code: 0, stdout: '', stderr: '' }));
  });
});
