import * as fs from 'fs';
import * as path from 'path';

/** The files the pods run, shipped in assets/ (beside src/ and lib/) and read at synth time. */
const ASSETS = path.join(__dirname, '..', '..', 'assets');

/** A file of assets/, by its path below that folder. */
export function asset(relativePath: string): string {
  return fs.readFileSync(path.join(ASSETS, relativePath), 'utf8');
}
