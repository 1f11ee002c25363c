import { podTemplateHash } from './deployments';
import { PodInit, PodRuntime } from './pod';
import { PodSpec, PodTemplateSpec, StatefulSet, Volume } from './types';

/** The label of a StatefulSet's pod that names the revision (template) it was created from. */
export const REVISION_LABEL = 'controller-revision-hash';

/** What the StatefulSet controller needs from the cluster. */
export interface StatefulSetHost {
  /** The pod of that name, terminating ones included until they are gone. */
  pod(name: string): PodRuntime | undefined;
  /** Every pod of the harness, terminating ones included until they are gone. */
  pods(): PodRuntime[];
  /** Creates and starts a pod (the namespace is the cluster's); may refuse (FailedCreate). */
  createPod(init: Omit<PodInit, 'namespace'>): void;
  /** Deletes a pod gracefully (preStop, its grace period) in the background; `then` runs once it is gone. */
  deletePod(pod: PodRuntime, then?: () => void): void;
  /** Deletes the data of a PVC (persistentVolumeClaimRetentionPolicy.whenScaled: Delete). */
  deleteClaim(claimName: string): void;
  event(message: string): void;
}

/** A ControllerRevision: its name (`<statefulset>-<hash of the pod template>`) and the template. */
export interface Revision {
  readonly name: string;
  readonly template: PodTemplateSpec;
}

export interface StatefulSetState {
  obj: StatefulSet;
  started: boolean;
  replicas: number;
  /** Ordinals deleted with `recreate: false`: not recreated until startPod(). */
  readonly held: Set<number>;
  /**
   * status.currentRevision: the revision every pod had when the last roll completed. Under
   * RollingUpdate, pods below the partition are (re)created from it.
   */
  current: Revision;
}

/** The update revision of a StatefulSet: its pod template now. */
export function revisionOf(obj: StatefulSet): Revision {
  return { name: `${obj.metadata?.name ?? ''}-${podTemplateHash(obj.spec.template)}`, template: obj.spec.template };
}

export function newStatefulSetState(obj: StatefulSet): StatefulSetState {
  return { obj, started: false, replicas: obj.spec.replicas ?? 1, held: new Set(), current: revisionOf(obj) };
}

/** `updateStrategy.type` absent is RollingUpdate (the apps/v1 default). */
function rolling(s: StatefulSetState): boolean {
  return s.obj.spec.updateStrategy?.type !== 'OnDelete';
}

/** The lowest ordinal a RollingUpdate replaces (`rollingUpdate.partition`, default 0). */
export function partitionOf(s: StatefulSetState): number {
  return s.obj.spec.updateStrategy?.rollingUpdate?.partition ?? 0;
}

function ordinalOf(p: PodRuntime): number {
  return p.owner.ordinal ?? 0;
}

/**
 * Kubernetes' StatefulSet controller (stateful_set_control.go), one pass per call:
 * - creation and scale: ordinals 0..replicas-1 are created, with OrderedReady one at a time, each
 *   only when the lower ones are Running and Ready (a terminating or not-Ready pod blocks), with
 *   Parallel all at once; pods at or above `replicas` are deleted from the highest ordinal, with
 *   OrderedReady one at a time (and only once every pod in range is Ready). A held ordinal
 *   (`recreate: false`) is skipped.
 * - update (`updateStrategy` RollingUpdate, the default; both policies): from the highest ordinal
 *   down to `rollingUpdate.partition`, the first pod of another revision that is not terminating
 *   is deleted (gracefully) and the pass ends; a pod of the update revision that is missing,
 *   held, terminating or not Running and Ready ends the pass too (the roll waits for it). One pod
 *   at a time (`maxUnavailable` is not read). The deleted pod is recreated by the creation pass
 *   from the update revision; a pod below the partition is always (re)created from the current
 *   revision. OnDelete: nothing is replaced; a pod deleted otherwise comes back on the template
 *   as it is now.
 * Every pod carries the label `controller-revision-hash: <statefulset>-<hash>`.
 */
export class StatefulSetController {
  constructor(private readonly host: StatefulSetHost) {}

  /** One pass of the controller loop for a started StatefulSet. */
  public reconcile(s: StatefulSetState): void {
    if (!s.started) return;
    // Like the status, completion is judged on the pods listed at the start of the pass (pods it
    // creates do not count) and takes effect at its end: its creations use the revision current
    // at its start.
    const complete = this.rollComplete(s);
    this.pass(s);
    if (complete) s.current = revisionOf(s.obj);
  }

  /** `replicas` Ready pods (held ordinals aside) and none above. */
  public converged(s: StatefulSetState): boolean {
    const name = s.obj.metadata?.name ?? '';
    if (this.podsOf(s).some((p) => ordinalOf(p) >= s.replicas)) return false;
    for (let i = 0; i < s.replicas; i++) {
      if (s.held.has(i)) continue;
      if (!this.host.pod(`${name}-${i}`)?.ready) return false;
    }
    return true;
  }

