// `make deb`: builds popsteer_<version>_<arch>.deb with dpkg-deb, from this
// tree as it is, with no network: popsteer's sources, its production npm
// dependencies (every package-lock.json entry not marked dev, copied from
// node_modules), the Node.js 24 runtime binary of the `node` npm package
// (stripped), and the native UDP module `make native` built.
//
// Layout (packaging/README.md says why):
//   /usr/lib/popsteer/            sources, node_modules, runtime/node, build/udp_batch.node
//   /usr/bin/popsteer             launcher on the bundled runtime
//   /etc/popsteer/                popsteer.yaml, zones/, steering/, geo-data/ (conffiles)
//   /lib/systemd/system/          popsteer.service, popsteer-anycast.service
//   /var/lib/popsteer, /var/cache/popsteer, user popsteer: made by postinst
//
//   node packaging/build-deb.ts [--out DIR]      (default: dist/)

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';

const REPO = resolve(import.meta.dirname, '..');
const PACKAGING = join(REPO, 'packaging');
const LIB = 'usr/lib/popsteer';

/**
 * What an npm package ships for its own development and never reads at run
 * time: dot-files anywhere, and a few top-level directories (only at the top:
 * yaml, for one, keeps code in dist/doc/).
 */
const DOT_NOISE = /(^|\/)(\.github|\.npmignore|\.eslintrc[^/]*|\.prettierrc[^/]*|\.editorconfig|\.travis\.yml|\.nycrc[^/]*|\.taprc|\.gitattributes|\.husky)($|\/)/;
const TOP_LEVEL_NOISE = new Set(['test', 'tests', 'benchmark', 'benchmarks', 'bench', 'example', 'examples', 'docs', 'coverage', 'integration', 'index.html']);

/** The bundled runtime. */
const RUNTIME = `/${LIB}/runtime/node`;

interface LockEntry { dev?: boolean; optional?: boolean }

function main(): void {
  const { values } = parseArgs({ options: { out: { type: 'string', default: join(REPO, 'dist') } } });
  const out = resolve(values.out!);
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string; description: string };
  const arch = execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim();
  const native = join(REPO, 'build', 'udp_batch.node');
  if (!existsSync(native)) throw new Error(`${native} is missing: run make native first`);

  const staging = mkdtempSync(join(tmpdir(), 'popsteer-deb-'));
  try {
    const root = join(staging, 'root');
    copyApplication(root, native);
    copyProductionModules(root);
    copyRuntime(root);
    neutraliseShebangs(join(root, LIB));
    installLauncher(root);
    installConfiguration(root);
    installUnits(root);
    installDocs(root, pkg.version);
    installControl(root, pkg.version, arch);
    mkdirSync(out, { recursive: true });
    const deb = join(out, `popsteer_${pkg.version}_${arch}.deb`);
    execFileSync('dpkg-deb', ['--root-owner-group', '-Zgzip', '-z6', '--build', root, deb], { stdio: ['ignore', 'ignore', 'inherit'] });
    process.stdout.write(`${deb}\n`);
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

function copyApplication(root: string, native: string): void {
  const lib = join(root, LIB);
  mkdirSync(lib, { recursive: true });
  cpSync(join(REPO, 'package.json'), join(lib, 'package.json'));
  cpSync(join(REPO, 'bin', 'popsteer.js'), join(lib, 'bin', 'popsteer.js'));
  // The sources Node runs (type stripping) and the status page; not the C source of the native module.
  cpSync(join(REPO, 'server'), join(lib, 'server'), { recursive: true, filter: (src) => !src.endsWith('/native') && !src.endsWith('.c') });
  cpSync(join(REPO, 'policies', 'schema'), join(lib, 'policies', 'schema'), { recursive: true });
  cpSync(native, join(lib, 'build', 'udp_batch.node'));
  execFileSync('strip', ['--strip-unneeded', join(lib, 'build', 'udp_batch.node')]);
}

/**
 * `#!/usr/bin/env node` scripts (popsteer's entry point, npm packages' CLIs)
 * would run on whatever node is on PATH. Nothing runs them directly: the
 * launcher hands popsteer.js to the bundled runtime, and the CLIs are unused.
 * So the line becomes a comment (line numbers stay) and the file plain data.
 */
function neutraliseShebangs(dir: string): void {
  for (const file of filesUnder(dir)) {
    if (!/\.(c|m)?js$/.test(file)) continue;
    const text = readFileSync(file, 'utf8');
    if (!text.startsWith('#!')) continue;
    writeFileSync(file, `// run by ${RUNTIME} through /usr/bin/popsteer${text.slice(text.indexOf('\n'))}`);
    chmodSync(file, 0o644);
  }
}

/** Every non-dev package of package-lock.json, each directory without its own node_modules (nested entries are listed on their own). */
function copyProductionModules(root: string): void {
  const lock = JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (path === '' || entry.dev) continue;
    const source = join(REPO, path);
    if (!existsSync(source)) {
      if (entry.optional) continue;
      throw new Error(`${path} is in package-lock.json but not installed: run make deps`);
    }
    cpSync(source, join(root, LIB, path), {
      recursive: true,
      filter: (src) => {
        const inside = relative(source, src);
        return inside === '' || (!inside.startsWith('node_modules') && !DOT_NOISE.test(inside) && !TOP_LEVEL_NOISE.has(inside.split('/')[0]));
      },
    });
  }
}

