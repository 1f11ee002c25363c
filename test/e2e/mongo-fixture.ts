import * as path from 'path';
import { NAME, PgCluster, PgClusterOptions, PRIMARY, PRIMARY_STS, replica, REPLICA_STS } from './fixture';
import { Cluster } from './harness';
import { FerretDBClusterProps } from '../../src';

export const RW = `${NAME}-rw`;
export const RO = `${NAME}-ro`;
export const WRITER_DEPLOYMENT = `${NAME}-ferretdb-rw`;
export const READER_DEPLOYMENT = `${NAME}-ferretdb-ro`;
/** A test-only application pod: the MongoDB driver runs in its network namespace. */
export const CLIENT = 'mongo-client-0';
const CLIENT_SCRIPT = path.join(__dirname, 'ferretdb', 'mongo-client.js');

/**
 * The client's StatefulSet: `sleep infinity` on the host's Node (the driver is run with exec), a
 * test-only image that runs on the host under either PostgreSQL major.
 */
export const clientStatefulSet = {
  apiVersion: 'apps/v1',
  kind: 'StatefulSet',
  metadata: { name: 'mongo-client' },
  spec: {
    replicas: 1,
    serviceName: 'mongo-client',
    selector: { matchLabels: { app: 'mongo-client' } },
    template: {
      metadata: { labels: { app: 'mongo-client' } },
      spec: { terminationGracePeriodSeconds: 1, containers: [{ name: 'app', image: 'mongo-client', command: ['sleep', 'infinity'] }] },
    },
  },
};

/** Harness options for MongoCluster.boot, and Secrets to create before any pod starts (TLS). */
export type MongoClusterOptions = PgClusterOptions & { readonly secrets?: { readonly [name: string]: { [key: string]: string } } };

/** The driver's outcome: a value, or the error it threw (name, code, codeName, message). */
export interface MongoResult {
  readonly ok: boolean;
  readonly value?: any;
  readonly error?: { name: string; code?: number; codeName?: string; message: string; errorLabels?: string[] };
}

/**
 * A running FerretDBCluster with the real FerretDB in front: PostgreSQL primary and standbys,
 * both FerretDB Deployments, and a client pod that runs the MongoDB driver through the Services.
 * Like PgCluster, PostgreSQL 17 in the images' userlands (FerretDB alone in its root) unless
 * `options.postgres` is 15.
 */
export class MongoCluster {
  public static async boot(props: FerretDBClusterProps = {}, options: MongoClusterOptions = {}): Promise<MongoCluster> {
    const { secrets, ...harness } = options;
    const images = { ...harness.images, 'mongo-client': { path: [path.dirname(process.execPath)], env: {} } };
    const pg = secrets === undefined ? await PgCluster.boot(props, { ...harness, images }) : await PgCluster.create(props, { ...harness, images });
    try {
      if (secrets !== undefined) {
        // Secrets the pods mount (TLS) exist before the pods, then the order of PgCluster.boot.
        for (const [name, data] of Object.entries(secrets)) pg.h.setSecret(name, data);
        await pg.runCredentialsJob();
        await pg.h.startStatefulSet(PRIMARY_STS, { timeoutMs: 120_000 });
        await pg.h.startStatefulSet(REPLICA_STS, { timeoutMs: 180_000 });
      }
      await pg.waitStreaming(PRIMARY, Array.from({ length: props.replicas ?? 2 }, (_, i) => replica(i)));
      await pg.h.apply([...pg.synth(props), clientStatefulSet]);
      await pg.h.startStatefulSet('mongo-client');
      await pg.h.startDeployment(WRITER_DEPLOYMENT, { timeoutMs: 120_000 });
      await pg.h.startDeployment(READER_DEPLOYMENT, { timeoutMs: 120_000 });
    } catch (e) {
      await pg.destroy();
      throw e;
    }
    return new MongoCluster(pg);
  }

  private constructor(public readonly pg: PgCluster) {}

  public get h() {
    return this.pg.h;
  }

