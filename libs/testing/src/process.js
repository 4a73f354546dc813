"use strict";
Object.defineProperty(exports, "__esModule", { value: true });
exports.spawnService = spawnService;
const node_child_process_1 = require("node:child_process");
const node_path_1 = require("node:path");
const ROOT = (0, node_path_1.join)(__dirname, '..', '..', '..');
/** Spawns `tsx <entry>` from the repository root with `env` added to the environment. */
function spawnService(entry, env) {
    const tsx = (0, node_path_1.join)(ROOT, 'node_modules', '.bin', 'tsx');
    const proc = (0, node_child_process_1.spawn)(tsx, [entry], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const lines = [];
    const waiters = [];
    const onData = (buf) => {
        for (const line of buf.toString('utf8').split('\n')) {
            if (!line)
                continue;
            if (lines.length < 50_000)
                lines.push(line);
            for (const w of [...waiters]) {
                if (w.re.test(line)) {
                    waiters.splice(waiters.indexOf(w), 1);
                    w.resolve(line);
                }
            }
        }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    const exited = new Promise((resolve) => proc.on('exit', (code, sig) => resolve(code ?? sig ?? -1)));
    return {
        proc,
        lines,
        exited,
        kill: (signal = 'SIGKILL') => void proc.kill(signal),
        waitForLine(re, timeoutMs = 30_000) {
            const seen = lines.find((l) => re.test(l));
            if (seen)
                return Promise.resolve(seen);
            return new Promise((resolve, reject) => {
                const t = setTimeout(() => reject(new Error(`no line matching ${re} within ${timeoutMs} ms; last lines:\n${lines.slice(-20).join('\n')}`)), timeoutMs);
                waiters.push({ re, resolve: (l) => (clearTimeout(t), resolve(l)) });
            });
        },
    };
}
//# sourceMappingURL=process.js.map