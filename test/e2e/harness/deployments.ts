import * as crypto from 'crypto';
import { PodInit, PodRuntime } from './pod';
import { Deployment, PodTemplateSpec } from './types';

/** What the Deployment controller needs from the cluster. */
export interface DeploymentHost {
  /** Every pod of the harness that is not removed yet. */
  livePods(): PodRuntime[];
  /** Creates and starts a pod (the namespace is the cluster's). */
  createPod(init: Omit<PodInit, 'namespace'>): void;
  /** Deletes a pod gracefully (its grace period), in the background. */
  deletePod(pod: PodRuntime): void;
}

export interface DeploymentState {
  obj: Deployment;
  started: boolean;
  replicas: number;
}

/** Kubernetes' "safe" alphabet for generated names (no vowels, no 0/1/3 lookalikes). */
const ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

function encode(bytes: Buffer, length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) out += ALPHABET[bytes[i] % ALPHABET.length];
  return out;
}

/** A stable hash of a pod template (10 characters of the safe alphabet, like Kubernetes' hashes). */
export function podTemplateHash(template: PodTemplateSpec | undefined): string {
  return encode(crypto.createHash('sha256').update(JSON.stringify(template ?? null)).digest(), 10);
}

/** The pod-template-hash: a stable hash of the pod template (10 characters, like the ReplicaSet's). */
export function templateHash(d: Deployment): string {
  return podTemplateHash(d.spec?.template);
}

/** maxSurge / maxUnavailable: a count or a percentage of replicas (surge rounds up, unavailable down). */
function resolve(v: number | string | undefined, replicas: number, dflt: string, roundUp: boolean): number {
  const x = v ?? dflt;
  if (typeof x === 'number') return x;
  const m = /^(\d+)%$/.exec(x);
  if (!m) return Number(x);
  const exact = (Number(m[1]) * replicas) / 100;
  return roundUp ? Math.ceil(exact) : Math.floor(exact);
}

/**
 * The Deployment and ReplicaSet controllers, folded into one: each template hash is a
 * ReplicaSet whose pods are named `<deployment>-<hash>-<random>` and labelled
 * `pod-template-hash`. A deleted pod is replaced by a new one (new name, new IP). A template
 * change rolls: RollingUpdate creates new pods within `replicas + maxSurge` and removes old ones
 * while at least `replicas - maxUnavailable` are Ready (not-Ready old pods first); Recreate
 * deletes every old pod and waits until they are gone before creating new ones.
 */
export class DeploymentController {
  constructor(private readonly host: DeploymentHost) {}

  /** One pass of the controller loop for a started Deployment. */
  public reconcile(s: DeploymentState): void {
    if (!s.started) return;
    const name = s.obj.metadata?.name ?? '';
    const hash = templateHash(s.obj);
    const all = this.host.livePods().filter((p) => p.owner.kind === 'Deployment' && p.owner.name === name);
    const live = all.filter((p) => !p.terminating);
    const fresh = live.filter((p) => p.owner.templateHash === hash);
    const old = live.filter((p) => p.owner.templateHash !== hash);
    const strategy = s.obj.spec.strategy ?? {};
    if (strategy.type === 'Recreate') {
      if (old.length > 0) {
        for (const p of old) this.host.deletePod(p);
        return;
      }
      if (all.some((p) => p.owner.templateHash !== hash)) return; // old pods still terminating
      this.scaleTo(s, hash, fresh, s.replicas);
      return;
    }
    const surge = resolve(strategy.rollingUpdate?.maxSurge, s.replicas, '25%', true);
    const unavailable = resolve(strategy.rollingUpdate?.maxUnavailable, s.replicas, '25%', false);
    const room = Math.max(0, s.replicas + surge - live.length);
    this.scaleTo(s, hash, fresh, Math.min(s.replicas, fresh.length + room));
    for (const p of old.filter((x) => !x.ready)) this.host.deletePod(p); // unavailable anyway
    let removable = live.filter((p) => p.ready).length - (s.replicas - unavailable);
    for (const p of old.filter((x) => x.ready)) {
      if (removable <= 0) break;
      this.host.deletePod(p);
      removable--;
    }
  }

  /** Rolled out: `replicas` Ready pods of the current template and nothing else. */
  public converged(s: DeploymentState): boolean {
    const name = s.obj.metadata?.name ?? '';
    const hash = templateHash(s.obj);
    const pods = this.host.livePods().filter((p) => p.owner.kind === 'Deployment' && p.owner.name === name);
    return pods.length === s.replicas && pods.every((p) => p.owner.templateHash === hash && p.ready);
  }

  /** The new ReplicaSet's scale: creates pods, or deletes the extra ones (not-Ready, newest first). */
  private scaleTo(s: DeploymentState, hash: string, fresh: PodRuntime[], target: number): void {
    const name = s.obj.metadata?.name ?? '';
    for (let i = fresh.length; i < target; i++) {
      const tpl = s.obj.spec.template;
      const podName = `${name}-${hash}-${encode(crypto.randomBytes(5), 5)}`;
      this.host.createPod({
        name: podName,
        owner: { kind: 'Deployment', name, templateHash: hash },
        labels: { ...(tpl.metadata?.labels ?? {}), 'pod-template-hash': hash },
        annotations: { ...(tpl.metadata?.annotations ?? {}) },
        spec: { ...tpl.spec, restartPolicy: 'Always' },
      });
    }
    const extra = fresh.length - target;
    if (extra <= 0) return;
    const order = [...fresh].sort((a, b) => Number(a.ready) - Number(b.ready) || b.createdAt - a.createdAt);
    for (const p of order.slice(0, extra)) this.host.deletePod(p);
  }
}
