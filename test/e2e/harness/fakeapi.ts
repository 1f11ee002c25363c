import { ChildProcess, spawn } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { ConfigMap, ObjectMeta, PolicyRule, Secret, StringMap } from './types';
import { hostEnv, run, signal, sleep } from './util';

/** The resources the fake API server serves, by plural name (as in URLs and RBAC rules). */
export type Resource = 'configmaps' | 'secrets' | 'deployments' | 'leases';

/** A ConfigMap, Secret, Deployment or Lease, as a manifest or as stored (a Deployment's or Lease's spec is kept as it is). */
export type DataObject = ConfigMap & Secret & { spec?: any };

/** kubectl's annotation holding the last applied manifest: its three-way merge reads it. */
const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

const KIND: Record<Resource, string> = { configmaps: 'ConfigMap', secrets: 'Secret', deployments: 'Deployment', leases: 'Lease' };
const API_VERSION: Record<Resource, string> = { configmaps: 'v1', secrets: 'v1', deployments: 'apps/v1', leases: 'coordination.k8s.io/v1' };

/** The string maps of each kind (merged key by key by `ObjectStore.apply`). */
const DATA_MAPS: Record<Resource, ReadonlyArray<'data' | 'binaryData' | 'spec'>> = {
  configmaps: ['data', 'binaryData'],
  secrets: ['data'],
  deployments: [],
  // kubectl apply merges a Lease's spec field by field: the holder the sidecars write is kept.
  leases: ['spec'],
};

/**
 * The kind-specific body as the API server stores it (server.js's RESOURCES do the same for API
 * writes): Secret `stringData` folded into base64 `data` and `type` defaulted, empty maps dropped
 * (the API server omits them).
 */
function body(resource: Resource, o: DataObject): DataObject {
  if (resource === 'deployments' || resource === 'leases') return { spec: o.spec };
  if (resource === 'configmaps') return withoutEmptyMaps({ data: o.data, binaryData: o.binaryData });
  const data: StringMap = { ...o.data };
  for (const [k, v] of Object.entries(o.stringData ?? {})) data[k] = Buffer.from(v, 'utf8').toString('base64');
  return withoutEmptyMaps({ type: o.type ?? 'Opaque', data });
}

/** The fields of stored metadata an applied manifest sets (everything but what the server adds). */
function pickMeta(meta: ObjectMeta | undefined): ObjectMeta {
  const { namespace, uid, creationTimestamp, resourceVersion, ...rest } = meta ?? {};
  void namespace; void uid; void creationTimestamp; void resourceVersion;
  return rest;
}

function withoutEmptyMaps(o: DataObject): DataObject {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && (typeof v !== 'object' || Object.keys(v).length > 0)));
}

/** A new resourceVersion: changes on every write of an object (409 Conflict relies on it). */
function nextVersion(prev: ObjectMeta | undefined): string {
  return String(Math.max(Date.now(), Number(prev?.resourceVersion ?? 0) + 1));
}

/**
 * `kubectl apply`'s three-way merge of one string map: keys the manifest sets are set, keys only
 * the previous manifest set are removed, keys that others added (API clients) are kept.
 */
function threeWayMerge(live: StringMap = {}, lastApplied: StringMap = {}, manifest: StringMap = {}): StringMap {
  const out = { ...live };
  for (const k of Object.keys(lastApplied)) if (!(k in manifest)) delete out[k];
  return { ...out, ...manifest };
}

/**
 * The ConfigMaps and Secrets, shared by the harness and the fake API server process: one JSON file
 * per object (`<dir>/<resource>/<namespace>/<name>.json`), written with rename (update) or, by
 * the server, link (create, so that a concurrent create fails with EEXIST like a 409).
 */
