import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

/** A throwaway CA made with openssl, and server certificates it signs. */
export class TestCa {
  private readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fdb-tls-ca-'));
  private issued = 0;

  constructor() {
    this.openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=fdb-test-ca',
      '-keyout', this.file('ca.key'), '-out', this.file('ca.crt')]);
  }

  /** The CA's certificate (PEM). */
  public get caCrt(): string {
    return this.read('ca.crt');
  }

  /** tls.crt, tls.key and ca.crt of a server certificate for `names`, and its serial (hex, as openssl prints it). */
  public issue(names: string[]): { secret: { [key: string]: string }; serial: string } {
    const n = ++this.issued;
    const ext = this.file(`ext${n}`);
    fs.writeFileSync(ext, `subjectAltName=${names.map((d) => `DNS:${d}`).join(',')}\nextendedKeyUsage=serverAuth\n`);
    this.openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${names[0]}`, '-keyout', this.file(`key${n}`), '-out', this.file(`csr${n}`)]);
    this.openssl(['x509', '-req', '-in', this.file(`csr${n}`), '-CA', this.file('ca.crt'), '-CAkey', this.file('ca.key'),
      '-set_serial', String(1000 + n), '-days', '1', '-extfile', ext, '-out', this.file(`crt${n}`)]);
    const serial = this.openssl(['x509', '-noout', '-serial', '-in', this.file(`crt${n}`)]).trim().replace(/^serial=/, '');
    return {
      secret: { 'tls.crt': this.read(`crt${n}`), 'tls.key': this.read(`key${n}`), 'ca.crt': this.read('ca.crt') },
      serial,
    };
  }

  public destroy(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  private file(name: string): string {
    return path.join(this.dir, name);
  }

  private read(name: string): string {
    return fs.readFileSync(this.file(name), 'utf8');
  }

  private openssl(args: string[]): string {
    return execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  }
}
