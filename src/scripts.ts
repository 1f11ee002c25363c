import * as fs from 'fs';
import * as path from 'path';

/** The scripts the pods run, shipped in assets/ and read at synth time. */
const ASSETS = path.join(__dirname, '..', 'assets');

export function asset(relativePath: string): string {
  return fs.readFileSync(path.join(ASSETS, relativePath), 'utf8');
}

/** ConfigMap keys of the PostgreSQL pods' scripts (mounted side by side in one directory). */
export function postgresScripts(): { [key: string]: string } {
  const files = ['lib.sh', 'datadir.sh', 'postgres.sh', 'agent.sh', 'lifecycle.sh', 'cluster-state.sh', 'setup.sql'];
  return Object.fromEntries(files.map((f) => [f, asset(`postgres/${f}`)]));
}
