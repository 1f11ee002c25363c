/* eslint-disable no-bitwise */ // file modes
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { fieldRefValue, PodFacts, RefSource, resourceFieldValue } from './env';
import { Container, DownwardApiFile, KeyToPath, Volume } from './types';
import { ConfigError, MissingRefError, pidAlive } from './util';

/** A file of a configMap/secret/downwardAPI/projected volume. */
export interface VolumeFile {
  readonly data: Buffer;
  readonly mode: number;
}

export type VolumePayload = Map<string, VolumeFile>;

/** Extra sources the projected service-account volume needs. */
export interface ServiceAccountFiles {
  readonly token: string;
  readonly caCrt: string;
}

export interface RenderContext {
  readonly refs: RefSource;
  readonly pod: PodFacts;
  readonly containers: readonly Container[];
  readonly serviceAccount?: ServiceAccountFiles;
}

function addItems(payload: VolumePayload, kind: string, name: string, data: Record<string, Buffer>,
  items: KeyToPath[] | undefined, defaultMode: number, optional: boolean): void {
  if (items === undefined) {
    for (const [k, v] of Object.entries(data)) payload.set(k, { data: v, mode: defaultMode });
    return;
  }
  for (const item of items) {
    const v = data[item.key];
    if (v === undefined) {
      if (optional) continue;
      throw new MissingRefError(`key "${item.key}" not found in ${kind} "${name}"`);
    }
    payload.set(item.path, { data: v, mode: item.mode ?? defaultMode });
  }
}

function configMapBytes(ctx: RenderContext, name: string): Record<string, Buffer> | undefined {
  const cm = ctx.refs.configMap(name);
  return cm ? Object.fromEntries(Object.entries(cm).map(([k, v]) => [k, Buffer.from(v, 'utf8')])) : undefined;
}

function addDownward(payload: VolumePayload, ctx: RenderContext, items: DownwardApiFile[] | undefined, defaultMode: number): void {
  for (const item of items ?? []) {
    let value: string;
    if (item.fieldRef) {
      value = fieldRefValue(ctx.pod, item.fieldRef.fieldPath);
    } else if (item.resourceFieldRef) {
      const self = ctx.containers.find((c) => c.name === item.resourceFieldRef?.containerName) ?? ctx.containers[0];
      value = resourceFieldValue(ctx.containers, self, item.resourceFieldRef);
    } else {
      throw new ConfigError(`downwardAPI item ${item.path}: no fieldRef/resourceFieldRef`);
    }
    payload.set(item.path, { data: Buffer.from(value, 'utf8'), mode: item.mode ?? defaultMode });
  }
}

/**
 * A projected serviceAccountToken: the pod's ServiceAccount token (the same for every pod of the
 * ServiceAccount, never expiring). expirationSeconds is checked as the API server validates pods.
 */
function projectedToken(ctx: RenderContext, src: { readonly expirationSeconds?: number }): Buffer {
  const seconds = src.expirationSeconds ?? 3600;
  if (!Number.isInteger(seconds) || seconds < 600 || seconds > 2 ** 32) {
    throw new ConfigError(`serviceAccountToken.expirationSeconds ${seconds}: must be at least 600 (10 minutes) and at most 2^32`);
  }
  if (!ctx.serviceAccount) throw new ConfigError('serviceAccountToken projection needs the fake API server');
  return Buffer.from(ctx.serviceAccount.token);
}

/**
 * The files of a configMap, secret, downwardAPI or projected volume, or undefined for other
 * volume types. Throws MissingRefError when a non-optional source is missing (kubelet retries).
 */
