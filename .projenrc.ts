import { cdk8s, javascript, JsonFile, TextFile } from 'projen';

const project = new cdk8s.ConstructLibraryCdk8s({
  name: 'cdk8s-ferretdb',
  description: 'cdk8s constructs for a replicated FerretDB (MongoDB-compatible API over PostgreSQL): a PostgreSQL primary with the DocumentDB extension, hot-standby replicas fed by WAL streaming through physical replication slots, and FerretDB read-write and read-only endpoints.',
  author: 'cdk8s-ferretdb authors',
  authorAddress: 'cdk8s-ferretdb@users.noreply.github.com',
  repositoryUrl: 'https://github.com/cdk8s-ferretdb/cdk8s-ferretdb.git',
  license: 'Apache-2.0',
  keywords: ['cdk8s', 'kubernetes', 'ferretdb', 'postgresql', 'mongodb', 'replication', 'documentdb'],
  defaultReleaseBranch: 'main',
  packageManager: javascript.NodePackageManager.NPM,
  projenrcTs: true,
  jsiiVersion: '~6.0.0',
  cdk8sVersion: '2.70.106',
  constructsVersion: '10.8.1',
  peerDeps: ['cdk8s-plus-28@^2.5.6'],
  devDeps: [
    'cdk8s-plus-28@2.5.6',
    'yaml@^2.9.1',
    'kubernetes-models@4.5.1',
    '@kubernetes-models/validate@^4.0.0',
    // `cdk8s import` of the custom resource definitions (task import-crds).
    'cdk8s-cli@2.207.60',
    // Tests validate custom resources against their CRD's openAPIV3Schema.
    'ajv@^8.20.0',
    // The MongoDB driver the e2e suite talks to the real FerretDB with (7.x: Node >= 20.19).
    'mongodb@7.9.1',
  ],
  // Packages for every cdk8s language, named like the cdk8s libraries' (cdk8s-plus-28:
  // PyPI cdk8s-plus-28 / cdk8s_plus_28, Go github.com/cdk8s-team/cdk8s-plus-go/cdk8splus28,
  // Maven org.cdk8s:cdk8s-plus-28). `npx projen package-all` writes them to dist/; the tests in
  // test/packages/ install each one the way a user of that language does and synthesize with it.
  publishToPypi: { distName: 'cdk8s-ferretdb', module: 'cdk8s_ferretdb' },
  publishToGo: { moduleName: 'github.com/cdk8s-ferretdb/cdk8s-ferretdb-go', packageName: 'cdk8sferretdb' },
  // Maven Central namespaces for GitHub owners are io.github.<owner>; Java packages have no '-'.
  publishToMaven: { mavenGroupId: 'io.github.cdk8s-ferretdb', mavenArtifactId: 'cdk8s-ferretdb', javaPackage: 'io.github.cdk8sferretdb' },
  github: false,
  release: false,
  jestOptions: {
    // A broken snapshot fails the run; `npm run test:update-snapshots` is the explicit, reviewed step.
    updateSnapshot: javascript.UpdateSnapshot.NEVER,
    passWithNoTests: false,
    jestConfig: {
      // Two files at a time: each real-PostgreSQL harness has its own subnet, network namespaces,
      // API server and directories, and most of a scenario's time is spent waiting on PostgreSQL
      // and the pods; one at a time no longer fits CI's time budget on two cores.
      maxWorkers: 2,
      testPathIgnorePatterns: ['/node_modules/', '/lib/', '/dist/'],
      // Generated code (npx projen import-crds) is not ours to cover.
      coveragePathIgnorePatterns: ['/node_modules/', '/lib/', '/dist/', '/src/imports/'],
    },
  },
  gitignore: ['/bench/results/', '/.ci-work/'],
});

// Every code sample (README.md, @example) compiles: jsii-rosetta in strict mode after each
// compile, with rosetta/default.ts-fixture as the samples' scope (test/packages/readme.test.ts
// runs the same check in `npm test`). The tablet it writes is a build output.
project.postCompileTask.exec('jsii-rosetta extract --strict .jsii');
project.gitignore.exclude('/.jsii.tabl.json');