  /** `kubectl apply --prune` of a new synth, keeping the client pod (the apply would prune it). */
  public async apply(props: FerretDBClusterProps, opts: { wait?: boolean } = {}): Promise<void> {
    await this.h.apply([...this.pg.synth(props), clientStatefulSet], opts);
  }

  /** The FerretDB pods of a Deployment now. */
  public ferretPods(deployment: string): string[] {
    return this.h.pods().filter((p) => p.owner === `Deployment/${deployment}` && !p.terminating).map((p) => p.name).sort();
  }

  /** The generated password of FerretDB's role (`ferretdb`), the MongoDB user the README names. */
  public password(): string {
    const pw = this.h.getSecret(`${NAME}-credentials`)?.['ferretdb-password'];
    if (!pw) throw new Error(`Secret ${NAME}-credentials has no ferretdb-password`);
    return pw;
  }

  /** The README's connection strings: `NAME-rw`, and `NAME-ro` with secondaryPreferred. */
  public uri(service: string, user = 'ferretdb', password = this.password()): string {
    const query = service === RO ? '?readPreference=secondaryPreferred' : '';
    return `mongodb://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${service}:27017/${query}`;
  }

  /** Runs `body` (an async function body of client, db, mongodb) with the driver in the client pod. */
  public async mongo(uri: string, body: string, db = 'shop'): Promise<MongoResult> {
    const r = await this.h.exec(CLIENT, 'app', ['node', CLIENT_SCRIPT], { input: JSON.stringify({ uri, db, body }), timeoutMs: 60_000 });
    if (r.code !== 0) throw new Error(`mongo-client.js failed (${r.timedOut ? 'timeout' : `exit ${r.code}`}): ${r.stderr}`);
    return JSON.parse(r.stdout) as MongoResult;
  }

  /** Like mongo(), but throws the driver's error. */
  public async value(uri: string, body: string, db = 'shop'): Promise<any> {
    const r = await this.mongo(uri, body, db);
    if (!r.ok) throw new Error(`MongoDB driver error: ${JSON.stringify(r.error)}`);
    return r.value;
  }

  /** Prints what the FerretDB pods of both Deployments logged as warnings and errors. */
  public logWarnings(last = 10): void {
    logFerretDBWarnings(this.h, [...this.ferretPods(WRITER_DEPLOYMENT), ...this.ferretPods(READER_DEPLOYMENT)], last);
  }

  public async destroy(): Promise<void> {
    await this.pg.destroy();
  }
}

/** Prints the last warnings and errors each FerretDB pod logged (for a failed run's output). */
export function logFerretDBWarnings(h: Cluster, pods: string[], last = 10): void {
  for (const pod of pods) {
    const warnings = h.logs(pod, 'ferretdb').split('\n').filter((l) => /\t(WARN|ERROR|DPANIC|FATAL)\t/.test(l));
    if (warnings.length > 0) console.log(`${pod}:\n${warnings.slice(-last).join('\n')}`);
  }
}

/**
 * Client code that inserts `{ _id: i }` through the client's database one at a time until
 * `stopFile` exists, pausing `pauseMs` after an error; it returns the acknowledged ids with their
 * times (ms) and the errors seen, by kind.
 */
export function continuousWriter(stopFile: string, pauseMs: number): string {
  return `
  const fs = require('fs');
  const items = db.collection('orders');
  const acked = [];
  const errors = {};
  for (let i = 1; !fs.existsSync(${JSON.stringify(stopFile)}); i++) {
    try {
      await items.insertOne({ _id: i });
      acked.push([i, Date.now()]);
    } catch (e) {
      const key = (e.codeName || e.name) + ': ' + String(e.message).slice(0, 80);
      errors[key] = (errors[key] || 0) + 1;
      await new Promise((r) => setTimeout(r, ${pauseMs}));
    }
  }
  return { acked, errors };`;
}

export { PRIMARY, PRIMARY_STS, REPLICA_STS, replica };