export function renderVolume(volume: Volume, ctx: RenderContext): VolumePayload | undefined {
  const payload: VolumePayload = new Map();
  if (volume.configMap) {
    const v = volume.configMap;
    const name = v.name ?? '';
    const data = configMapBytes(ctx, name);
    if (!data) {
      if (v.optional) return payload;
      throw new MissingRefError(`configmap "${name}" not found (volume ${volume.name})`);
    }
    addItems(payload, 'configmap', name, data, v.items, v.defaultMode ?? 0o644, v.optional === true);
    return payload;
  }
  if (volume.secret) {
    const v = volume.secret;
    const name = v.secretName ?? '';
    const data = ctx.refs.secret(name);
    if (!data) {
      if (v.optional) return payload;
      throw new MissingRefError(`secret "${name}" not found (volume ${volume.name})`);
    }
    addItems(payload, 'secret', name, data, v.items, v.defaultMode ?? 0o644, v.optional === true);
    return payload;
  }
  if (volume.downwardAPI) {
    addDownward(payload, ctx, volume.downwardAPI.items, volume.downwardAPI.defaultMode ?? 0o644);
    return payload;
  }
  if (volume.projected) {
    const mode = volume.projected.defaultMode ?? 0o644;
    for (const src of volume.projected.sources ?? []) {
      if (src.configMap) {
        const name = src.configMap.name ?? '';
        const data = configMapBytes(ctx, name);
        if (!data) {
          if (src.configMap.optional) continue;
          throw new MissingRefError(`configmap "${name}" not found (projected volume ${volume.name})`);
        }
        addItems(payload, 'configmap', name, data, src.configMap.items, mode, src.configMap.optional === true);
      } else if (src.secret) {
        const name = src.secret.name ?? '';
        const data = ctx.refs.secret(name);
        if (!data) {
          if (src.secret.optional) continue;
          throw new MissingRefError(`secret "${name}" not found (projected volume ${volume.name})`);
        }
        addItems(payload, 'secret', name, data, src.secret.items, mode, src.secret.optional === true);
      } else if (src.downwardAPI) {
        addDownward(payload, ctx, src.downwardAPI.items, mode);
      } else if (src.serviceAccountToken) {
        payload.set(src.serviceAccountToken.path, { data: projectedToken(ctx, src.serviceAccountToken), mode });
      }
    }
    return payload;
  }
  return undefined;
}

/** The payload of the automounted service-account volume. */
export function serviceAccountPayload(sa: ServiceAccountFiles, namespace: string): VolumePayload {
  return new Map([
    ['token', { data: Buffer.from(sa.token), mode: 0o644 }],
    ['ca.crt', { data: Buffer.from(sa.caCrt), mode: 0o644 }],
    ['namespace', { data: Buffer.from(namespace), mode: 0o644 }],
  ]);
}

function payloadHash(payload: VolumePayload, gid: number): string {
  const h = crypto.createHash('sha256');
  h.update(String(gid));
  for (const k of [...payload.keys()].sort()) {
    const f = payload.get(k)!;
    h.update(`\0${k}\0${f.mode}\0`);
    h.update(f.data);
  }
  return h.digest('hex');
}

/**
 * Writes a volume like kubelet's AtomicWriter: the files live in a timestamped `..<ts>` directory,
 * `..data` is a symlink to it that is swapped with one rename, and every top-level entry is a
 * symlink through `..data`. Readers (and a bind mount of the directory) never see a half-written
 * update. Files are root:<fsGroup> with their mode (kubelet adds group read with fsGroup).
 * Returns whether anything changed.
 */
export function writeAtomic(dir: string, payload: VolumePayload, fsGroup: number | undefined, last?: string): string {
  const gid = fsGroup ?? 0;
  const hash = payloadHash(payload, gid);
  if (hash === last && fs.existsSync(path.join(dir, '..data'))) return hash;
  fs.mkdirSync(dir, { recursive: true });
  fs.chownSync(dir, 0, gid);
  fs.chmodSync(dir, fsGroup !== undefined ? 0o2755 : 0o755);
  const d = new Date();
  const pad = (n: number, w = 2): string => String(n).padStart(w, '0');
  const tsName = `..${d.getUTCFullYear()}_${pad(d.getUTCMonth() + 1)}_${pad(d.getUTCDate())}_${pad(d.getUTCHours())}`
    + `_${pad(d.getUTCMinutes())}_${pad(d.getUTCSeconds())}.${crypto.randomBytes(4).toString('hex')}`;
  const tsDir = path.join(dir, tsName);
  fs.mkdirSync(tsDir);
  const dirMode = fsGroup !== undefined ? 0o2755 : 0o755;
  fs.chownSync(tsDir, 0, gid);
  fs.chmodSync(tsDir, dirMode);
  for (const [rel, file] of payload) {
    if (rel.startsWith('/') || rel.split('/').includes('..')) throw new ConfigError(`invalid volume item path ${rel}`);
    const target = path.join(tsDir, rel);
    const parent = path.dirname(target);
    if (!fs.existsSync(parent)) {
      fs.mkdirSync(parent, { recursive: true });
      for (let p = parent; p !== tsDir; p = path.dirname(p)) {
        fs.chownSync(p, 0, gid);
        fs.chmodSync(p, dirMode);
      }
    }
    fs.writeFileSync(target, file.data);
    fs.chownSync(target, 0, gid);
    fs.chmodSync(target, fsGroup !== undefined ? (file.mode | 0o440) : file.mode);
  }
  let oldTs: string | undefined;
  try {
    oldTs = fs.readlinkSync(path.join(dir, '..data'));
  } catch {
    oldTs = undefined;
  }
  const tmpLink = path.join(dir, '..data_tmp');
  fs.rmSync(tmpLink, { force: true });
  fs.symlinkSync(tsName, tmpLink);
  fs.renameSync(tmpLink, path.join(dir, '..data'));
  const top = new Set([...payload.keys()].map((k) => k.split('/')[0]));
  for (const name of top) {
    const link = path.join(dir, name);
    if (!fs.existsSync(link)) fs.symlinkSync(path.join('..data', name), link);
  }
  for (const name of fs.readdirSync(dir)) {
    if (name.startsWith('..') || top.has(name)) continue;
    fs.rmSync(path.join(dir, name), { force: true, recursive: true });
  }
  if (oldTs && oldTs !== tsName) fs.rmSync(path.join(dir, oldTs), { recursive: true, force: true });
  return hash;
}

