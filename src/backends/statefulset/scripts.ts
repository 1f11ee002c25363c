import { asset } from '../../private/assets';

/** ConfigMap keys of the PostgreSQL pods' scripts (mounted side by side in one directory). */
export function postgresScripts(): { [key: string]: string } {
  const files = ['lib.sh', 'datadir.sh', 'postgres.sh', 'agent.sh', 'lifecycle.sh', 'cluster-state.sh', 'fencing.sh', 'lease.sh', 'setup.sql'];
  return Object.fromEntries(files.map((f) => [f, asset(`backends/statefulset/${f}`)]));
}
