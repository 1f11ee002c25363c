import { Chart, Testing } from 'cdk8s';
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { Job } from 'kubernetes-models/batch/v1';
import { Lease } from 'kubernetes-models/coordination.k8s.io/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { Role, RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { ConfigMap, Service, ServiceAccount } from 'kubernetes-models/v1';
import { FerretDBCluster, FerretDBClusterProps } from '../src';
import { isCustomResource, validateCustomResource } from './crd-schema';

/** Name given to the cluster by `synth` unless the props name one. */
export const NAME = 'x';

/** Label Kubernetes puts on every StatefulSet pod. */
export const POD_NAME_LABEL = 'statefulset.kubernetes.io/pod-name';

export interface Synthesized {
  readonly chart: Chart;
  readonly cluster: FerretDBCluster;
  readonly objs: any[];
}

/** A cluster (named `x` unless `props.name` says otherwise) alone in a fresh chart, synthesized. */
export function synthCluster(props: FerretDBClusterProps = {}): Synthesized {
  const chart = Testing.chart();
  const cluster = new FerretDBCluster(chart, 'db', { name: NAME, ...props });
  return { chart, cluster, objs: Testing.synth(chart) };
}

/** The objects of `synthCluster(props)`. */
export function synth(props: FerretDBClusterProps = {}): any[] {
  return synthCluster(props).objs;
}

export function byKind(objs: any[], kind: string): any[] {
  return objs.filter((o) => o.kind === kind);
}

/** The object of that kind and name; fails the test when there is none or more than one. */
export function find(objs: any[], kind: string, name: string): any {
  const found = objs.filter((o) => o.kind === kind && o.metadata?.name === name);
  if (found.length !== 1) {
    const names = byKind(objs, kind).map((o) => o.metadata?.name);
    throw new Error(`expected exactly one ${kind} named ${name}, found ${found.length} (${kind}s: ${names.join(', ') || 'none'})`);
  }
  return found[0];
}

/** A pod (StatefulSet pod) or a pod template (Deployment, Job), with the labels its pods carry. */
export interface PodLabels {
  /** The pod name for StatefulSet pods; `Deployment/<name>` or `Job/<name>` otherwise. */
  readonly id: string;
  readonly kind: string;
  readonly owner: string;
  readonly labels: { [key: string]: string };
}

/**
 * The label sets of every pod the objects create: one per StatefulSet pod (with the
 * `statefulset.kubernetes.io/pod-name` label Kubernetes adds), one per Deployment and per Job
 * (all pods of a Deployment carry the same labels).
 */
export function podTemplates(objs: any[]): PodLabels[] {
  const out: PodLabels[] = [];
  for (const o of objs) {
    const labels = o.spec?.template?.metadata?.labels ?? {};
    if (o.kind === 'StatefulSet') {
      const replicas = o.spec.replicas ?? 1;
      for (let i = 0; i < replicas; i++) {
        const pod = `${o.metadata.name}-${i}`;
        out.push({ id: pod, kind: o.kind, owner: o.metadata.name, labels: { ...labels, [POD_NAME_LABEL]: pod } });
      }
    } else if (o.kind === 'Deployment' || o.kind === 'Job') {
      out.push({ id: `${o.kind}/${o.metadata.name}`, kind: o.kind, owner: o.metadata.name, labels });
    }
  }
  return out;
}

/** The full pod specs of every workload (StatefulSets, Deployments, Jobs). */
export function podSpecs(objs: any[]): { owner: string; kind: string; labels: { [key: string]: string }; spec: any }[] {
  return objs
    .filter((o) => ['StatefulSet', 'Deployment', 'Job'].includes(o.kind))
    .map((o) => ({ owner: o.metadata.name, kind: o.kind, labels: o.spec.template.metadata?.labels ?? {}, spec: o.spec.template.spec }));
}

/** Whether a label selector matches a label set. Accepts a Service selector (a plain map) or a LabelSelector. */
export function selectorMatches(selector: any, labels: { [key: string]: string }): boolean {
  if (selector === undefined || selector === null) return false;
  const isLabelSelector = 'matchLabels' in selector || 'matchExpressions' in selector || Object.keys(selector).length === 0;
  const matchLabels: { [key: string]: string } = isLabelSelector ? selector.matchLabels ?? {} : selector;
  for (const [key, value] of Object.entries(matchLabels)) {
    if (labels[key] !== value) return false;
  }
  for (const e of (isLabelSelector ? selector.matchExpressions ?? [] : [])) {
    const has = e.key in labels;
    switch (e.operator) {
      case 'In': if (!has || !e.values.includes(labels[e.key])) return false; break;
      case 'NotIn': if (has && e.values.includes(labels[e.key])) return false; break;
      case 'Exists': if (!has) return false; break;
      case 'DoesNotExist': if (has) return false; break;
      default: throw new Error(`unknown selector operator ${e.operator}`);
    }
  }
  return true;
}

