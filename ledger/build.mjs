#!/usr/bin/env node
// Compile ledger/contracts/**/*.sol with the pinned solc-js into ledger/artifacts/.
//
//   node ledger/build.mjs           rebuild the committed artifacts (npm run build:contracts)
//   node ledger/build.mjs --check   exit 1 when the committed artifacts differ from the sources
//
// The compiler comes from node_modules (npm ci at the repository root); nothing is downloaded.
import { createRequire } from "node:module";
import { readFileSync, writeFileSync, readdirSync, mkdirSync, existsSync, statSync } from "node:fs";
import { join, relative, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createHash } from "node:crypto";

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));
const contractsDir = join(here, "contracts");
const artifactsDir = join(here, "artifacts");
const EXPECTED_SOLC = "0.8.37";
const EVM_VERSION = "prague";

let solc;
try {
    solc = require("solc");
} catch (err) {
    console.error("solc-js is not installed: run 'npm ci' at the repository root (or './dev setup').");
    process.exit(2);
}
const solcVersion = solc.version();
if (!solcVersion.startsWith(EXPECTED_SOLC + "+")) {
    console.error(`solc ${solcVersion} found, ${EXPECTED_SOLC} pinned in package.json: run 'npm ci'.`);
    process.exit(2);
}

function walk(dir) {
    const out = [];
    for (const name of readdirSync(dir).sort()) {
        const p = join(dir, name);
        if (statSync(p).isDirectory()) out.push(...walk(p));
        else if (name.endsWith(".sol")) out.push(p);
    }
    return out;
}

const files = walk(contractsDir);
const sources = {};
for (const f of files) {
    sources[relative(contractsDir, f).split("\\").join("/")] = { content: readFileSync(f, "utf8") };
}

const sha = (s) => createHash("sha256").update(s).digest("hex");
if (process.argv.includes("--check")) {
    // cheap first: a source whose hash differs from the manifest needs no compile to be stale
    const manifestPath = join(artifactsDir, "manifest.json");
    const recorded = existsSync(manifestPath) ? JSON.parse(readFileSync(manifestPath, "utf8")).sources : {};
    const changed = [...new Set([...Object.keys(recorded), ...Object.keys(sources)])]
        .filter((k) => recorded[k] !== (sources[k] && sha(sources[k].content)))
        .sort();
    if (changed.length) {
        console.error(`sources changed since the artifacts were built: ${changed.join(", ")}`);
        console.error("rebuild with 'npm run build:contracts' and commit ledger/artifacts/.");
        process.exit(1);
    }
}

const settings = {
    evmVersion: EVM_VERSION,
    optimizer: { enabled: true, runs: 200 },
    viaIR: true,
    metadata: { bytecodeHash: "none", appendCBOR: false },
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
};
const input = { language: "Solidity", sources, settings };
const output = JSON.parse(solc.compile(JSON.stringify(input)));
let failed = false;
for (const e of output.errors ?? []) {
    if (e.severity === "error") failed = true;
    console.error(e.formattedMessage);
}
if (failed) process.exit(1);

const wanted = {};
for (const [src, contracts] of Object.entries(output.contracts)) {
    for (const [name, c] of Object.entries(contracts)) {
        if (!c.evm.bytecode.object) continue; // interfaces and abstract contracts
        wanted[`${name}.json`] = JSON.stringify(
            { contractName: name, sourceName: src, abi: c.abi, bytecode: "0x" + c.evm.bytecode.object },
            null,
            1,
        ) + "\n";
    }
}
const manifest = {
    solc: solcVersion,
    settings: { evmVersion: EVM_VERSION, optimizer: settings.optimizer, viaIR: settings.viaIR },
    sources: Object.fromEntries(Object.entries(sources).map(([k, v]) => [k, sha(v.content)])),
    artifacts: Object.fromEntries(Object.entries(wanted).map(([k, v]) => [k, sha(v)])),
};
wanted["manifest.json"] = JSON.stringify(manifest, null, 1) + "\n";

if (process.argv.includes("--check")) {
    const stale = [];
    for (const [name, text] of Object.entries(wanted)) {
        const p = join(artifactsDir, name);
        if (!existsSync(p) || readFileSync(p, "utf8") !== text) stale.push(name);
    }
    const extra = existsSync(artifactsDir)
        ? readdirSync(artifactsDir).filter((n) => n.endsWith(".json") && !(n in wanted))
        : [];
    if (stale.length || extra.length) {
        console.error(`artifacts differ from sources: ${[...stale, ...extra].join(", ")}`);
        console.error("rebuild with 'npm run build:contracts' and commit ledger/artifacts/.");
        process.exit(1);
    }
    console.log(`artifacts match sources (${Object.keys(wanted).length - 1} contracts, solc ${solcVersion})`);
} else {
    mkdirSync(artifactsDir, { recursive: true });
    for (const n of readdirSync(artifactsDir)) {
        if (n.endsWith(".json") && !(n in wanted)) console.error(`note: stale artifact ${n} left in place`);
    }
    for (const [name, text] of Object.entries(wanted)) writeFileSync(join(artifactsDir, name), text);
    console.log(`wrote ${Object.keys(wanted).length - 1} contracts to ${relative(process.cwd(), artifactsDir)}/ (solc ${solcVersion}, evm ${EVM_VERSION})`);
}