export class ObjectStore {
  constructor(public readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true });
  }

  public get(resource: Resource, namespace: string, name: string): DataObject | undefined {
    try {
      return JSON.parse(fs.readFileSync(this.file(resource, namespace, name), 'utf8')) as DataObject;
    } catch {
      return undefined;
    }
  }

  /**
   * An object's keys and bytes as kubelet projects them (ConfigMap `data` as UTF-8 plus
   * `binaryData`, Secret `data` decoded), or undefined if it does not exist.
   */
  public data(resource: Resource, namespace: string, name: string): Record<string, Buffer> | undefined {
    const o = this.get(resource, namespace, name);
    if (!o) return undefined;
    const decode = (m: StringMap | undefined, enc: BufferEncoding): Array<[string, Buffer]> =>
      Object.entries(m ?? {}).map(([k, v]) => [k, Buffer.from(v, enc)]);
    return Object.fromEntries(resource === 'configmaps'
      ? [...decode(o.data, 'utf8'), ...decode(o.binaryData, 'base64')]
      : decode(o.data, 'base64'));
  }

  /** Creates or replaces an object (a manifest: Secret stringData allowed); uid and creationTimestamp are kept. */
  public put(resource: Resource, namespace: string, manifest: DataObject): void {
    const name = manifest.metadata?.name;
    if (!name) throw new Error(`${KIND[resource]} without metadata.name`);
    const prev = this.get(resource, namespace, name)?.metadata;
    const stored: DataObject = {
      apiVersion: API_VERSION[resource],
      kind: KIND[resource],
      metadata: {
        ...manifest.metadata,
        namespace,
        uid: prev?.uid ?? crypto.randomUUID(),
        creationTimestamp: prev?.creationTimestamp ?? new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
        resourceVersion: nextVersion(prev),
      },
      ...body(resource, manifest),
    };
    const file = this.file(resource, namespace, name);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tmp = path.join(path.dirname(file), `.${name}.${crypto.randomBytes(4).toString('hex')}.tmp`);
    fs.writeFileSync(tmp, JSON.stringify(stored), { mode: 0o600 });
    fs.renameSync(tmp, file);
  }

  /**
   * `kubectl apply` of a manifest: its data maps are three-way merged with the live object and the
   * manifest applied last (kept, as kubectl does, in the last-applied-configuration annotation);
   * everything else is the manifest's.
   */
  public apply(resource: Resource, namespace: string, manifest: DataObject): void {
    const name = manifest.metadata?.name ?? '';
    const live = this.get(resource, namespace, name);
    const lastJson = live?.metadata?.annotations?.[LAST_APPLIED];
    const last = lastJson ? body(resource, JSON.parse(lastJson) as DataObject) : undefined;
    const next = body(resource, manifest);
    const merged: DataObject = {
      ...next,
      metadata: { ...manifest.metadata, annotations: { ...manifest.metadata?.annotations, [LAST_APPLIED]: JSON.stringify(manifest) } },
      ...Object.fromEntries(DATA_MAPS[resource].map((m) => [m, threeWayMerge(live?.[m], last?.[m], next[m])])),
    };
    // As kubectl: nothing to change, no write (a Lease's resourceVersion moves only when its
    // holder writes, which the sidecars' expiry by observation relies on).
    if (resource === 'leases' && live && JSON.stringify(body(resource, merged)) === JSON.stringify(body(resource, live))
      && JSON.stringify(merged.metadata) === JSON.stringify(pickMeta(live.metadata))) return;
    this.put(resource, namespace, merged);
  }

  /** `kubectl apply --prune`: deletes the objects applied earlier (they carry the annotation) that are not in `keep`. */
  public prune(resource: Resource, namespace: string, keep: ReadonlySet<string>): void {
    for (const o of this.list(resource, namespace)) {
      const name = o.metadata?.name ?? '';
      if (o.metadata?.annotations?.[LAST_APPLIED] !== undefined && !keep.has(name)) this.delete(resource, namespace, name);
    }
  }

  public list(resource: Resource, namespace: string): DataObject[] {
    const dir = path.join(this.dir, resource, namespace);
    return safeReaddir(dir).filter((f) => f.endsWith('.json'))
      .map((f) => this.get(resource, namespace, f.slice(0, -'.json'.length)))
      .filter((o): o is DataObject => o !== undefined);
  }

  /** Deletes an object; returns whether it existed. */
  public delete(resource: Resource, namespace: string, name: string): boolean {
    const file = this.file(resource, namespace, name);
    const existed = fs.existsSync(file);
    fs.rmSync(file, { force: true });
    return existed;
  }

  /**
   * Changes whenever any object is created, updated or deleted, Leases aside (no volume projects
   * one; their renewals every few seconds would keep every pod's config delivery due).
   */
  public signature(): string {
    const parts: string[] = [];
    for (const resource of Object.keys(KIND).filter((r) => r !== 'leases')) {
      for (const ns of safeReaddir(path.join(this.dir, resource))) {
        for (const f of safeReaddir(path.join(this.dir, resource, ns))) {
          if (!f.endsWith('.json')) continue;
          try {
            const st = fs.statSync(path.join(this.dir, resource, ns, f));
            parts.push(`${resource}/${ns}/${f}:${st.mtimeMs}:${st.ino}`);
          } catch {
            // deleted meanwhile
          }
        }
      }
    }
    return parts.sort().join(',');
  }

  private file(resource: Resource, namespace: string, name: string): string {
    return path.join(this.dir, resource, namespace, `${name}.json`);
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

interface RoleRef {
  readonly kind?: string;
  readonly name?: string;
}

interface Subject {
  readonly kind?: string;
  readonly name?: string;
  readonly namespace?: string;
}

/** RBAC objects as the fake API server evaluates them. */
export interface RbacState {
  roles: Array<{ namespace: string; name: string; rules: PolicyRule[] }>;
  clusterRoles: Array<{ name: string; rules: PolicyRule[] }>;
  roleBindings: Array<{ namespace: string; roleRef: RoleRef; subjects: Subject[] }>;
  clusterRoleBindings: Array<{ roleRef: RoleRef; subjects: Subject[] }>;
}

/** One request the fake API server answered. */
export interface ApiRequest {
  readonly time: string;
  readonly method: string;
  readonly path: string;
  /** `system:serviceaccount:<ns>:<name>`, or undefined without a valid token. */
  readonly user?: string;
  readonly code: number;
}

/**
 * The fake API server: a small Node HTTPS server run as a separate process inside the switch
 * network namespace (`ip netns exec <switch> node server.js`), listening on the switch's bridge
 * address, port 443, so pods reach it like the in-cluster `kubernetes` Service. It serves the
 * ConfigMaps, Secrets and (stored, not run) Deployments of the shared ObjectStore and enforces the synthesized RBAC for
 * ServiceAccount tokens.
 */
export class FakeApi {
  public static async start(dir: string, switchNs: string, host: string, storeDir: string): Promise<FakeApi> {
    fs.mkdirSync(dir, { recursive: true });
    await makeCertificates(dir, host);
    const api = new FakeApi(dir, host);
    fs.writeFileSync(api.rbacFile, JSON.stringify({ roles: [], clusterRoles: [], roleBindings: [], clusterRoleBindings: [] }));
    fs.writeFileSync(api.tokensFile, '{}');
    fs.writeFileSync(path.join(dir, 'server.js'), SERVER_JS);
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({
      host,
      port: api.port,
      storeDir,
      rbacFile: api.rbacFile,
      tokensFile: api.tokensFile,
      logFile: api.logFile,
      readyFile: path.join(dir, 'ready'),
      key: path.join(dir, 'server.key'),
      cert: path.join(dir, 'server.crt'),
    }));
    const out = fs.openSync(path.join(dir, 'server.log'), 'a');
    api.proc = spawn('ip', ['netns', 'exec', switchNs, process.execPath, path.join(dir, 'server.js'), path.join(dir, 'config.json')],
      { detached: true, stdio: ['ignore', out, out], env: hostEnv() });
    fs.closeSync(out);
    api.proc.unref();
    const deadline = Date.now() + 15_000;
    while (!fs.existsSync(path.join(dir, 'ready'))) {
      if (api.proc.exitCode !== null || Date.now() > deadline) {
        throw new Error(`fake API server did not start:\n${fs.readFileSync(path.join(dir, 'server.log'), 'utf8')}`);
      }
      await sleep(50);
    }
    return api;
  }

  public readonly port = 443;
  public readonly caCrtFile: string;
  /** The CA certificate (PEM) that signed the server's certificate. */
  public readonly caCrt: string;
  private readonly rbacFile: string;
  private readonly tokensFile: string;
  private readonly logFile: string;
  private proc?: ChildProcess;
  private readonly tokens = new Map<string, string>();

  private constructor(private readonly dir: string, public readonly host: string) {
    this.caCrtFile = path.join(dir, 'ca.crt');
    this.caCrt = fs.readFileSync(this.caCrtFile, 'utf8');
    this.rbacFile = path.join(dir, 'rbac.json');
    this.tokensFile = path.join(dir, 'tokens.json');
    this.logFile = path.join(dir, 'requests.log');
  }

  public get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** The bearer token of a ServiceAccount (created on first use). */
  public token(namespace: string, serviceAccount: string): string {
    const key = `${namespace}/${serviceAccount}`;
    let t = this.tokens.get(key);
    if (!t) {
      t = `fdb-e2e.${crypto.randomBytes(24).toString('base64url')}`;
      this.tokens.set(key, t);
      const all: Record<string, { namespace: string; name: string }> = {};
      for (const [k, v] of this.tokens) {
        const [ns, name] = k.split('/');
        all[v] = { namespace: ns, name };
      }
      fs.writeFileSync(`${this.tokensFile}.tmp`, JSON.stringify(all));
      fs.renameSync(`${this.tokensFile}.tmp`, this.tokensFile);
    }
    return t;
  }

  public setRbac(state: RbacState): void {
    fs.writeFileSync(`${this.rbacFile}.tmp`, JSON.stringify(state));
    fs.renameSync(`${this.rbacFile}.tmp`, this.rbacFile);
  }

  public requests(): ApiRequest[] {
    try {
      return fs.readFileSync(this.logFile, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as ApiRequest);
    } catch {
      return [];
    }
  }

  public stop(): void {
    if (this.proc?.pid) signal(-this.proc.pid, 'SIGKILL');
  }

  public serverLog(): string {
    try {
      return fs.readFileSync(path.join(this.dir, 'server.log'), 'utf8');
    } catch {
      return '';
    }
  }
}