/** Which of the pods a Service or PodDisruptionBudget (or any) selector selects, by id. */
export function podsSelectedBy(selector: any, pods: PodLabels[]): string[] {
  if (selector === undefined || selector === null) return [];
  // A Service selector with no keys selects nothing; a LabelSelector `{}` selects everything.
  return pods.filter((p) => selectorMatches(selector, p.labels)).map((p) => p.id);
}

/** The selector of an object: Service spec.selector, or the LabelSelector of a workload, PDB or NetworkPolicy. */
export function selectorOf(obj: any): any {
  switch (obj.kind) {
    case 'Service': return obj.spec.selector;
    case 'StatefulSet':
    case 'Deployment':
    case 'PodDisruptionBudget': return obj.spec.selector;
    case 'NetworkPolicy': return obj.spec.podSelector;
    default: throw new Error(`no selector on a ${obj.kind}`);
  }
}

const MODELS: { [apiVersionKind: string]: any } = {
  'v1/Service': Service,
  'v1/ConfigMap': ConfigMap,
  'v1/ServiceAccount': ServiceAccount,
  'apps/v1/StatefulSet': StatefulSet,
  'apps/v1/Deployment': Deployment,
  'batch/v1/Job': Job,
  'rbac.authorization.k8s.io/v1/Role': Role,
  'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'coordination.k8s.io/v1/Lease': Lease,
};

/** Field names kubernetes-models does not check: the ones of containers, pod specs and volumes we use. */
const KNOWN_FIELDS: { [what: string]: string[] } = {
  container: ['name', 'image', 'imagePullPolicy', 'command', 'args', 'env', 'envFrom', 'ports', 'volumeMounts', 'resources',
    'securityContext', 'startupProbe', 'livenessProbe', 'readinessProbe', 'lifecycle', 'workingDir'],
  podSpec: ['automountServiceAccountToken', 'enableServiceLinks', 'securityContext', 'terminationGracePeriodSeconds', 'containers',
    'initContainers', 'volumes', 'nodeSelector', 'tolerations', 'affinity', 'topologySpreadConstraints', 'serviceAccountName',
    'restartPolicy'],
  podSecurityContext: ['runAsNonRoot', 'runAsUser', 'runAsGroup', 'fsGroup', 'fsGroupChangePolicy', 'seccompProfile', 'supplementalGroups'],
  securityContext: ['allowPrivilegeEscalation', 'readOnlyRootFilesystem', 'runAsNonRoot', 'runAsUser', 'runAsGroup', 'privileged',
    'capabilities', 'seccompProfile'],
  serviceSpec: ['type', 'selector', 'ports', 'clusterIP', 'publishNotReadyAddresses'],
  volume: ['name', 'configMap', 'secret', 'emptyDir', 'projected', 'persistentVolumeClaim'],
  projectedSource: ['serviceAccountToken', 'configMap', 'downwardAPI', 'secret', 'clusterTrustBundle'],
};

function checkFields(what: string, obj: any, where: string): void {
  for (const key of Object.keys(obj ?? {})) {
    if (!KNOWN_FIELDS[what].includes(key)) throw new Error(`${where}: unexpected field ${JSON.stringify(key)} in a ${what}`);
  }
}

/**
 * Validates every object against the Kubernetes OpenAPI schema (kubernetes-models) by apiVersion
 * and kind (custom resources against their CRD's schema), and the field names of pod specs, containers, volumes and Service specs. Throws on the first
 * invalid object and on any kind it does not know.
 */
export function validateAll(objs: any[]): void {
  for (const o of objs) {
    const where = `${o.apiVersion}/${o.kind} ${o.metadata?.name}`;
    if (isCustomResource(o)) {
      validateCustomResource(o);
      continue;
    }
    const Model = MODELS[`${o.apiVersion}/${o.kind}`];
    if (!Model) throw new Error(`${where}: unknown apiVersion/kind`);
    try {
      new Model(o).validate();
    } catch (e) {
      throw new Error(`${where}: ${(e as Error).message}`);
    }
    if (o.kind === 'Service') checkFields('serviceSpec', o.spec, where);
    const pod = o.spec?.template?.spec;
    if (pod) {
      checkFields('podSpec', pod, where);
      checkFields('podSecurityContext', pod.securityContext, where);
      for (const c of [...pod.containers, ...(pod.initContainers ?? [])]) {
        checkFields('container', c, `${where} container ${c.name}`);
        checkFields('securityContext', c.securityContext, `${where} container ${c.name}`);
      }
      for (const v of pod.volumes ?? []) {
        checkFields('volume', v, `${where} volume ${v.name}`);
        for (const source of v.projected?.sources ?? []) checkFields('projectedSource', source, `${where} volume ${v.name}`);
      }
    }
  }
}

