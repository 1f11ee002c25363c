import * as fs from 'fs';
import { ImageSpec } from './pod';
import { RootfsSpec, RootfsVolume } from './rootfs';
import { Container, PodSpec } from './types';
import { ConfigError } from './util';

/**
 * Image userlands: with `ClusterOptions.userlands`, each container runs inside its image's root
 * directory (`rootfs.ts`: an overlay over the root, `/proc`, `/dev`, the volumes, then chroot as
 * the container's user) instead of on the host's binaries. One table maps every image of the
 * objects to a root; an image missing from it is an error naming it.
 */

/** An image of the table: its root directory and what the image sets (PATH, ENV, ENTRYPOINT...). */
export interface UserlandImage extends ImageSpec {
  /**
   * The image's root directory (never written: the overlay's lower layer). HOST_ROOT: the
   * container runs on the host's binaries as without userlands (for test-only images, such as a
   * client pod running a driver, that no synthesized object names).
   */
  readonly root: string;
  /**
   * Host directories bind-mounted read-write at the same path in every container of the image
   * (test tooling such as wrappers of the image's programs put first on `path`). Default none.
   */
  readonly binds?: readonly string[];
}

/** UserlandImage.root of an image run on the host's binaries. */
export const HOST_ROOT = '/';

/** Image name without tag or digest, the table's key. */
export function imageRepo(image: string | undefined): string {
  return (image ?? '').replace(/@.*$/, '').replace(/:[^/:]*$/, '');
}

/** The table entry of `image` (exact name without tag); throws naming the image when absent. */
export function userlandImage(table: Readonly<Record<string, UserlandImage>>, image: string | undefined): UserlandImage {
  const spec = table[imageRepo(image)];
  if (!spec) {
    throw new ConfigError(`image ${image ?? '(none)'} has no userland: ClusterOptions.userlands maps ${Object.keys(table).join(', ')}`);
  }
  return spec;
}

function podSpecs(objects: readonly any[]): PodSpec[] {
  const specs: PodSpec[] = [];
  for (const o of objects) {
    if (o?.kind === 'Pod' && o.spec) specs.push(o.spec);
    const t = o?.spec?.jobTemplate?.spec?.template?.spec ?? o?.spec?.template?.spec;
    if (t && ['StatefulSet', 'Deployment', 'Job', 'CronJob', 'DaemonSet', 'ReplicaSet'].includes(o.kind)) specs.push(t);
  }
  return specs;
}

/**
 * Throws, naming them, when images of the objects' pod templates are not in the table or their
 * root directory is missing.
 */
export function checkUserlands(table: Readonly<Record<string, UserlandImage>>, objects: readonly unknown[]): void {
  const missing = new Set<string>();
  for (const spec of podSpecs(objects)) {
    for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
      const entry = table[imageRepo(c.image)];
      if (!entry) missing.add(c.image ?? '(none)');
      else if (!fs.existsSync(entry.root)) throw new Error(`the root of image ${c.image} is missing: ${entry.root}`);
    }
  }
  if (missing.size > 0) {
    throw new Error(`images without a userland: ${[...missing].join(', ')} (ClusterOptions.userlands maps ${Object.keys(table).join(', ')})`);
  }
}

/** A bind mount as the pod computed it (host path, container path). */
export interface UserlandMount {
  readonly src: string;
  readonly target: string;
  readonly readOnly: boolean;
  readonly isFile: boolean;
}

export interface UserlandContainer {
  readonly image: UserlandImage;
  readonly container: Container;
  /** Host directory for this start's writable layer (fresh: a new container each start). */
  readonly stateDir: string;
  readonly mounts: readonly UserlandMount[];
  /** The host's resolved `/etc/resolv.conf` target in `mounts`: mounted at `/etc/resolv.conf`. */
  readonly resolvTarget?: string;
  readonly uid: number;
  readonly gid: number;
  readonly groups: readonly number[];
  readonly workingDir: string;
  readonly hostname: string;
  readonly netns: string;
  readonly startedFile: string;
}

/** The rootfs spec of one container start: its root, read-only flag, user, capabilities, volumes. */
export function userlandSpec(u: UserlandContainer): RootfsSpec {
  const csc = u.container.securityContext ?? {};
  const drop = (csc.capabilities?.drop ?? []).map((c) => c.toUpperCase());
  const volumes: RootfsVolume[] = [
    ...(u.image.binds ?? []).map((dir) => ({ hostPath: dir, containerPath: dir })),
    ...u.mounts.map((m) => ({
      hostPath: m.src,
      containerPath: m.target === u.resolvTarget ? '/etc/resolv.conf' : m.target,
      readOnly: m.readOnly,
      isFile: m.isFile,
    })),
  ];
  return {
    root: u.image.root,
    stateDir: u.stateDir,
    readOnlyRootFilesystem: csc.readOnlyRootFilesystem === true,
    volumes,
    uid: u.uid,
    gid: u.gid,
    groups: [...u.groups],
    noNewPrivileges: csc.allowPrivilegeEscalation === false,
    dropAllCapabilities: drop.includes('ALL'),
    workingDir: u.workingDir,
    hostname: u.hostname,
    netns: u.netns,
    startedFile: u.startedFile,
  };
}