/** A throwaway CA and a server certificate for the switch address and kubernetes.default.svc. */
async function makeCertificates(dir: string, ip: string): Promise<void> {
  const f = (n: string): string => path.join(dir, n);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await run('openssl', ['req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.crt'), '-days', '2',
    '-subj', '/CN=fdb-e2e-ca', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  await run('openssl', ['req', ...ec, '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=kube-apiserver']);
  fs.writeFileSync(f('server.ext'), [
    'basicConstraints=CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage=serverAuth',
    `subjectAltName=IP:${ip},DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local`,
    '',
  ].join('\n'));
  await run('openssl', ['x509', '-req', '-in', f('server.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'),
    '-CAcreateserial', '-out', f('server.crt'), '-days', '2', '-extfile', f('server.ext')]);
}

/** The server, plain CommonJS, Node built-ins only. Written to the temp root at start. */
const SERVER_JS = String.raw`'use strict';
const https = require('https');
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));

function readJson(file, dflt) {
  try { return JSON.parse(fs.readFileSync(file, 'utf8')); } catch (e) { return dflt; }
}
function send(res, code, body) {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}
function status(res, code, reason, message, details) {
  send(res, code, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: code < 300 ? 'Success' : 'Failure',
    message: message, reason: reason, details: details, code: code });
}
function userOf(req) {
  const m = /^Bearer\s+(\S+)\s*$/.exec(req.headers.authorization || '');
  if (!m) return undefined;
  return readJson(cfg.tokensFile, {})[m[1]];
}
function ruleAllows(rule, verb, group, resource, name) {
  const has = (list, v) => Array.isArray(list) && (list.includes(v) || list.includes('*'));
  if (!has(rule.apiGroups, group)) return false;
  if (!has(rule.resources, resource)) return false;
  if (!has(rule.verbs, verb)) return false;
  if (Array.isArray(rule.resourceNames) && rule.resourceNames.length > 0) {
    return name !== undefined && rule.resourceNames.includes(name);
  }
  return true;
}
function subjectMatches(subject, bindingNs, sa) {
  if (subject.kind === 'ServiceAccount') {
    return subject.name === sa.name && (subject.namespace || bindingNs) === sa.namespace;
  }
  if (subject.kind === 'User') return subject.name === 'system:serviceaccount:' + sa.namespace + ':' + sa.name;
  if (subject.kind === 'Group') {
    return ['system:serviceaccounts', 'system:serviceaccounts:' + sa.namespace, 'system:authenticated'].includes(subject.name);
  }
  return false;
}
function allowed(sa, verb, ns, group, resource, name) {
  const rbac = readJson(cfg.rbacFile, { roles: [], clusterRoles: [], roleBindings: [], clusterRoleBindings: [] });
  const rulesOf = (ref, bindingNs) => {
    if (ref.kind === 'ClusterRole') {
      const cr = rbac.clusterRoles.find((r) => r.name === ref.name);
      return cr ? cr.rules : [];
    }
    const r = rbac.roles.find((x) => x.name === ref.name && x.namespace === bindingNs);
    return r ? r.rules : [];
  };
  for (const b of rbac.roleBindings) {
    if (b.namespace !== ns || !b.subjects.some((s) => subjectMatches(s, b.namespace, sa))) continue;
    if (rulesOf(b.roleRef, b.namespace).some((r) => ruleAllows(r, verb, group, resource, name))) return true;
  }
  for (const b of rbac.clusterRoleBindings) {
    if (!b.subjects.some((s) => subjectMatches(s, undefined, sa))) continue;
    if (rulesOf(b.roleRef, undefined).some((r) => ruleAllows(r, verb, group, resource, name))) return true;
  }
  return false;
}
// The resources served, by plural name: their string maps (values text or base64) and body(), the
// kind-specific part of a stored object (ObjectStore's body() does the same for the harness's writes).
const RESOURCES = {
  configmaps: {
    kind: 'ConfigMap',
    maps: { data: 'text', binaryData: 'base64' },
    body: (obj) => ({ data: obj.data, binaryData: obj.binaryData }),
  },
  secrets: {
    kind: 'Secret',
    maps: { data: 'base64', stringData: 'text' },
    // stringData is write-only: folded into data.
    body: (obj, prev) => {
      const data = Object.assign({}, obj.data);
      for (const k of Object.keys(obj.stringData || {})) data[k] = Buffer.from(obj.stringData[k], 'utf8').toString('base64');
      return { type: obj.type || (prev && prev.type) || 'Opaque', data: data };
    },
  },
  // Stored as written: no controller acts on it (the harness does not run Deployments).
  deployments: {
    kind: 'Deployment',
    group: 'apps',
    maps: {},
    body: (obj) => ({ spec: obj.spec }),
  },
  // Leader election: the spec as written (holderIdentity, renewTime...); no field is checked.
  leases: {
    kind: 'Lease',
    group: 'coordination.k8s.io',
    maps: {},
    body: (obj) => ({ spec: obj.spec }),
  },
};
// For ConfigMaps and Secrets (string maps only), a strategic merge patch is a JSON merge patch;
// for a Deployment only while the patch holds no list (the only use here: a template annotation).
const MERGE_PATCH_TYPES = ['application/merge-patch+json', 'application/strategic-merge-patch+json'];
const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function objectFile(r, ns, name) { return path.join(cfg.storeDir, r.resource, ns, name + '.json'); }
function getObject(r, ns, name) { return readJson(objectFile(r, ns, name), undefined); }
function listObjects(r, ns) {
  let files = [];
  try { files = fs.readdirSync(path.join(cfg.storeDir, r.resource, ns)); } catch (e) { /* none yet */ }
  return files.filter((f) => f.endsWith('.json') && !f.startsWith('.')).map((f) => getObject(r, ns, f.slice(0, -5))).filter(Boolean);
}
function isMap(v) { return v !== null && typeof v === 'object' && !Array.isArray(v); }
function normalize(r, obj, ns, name, prev) {
  const meta = Object.assign({}, obj.metadata || {}, {
    name: name, namespace: ns,
    uid: prev ? prev.metadata.uid : crypto.randomUUID(),
    creationTimestamp: prev ? prev.metadata.creationTimestamp : new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    // Changes on every write (the If-Match of PUT/PATCH): same rule as the harness's nextVersion().
    resourceVersion: String(Math.max(Date.now(), prev ? Number(prev.metadata.resourceVersion) + 1 : 0)),
  });
  delete meta.generateName;
  const out = { apiVersion: r.group ? r.group + '/v1' : 'v1', kind: r.kind, metadata: meta };
  const b = r.body(obj, prev);
  // The API server omits empty maps.
  for (const k of Object.keys(b)) if (b[k] !== undefined && !(isMap(b[k]) && Object.keys(b[k]).length === 0)) out[k] = b[k];
  return out;
}
/** Why the object's maps cannot be decoded (the API server's 400), or undefined. */
function invalidMaps(r, obj) {
  for (const [field, encoding] of Object.entries(r.maps)) {
    if (obj[field] === undefined || obj[field] === null) continue;
    if (!isMap(obj[field])) return field + ' must be a map of strings';
    for (const v of Object.values(obj[field])) {
      if (typeof v !== 'string') return field + ' must be a map of strings';
      if (encoding === 'base64' && !BASE64.test(v)) return 'illegal base64 data in ' + field;
    }
  }
  return undefined;
}
function writeTmp(r, ns, obj) {
  fs.mkdirSync(path.join(cfg.storeDir, r.resource, ns), { recursive: true });
  const tmp = path.join(cfg.storeDir, r.resource, ns, '.' + obj.metadata.name + '.' + crypto.randomBytes(4).toString('hex') + '.tmp');
  fs.writeFileSync(tmp, JSON.stringify(obj), { mode: 0o600 });
  return tmp;
}
function mergePatch(target, patch) {
  if (!isMap(patch)) return patch;
  const out = isMap(target) ? Object.assign({}, target) : {};
  for (const k of Object.keys(patch)) {
    if (patch[k] === null) delete out[k]; else out[k] = mergePatch(out[k], patch[k]);
  }
  return out;
}
function notFound(res, r, name) {
  return status(res, 404, 'NotFound', r.resource + ' "' + name + '" not found', { name: name, kind: r.resource });
}
/** Validates and stores an object: link() for a create (EEXIST: 409), rename() for an update. */
function store(res, r, ns, obj, prev) {
  const invalid = invalidMaps(r, obj);
  if (invalid) return status(res, 400, 'BadRequest', r.kind + ' in version "v1" cannot be handled as a ' + r.kind + ': ' + invalid);
  const name = obj.metadata.name;
  const s = normalize(r, obj, ns, name, prev);
  const tmp = writeTmp(r, ns, s);
  if (prev) {
    fs.renameSync(tmp, objectFile(r, ns, name));
    return send(res, 200, s);
  }
  try {
    fs.linkSync(tmp, objectFile(r, ns, name));
  } catch (e) {
    if (e.code !== 'EEXIST') throw e;
    return status(res, 409, 'AlreadyExists', r.resource + ' "' + name + '" already exists', { name: name, kind: r.resource });
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  return send(res, 201, s);
}
function create(res, r, ns, obj) {
  const meta = obj.metadata || {};
  let name = meta.name;
  if (!name && meta.generateName) name = meta.generateName + crypto.randomBytes(3).toString('hex').slice(0, 5);
  if (!name) return status(res, 422, 'Invalid', r.kind + ' "" is invalid: metadata.name: Required value: name or generateName is required');
  if (!NAME.test(name) || name.length > 253) return status(res, 422, 'Invalid', r.kind + ' "' + name + '" is invalid: metadata.name: Invalid value');
  return store(res, r, ns, Object.assign({}, obj, { metadata: Object.assign({}, meta, { name: name }) }), undefined);
}
/** PUT (replace) or PATCH (JSON merge patch); a resourceVersion in the body must be the current one. */
function update(req, res, r, ns, name, obj) {
  const prev = getObject(r, ns, name);
  if (!prev) return notFound(res, r, name);
  const meta = obj.metadata || {};
  if (req.method === 'PUT' && meta.name !== undefined && meta.name !== name) {
    return status(res, 400, 'BadRequest', 'the name of the object does not match the name on the URL');
  }
  if (meta.resourceVersion !== undefined && meta.resourceVersion !== prev.metadata.resourceVersion) {
    return status(res, 409, 'Conflict', 'Operation cannot be fulfilled on ' + r.resource + ' "' + name +
      '": the object has been modified; please apply your changes to the latest version and try again', { name: name, kind: r.resource });
  }
  const next = req.method === 'PUT' ? obj : mergePatch(prev, obj);
  return store(res, r, ns, Object.assign({}, next, { metadata: Object.assign({}, next.metadata, { name: name }) }), prev);
}

function handle(req, res, body, log) {
  const url = new URL(req.url, 'https://kubernetes');
  const p = url.pathname.replace(/\/+$/, '');
  if (req.method === 'GET' && ['/healthz', '/readyz', '/livez'].includes(p)) { res.writeHead(200); res.end('ok'); return; }
  if (req.method === 'GET' && p === '/version') {
    return send(res, 200, { major: '1', minor: '30', gitVersion: 'v1.30.0-fdb-e2e', platform: 'linux/amd64' });
  }
  const sa = userOf(req);
  if (sa) log.user = 'system:serviceaccount:' + sa.namespace + ':' + sa.name;
  const m = /^\/(api\/v1|apis\/apps\/v1|apis\/coordination\.k8s\.io\/v1)\/namespaces\/([^/]+)\/(configmaps|secrets|deployments|leases)(?:\/([^/]+))?$/.exec(p);
  if (!sa) return status(res, 401, 'Unauthorized', 'Unauthorized');
  if (!m || m[1] !== (RESOURCES[m[3]].group ? 'apis/' + RESOURCES[m[3]].group + '/v1' : 'api/v1')) return status(res, 404, 'NotFound', 'the server could not find the requested resource');
  const r = Object.assign({ resource: m[3] }, RESOURCES[m[3]]);
  const group = r.group || '';
  const ns = decodeURIComponent(m[2]);
  const name = m[4] === undefined ? undefined : decodeURIComponent(m[4]);
  const verbs = { GET: name ? 'get' : 'list', POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete' };
  const verb = verbs[req.method];
  if (!verb || (req.method === 'POST' && name) || (req.method !== 'GET' && req.method !== 'POST' && !name)) {
    return status(res, 405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
  }
  if (!allowed(sa, verb, ns, group, r.resource, req.method === 'POST' ? undefined : name)) {
    return status(res, 403, 'Forbidden', (name ? r.resource + ' "' + name + '"' : r.resource) + ' is forbidden: User "' + log.user +
      '" cannot ' + verb + ' resource "' + r.resource + '" in API group "' + group + '" in the namespace "' + ns + '"',
      { name: name, kind: r.resource });
  }
  if (req.method === 'GET' && !name) {
    return send(res, 200, { kind: r.kind + 'List', apiVersion: 'v1', metadata: { resourceVersion: String(Date.now()) }, items: listObjects(r, ns) });
  }
  if (req.method === 'GET') {
    const o = getObject(r, ns, name);
    return o ? send(res, 200, o) : notFound(res, r, name);
  }
  if (req.method === 'DELETE') {
    const o = getObject(r, ns, name);
    if (!o) return notFound(res, r, name);
    fs.rmSync(objectFile(r, ns, name), { force: true });
    return status(res, 200, undefined, undefined, { name: name, kind: r.resource, uid: o.metadata.uid });
  }
  const mediaType = (req.headers['content-type'] || '').split(';')[0].trim().toLowerCase();
  if (req.method === 'PATCH' && !MERGE_PATCH_TYPES.includes(mediaType)) {
    return status(res, 415, 'UnsupportedMediaType', 'the body of the request was in an unknown format - accepted media types include: ' +
      MERGE_PATCH_TYPES.join(', '));
  }
  let obj;
  try { obj = JSON.parse(body.toString('utf8')); } catch (e) {
    return status(res, 400, 'BadRequest', 'the request body is not valid JSON: ' + e.message);
  }
  if (!isMap(obj)) return status(res, 400, 'BadRequest', 'the request body is not a JSON object');
  if (obj.kind !== undefined && obj.kind !== r.kind && req.method !== 'PATCH') {
    return status(res, 400, 'BadRequest', 'the object provided is of kind ' + obj.kind + ', not ' + r.kind);
  }
  const meta = obj.metadata || {};
  if (req.method !== 'PATCH' && meta.namespace !== undefined && meta.namespace !== ns) {
    return status(res, 400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request');
  }
  return req.method === 'POST' ? create(res, r, ns, obj) : update(req, res, r, ns, name, obj);
}

const server = https.createServer({ key: fs.readFileSync(cfg.key), cert: fs.readFileSync(cfg.cert) }, (req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const log = { time: new Date().toISOString(), method: req.method, path: req.url, user: undefined, code: 0 };
    try {
      handle(req, res, Buffer.concat(chunks), log);
    } catch (e) {
      status(res, 500, 'InternalError', String(e && e.stack || e));
    }
    log.code = res.statusCode;
    fs.appendFileSync(cfg.logFile, JSON.stringify(log) + '\n');
  });
});
server.listen(cfg.port, cfg.host, () => {
  fs.writeFileSync(cfg.readyFile, 'ok');
  console.log('fake API server listening on ' + cfg.host + ':' + cfg.port);
});
`;
