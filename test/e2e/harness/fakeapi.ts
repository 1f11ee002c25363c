import { ChildProcess, spawn } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { PolicyRule, Secret, StringMap } from './types';
import { hostEnv, run, signal, sleep } from './util';

/** A Secret as stored: `stringData` folded into base64 `data`, namespace set. */
export function normalizeSecret(s: Secret, namespace: string): Secret {
  const data: StringMap = { ...(s.data ?? {}) };
  for (const [k, v] of Object.entries(s.stringData ?? {})) data[k] = Buffer.from(v, 'utf8').toString('base64');
  const meta = s.metadata ?? {};
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { ...meta, namespace },
    type: s.type ?? 'Opaque',
    data,
  };
}

/**
 * The Secret store shared by the harness and the fake API server process: one JSON file per
 * Secret (`<dir>/<namespace>/<name>.json`), written with rename (update) or link (create, so
 * that a concurrent create fails with EEXIST like the API server's 409).
 */
export class SecretStore {
  constructor(public readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true });
  }

  public get(namespace: string, name: string): Secret | undefined {
    try {
      return JSON.parse(fs.readFileSync(this.file(namespace, name), 'utf8')) as Secret;
    } catch {
      return undefined;
    }
  }

  /** Decoded data, or undefined if the Secret does not exist. */
  public data(namespace: string, name: string): Record<string, Buffer> | undefined {
    const s = this.get(namespace, name);
    if (!s) return undefined;
    return Object.fromEntries(Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')]));
  }

  public put(namespace: string, secret: Secret): void {
    const s = normalizeSecret(secret, namespace);
    const name = s.metadata?.name;
    if (!name) throw new Error('Secret without metadata.name');
    const prev = this.get(namespace, name);
    const full = {
      ...s,
      metadata: {
        ...s.metadata,
        uid: (prev?.metadata as { uid?: string } | undefined)?.uid ?? crypto.randomUUID(),
        creationTimestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
        resourceVersion: String(Date.now()),
      },
    };
    fs.mkdirSync(path.join(this.dir, namespace), { recursive: true });
    const tmp = `${this.file(namespace, name)}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(full), { mode: 0o600 });
    fs.renameSync(tmp, this.file(namespace, name));
  }

  public delete(namespace: string, name: string): void {
    fs.rmSync(this.file(namespace, name), { force: true });
  }

  /** Changes whenever any Secret is created, updated or deleted. */
  public signature(): string {
    const parts: string[] = [];
    for (const ns of safeReaddir(this.dir)) {
      for (const f of safeReaddir(path.join(this.dir, ns))) {
        if (!f.endsWith('.json')) continue;
        try {
          const st = fs.statSync(path.join(this.dir, ns, f));
          parts.push(`${ns}/${f}:${st.mtimeMs}:${st.ino}`);
        } catch {
          // deleted meanwhile
        }
      }
    }
    return parts.sort().join(',');
  }

  private file(namespace: string, name: string): string {
    return path.join(this.dir, namespace, `${name}.json`);
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
 * address, port 443, so pods reach it like the in-cluster `kubernetes` Service. It serves Secrets
 * from the shared SecretStore and enforces the synthesized RBAC for ServiceAccount tokens.
 */
export class FakeApi {
  public static async start(dir: string, switchNs: string, host: string, secretsDir: string): Promise<FakeApi> {
    fs.mkdirSync(dir, { recursive: true });
    await makeCertificates(dir, host);
    const api = new FakeApi(dir, host, secretsDir);
    fs.writeFileSync(api.rbacFile, JSON.stringify({ roles: [], clusterRoles: [], roleBindings: [], clusterRoleBindings: [] }));
    fs.writeFileSync(api.tokensFile, '{}');
    fs.writeFileSync(path.join(dir, 'server.js'), SERVER_JS);
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({
      host,
      port: api.port,
      storeDir: secretsDir,
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
  private readonly rbacFile: string;
  private readonly tokensFile: string;
  private readonly logFile: string;
  private proc?: ChildProcess;
  private readonly tokens = new Map<string, string>();

  private constructor(private readonly dir: string, public readonly host: string, public readonly secretsDir: string) {
    this.caCrtFile = path.join(dir, 'ca.crt');
    this.rbacFile = path.join(dir, 'rbac.json');
    this.tokensFile = path.join(dir, 'tokens.json');
    this.logFile = path.join(dir, 'requests.log');
  }

  public get pid(): number | undefined {
    return this.proc?.pid;
  }

  public caCrt(): string {
    return fs.readFileSync(this.caCrtFile, 'utf8');
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
function ruleAllows(rule, verb, resource, name) {
  const has = (list, v) => Array.isArray(list) && (list.includes(v) || list.includes('*'));
  if (!has(rule.apiGroups, '')) return false;
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
function allowed(sa, verb, ns, resource, name) {
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
    if (rulesOf(b.roleRef, b.namespace).some((r) => ruleAllows(r, verb, resource, name))) return true;
  }
  for (const b of rbac.clusterRoleBindings) {
    if (!b.subjects.some((s) => subjectMatches(s, undefined, sa))) continue;
    if (rulesOf(b.roleRef, undefined).some((r) => ruleAllows(r, verb, resource, name))) return true;
  }
  return false;
}
function secretFile(ns, name) { return path.join(cfg.storeDir, ns, name + '.json'); }
function getSecret(ns, name) { return readJson(secretFile(ns, name), undefined); }
function normalize(obj, ns, name, prev) {
  const data = Object.assign({}, obj.data || {});
  for (const k of Object.keys(obj.stringData || {})) data[k] = Buffer.from(String(obj.stringData[k]), 'utf8').toString('base64');
  const meta = Object.assign({}, obj.metadata || {}, {
    name: name, namespace: ns,
    uid: prev ? prev.metadata.uid : crypto.randomUUID(),
    creationTimestamp: prev ? prev.metadata.creationTimestamp : new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    resourceVersion: String(Date.now()),
  });
  delete meta.generateName;
  return { apiVersion: 'v1', kind: 'Secret', metadata: meta, type: obj.type || (prev && prev.type) || 'Opaque', data: data };
}
function validData(obj) {
  for (const v of Object.values(obj.data || {})) {
    if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) return false;
  }
  return true;
}
function writeTmp(ns, obj) {
  fs.mkdirSync(path.join(cfg.storeDir, ns), { recursive: true });
  const tmp = path.join(cfg.storeDir, ns, '.' + obj.metadata.name + '.' + crypto.randomBytes(4).toString('hex') + '.tmp');
  fs.writeFileSync(tmp, JSON.stringify(obj), { mode: 0o600 });
  return tmp;
}
function mergePatch(target, patch) {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out = (target && typeof target === 'object' && !Array.isArray(target)) ? Object.assign({}, target) : {};
  for (const k of Object.keys(patch)) {
    if (patch[k] === null) delete out[k]; else out[k] = mergePatch(out[k], patch[k]);
  }
  return out;
}
const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function handle(req, res, body, log) {
  const url = new URL(req.url, 'https://kubernetes');
  const p = url.pathname.replace(/\/+$/, '');
  if (req.method === 'GET' && ['/healthz', '/readyz', '/livez'].includes(p)) { res.writeHead(200); res.end('ok'); return; }
  if (req.method === 'GET' && p === '/version') {
    return send(res, 200, { major: '1', minor: '30', gitVersion: 'v1.30.0-fdb-e2e', platform: 'linux/amd64' });
  }
  const sa = userOf(req);
  if (sa) log.user = 'system:serviceaccount:' + sa.namespace + ':' + sa.name;
  const m = /^\/api\/v1\/namespaces\/([^/]+)\/secrets(?:\/([^/]+))?$/.exec(p);
  if (!sa) return status(res, 401, 'Unauthorized', 'Unauthorized');
  if (!m) return status(res, 404, 'NotFound', 'the server could not find the requested resource');
  const ns = decodeURIComponent(m[1]);
  const name = m[2] === undefined ? undefined : decodeURIComponent(m[2]);
  const verbs = { GET: name ? 'get' : 'list', POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete' };
  const verb = verbs[req.method];
  if (!verb || (req.method === 'POST' && name) || (req.method !== 'GET' && req.method !== 'POST' && !name)) {
    return status(res, 405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
  }
  if (!allowed(sa, verb, ns, 'secrets', req.method === 'POST' ? undefined : name)) {
    return status(res, 403, 'Forbidden', (name ? 'secrets "' + name + '"' : 'secrets') + ' is forbidden: User "' + log.user +
      '" cannot ' + verb + ' resource "secrets" in API group "" in the namespace "' + ns + '"',
      { name: name, kind: 'secrets' });
  }
  let obj;
  if (req.method === 'POST' || req.method === 'PUT' || req.method === 'PATCH') {
    try { obj = JSON.parse(body.toString('utf8')); } catch (e) {
      return status(res, 400, 'BadRequest', 'the request body is not valid JSON: ' + e.message);
    }
    if (obj === null || typeof obj !== 'object') return status(res, 400, 'BadRequest', 'the request body is not a JSON object');
  }
  if (req.method === 'GET' && !name) {
    const items = [];
    try { for (const f of fs.readdirSync(path.join(cfg.storeDir, ns))) if (f.endsWith('.json') && !f.startsWith('.')) items.push(readJson(path.join(cfg.storeDir, ns, f))); } catch (e) { /* none */ }
    return send(res, 200, { kind: 'SecretList', apiVersion: 'v1', metadata: { resourceVersion: String(Date.now()) }, items: items.filter(Boolean) });
  }
  if (req.method === 'GET') {
    const s = getSecret(ns, name);
    return s ? send(res, 200, s) : status(res, 404, 'NotFound', 'secrets "' + name + '" not found', { name: name, kind: 'secrets' });
  }
  if (req.method === 'DELETE') {
    const s = getSecret(ns, name);
    if (!s) return status(res, 404, 'NotFound', 'secrets "' + name + '" not found', { name: name, kind: 'secrets' });
    fs.rmSync(secretFile(ns, name), { force: true });
    return status(res, 200, undefined, undefined, { name: name, kind: 'secrets', uid: s.metadata.uid });
  }
  if (obj.kind !== undefined && obj.kind !== 'Secret' && req.method !== 'PATCH') {
    return status(res, 400, 'BadRequest', 'the object provided is of kind ' + obj.kind + ', not Secret');
  }
  const meta = obj.metadata || {};
  if (req.method !== 'PATCH' && meta.namespace !== undefined && meta.namespace !== ns) {
    return status(res, 400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request');
  }
  if (req.method === 'POST') {
    let newName = meta.name;
    if (!newName && meta.generateName) newName = meta.generateName + crypto.randomBytes(3).toString('hex').slice(0, 5);
    if (!newName) return status(res, 422, 'Invalid', 'Secret "" is invalid: metadata.name: Required value: name or generateName is required');
    if (!NAME.test(newName) || newName.length > 253) return status(res, 422, 'Invalid', 'Secret "' + newName + '" is invalid: metadata.name: Invalid value');
    if (!validData(obj)) return status(res, 400, 'BadRequest', 'Secret in version "v1" cannot be handled as a Secret: illegal base64 data');
    const s = normalize(obj, ns, newName, undefined);
    const tmp = writeTmp(ns, s);
    try {
      fs.linkSync(tmp, secretFile(ns, newName));
    } catch (e) {
      fs.rmSync(tmp, { force: true });
      if (e.code === 'EEXIST') {
        return status(res, 409, 'AlreadyExists', 'secrets "' + newName + '" already exists', { name: newName, kind: 'secrets' });
      }
      throw e;
    }
    fs.rmSync(tmp, { force: true });
    return send(res, 201, s);
  }
  const prev = getSecret(ns, name);
  if (!prev) return status(res, 404, 'NotFound', 'secrets "' + name + '" not found', { name: name, kind: 'secrets' });
  let next;
  if (req.method === 'PUT') {
    if (meta.name !== undefined && meta.name !== name) return status(res, 400, 'BadRequest', 'the name of the object does not match the name on the URL');
    next = obj;
  } else {
    next = mergePatch(prev, obj);
  }
  if (!validData(next)) return status(res, 400, 'BadRequest', 'illegal base64 data');
  const s = normalize(next, ns, name, prev);
  fs.renameSync(writeTmp(ns, s), secretFile(ns, name));
  return send(res, 200, s);
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
