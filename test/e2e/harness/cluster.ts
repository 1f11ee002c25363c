import { execFileSync } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { DeploymentController, DeploymentState, templateHash } from './deployments';
import { RefSource } from './env';
import { ApiRequest, DataObject, FakeApi, ObjectStore, RbacState, Resource } from './fakeapi';
import { Network, NETNS_PREFIX, PartitionFrom, reapStaleNamespaces } from './netns';
import { ExecOptions, ExecResult, ImageSpec, PodHost, PodInit, PodRuntime, Tools } from './pod';
import { ProxyRule, ServiceProxy } from './service-proxy';
import { newStatefulSetState, partitionOf, revisionOf, StatefulSetController, StatefulSetState } from './statefulsets';
import { Deployment, Job, KubeObject, PodSpec, ProbeTiming, Role, RoleBinding, Service, ServiceAccount, StatefulSet, StringMap } from './types';
import { checkUserlands, UserlandImage, userlandImage } from './userland';
import { hostEnv, readText, signal, sleep, waitFor, which } from './util';
import { ConfigDelivery, ConfigDeliveryOptions, liveHarnessIds, registerHarness, releaseHarness } from './volumes';

const PG_BIN = '/usr/lib/postgresql/15/bin';

/**
 * The default image: the host's PostgreSQL 15 stands in for the postgres images. Its binaries go
 * first on PATH, PGDATA/PG_MAJOR are set as in the official image, and /var/run/postgresql and
 * /var/lib/postgresql (HOME) are per-container directories, as in an image's writable layer.
 */
export const DEFAULT_IMAGE: ImageSpec = {
  path: [PG_BIN],
  env: { PGDATA: '/var/lib/postgresql/data', PG_MAJOR: '15' },
  home: '/var/lib/postgresql',
  privateDirs: [
    { path: '/var/run/postgresql', mode: 0o3777 },
    { path: '/var/lib/postgresql', mode: 0o755 },
  ],
};

export interface ClusterOptions {
  /** Namespace of objects without metadata.namespace. Default: the objects' namespace, else 'default'. */
  readonly namespace?: string;
  /** Temp root. Default: fs.mkdtempSync(os.tmpdir() + '/fdb-e2e-'). Removed by destroy(). */
  readonly workDir?: string;
  /**
   * Per image (key: image name prefix without tag, e.g. 'curlimages/curl', or '*' for all),
   * merged over DEFAULT_IMAGE. Longest matching key wins.
   */
  readonly images?: Record<string, ImageSpec>;
  /**
   * Run every container inside its image's root (see userland.ts): key = image name without tag,
   * exactly; replaces `images`. An image of the objects missing from it makes create/apply throw.
   * Default: none (containers run the host's binaries).
   */
  readonly userlands?: Record<string, UserlandImage>;
  /**
   * With `userlands`: the ids the containers' ids become (`uid`: runAsUser; `gid`: runAsGroup,
   * fsGroup, supplementalGroups), for images whose root carries a user under other ids than the
   * image; any id not listed runs as synthesized. Without `userlands` every non-zero id is the
   * host's `postgres` user or group, whatever this says.
   */
  readonly userlandIds?: { readonly uid?: Readonly<Record<number, number>>; readonly gid?: Readonly<Record<number, number>> };
  /** Run the fake API server (in-cluster `kubernetes` Service). Default true. */
  readonly fakeApi?: boolean;
  /**
   * 'fast' (default): probe periodSeconds and initialDelaySeconds capped at 1 s, thresholds counted
   * in probes. 'scaled': same caps, but liveness/startup failureThreshold scaled so that the time
   * to a restart stays failureThreshold x periodSeconds. 'synthesized': every probe (readiness
   * included) every periodSeconds after initialDelaySeconds, as kubelet does.
   */
  readonly probeTiming?: ProbeTiming;
  /**
   * Per-pod delivery of ConfigMap/Secret volume updates: each pod's volumes follow a change after
   * its own delay, drawn in [minMs, maxMs] (kubelets sync 60-90 s apart in real clusters; scale as
   * the test needs). Default: every pod within ~0.5 s. `holdConfig()` stops a pod's delivery.
   */
  readonly configDelivery?: ConfigDeliveryOptions;
  /** Emulate kubelet's recursive fsGroup chgrp/chmod of emptyDir/PVC volumes. Default true. */
  readonly fsGroupOwnership?: boolean;
  /** Keep the temp root after destroy() (debugging). */
  readonly keepWorkDir?: boolean;
  /** Called with every harness event (pod created, container exited, probe failed...). */
  readonly onEvent?: (line: string) => void;
}

export interface PodInfo {
  readonly name: string;
  readonly owner: string;
  readonly ip?: string;
  readonly phase: string;
  readonly ready: boolean;
  readonly terminating: boolean;
  readonly restarts: Record<string, number>;
  /** Template labels plus the controller's (pod-name, pod-index, controller-revision-hash...). */
  readonly labels: StringMap;
}

export interface JobResult {
  readonly succeeded: boolean;
  /** Exit code of the first failed container of the last attempt (0 on success, null if killed). */
  readonly exitCode: number | null;
  readonly attempts: number;
  /** Name of the last attempt's pod (logs(podName, container) keeps working). */
  readonly podName: string;
  /** Logs of the last attempt (containers concatenated in order). */
  readonly logs: string;
  readonly timedOut: boolean;
}

export interface DeleteOptions {
  /** Default: the pod's terminationGracePeriodSeconds (30). */
  readonly graceSeconds?: number;
  /** Let the StatefulSet controller recreate the pod (default true). */
  readonly recreate?: boolean;
}

const NAMESPACED = new Set(['ConfigMap', 'Secret', 'Service', 'StatefulSet', 'Deployment', 'Job', 'ServiceAccount', 'Role', 'RoleBinding', 'Lease']);

/** Kubernetes' root-ca-cert publisher puts this ConfigMap in every namespace. */
const ROOT_CA = 'kube-root-ca.crt';
const ROOT_CA_DESCRIPTION = 'Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as '
  + 'the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.';

function nameOf(o: KubeObject): string {
  const n = o.metadata?.name;
  if (!n) throw new Error(`${o.kind} without metadata.name`);
  return n;
}

function matches(labels: StringMap, selector: StringMap): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

function ordinalOf(p: PodRuntime): number {
  return p.owner.ordinal ?? 0;
}

function asText(data: Record<string, Buffer> | undefined): StringMap | undefined {
  return data && Object.fromEntries(Object.entries(data).map(([k, v]) => [k, v.toString('utf8')]));
}

/**
 * A "kubelet emulator": runs the StatefulSet and Job pods of a synthesized app on this machine,
 * one network namespace per pod, with the containers' own commands. See README.md.
 */