/** Creates an emptyDir / PVC directory owned by the (mapped) pod user and group. */
export function createWritableVolume(dir: string, uid: number, gid: number, mode: number): void {
  if (fs.existsSync(dir)) return;
  fs.mkdirSync(dir, { recursive: true });
  fs.chownSync(dir, uid, gid);
  fs.chmodSync(dir, mode);
}

/**
 * kubelet's SetVolumeOwnership for a pod with fsGroup (block-device volumes and emptyDir): every
 * file and directory gets the group fsGroup, files g+rw, directories g+rwx and setgid, recursively.
 * With fsGroupChangePolicy OnRootMismatch it is skipped when the root already matches.
 */
export function applyFsGroup(dir: string, fsGroup: number, policy: string | undefined): void {
  const st = fs.statSync(dir);
  const required = 0o2770;
  if (policy === 'OnRootMismatch' && st.gid === fsGroup && (st.mode & required) === required) return;
  const walk = (p: string): void => {
    const s = fs.lstatSync(p);
    fs.lchownSync(p, -1, fsGroup);
    if (s.isSymbolicLink()) return;
    if (s.isDirectory()) {
      fs.chmodSync(p, (s.mode & 0o7777) | 0o2770);
      for (const e of fs.readdirSync(p)) walk(path.join(p, e));
    } else {
      fs.chmodSync(p, (s.mode & 0o7777) | 0o660);
    }
  };
  walk(dir);
}

/**
 * Copies a file or directory of a volume (following kubelet's `..data` symlinks) for a subPath
 * mount: kubelet bind-mounts the file as it was at container start, later updates never reach it.
 */
export function snapshot(src: string, dst: string): void {
  fs.rmSync(dst, { recursive: true, force: true });
  const st = fs.statSync(src);
  if (st.isDirectory()) {
    fs.mkdirSync(dst, { recursive: true });
    for (const e of fs.readdirSync(src)) {
      if (e.startsWith('..')) continue;
      snapshot(path.join(src, e), path.join(dst, e));
    }
  } else {
    fs.mkdirSync(path.dirname(dst), { recursive: true });
    fs.copyFileSync(fs.realpathSync(src), dst);
  }
  fs.chownSync(dst, st.uid, st.gid);
  fs.chmodSync(dst, st.mode & 0o7777);
}

// ---------------------------------------------------------------------------------------------
// Mount points on the host file system.
//
// A bind mount needs an existing mount point. When a container mounts a volume at a path that
// does not exist on this host (say /etc/app), the harness creates that path on the host (the
// bind mount itself only exists in the container's private mount namespace). Created paths are
// recorded in a registry shared by all harness processes and removed (rmdir / unlink of empty
// files only) by the last harness that exits, so parallel test files never pull a mount point
// from under each other.
// ---------------------------------------------------------------------------------------------

const REGISTRY = path.join(os.tmpdir(), 'fdb-e2e-registry');

function registryLive(): string {
  return path.join(REGISTRY, 'live');
}

export function registerHarness(id: string): void {
  fs.mkdirSync(registryLive(), { recursive: true });
  fs.writeFileSync(path.join(registryLive(), `${process.pid}-${id}`), '');
}

/** Ids of the harnesses whose process is alive (stale registry entries are removed). */
export function liveHarnessIds(): Set<string> {
  const ids = new Set<string>();
  let entries: string[] = [];
  try {
    entries = fs.readdirSync(registryLive());
  } catch {
    return ids;
  }
  for (const e of entries) {
    const [pid, id] = e.split('-');
    if (Number(pid) === process.pid || pidAlive(Number(pid))) ids.add(id);
    else fs.rmSync(path.join(registryLive(), e), { force: true });
  }
  return ids;
}