/** Every container of every pod spec, with its owner. */
export function containers(objs: any[]): { owner: string; kind: string; container: any }[] {
  return podSpecs(objs).flatMap((p) => [...p.spec.containers, ...(p.spec.initContainers ?? [])]
    .map((container: any) => ({ owner: p.owner, kind: p.kind, container })));
}

/** The ConfigMap of the PostgreSQL pods (the one with postgresql.conf). */
export function postgresConfigMap(objs: any[]): any {
  const maps = byKind(objs, 'ConfigMap').filter((c) => c.data?.['postgresql.conf'] !== undefined);
  if (maps.length !== 1) throw new Error(`expected one PostgreSQL ConfigMap, found ${maps.length}`);
  return maps[0];
}

/** postgresql.conf parsed: setting name -> unquoted value (the last occurrence wins, as in PostgreSQL). */
export function postgresqlConf(objs: any[]): { [name: string]: string } {
  const out: { [name: string]: string } = {};
  for (const line of postgresConfigMap(objs).data['postgresql.conf'].split('\n')) {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const m = /^([A-Za-z0-9_.]+)\s*=\s*(.*)$/.exec(trimmed);
    if (!m) throw new Error(`unparsable postgresql.conf line: ${line}`);
    let value = m[2].trim();
    if (value.startsWith('\'')) {
      if (!value.endsWith('\'') || value.length < 2) throw new Error(`unterminated quoted value: ${line}`);
      value = value.slice(1, -1).replace(/''/g, '\'').replace(/\\\\/g, '\\');
    }
    out[m[1]] = value;
  }
  return out;
}

/** The raw value text (as written, quotes included) of a postgresql.conf setting. */
export function rawSetting(objs: any[], name: string): string | undefined {
  for (const line of postgresConfigMap(objs).data['postgresql.conf'].split('\n')) {
    const m = /^([A-Za-z0-9_.]+)\s*=\s*(.*)$/.exec(line.trim());
    if (m && m[1] === name) return m[2].trim();
  }
  return undefined;
}

/** PostgreSQL size text ("2560MB", "1GB", "512kB") in megabytes. */
export function megabytes(size: string): number {
  const m = /^(\d+)\s*(kB|MB|GB|TB)?$/.exec(size);
  if (!m) throw new Error(`not a PostgreSQL size: ${size}`);
  const factor: { [unit: string]: number } = { kB: 1 / 1024, MB: 1, GB: 1024, TB: 1024 * 1024 };
  return Number(m[1]) * factor[m[2] ?? 'MB'];
}

/** Kubernetes quantity ("512Mi", "1Gi", "250m", "2") as a number of base units. */
export function quantity(q: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|m|k|M|G|T)?$/.exec(String(q));
  if (!m) throw new Error(`not a quantity: ${q}`);
  const factor: { [unit: string]: number } = {
    '': 1, 'm': 1e-3, 'k': 1e3, 'M': 1e6, 'G': 1e9, 'T': 1e12, 'Ki': 2 ** 10, 'Mi': 2 ** 20, 'Gi': 2 ** 30, 'Ti': 2 ** 40,
  };
  return Number(m[1]) * factor[m[2] ?? ''];
}

/** The message of the error `fn` throws; fails when it throws nothing. */
export function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected an error, none was thrown');
}

/**
 * A FerretDB PostgreSQL URL: its hosts in the order pgx tries them (readers list two) and the URL
 * with only the first (the WHATWG URL parser takes a single host).
 */
export function parsePostgresUrl(value: string): { hosts: string[]; url: URL } {
  const m = /^(postgres(?:ql)?:\/\/(?:[^@/]*@)?)([^/?]*)(.*)$/.exec(value);
  if (!m) throw new Error(`not a PostgreSQL URL: ${value}`);
  const authorities = m[2].split(',');
  return { hosts: authorities.map((a) => a.replace(/:[0-9]+$/, '')), url: new URL(`${m[1]}${authorities[0]}${m[3]}`) };
}