export class Cluster implements PodHost {
  /** Checks the host, sets up the network (and fake API server) and loads the objects. */
  public static async create(objects: readonly unknown[], options: ClusterOptions = {}): Promise<Cluster> {
    const { tools, uid, gid } = preflight(options.fakeApi !== false);
    const root = options.workDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'fdb-e2e-'));
    fs.mkdirSync(root, { recursive: true });
    fs.chmodSync(root, 0o755);
    const typed = flatten(objects);
    if (options.userlands) checkUserlands(options.userlands, typed);
    const namespace = options.namespace
      ?? typed.find((o) => NAMESPACED.has(o.kind ?? '') && o.metadata?.namespace)?.metadata?.namespace ?? 'default';
    const id = crypto.randomBytes(3).toString('hex');
    reapStale(root);
    const c = new Cluster(root, namespace, id, tools, uid, gid, options);
    try {
      await c.init(typed);
    } catch (e) {
      await c.destroy();
      throw e;
    }
    return c;
  }

  public readonly network!: Network;
  public readonly refs: RefSource;
  public readonly probeTiming: ProbeTiming;
  public readonly fsGroupOwnership: boolean;
  public destroyed = false;
  private api?: FakeApi;
  /** ConfigMaps and Secrets: what the fake API serves is what volumes and env see. */
  private readonly store: ObjectStore;
  private services = new Map<string, Service>();
  /** ClusterIP per Service name, kept for the harness's life (a re-applied Service keeps it). */
  private readonly clusterIps = new Map<string, string>();
  private proxy?: ServiceProxy;
  private readonly statefulSets = new Map<string, StatefulSetState>();
  private readonly statefulSetController: StatefulSetController;
  private readonly deployments = new Map<string, DeploymentState>();
  private readonly deploymentController: DeploymentController;
  private jobs = new Map<string, Job>();
  private serviceAccounts = new Map<string, ServiceAccount>();
  private readonly podMap = new Map<string, PodRuntime>();
  private readonly tracked = new Set<number>();
  private readonly pidNamespaces = new Set<string>();
  private readonly eventLines: string[] = [];
  private readonly ignoredKinds = new Set<string>();
  private timer?: NodeJS.Timeout;
  private kickScheduled = false;
  private readonly delivery: ConfigDelivery;
  private destroying?: Promise<void>;
  private readonly exitHook: () => void;

  private constructor(
    public readonly root: string,
    public readonly namespace: string,
    private readonly id: string,
    public readonly tools: Tools,
    public readonly postgresUid: number,
    public readonly postgresGid: number,
    private readonly options: ClusterOptions,
  ) {
    this.probeTiming = options.probeTiming ?? 'fast';
    this.fsGroupOwnership = options.fsGroupOwnership !== false;
    this.delivery = new ConfigDelivery(options.configDelivery);
    this.store = new ObjectStore(path.join(root, 'api', 'store'));
    this.refs = {
      configMap: (name) => asText(this.store.data('configmaps', this.namespace, name)),
      secret: (name) => this.store.data('secrets', this.namespace, name),
    };
    this.statefulSetController = new StatefulSetController({
      pod: (name) => this.podMap.get(name),
      pods: () => [...this.podMap.values()],
      createPod: (init) => this.createPod(init),
      deletePod: (p, then) => {
        this.removePod(p, p.graceMs(), false).then(then).catch((e) => this.event(`${p.name}: delete failed: ${String(e)}`));
      },
      deleteClaim: (claim) => fs.rmSync(path.join(this.root, 'pvc', claim), { recursive: true, force: true }),
      event: (line) => this.event(line),
    });
    this.deploymentController = new DeploymentController({
      livePods: () => [...this.podMap.values()].filter((p) => !p.removed),
      createPod: (init) => this.createPod(init),
      deletePod: (p) => {
        this.removePod(p, p.graceMs(), false).catch((e) => this.event(`${p.name}: delete failed: ${String(e)}`));
      },
    });
    this.exitHook = () => this.destroySync();
    process.on('exit', this.exitHook);
    registerHarness(id);
    fs.writeFileSync(path.join(root, HARNESS_ID_FILE), `${process.pid}-${id}`);
  }

  // ---------------------------------------------------------------------------------------------
  // Public API
  // ---------------------------------------------------------------------------------------------

  /** The fake API server's address as pods see it (KUBERNETES_SERVICE_HOST/PORT), if enabled. */
  public get apiServer(): { host: string; port: number; caCertFile: string } | undefined {
    return this.api ? { host: this.api.host, port: this.api.port, caCertFile: this.api.caCrtFile } : undefined;
  }

  /** Network namespaces of this harness (switch + pods), for assertions. */
  public get netnsNames(): string[] {
    return this.network ? this.network.names() : [];
  }

  /**
   * Starts a StatefulSet's pods (ordinals 0..replicas-1; with OrderedReady one at a time, each
   * ready before the next) and waits until all are ready.
   */
  public async startStatefulSet(name: string, opts: { timeoutMs?: number } = {}): Promise<void> {
    const s = this.sts(name);
    s.started = true;
    this.kick();
    await this.waitConverged(s, opts.timeoutMs ?? 120_000);
  }

  /**
   * Starts a Deployment's ReplicaSet (pods `<name>-<pod-template-hash>-<random>`) and waits until
   * `replicas` pods of the current template are Ready.
   */
  public async startDeployment(name: string, opts: { timeoutMs?: number } = {}): Promise<void> {
    const d = this.deployment(name);
    d.started = true;
    this.kick();
    await this.waitRolledOut(d, opts.timeoutMs ?? 120_000);
  }

  /**
   * Sets spec.replicas and waits for it: a StatefulSet scales up in order / down from the highest
   * ordinal; a Deployment creates pods or deletes the extra ones (not-Ready, newest first).
   */
  public async scale(name: string, replicas: number, opts: { timeoutMs?: number } = {}): Promise<void> {
    const d = this.deployments.get(name);
    if (d) {
      d.replicas = replicas;
      this.kick();
      if (d.started) await this.waitRolledOut(d, opts.timeoutMs ?? 120_000);
      return;
    }
    const s = this.sts(name);
    s.replicas = replicas;
    for (const i of [...s.held]) if (i >= replicas) s.held.delete(i);
    this.kick();
    if (s.started) await this.waitConverged(s, opts.timeoutMs ?? 120_000);
  }

  /**
   * Deletes a pod gracefully: preStop hooks (bounded by the grace period), SIGTERM, SIGKILL after
   * the grace period; its emptyDirs are gone. Resolves when it is terminated. The StatefulSet
   * controller then recreates it (new IP, same PVCs) unless `recreate: false`.
   */
  public async deletePod(pod: string, opts: DeleteOptions = {}): Promise<void> {
    const p = this.pod(pod);
    this.holdIfWanted(p, opts.recreate);
    await this.removePod(p, opts.graceSeconds !== undefined ? opts.graceSeconds * 1000 : p.graceMs(), false);
    await this.proxy?.synced();
  }

  /** Kills a pod at once (SIGKILL to everything, no preStop): a node crash. Same recreate option. */
  public async killPod(pod: string, opts: { recreate?: boolean } = {}): Promise<void> {
    const p = this.pod(pod);
    this.holdIfWanted(p, opts.recreate);
    await this.removePod(p, 0, true);
    await this.proxy?.synced();
  }

  /** Lets the controller recreate a pod deleted with `recreate: false`; resolves once it is created. */
  public async startPod(pod: string, opts: { timeoutMs?: number } = {}): Promise<void> {
    const found = this.stsOfPod(pod);
    if (!found) throw new Error(`${pod} is not a pod name of a StatefulSet`);
    const [s, ordinal] = found;
    if (!s.started) throw new Error(`StatefulSet ${nameOf(s.obj)} was not started (startStatefulSet)`);
    if (ordinal >= s.replicas) throw new Error(`${pod}: ordinal ${ordinal} >= replicas ${s.replicas}`);
    s.held.delete(ordinal);
    this.kick();
    await waitFor(`pod ${pod} to be created (OrderedReady waits for lower ordinals to be ready)`, opts.timeoutMs ?? 60_000,
      () => this.podMap.has(pod) && !this.podMap.get(pod)!.terminating, () => this.describe());
  }

  /**
   * `kubectl exec`: runs argv in the container (its namespaces, user and environment). Like
   * kubectl, a pod that does not exist or a container that is not running gives exit code 1 and
   * the reason on stderr; an unknown container name throws.
   */
  public async exec(pod: string, container: string, argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const p = this.podMap.get(pod);
    if (!p) return { code: 1, stdout: '', stderr: `error: pods "${pod}" not found\n`, timedOut: false };
    const c = p.container(container);
    if (!c.running) {
      return { code: 1, stdout: '', stderr: `error: container ${container} in pod ${pod} is not running\n`, timedOut: false };
    }
    return c.exec(argv, opts);
  }

  /**
   * Reconciles a new synth of the same app, like `kubectl apply --prune`: ConfigMaps/Secrets
   * (three-way merge of their data, so keys added through the API are kept; ones no longer
   * applied are deleted; mounted files updated atomically, env for future starts), Services
   * (endpoints, DNS), RBAC, StatefulSets (replicas scaled; a changed pod template rolls under
   * `updateStrategy` RollingUpdate, the default: highest ordinal first down to the partition, one
   * pod at a time, each replacement Ready before the next; OnDelete only changes the pods created
   * later) and Deployments (replicas; a changed template rolls). With `wait` (default true) it
   * waits, for each started StatefulSet whose replicas, template or updateStrategy changed, until
   * its pods are Ready and every pod at or above the partition runs the new template (a held pod
   * in the way of the roll makes it time out), and for each changed Deployment until it is rolled
   * out.
   */
  public async apply(objects: readonly unknown[], opts: { wait?: boolean; timeoutMs?: number } = {}): Promise<void> {
    const before = new Map([...this.deployments].map(([n, d]) => [n, `${d.replicas} ${templateHash(d.obj)}`]));
    if (this.options.userlands) checkUserlands(this.options.userlands, flatten(objects));
    const changed = this.ingest(flatten(objects), false);
    await this.addServiceAddresses();
    this.refreshAllVolumes();
    this.refreshDns();
    this.kick();
    if (opts.wait !== false) {
      for (const s of changed) await this.waitStsRolledOut(s, opts.timeoutMs ?? 120_000);
      for (const [n, d] of this.deployments) {
        if (d.started && before.get(n) !== `${d.replicas} ${templateHash(d.obj)}`) await this.waitRolledOut(d, opts.timeoutMs ?? 120_000);
      }
    }
  }

  /**
   * Runs a Job's pod to completion: a new pod per attempt, up to backoffLimit+1 attempts with a
   * 1 s doubling (8 s max) backoff. Never throws for a failed Job: check `succeeded`.
   */
  public async runJob(name: string, opts: { timeoutMs?: number } = {}): Promise<JobResult> {
    const job = this.jobs.get(name);
    if (!job) throw new Error(`no Job ${name} (have: ${[...this.jobs.keys()].join(', ')})`);
    const backoffLimit = job.spec.backoffLimit ?? 6;
    const deadlineMs = Math.min(opts.timeoutMs ?? 120_000, (job.spec.activeDeadlineSeconds ?? Infinity) * 1000);
    const deadline = Date.now() + deadlineMs;
    let backoff = 1000;
    for (let attempt = 1; ; attempt++) {
      const pod = this.createJobPod(job);
      const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), Math.max(0, deadline - Date.now())).unref());
      const result = await Promise.race([pod.completion, timeout]);
      const logs = pod.containers.map((c) => c.logs()).join('');
      await this.removePod(pod, 0, true);
      if (result === 'timeout') {
        this.event(`job ${name}: timed out after ${deadlineMs} ms`);
        return { succeeded: false, exitCode: null, attempts: attempt, podName: pod.name, logs, timedOut: true };
      }
      if (result.succeeded) {
        return { succeeded: true, exitCode: 0, attempts: attempt, podName: pod.name, logs, timedOut: false };
      }
      this.event(`job ${name}: attempt ${attempt} failed (exit ${result.exitCode})`);
      if (attempt > backoffLimit || Date.now() + backoff > deadline) {
        return { succeeded: false, exitCode: result.exitCode, attempts: attempt, podName: pod.name, logs, timedOut: false };
      }
      await sleep(backoff);
      backoff = Math.min(backoff * 2, 8000);
    }
  }

  public async waitReady(pod: string, timeoutMs = 60_000): Promise<void> {
    await waitFor(`pod ${pod} to be ready`, timeoutMs, () => this.isReady(pod), () => this.describe());
    await this.proxy?.synced();
  }

  public async waitNotReady(pod: string, timeoutMs = 60_000): Promise<void> {
    await waitFor(`pod ${pod} to be not ready`, timeoutMs, () => !this.isReady(pod), () => this.describe());
    await this.proxy?.synced();
  }

  /** Polls `check` (every 200 ms) until it returns something other than undefined/false. */
  public async waitUntil<T>(what: string, timeoutMs: number, check: () => T | undefined | false | Promise<T | undefined | false>): Promise<T> {
    const r = await waitFor(what, timeoutMs, check, () => this.describe(), 200);
    await this.proxy?.synced();
    return r;
  }

  public isReady(pod: string): boolean {
    return this.podMap.get(pod)?.ready === true;
  }

  public podIP(pod: string): string {
    const ip = this.pod(pod).ip;
    if (!ip) throw new Error(`pod ${pod} has no IP yet`);
    return ip;
  }

  public pods(): PodInfo[] {
    return [...this.podMap.values()].map((p) => ({
      name: p.name,
      owner: `${p.owner.kind}/${p.owner.name}`,
      ip: p.ip,
      phase: p.phase,
      ready: p.ready,
      terminating: p.terminating,
      restarts: Object.fromEntries([...p.initContainers, ...p.containers].map((c) => [c.name, c.restarts])),
      labels: { ...p.labels },
    }));
  }

  /** Restarts of a container of the current pod instance (a recreated pod starts at 0). */
  public restarts(pod: string, container: string): number {
    return this.pod(pod).container(container).restarts;
  }

  /**
   * The environment of a running container's process, read from its /proc (what `printenv` in
   * it shows, for images without one such as FROM scratch ones).
   */
  public processEnv(pod: string, container: string): StringMap {
    const pid = this.pod(pod).container(container).current?.nsPid;
    if (pid === undefined) throw new Error(`${pod}/${container} is not running`);
    const vars = fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter((kv) => kv.includes('='));
    return Object.fromEntries(vars.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  }

  /** A container's stdout+stderr, appended across restarts and pod recreations. */
  public logs(pod: string, container: string): string {
    return readText(path.join(this.root, 'logs', pod, `${container}.log`));
  }

  /**
   * Host path of a pod volume (emptyDir, configMap/secret dir) or of a PVC by its
   * volumeClaimTemplate name (also when the pod is down).
   */
  public volumePath(pod: string, volumeOrClaimName: string): string {
    const p = this.podMap.get(pod);
    const v = p?.volume(volumeOrClaimName);
    if (p && v) return p.volumeDir(v);
    const found = this.stsOfPod(pod);
    if (found && (found[0].obj.spec.volumeClaimTemplates ?? []).some((t) => t.metadata?.name === volumeOrClaimName)) {
      return path.join(this.root, 'pvc', `${volumeOrClaimName}-${pod}`);
    }
    throw new Error(`pod ${pod} has no volume or claim template ${volumeOrClaimName}`);
  }

  /** Deletes a PVC's data (a lost volume). The pod must not be running unless `force`. */
  public wipeVolume(pod: string, claimTemplateName: string, opts: { force?: boolean } = {}): void {
    const p = this.podMap.get(pod);
    if (p && !p.removed && !opts.force) {
      throw new Error(`wipeVolume: pod ${pod} is running; delete it with { recreate: false } first (or pass force)`);
    }
    const dir = this.volumePath(pod, claimTemplateName);
    fs.rmSync(dir, { recursive: true, force: true });
    this.event(`${pod}: volume ${claimTemplateName} wiped`);
  }

  /** Creates or replaces a Secret (not as applied: `apply()` never prunes it); mounted copies are updated. */
  public setSecret(name: string, stringData: StringMap): void {
    this.store.put('secrets', this.namespace, { metadata: { name }, stringData });
    this.refreshAllVolumes();
  }

  /** Stops delivering ConfigMap/Secret volume updates to a pod (its kubelet stops syncing). */
  public holdConfig(pod: string): void {
    this.delivery.hold(pod);
    this.event(`${pod}: config delivery held`);
  }

  /** Resumes delivery to a held pod: it gets the current content at the next sync (~0.5 s). */
  public releaseConfig(pod: string): void {
    this.delivery.release(pod);
    this.event(`${pod}: config delivery released`);
  }

  /**
   * Cuts a pod off by silently dropping packets (no refusal, no ICMP: peers see timeouts): from
   * the fake API server (`'api'`), from other pods and ClusterIPs (`'pods'`), or both (`'all'`).
   * The node's probes (from `.1`) still arrive; Service-proxied connections (from the ClusterIP)
   * are cut with 'pods'. Replaces an earlier partition of the pod; lasts until `heal()` or the pod
   * is recreated. Pair with `holdConfig()` for a node cut off with its kubelet.
   */
  public async partition(pod: string, opts: { from: PartitionFrom }): Promise<void> {
    const p = this.pod(pod);
    if (!p.netns) throw new Error(`pod ${pod} has no network yet`);
    await this.network.partition(p.netns, opts.from);
    this.event(`${pod}: partitioned from ${opts.from}`);
  }

  /**
   * Drops every packet a pod receives on eth0, the node's (probes, Service proxy) included.
   * `outgoing: true` also drops what it sends to the pod network (a dead machine: a process the
   * kubelet restarts there closes its connections, and no peer ever hears of it).
   */
  public async blackhole(pod: string, opts: { outgoing?: boolean } = {}): Promise<void> {
    const p = this.pod(pod);
    if (!p.netns || !p.ip) throw new Error(`pod ${pod} has no network yet`);
    await this.network.partition(p.netns, 'blackhole', opts.outgoing ? p.ip : undefined);
    this.event(`${pod}: blackholed${opts.outgoing ? ' both ways' : ''}`);
  }

  /** Removes a pod's partition or blackhole. */
  public async heal(pod: string): Promise<void> {
    const p = this.pod(pod);
    if (p.netns) await this.network.heal(p.netns);
    this.event(`${pod}: healed`);
  }

  /** A Secret's data decoded as UTF-8 as the API serves it now, or undefined. */
  public getSecret(name: string): StringMap | undefined {
    return asText(this.store.data('secrets', this.namespace, name));
  }

  /** A ConfigMap's data (and binaryData decoded as UTF-8) as the API serves it now, or undefined. */
  public getConfigMap(name: string): StringMap | undefined {
    return asText(this.store.data('configmaps', this.namespace, name));
  }

  /**
   * `kubectl delete configmap`: returns whether it existed. Mounted copies keep their content (as
   * kubelet does); the next `apply()` recreates an applied one; kube-root-ca.crt is put back.
   */
  public deleteConfigMap(name: string): boolean {
    const existed = this.store.delete('configmaps', this.namespace, name);
    this.refreshAllVolumes();
    return existed;
  }

  /** Requests the fake API server answered. */
  public apiRequests(): ApiRequest[] {
    return this.api ? this.api.requests() : [];
  }

  /** A Service's endpoint pods now (Ready ones, or all with an IP under publishNotReadyAddresses). */
  public endpoints(service: string): string[] {
    const svc = this.services.get(service);
    if (!svc) throw new Error(`no Service ${service}`);
    return this.endpointPods(svc).map((p) => p.name);
  }

  /** The ClusterIP of a non-headless Service (what its name resolves to in every pod). */
  public clusterIp(service: string): string {
    const ip = this.clusterIps.get(service);
    if (!ip) throw new Error(`no ClusterIP Service ${service} (headless Services have none)`);
    return ip;
  }

  /** The Service proxy's log: listeners opened and closed, endpoints that refused. */
  public serviceProxyLog(): string {
    return this.proxy?.log() ?? '';
  }

  /** The pod's current /etc/hosts. */
  public hostsFile(pod: string): string {
    return readText(this.pod(pod).hostsFile);
  }

  public events(): string[] {
    return [...this.eventLines];
  }

  /** Live host PIDs of this harness: container processes (by PID namespace) and helpers. */
  public processIds(): number[] {
    const out: number[] = [];
    for (const e of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(e)) continue;
      const pid = Number(e);
      if (this.tracked.has(pid)) {
        out.push(pid);
        continue;
      }
      try {
        if (this.pidNamespaces.has(fs.readlinkSync(`/proc/${e}/ns/pid`))) out.push(pid);
      } catch {
        // gone
      }
    }
    return out;
  }

  /** State of every pod and the latest events, for error messages. */
  public describe(): string {
    return [
      ...[...this.podMap.values()].map((p) => p.describe()),
      'recent events:',
      ...this.eventLines.slice(-25).map((l) => `  ${l}`),
    ].join('\n');
  }

  /**
   * Stops everything (SIGTERM, SIGKILL after 1 s), deletes the network namespaces and the temp
   * root. Safe to call twice; call it in afterAll/afterEach (it also runs at process exit).
   */
  public destroy(): Promise<void> {
    if (!this.destroying) this.destroying = this.doDestroy();
    return this.destroying;
  }

  // ---------------------------------------------------------------------------------------------
  // PodHost
  // ---------------------------------------------------------------------------------------------

  public mapUid(id: number): number {
    if (id === 0) return 0;
    return this.options.userlands ? this.options.userlandIds?.uid?.[id] ?? id : this.postgresUid;
  }

  public mapGid(id: number): number {
    if (id === 0) return 0;
    return this.options.userlands ? this.options.userlandIds?.gid?.[id] ?? id : this.postgresGid;
  }

  public image(image: string | undefined): ImageSpec {
    if (this.options.userlands) return userlandImage(this.options.userlands, image);
    const repo = (image ?? '').replace(/@.*$/, '').replace(/:[^/:]*$/, '');
    const specs = this.options.images ?? {};
    const key = Object.keys(specs).filter((k) => k !== '*' && repo.startsWith(k)).sort((a, b) => b.length - a.length)[0];
    const spec = key !== undefined ? specs[key] : specs['*'];
    return { ...DEFAULT_IMAGE, ...(spec ?? {}) };
  }

  public serviceEnv(): StringMap {
    if (!this.api) return {};
    const h = this.api.host;
    const p = String(this.api.port);
    return {
      KUBERNETES_SERVICE_HOST: h,
      KUBERNETES_SERVICE_PORT: p,
      KUBERNETES_SERVICE_PORT_HTTPS: p,
      KUBERNETES_PORT: `tcp://${h}:${p}`,
      [`KUBERNETES_PORT_${p}_TCP`]: `tcp://${h}:${p}`,
      [`KUBERNETES_PORT_${p}_TCP_PROTO`]: 'tcp',
      [`KUBERNETES_PORT_${p}_TCP_PORT`]: p,
      [`KUBERNETES_PORT_${p}_TCP_ADDR`]: h,
    };
  }

  public serviceAccountFiles(pod: PodRuntime): { token: string; caCrt: string } | undefined {
    if (!this.api) return undefined;
    return { token: this.api.token(pod.namespace, pod.facts().serviceAccountName), caCrt: this.api.caCrt };
  }

  public automountToken(pod: PodRuntime): boolean {
    if (!this.api) return false;
    const sa = this.serviceAccounts.get(pod.facts().serviceAccountName);
    return pod.spec.automountServiceAccountToken ?? sa?.automountServiceAccountToken ?? true;
  }

  public hostsFor(pod: PodRuntime): string {
    return this.renderHosts(pod, this.dnsSnapshot());
  }

  public podChanged(_pod: PodRuntime): void {
    if (this.destroyed) return;
    this.refreshDns();
    this.kick();
  }

  public event(message: string): void {
    const line = `${new Date().toISOString().slice(11, 23)} ${message}`;
    this.eventLines.push(line);
    if (this.eventLines.length > 2000) this.eventLines.splice(0, 500);
    try {
      fs.appendFileSync(path.join(this.root, 'events.log'), `${line}\n`);
    } catch {
      // root removed
    }
    this.options.onEvent?.(line);
    if (process.env.FDB_E2E_DEBUG) process.stderr.write(`[fdb-e2e] ${line}\n`);
  }

  public track(pid: number): void {
    this.tracked.add(pid);
  }

  public untrack(pid: number): void {
    this.tracked.delete(pid);
  }

  public trackPidNs(ns: string): void {
    this.pidNamespaces.add(ns);
  }

  // ---------------------------------------------------------------------------------------------
  // Internals
  // ---------------------------------------------------------------------------------------------

  private async init(objects: KubeObject[]): Promise<void> {
    (this as { network: Network }).network = await Network.create(`${NETNS_PREFIX}-${this.id}`);
    if (this.options.fakeApi !== false) {
      this.api = await FakeApi.start(path.join(this.root, 'api'), this.network.switchNs, this.network.gateway, this.store.dir);
      if (this.api.pid) this.track(this.api.pid);
      this.publishRootCa();
    }
    this.proxy = await ServiceProxy.start(path.join(this.root, 'proxy'), this.network.switchNs);
    if (this.proxy.pid) this.track(this.proxy.pid);
    this.ingest(objects, true);
    await this.addServiceAddresses();
    this.refreshDns();
    this.event(`harness ${this.id}: namespace ${this.namespace}, subnet ${this.network.subnet}.0/24, root ${this.root}`
      + (this.ignoredKinds.size > 0 ? `; not run: ${[...this.ignoredKinds].join(', ')}` : ''));
    this.timer = setInterval(() => this.tick(), 500);
    this.timer.unref();
  }

  /** Loads objects; returns the started StatefulSets whose replicas, template or updateStrategy changed. */
  private ingest(objects: KubeObject[], initial: boolean): StatefulSetState[] {
    const applied: Record<Resource, DataObject[]> = { configmaps: [], secrets: [], deployments: [], leases: [] };
    const svcs = new Map<string, Service>();
    const jobs = new Map<string, Job>();
    const sas = new Map<string, ServiceAccount>();
    const stss = new Map<string, StatefulSet>();
    const deps = new Map<string, Deployment>();
    const rbac: RbacState = { roles: [], clusterRoles: [], roleBindings: [], clusterRoleBindings: [] };
    for (const o of objects) {
      const kind = o.kind ?? '';
      if (NAMESPACED.has(kind)) {
        const ns = o.metadata?.namespace ?? this.namespace;
        if (ns !== this.namespace) {
          throw new Error(`${kind} ${nameOf(o)} is in namespace ${ns}: the harness runs one namespace (${this.namespace})`);
        }
      }
      switch (kind) {
        case 'ConfigMap': applied.configmaps.push(this.notRootCa(o)); break;
        case 'Secret': applied.secrets.push(o); break;
        case 'Lease': applied.leases.push(o); break;
        case 'Service': svcs.set(nameOf(o), o as Service); break;
        case 'StatefulSet': stss.set(nameOf(o), o as StatefulSet); break;
        case 'Deployment': deps.set(nameOf(o), o as Deployment); break;
        case 'Job': jobs.set(nameOf(o), o as Job); break;
        case 'ServiceAccount': sas.set(nameOf(o), o as ServiceAccount); break;
        case 'Role': rbac.roles.push({ namespace: this.namespace, name: nameOf(o), rules: (o as Role).rules ?? [] }); break;
        case 'ClusterRole': rbac.clusterRoles.push({ name: nameOf(o), rules: (o as Role).rules ?? [] }); break;
        case 'RoleBinding':
          rbac.roleBindings.push({
            namespace: this.namespace, roleRef: (o as RoleBinding).roleRef ?? {}, subjects: (o as RoleBinding).subjects ?? [],
          });
          break;
        case 'ClusterRoleBinding':
          rbac.clusterRoleBindings.push({ roleRef: (o as RoleBinding).roleRef ?? {}, subjects: (o as RoleBinding).subjects ?? [] });
          break;
        default:
          this.ignoredKinds.add(kind || '(no kind)');
      }
    }
    this.services = svcs;
    for (const [name, svc] of svcs) {
      if (svc.spec?.clusterIP !== 'None' && !this.clusterIps.has(name)) {
        this.clusterIps.set(name, this.network.serviceIp(this.clusterIps.size));
      }
    }
    this.jobs = jobs;
    this.serviceAccounts = sas;
    for (const [resource, objs] of Object.entries(applied) as Array<[Resource, DataObject[]]>) {
      for (const o of objs) this.store.apply(resource, this.namespace, o);
      this.store.prune(resource, this.namespace, new Set(objs.map(nameOf)));
    }
    this.api?.setRbac(rbac);
    const changed: StatefulSetState[] = [];
    for (const [name, obj] of stss) {
      const replicas = obj.spec.replicas ?? 1;
      const s = this.statefulSets.get(name);
      if (!s) {
        this.statefulSets.set(name, newStatefulSetState(obj));
        continue;
      }
      let update = revisionOf(s.obj).name !== revisionOf(obj).name
        || JSON.stringify(s.obj.spec.updateStrategy ?? null) !== JSON.stringify(obj.spec.updateStrategy ?? null);
      s.obj = obj;
      // Not started: no pod exists yet, so the template applied is the current revision.
      if (!s.started) s.current = revisionOf(obj);
      if (s.replicas !== replicas && !initial) {
        s.replicas = replicas;
        for (const i of [...s.held]) if (i >= replicas) s.held.delete(i);
        update = true;
      }
      if (update && s.started) changed.push(s);
    }
    for (const [name, s] of this.statefulSets) {
      if (stss.has(name)) continue;
      s.replicas = 0;
      if (s.started) changed.push(s);
    }
    for (const [name, obj] of deps) {
      const d = this.deployments.get(name);
      if (d) {
        d.obj = obj;
        d.replicas = obj.spec.replicas ?? 1;
      } else {
        this.deployments.set(name, { obj, started: false, replicas: obj.spec.replicas ?? 1 });
      }
    }
    for (const [name, d] of this.deployments) if (!deps.has(name)) d.replicas = 0;
    return changed;
  }

  /** kube-root-ca.crt belongs to the (emulated) root-ca-cert publisher while the fake API runs. */
  private notRootCa(o: KubeObject): KubeObject {
    if (this.api && nameOf(o) === ROOT_CA) {
      throw new Error(`ConfigMap ${ROOT_CA} is published by the harness (the fake API server's CA, as Kubernetes does): do not apply it`);
    }
    return o;
  }

  /**
   * Kubernetes' root-ca-cert publisher: kube-root-ca.crt holds the API server's CA in every
   * namespace (the harness has one) and is put back whenever it is deleted or changed.
   */
  private publishRootCa(): void {
    if (!this.api) return;
    const data = { 'ca.crt': this.api.caCrt };
    const live = this.store.get('configmaps', this.namespace, ROOT_CA);
    if (live && JSON.stringify(live.data) === JSON.stringify(data)) return;
    const metadata = { name: ROOT_CA, annotations: { 'kubernetes.io/description': ROOT_CA_DESCRIPTION } };
    this.store.put('configmaps', this.namespace, { metadata, data });
  }

  private deployment(name: string): DeploymentState {
    const d = this.deployments.get(name);
    if (!d) throw new Error(`no Deployment ${name} (have: ${[...this.deployments.keys()].join(', ')})`);
    return d;
  }

  private async waitRolledOut(d: DeploymentState, timeoutMs: number): Promise<void> {
    await waitFor(`Deployment ${nameOf(d.obj)} to have ${d.replicas} ready pod(s) of its current template`, timeoutMs,
      () => this.deploymentController.converged(d), () => this.describe());
    await this.proxy?.synced();
  }

  /** A pod of the Deployment or StatefulSet controller. */
  private createPod(init: Omit<PodInit, 'namespace'>): void {
    if (!this.checkServiceAccount(init.name, init.spec)) return;
    const pod = new PodRuntime(this, { ...init, namespace: this.namespace });
    this.podMap.set(init.name, pod);
    this.event(`${init.name}: created by ${init.owner.kind} ${init.owner.name}${init.owner.revision ? ` (revision ${init.owner.revision})` : ''}`);
    void pod.start();
  }

  /** Puts every Service's ClusterIP on the switch's bridge (where the Service proxy listens). */
  private async addServiceAddresses(): Promise<void> {
    for (const ip of this.clusterIps.values()) await this.proxy?.addAddress(ip);
  }

  private sts(name: string): StatefulSetState {
    const s = this.statefulSets.get(name);
    if (!s) throw new Error(`no StatefulSet ${name} (have: ${[...this.statefulSets.keys()].join(', ')})`);
    return s;
  }

  private pod(name: string): PodRuntime {
    const p = this.podMap.get(name);
    if (!p) throw new Error(`no pod ${name} (have: ${[...this.podMap.keys()].join(', ') || 'none'})`);
    return p;
  }

  private stsOfPod(pod: string): [StatefulSetState, number] | undefined {
    for (const [name, s] of this.statefulSets) {
      const m = new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-(\\d+)$`).exec(pod);
      if (m) return [s, Number(m[1])];
    }
    return undefined;
  }

  private holdIfWanted(p: PodRuntime, recreate: boolean | undefined): void {
    if (recreate !== false || p.owner.kind !== 'StatefulSet') return;
    this.statefulSets.get(p.owner.name)?.held.add(ordinalOf(p));
  }

  private async removePod(p: PodRuntime, graceMs: number, kill: boolean): Promise<void> {
    this.event(`${p.name}: ${kill ? 'killed' : `deleting (grace ${graceMs} ms)`}`);
    await p.terminate(graceMs, kill);
    if (this.podMap.get(p.name) === p) this.podMap.delete(p.name);
    this.event(`${p.name}: terminated`);
    this.refreshDns();
    this.kick();
  }

  private kick(): void {
    if (this.kickScheduled || this.destroyed) return;
    this.kickScheduled = true;
    setImmediate(() => {
      this.kickScheduled = false;
      if (this.destroyed) return;
      for (const s of this.statefulSets.values()) this.statefulSetController.reconcile(s);
      for (const d of this.deployments.values()) this.deploymentController.reconcile(d);
    });
  }

  private createJobPod(job: Job): PodRuntime {
    const jobName = nameOf(job);
    const tpl = job.spec.template;
    const podName = `${jobName}-${crypto.randomBytes(4).toString('hex').slice(0, 5)}`;
    const spec: PodSpec = { ...tpl.spec, restartPolicy: tpl.spec.restartPolicy ?? 'Never' };
    if (spec.restartPolicy === 'Always') throw new Error(`Job ${jobName}: restartPolicy Always is invalid for a Job`);
    if (!this.checkServiceAccount(podName, spec)) {
      throw new Error(`Job ${jobName}: serviceaccount ${spec.serviceAccountName} not found`);
    }
    const uid = crypto.randomUUID();
    const pod = new PodRuntime(this, {
      name: podName,
      namespace: this.namespace,
      owner: { kind: 'Job', name: jobName },
      labels: {
        ...(tpl.metadata?.labels ?? {}),
        'job-name': jobName,
        'batch.kubernetes.io/job-name': jobName,
        'controller-uid': uid,
        'batch.kubernetes.io/controller-uid': uid,
      },
      annotations: { ...(tpl.metadata?.annotations ?? {}) },
      spec,
    });
    this.podMap.set(podName, pod);
    this.event(`${podName}: created by Job ${jobName}`);
    void pod.start();
    return pod;
  }

  /** Kubernetes refuses pods whose ServiceAccount does not exist ("default" always does). */
  private checkServiceAccount(podName: string, spec: PodSpec): boolean {
    const sa = spec.serviceAccountName ?? spec.serviceAccount ?? 'default';
    if (sa === 'default' || this.serviceAccounts.has(sa)) return true;
    this.event(`${podName}: FailedCreate: serviceaccount "${sa}" not found`);
    return false;
  }

  private async waitConverged(s: StatefulSetState, timeoutMs: number): Promise<void> {
    await waitFor(`StatefulSet ${nameOf(s.obj)} to have ${s.replicas} ready pod(s)`, timeoutMs,
      () => this.statefulSetController.converged(s), () => this.describe());
    await this.proxy?.synced();
  }

  /** Converged, and every pod at or above the partition of the update revision (RollingUpdate). */
  private async waitStsRolledOut(s: StatefulSetState, timeoutMs: number): Promise<void> {
    const what = s.obj.spec.updateStrategy?.type === 'OnDelete' ? ''
      : `, ordinals ${partitionOf(s)} and up of revision ${revisionOf(s.obj).name}`;
    await waitFor(`StatefulSet ${nameOf(s.obj)} to have ${s.replicas} ready pod(s)${what}`, timeoutMs,
      () => this.statefulSetController.rolledOut(s), () => this.describe());
    await this.proxy?.synced();
  }

  private endpointPods(svc: Service): PodRuntime[] {
    const sel = svc.spec?.selector;
    if (!sel || Object.keys(sel).length === 0) return [];
    const publish = svc.spec?.publishNotReadyAddresses === true;
    return [...this.podMap.values()]
      .filter((p) => p.ip && !p.removed && matches(p.labels, sel) && (publish || p.ready))
      .sort((a, b) => (a.owner.name === b.owner.name ? ordinalOf(a) - ordinalOf(b) : a.name.localeCompare(b.name)));
  }

  /** The endpoint pods of every Service. */
  private dnsSnapshot(): Map<string, { svc: Service; pods: PodRuntime[] }> {
    const snap = new Map<string, { svc: Service; pods: PodRuntime[] }>();
    for (const [name, svc] of this.services) snap.set(name, { svc, pods: this.endpointPods(svc) });
    return snap;
  }

  /**
   * What the Service proxy serves: each port of each ClusterIP Service to its endpoints'
   * targetPort (a number, or the name of a container port resolved per pod: a pod without a
   * port of that name is no endpoint of that Service port, as the endpoints controller does).
   */
  private proxyRules(snap: Map<string, { svc: Service; pods: PodRuntime[] }>): ProxyRule[] {
    const rules: ProxyRule[] = [];
    for (const [name, { svc, pods }] of snap) {
      const ip = this.clusterIps.get(name);
      if (!ip || svc.spec?.clusterIP === 'None') continue;
      for (const port of svc.spec?.ports ?? []) {
        if ((port.protocol ?? 'TCP') !== 'TCP') continue;
        const target = port.targetPort ?? port.port;
        const endpoints: string[] = [];
        for (const p of pods) {
          const n = typeof target === 'number' ? target
            : p.spec.containers.flatMap((c) => c.ports ?? []).find((cp) => cp.name === target)?.containerPort;
          if (n !== undefined) endpoints.push(`${p.ip}:${n}`);
        }
        rules.push({ name: `${name}/${port.name ?? port.port}`, ip, port: port.port, endpoints });
      }
    }
    return rules;
  }

  private renderHosts(pod: PodRuntime, snap: Map<string, { svc: Service; pods: PodRuntime[] }>): string {
    const ns = this.namespace;
    const lines = [
      '# Kubernetes-managed hosts file (fdb-e2e harness: stands in for cluster DNS and kube-proxy).',
      '127.0.0.1\tlocalhost',
      '::1\tlocalhost ip6-localhost ip6-loopback',
      'fe00::0\tip6-localnet',
      'fe00::0\tip6-mcastprefix',
      'fe00::1\tip6-allnodes',
      'fe00::2\tip6-allrouters',
    ];
    const svcForms = (n: string): string[] => [n, `${n}.${ns}`, `${n}.${ns}.svc`, `${n}.${ns}.svc.cluster.local`];
    const podRecord = (p: PodRuntime): string[] =>
      (p.spec.subdomain ? svcForms(`${p.hostname}.${p.spec.subdomain}`).reverse() : []);
    if (pod.ip) lines.push(`${pod.ip}\t${[...podRecord(pod), pod.hostname].join(' ')}`);
    for (const a of pod.spec.hostAliases ?? []) lines.push(`${a.ip}\t${(a.hostnames ?? []).join(' ')}`);
    if (this.api) {
      // The short name resolves only in the default namespace (through the DNS search path).
      const short = ns === 'default' ? 'kubernetes ' : '';
      lines.push(`${this.api.host}\t${short}kubernetes.default kubernetes.default.svc kubernetes.default.svc.cluster.local`);
    }
    for (const [name, { svc, pods }] of [...snap].sort((a, b) => a[0].localeCompare(b[0]))) {
      if (svc.spec?.clusterIP === 'None') {
        for (const p of pods) {
          if (p !== pod && p.spec.subdomain === name) lines.push(`${p.ip}\t${podRecord(p).join(' ')}`);
        }
      }
      const ip = this.clusterIps.get(name);
      if (svc.spec?.clusterIP !== 'None' && ip) lines.push(`${ip}\t${svcForms(name).join(' ')}`);
      else for (const p of pods) lines.push(`${p.ip}\t${svcForms(name).join(' ')}`);
    }
    return `${lines.join('\n')}\n`;
  }

  private refreshDns(): void {
    if (this.destroyed) return;
    const snap = this.dnsSnapshot();
    this.proxy?.update(this.proxyRules(snap));
    for (const p of this.podMap.values()) {
      if (p.ip && !p.removed) p.writeHosts(this.renderHosts(p, snap));
    }
  }

  /** kubelet's volume sync: the pods whose delivery is due (all but held ones, by default). */
  private refreshAllVolumes(): void {
    const signature = this.store.signature();
    for (const name of this.delivery.duePods([...this.podMap.keys()], signature, Date.now())) {
      this.podMap.get(name)?.refreshVolumes();
      this.delivery.rendered(name, signature);
    }
  }

  /** Every 500 ms: the root-ca publisher, and kubelet's sync of volumes with changed sources. */
  private tick(): void {
    if (this.destroyed) return;
    this.publishRootCa();
    this.refreshAllVolumes();
    this.kick();
  }

  private async doDestroy(): Promise<void> {
    this.destroyed = true;
    if (this.timer) clearInterval(this.timer);
    const pods = [...this.podMap.values()];
    const containers = pods.flatMap((p) => [...p.initContainers, ...p.containers]);
    for (const p of pods) p.terminating = true;
    for (const c of containers) {
      c.stopped = true;
      const r = c.current;
      if (r?.nsPid && !r.exit) signal(r.nsPid, 'SIGTERM');
    }
    await Promise.race([Promise.all(containers.map((c) => c.waitExited(1000))), sleep(1000, true)]);
    for (const c of containers) c.kill();
    for (const pid of this.tracked) {
      signal(-pid, 'SIGKILL');
      signal(pid, 'SIGKILL');
    }
    this.api?.stop();
    await Promise.race([Promise.all(containers.map((c) => c.waitExited(5000))), sleep(5000, true)]);
    await waitFor('harness processes to exit', 5000, () => this.processIds().length === 0).catch(() => undefined);
    if (this.network) await this.network.destroy();
    process.removeListener('exit', this.exitHook);
    releaseHarness(this.id);
    if (!this.options.keepWorkDir) fs.rmSync(this.root, { recursive: true, force: true });
  }

  /** process 'exit' hook: synchronous best effort. */
  private destroySync(): void {
    if (this.destroyed && !this.destroying) return;
    this.destroyed = true;
    for (const pid of this.tracked) {
      signal(-pid, 'SIGKILL');
      signal(pid, 'SIGKILL');
    }
    for (const p of this.podMap.values()) {
      for (const c of [...p.initContainers, ...p.containers]) c.kill();
    }
    this.api?.stop();
    this.network?.destroySync();
    releaseHarness(this.id);
    if (!this.options.keepWorkDir) {
      try {
        fs.rmSync(this.root, { recursive: true, force: true });
      } catch {
        // best effort
      }
    }
  }
}

const HARNESS_ID_FILE = '.fdb-e2e-harness';

/**
 * Cleans up after harnesses whose process died without destroy() (Ctrl-C, SIGKILL): their
 * network namespaces (and processes in them) and their temp roots in the default location.
 * Another jest worker's harness starting meanwhile is left alone: what it created is listed
 * before the live harnesses are read, and it registers before it creates anything.
 */
function reapStale(root: string): void {
  reapStaleNamespaces(liveHarnessIds);
  // Markers first, live harnesses after: one that registers meanwhile is seen as live.
  const tmp = os.tmpdir();
  const roots = fs.readdirSync(tmp)
    .filter((e) => e.startsWith('fdb-e2e-') && e !== 'fdb-e2e-registry' && path.join(tmp, e) !== root)
    .map((e) => ({ dir: path.join(tmp, e), id: readText(path.join(tmp, e, HARNESS_ID_FILE)).split('-')[1] }));
  const live = liveHarnessIds();
  for (const { dir, id } of roots) {
    if (id && !live.has(id)) fs.rmSync(dir, { recursive: true, force: true });
  }
}

function flatten(objects: readonly unknown[]): KubeObject[] {
  const out: KubeObject[] = [];
  for (const o of objects) {
    if (!o || typeof o !== 'object') continue;
    const k = o as KubeObject & { items?: unknown[] };
    if (k.kind === 'List' && Array.isArray(k.items)) out.push(...flatten(k.items));
    else out.push(k);
  }
  return out;
}

/** Fails loudly when the host cannot run the harness (never skips). */
function preflight(needOpenssl: boolean): { tools: Tools; uid: number; gid: number } {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    throw new Error('the e2e harness must run as root (network namespaces, mounts, setpriv)');
  }
  if (!fs.existsSync(`${PG_BIN}/postgres`)) {
    throw new Error(`PostgreSQL 15 not found at ${PG_BIN}/postgres: apt-get install postgresql-15 (the e2e suite never skips)`);
  }
  const need = ['ip', 'unshare', 'nsenter', 'setpriv', 'runuser', 'mount', 'hostname', 'bash', 'timeout', ...(needOpenssl ? ['openssl'] : [])];
  const found: Record<string, string> = {};
  const missing: string[] = [];
  for (const bin of need) {
    const p = which(bin);
    if (p) found[bin] = p;
    else missing.push(bin);
  }
  if (missing.length > 0) throw new Error(`the e2e harness needs ${missing.join(', ')} on this host (iproute2, util-linux, openssl)`);
  let uid: number;
  let gid: number;
  try {
    uid = Number(execFileSync('id', ['-u', 'postgres'], { env: hostEnv() }).toString().trim());
    gid = Number(execFileSync('id', ['-g', 'postgres'], { env: hostEnv() }).toString().trim());
  } catch {
    throw new Error('OS user postgres not found (it comes with the postgresql-15 package)');
  }
  return { tools: { ip: found.ip, unshare: found.unshare, nsenter: found.nsenter, setpriv: found.setpriv }, uid, gid };
}