  /**
   * Converged, and under RollingUpdate every pod at or above the partition (held ordinals aside)
   * is of the update revision: what `kubectl rollout status` waits for.
   */
  public rolledOut(s: StatefulSetState): boolean {
    if (!this.converged(s)) return false;
    if (!rolling(s)) return true;
    const name = s.obj.metadata?.name ?? '';
    const update = revisionOf(s.obj).name;
    for (let i = partitionOf(s); i < s.replicas; i++) {
      if (s.held.has(i)) continue;
      if (this.host.pod(`${name}-${i}`)?.owner.revision !== update) return false;
    }
    return true;
  }

  /** Creation and scale, then the RollingUpdate pass. */
  private pass(s: StatefulSetState): void {
    const name = s.obj.metadata?.name ?? '';
    const monotonic = s.obj.spec.podManagementPolicy !== 'Parallel';
    for (let i = 0; i < s.replicas; i++) {
      const pod = this.host.pod(`${name}-${i}`);
      if (!pod) {
        if (s.held.has(i)) continue;
        this.create(s, i);
        if (monotonic) return;
        continue;
      }
      if (monotonic && (!pod.ready || pod.terminating)) return;
    }
    const extras = this.podsOf(s).filter((p) => ordinalOf(p) >= s.replicas).sort((a, b) => ordinalOf(b) - ordinalOf(a));
    for (const p of extras) {
      if (p.terminating) {
        if (monotonic) return;
        continue;
      }
      s.held.delete(ordinalOf(p));
      const wipe = s.obj.spec.persistentVolumeClaimRetentionPolicy?.whenScaled === 'Delete';
      this.host.deletePod(p, () => {
        if (!wipe) return;
        for (const t of s.obj.spec.volumeClaimTemplates ?? []) this.host.deleteClaim(`${t.metadata?.name}-${p.name}`);
      });
      if (monotonic) return;
    }
    if (rolling(s)) this.rollingUpdate(s);
  }

  /**
   * The RollingUpdate pass: from the highest ordinal down to the partition, replace the first
   * pod of another revision, or wait for the first one that is not healthy.
   */
  private rollingUpdate(s: StatefulSetState): void {
    const name = s.obj.metadata?.name ?? '';
    const update = revisionOf(s.obj).name;
    for (let i = s.replicas - 1; i >= partitionOf(s); i--) {
      const pod = this.host.pod(`${name}-${i}`);
      if (pod && pod.owner.revision !== update && !pod.terminating) {
        this.host.event(`${pod.name}: StatefulSet ${name} replaces it (revision ${pod.owner.revision} -> ${update})`);
        this.host.deletePod(pod);
        return;
      }
      if (!pod || !pod.ready) return;
    }
  }

  /**
   * completeRollingUpdate (RollingUpdate only): once every existing pod of the set (terminating
   * and condemned ones included; missing or held ones do not count) is of the update revision
   * and Ready, the update revision becomes the current one.
   */
  private rollComplete(s: StatefulSetState): boolean {
    if (!rolling(s)) return false;
    const update = revisionOf(s.obj).name;
    return s.current.name !== update && this.podsOf(s).every((p) => p.owner.revision === update && p.ready);
  }

  private podsOf(s: StatefulSetState): PodRuntime[] {
    const name = s.obj.metadata?.name ?? '';
    return this.host.pods().filter((p) => p.owner.kind === 'StatefulSet' && p.owner.name === name);
  }

  /** newVersionedStatefulSetPod: below the partition from the current revision, else the update one. */
  private create(s: StatefulSetState, ordinal: number): void {
    const stsName = s.obj.metadata?.name ?? '';
    const podName = `${stsName}-${ordinal}`;
    const rev = rolling(s) && ordinal < partitionOf(s) ? s.current : revisionOf(s.obj);
    const tpl = rev.template;
    const claims: Volume[] = (s.obj.spec.volumeClaimTemplates ?? []).map((t) => ({
      name: t.metadata?.name ?? '',
      persistentVolumeClaim: { claimName: `${t.metadata?.name}-${podName}` },
    }));
    const volumes = [...(tpl.spec.volumes ?? []).filter((v) => !claims.some((c) => c.name === v.name)), ...claims];
    const spec: PodSpec = { ...tpl.spec, volumes, hostname: podName, subdomain: s.obj.spec.serviceName, restartPolicy: 'Always' };
    this.host.createPod({
      name: podName,
      owner: { kind: 'StatefulSet', name: stsName, ordinal, revision: rev.name },
      labels: {
        ...(tpl.metadata?.labels ?? {}),
        'statefulset.kubernetes.io/pod-name': podName,
        'apps.kubernetes.io/pod-index': String(ordinal),
        [REVISION_LABEL]: rev.name,
      },
      annotations: { ...(tpl.metadata?.annotations ?? {}) },
      spec,
    });
  }
}
