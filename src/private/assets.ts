import * as fs from 'fs';
import * as path from 'path';

/** The files the pods run, shipped in assets/ (beside src/ and lib/) and read at synth time. */
const ASSETS = path.join(__dirname, '..', '..', 'assets');

/** Each file read once per process: every cluster of an app ships the same scripts. */
const cache = new Map<string, string>();

/** A file of assets/, by its path below that folder. */
export function asset(relativePath: string): string {
  let text = cache.get(relativePath);
  if (text === undefined) {
    text = fs.readFileSync(path.join(ASSETS, relativePath), 'utf8');
    cache.set(relativePath, text);
  }
  return text;
}