/** Creates a missing mount point on the host (directory, or empty file for a file mount). */
export function ensureHostMountpoint(target: string, isFile: boolean): void {
  const parts = path.resolve(target).split('/').filter((p) => p !== '');
  let cur = '';
  const created: string[] = [];
  for (let i = 0; i < parts.length; i++) {
    cur += `/${parts[i]}`;
    if (fs.existsSync(cur)) continue;
    const last = i === parts.length - 1;
    if (last && isFile) {
      fs.writeFileSync(cur, '', { flag: 'wx' });
    } else {
      fs.mkdirSync(cur);
    }
    created.push(JSON.stringify({ path: cur, file: last && isFile }));
  }
  if (created.length > 0) fs.appendFileSync(path.join(REGISTRY, 'created'), created.join('\n') + '\n');
}

/** Unregisters; the last live harness removes the recorded mount points (when still empty). */
export function releaseHarness(id: string): void {
  try {
    fs.rmSync(path.join(registryLive(), `${process.pid}-${id}`), { force: true });
    const others = fs.readdirSync(registryLive()).filter((e) => {
      const pid = Number(e.split('-')[0]);
      if (pid !== process.pid && pidAlive(pid)) return true;
      if (pid !== process.pid) fs.rmSync(path.join(registryLive(), e), { force: true });
      return pid === process.pid;
    });
    if (others.length > 0) return;
    const file = path.join(REGISTRY, 'created');
    if (!fs.existsSync(file)) return;
    const entries = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l !== '')
      .map((l) => JSON.parse(l) as { path: string; file: boolean });
    for (const e of entries.reverse()) {
      try {
        if (e.file) {
          if (fs.statSync(e.path).size === 0) fs.unlinkSync(e.path);
        } else {
          fs.rmdirSync(e.path);
        }
      } catch {
        // in use or not empty: leave it
      }
    }
    fs.rmSync(file, { force: true });
  } catch {
    // best effort
  }
}

/** Per-pod delay of ConfigMap/Secret volume updates, in ms (each pod draws its own in the range). */
export interface ConfigDeliveryOptions {
  readonly minMs: number;
  readonly maxMs: number;
}

/**
 * When each pod's kubelet syncs its configMap/secret/projected volumes after a change in the
 * store. Without options every pod is refreshed at the next tick (within ~0.5 s of a change).
 * With them, a pod that has not seen the latest change is refreshed once its own delay (drawn
 * uniformly in [minMs, maxMs] when the change is first seen) has passed; later changes do not
 * postpone a pending refresh (the sync renders what the store holds then). A held pod is never
 * refreshed until released; a release delivers at the next tick.
 */
export class ConfigDelivery {
  /** Pod name -> when its pending refresh is due (absent: nothing pending). */
  private readonly due = new Map<string, number>();
  private readonly held = new Set<string>();
  /** Pod name -> the store signature its volumes were last rendered from. */
  private readonly seen = new Map<string, string>();

  public constructor(private readonly options: ConfigDeliveryOptions | undefined) {
    if (options && !(options.minMs >= 0 && options.maxMs >= options.minMs)) {
      throw new ConfigError(`configDelivery: need 0 <= minMs <= maxMs (got ${options.minMs}, ${options.maxMs})`);
    }
  }

  public hold(pod: string): void {
    this.held.add(pod);
  }

  public release(pod: string): void {
    this.held.delete(pod);
    if (this.due.has(pod)) this.due.set(pod, 0);
  }

  public isHeld(pod: string): boolean {
    return this.held.has(pod);
  }

  /** Marks a pod as rendered from `signature` (pod start renders current sources). */
  public rendered(pod: string, signature: string): void {
    this.seen.set(pod, signature);
    this.due.delete(pod);
  }

  public forget(pod: string): void {
    this.seen.delete(pod);
    this.due.delete(pod);
  }

  /**
   * The pods (of `pods`) to refresh now for the store's `signature`. `immediate`: a change the
   * caller made itself (apply, setSecret) with no delivery options: everyone not held, now.
   */
  public duePods(pods: readonly string[], signature: string, now: number): string[] {
    const out: string[] = [];
    for (const pod of pods) {
      if (this.seen.get(pod) === signature) {
        this.due.delete(pod);
        continue;
      }
      if (!this.due.has(pod)) this.due.set(pod, now + this.draw());
      if (this.held.has(pod) || this.due.get(pod)! > now) continue;
      out.push(pod);
    }
    return out;
  }

  private draw(): number {
    if (!this.options) return 0;
    const { minMs, maxMs } = this.options;
    return minMs + Math.floor(Math.random() * (maxMs - minMs + 1));
  }
}