/** The Node.js binary of the `node` devDependency (node_modules/.bin/node), stripped of debug information, and its licence. */
function copyRuntime(root: string): void {
  const runtime = join(root, LIB, 'runtime');
  mkdirSync(runtime, { recursive: true });
  const binary = join(REPO, 'node_modules', 'node', 'bin', 'node');
  const licence = readdirSync(join(REPO, 'node_modules', 'node', 'node_modules'))
    .map((name) => join(REPO, 'node_modules', 'node', 'node_modules', name, 'LICENSE')).find((file) => name(file).startsWith('node-linux-') && existsSync(file));
  if (!existsSync(binary) || !licence) throw new Error('node_modules/node carries no Linux runtime: run make deps');
  cpSync(binary, join(runtime, 'node'));
  execFileSync('strip', ['--strip-unneeded', '--remove-section=.comment', '--remove-section=.note', join(runtime, 'node')]);
  chmodSync(join(runtime, 'node'), 0o755);
  cpSync(licence, join(root, 'usr/share/doc/popsteer/node-LICENSE'));
}

/** The npm package directory a file is in. */
function name(file: string): string {
  return relative(join(REPO, 'node_modules', 'node', 'node_modules'), file).split('/')[0];
}

function installLauncher(root: string): void {
  cpSync(join(PACKAGING, 'popsteer.sh'), join(root, 'usr/bin/popsteer'));
  chmodSync(join(root, 'usr/bin/popsteer'), 0o755);
}

function installConfiguration(root: string): void {
  const etc = join(root, 'etc/popsteer');
  cpSync(join(PACKAGING, 'popsteer.yaml'), join(etc, 'popsteer.yaml'));
  for (const dir of ['zones', 'steering']) cpSync(join(REPO, 'policies', dir), join(etc, dir), { recursive: true });
  for (const file of ['pops.yaml', 'networks.yaml', 'probes.yaml']) cpSync(join(REPO, 'geo-data', file), join(etc, 'geo-data', file));
  cpSync(join(PACKAGING, 'default-popsteer-anycast'), join(root, 'etc/default/popsteer-anycast'));
}

function installUnits(root: string): void {
  for (const unit of ['popsteer.service', 'popsteer-anycast.service']) {
    cpSync(join(REPO, 'contrib', 'systemd', unit), join(root, 'lib/systemd/system', unit));
  }
}

function installDocs(root: string, version: string): void {
  const doc = join(root, 'usr/share/doc/popsteer');
  mkdirSync(doc, { recursive: true });
  cpSync(join(PACKAGING, 'copyright'), join(doc, 'copyright'));
  cpSync(join(REPO, 'README.md'), join(doc, 'README.md'));
  const changelog = readFileSync(join(PACKAGING, 'changelog'), 'utf8');
  if (!changelog.startsWith(`popsteer (${version})`)) throw new Error(`packaging/changelog does not start with version ${version} of package.json`);
  // -n equivalent: no name or time in the gzip header, so the package is reproducible.
  writeFileSync(join(doc, 'changelog.gz'), gzipSync(changelog, { level: 9 }));
  const overrides = join(root, 'usr/share/lintian/overrides');
  mkdirSync(overrides, { recursive: true });
  cpSync(join(PACKAGING, 'lintian-overrides'), join(overrides, 'popsteer'));
}

function installControl(root: string, version: string, arch: string): void {
  const control = join(root, 'DEBIAN');
  mkdirSync(control, { recursive: true });
  normaliseModes(root);
  const installedKb = Math.ceil(diskUsage(root) / 1024);
  const template = readFileSync(join(PACKAGING, 'control'), 'utf8');
  writeFileSync(join(control, 'control'), template.replace('@VERSION@', version).replace('@ARCH@', arch).replace('@INSTALLED_SIZE@', String(installedKb)));
  const conffiles = filesUnder(join(root, 'etc')).map((f) => `/${relative(root, f)}`).sort();
  writeFileSync(join(control, 'conffiles'), `${conffiles.join('\n')}\n`);
  const sums = filesUnder(root).filter((f) => !f.startsWith(`${control}/`) && !f.startsWith(join(root, 'etc') + '/'))
    .map((f) => `${createHash('md5').update(readFileSync(f)).digest('hex')}  ${relative(root, f)}`).sort((a, b) => a.slice(34).localeCompare(b.slice(34)));
  writeFileSync(join(control, 'md5sums'), `${sums.join('\n')}\n`);
  for (const script of ['postinst', 'prerm', 'postrm']) {
    cpSync(join(PACKAGING, script), join(control, script));
    chmodSync(join(control, script), 0o755);
  }
  for (const file of ['control', 'conffiles', 'md5sums']) chmodSync(join(control, file), 0o644);
}

/**
 * Directories 0755, files 0644 unless executable (then 0755), whatever the
 * checkout's umask; nothing under node_modules is run directly, so all 0644.
 */
function normaliseModes(dir: string, plainData = false): void {
  chmodSync(dir, 0o755);
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const stats = statSync(path);
    if (stats.isDirectory()) normaliseModes(path, plainData || name === 'node_modules');
    else chmodSync(path, !plainData && stats.mode & 0o111 ? 0o755 : 0o644);
  }
}

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

function diskUsage(dir: string): number {
  return filesUnder(dir).reduce((sum, f) => sum + Math.ceil(statSync(f).size / 4096) * 4096, 0) + 4096;
}

main();
