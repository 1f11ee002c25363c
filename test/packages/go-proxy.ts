import * as fs from 'fs';
import * as path from 'path';
import { CACHE, cacheKey, pinnedVersion, ROOT, run } from './build';

/**
 * cdk8s's Go module (github.com/cdk8s-team/cdk8s-core-go/cdk8s/v2) as a fallback Go proxy.
 *
 * proxy.golang.org answers "403 This module version is not available" for every version of
 * cdk8s-core-go from this network (cdk8s-plus-go, constructs-go and jsii-runtime-go are served).
 * cdk8s-team generates that module with jsii-pacmak from the npm cdk8s package; this does the
 * same for the pinned cdk8s version and serves it from a file:// proxy that Go asks only when
 * proxy.golang.org fails (GOPROXY "a|b": the next on any error). Its checksum is not the
 * published one, so that module alone skips the checksum database (GONOSUMDB).
 */
const MODULE = 'github.com/cdk8s-team/cdk8s-core-go/cdk8s/v2';

function fallbackProxy(): string {
  const version = `v${pinnedVersion('cdk8s')}`;
  const dir = path.join(CACHE, `go-proxy-${cacheKey(MODULE, version, run('npx', ['jsii-pacmak', '--version']).trim())}`);
  if (fs.existsSync(dir)) return dir;
  const tmp = `${dir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  run('npx', ['jsii-pacmak', '--target', 'go', '--code-only', '--outdir', path.join(tmp, 'src'), path.join(ROOT, 'node_modules', 'cdk8s')]);
  const source = path.join(tmp, 'src', 'go', 'cdk8s');
  const at = path.join(tmp, ...MODULE.split('/'), '@v');
  fs.mkdirSync(at, { recursive: true });
  fs.writeFileSync(path.join(at, 'list'), `${version}\n`);
  fs.writeFileSync(path.join(at, `${version}.info`), JSON.stringify({ Version: version, Time: '2026-01-01T00:00:00Z' }));
  fs.copyFileSync(path.join(source, 'go.mod'), path.join(at, `${version}.mod`));
  // A module zip: every file under "<module>@<version>/".
  run('python3', ['-c', [
    'import os, sys, zipfile',
    'src, prefix, out = sys.argv[1:]',
    'with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:',
    '    for root, _, files in os.walk(src):',
    '        for f in sorted(files):',
    '            p = os.path.join(root, f)',
    '            z.write(p, prefix + "/" + os.path.relpath(p, src))',
  ].join('\n'), source, `${MODULE}@${version}`, path.join(at, `${version}.zip`)]);
  fs.rmSync(path.join(tmp, 'src'), { recursive: true });
  fs.renameSync(tmp, dir);
  return dir;
}

/** The environment for `go` (and for jsii-pacmak's Go target): the module proxy, then the fallback. */
export function goEnv(): NodeJS.ProcessEnv {
  return {
    ...process.env,
    GOPROXY: `https://proxy.golang.org|file://${fallbackProxy()}`,
    GONOSUMDB: 'github.com/cdk8s-team/cdk8s-core-go',
    GOFLAGS: '-mod=mod -buildvcs=false',
    // Downloaded modules and compiled packages (the bindings are large), kept per machine.
    GOMODCACHE: path.join(CACHE, 'go-mod'),
    GOCACHE: path.join(CACHE, 'go-build'),
  };
}