// The API reference in each language the packages are published for, with every @example
// translated by jsii-rosetta (API.md stays the TypeScript one).
for (const language of ['python', 'java', 'go']) {
  project.tasks.tryFind('docgen')?.exec(`jsii-docgen -l ${language} -o API.${language}.md`);
}

// examples/ and bench/ are type-checked and linted like the tests.
for (const dir of ['examples', 'bench']) {
  project.eslint?.addLintPattern(dir);
  new JsonFile(project, `${dir}/tsconfig.json`, {
    obj: { extends: '../test/tsconfig.json', include: ['**/*.ts'] },
  });
}

// Shell scripts that run inside the pods ship with the package (read at synth time).
project.addPackageIgnore('/examples/');
project.addPackageIgnore('/bench/');
project.addPackageIgnore('/.ci/');
project.addPackageIgnore('/cdk8s.yaml');
project.addPackageIgnore('/BENCHMARKS.md');

project.addTask('synth', {
  description: 'Synthesize the example app to dist/ (YAML)',
  exec: 'ts-node --project examples/tsconfig.json examples/main.ts',
});

// Typed custom resources (src/imports/, generated, never edited by hand): `npx projen import-crds`.
// Reads the CRDs from ../shared/crds (upstream release files, see its README), offline.
// One `cdk8s import` per file (the CLI imports only its first spec), each with its own module name
// so the three CloudNativePG CRDs (one API group) get separate files. CRD imports get no class
// prefix (`Cluster`, `ObjectStore`, ...); the classes stay internal: src/index.ts does not
// re-export them, so jsii compiles them but they are not part of the API (nor of API.md).
const CRDS_DIR = '../shared/crds';
const IMPORTS_DIR = 'src/imports';
const CRD_IMPORTS: [string, string][] = [
  ['cnpg-cluster', 'cloudnative-pg-1.30.0/postgresql.cnpg.io_clusters.yaml'],
  ['cnpg-backup', 'cloudnative-pg-1.30.0/postgresql.cnpg.io_backups.yaml'],
  ['cnpg-scheduledbackup', 'cloudnative-pg-1.30.0/postgresql.cnpg.io_scheduledbackups.yaml'],
  ['barman-objectstore', 'plugin-barman-cloud-0.14.0/barmancloud.cnpg.io_objectstores.yaml'],
  ['prometheus-podmonitor', 'prometheus-operator-0.93.0/monitoring.coreos.com_podmonitors.yaml'],
  ['cert-manager-certificate', 'cert-manager-1.21.1/cert-manager.io_certificates.yaml'],
];
const importCrds = project.addTask('import-crds', {
  description: `Regenerate ${IMPORTS_DIR}/ with \`cdk8s import\` from the local CRDs in ${CRDS_DIR} (CloudNativePG 1.30.0 Cluster, Backup, ScheduledBackup; Barman Cloud 0.14.0 ObjectStore; prometheus-operator 0.93.0 PodMonitor; cert-manager 1.21.1 Certificate), offline, TypeScript, no class prefix, not saved to cdk8s.yaml`,
});
importCrds.exec(`rm -rf ${IMPORTS_DIR}`);
for (const [module, file] of CRD_IMPORTS) {
  importCrds.exec(`cdk8s import --no-save --no-check-upgrade --language typescript --output ${IMPORTS_DIR} ${module}:=${CRDS_DIR}/${file}`);
}
project.eslint?.addIgnorePattern(`${IMPORTS_DIR}/`);
project.gitattributes.addAttributes(`/${IMPORTS_DIR}/**`, 'linguist-generated');

project.addTask('test:update-snapshots', {
  description: 'Explicitly rewrite jest snapshots (review the diff before committing)',
  exec: 'jest --updateSnapshot',
  receiveArgs: true,
});

project.addTask('bench', {
  description: 'Benchmarks: synth scaling and replication speed on real PostgreSQL (prints a table, writes bench/results/)',
  exec: 'ts-node --project bench/tsconfig.json bench/run.ts',
  receiveArgs: true,
});

new TextFile(project, 'cdk8s.yaml', {
  lines: [
    '# ~~ Generated by projen. To modify, edit .projenrc.ts and run "npx projen".',
    'language: typescript',
    'app: npx ts-node --project examples/tsconfig.json examples/main.ts',
  ],
});


project.synth();
