import { createHash } from 'crypto';
import { asset } from '../../private/assets';

/** ConfigMap keys of the PostgreSQL pods' scripts (mounted side by side in one directory). */
export function postgresScripts(): { [key: string]: string } {
  const files = ['lib.sh', 'datadir.sh', 'postgres.sh', 'agent.sh', 'lifecycle.sh', 'cluster-state.sh', 'fencing.sh', 'lease.sh', 'setup.sql'];
  return Object.fromEntries(files.map((f) => [f, asset(`backends/statefulset/${f}`)]));
}

/**
 * A short hash of the scripts (sha256 over `<key>\n<content>\n` of each key, in the order above):
 * the pod templates carry it, so a library upgrade that changes them rolls the pods. Mounted from
 * the ConfigMap, new scripts would otherwise reach the probes (run anew each time) while a running
 * postgres.sh or agent.sh keeps the old code.
 */
export function postgresScriptsHash(): string {
  const hash = createHash('sha256');
  for (const [key, content] of Object.entries(postgresScripts())) hash.update(`${key}\n${content}\n`);
  return hash.digest('hex').slice(0, 16);
}
